// kill -9 during VectorStore.save: a child saves ever-changing versions of a store in a loop and is
// SIGKILLed at random moments; after each kill the directory must load and equal one saved version.
// The child is this same file, started with SEARCH_R3_CRASH_CHILD set (so the runner never sees a helper).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { VectorStore, normalize } = require('../dist/store/index.js');

const N = 6000;
const DIM = 512; // 12 MB of vectors: a save takes long enough to be caught in every phase

// The content of generation g is a pure function of g, so the parent can check a loaded store
// bit for bit: ids i with i % 13 != g % 13, vector = base_i with one component set to g, version g.
const bases = new Map();
function baseVector(i) {
  if (!bases.has(i)) bases.set(i, Array.from({ length: DIM }, (_, j) => Math.sin(i * 131 + j * 17 + 1)));
  return bases.get(i);
}
function vectorOf(i, g) {
  const v = baseVector(i).slice();
  v[g % DIM] = g;
  return v;
}
function inGeneration(i, g) {
  return i % 13 !== g % 13;
}

async function child(dir, start) {
  const store = new VectorStore({ dim: DIM, capacity: N, kernel: 'js' });
  for (let g = start; ; g++) {
    for (let i = 0; i < N; i++) {
      if (inGeneration(i, g)) store.upsert(`doc${i}`, vectorOf(i, g), g);
      else store.delete(`doc${i}`);
    }
    process.stdout.write(`saving ${g}\n`);
    const t0 = performance.now();
    await store.save(dir);
    process.stdout.write(`saved ${g} ${Math.round(performance.now() - t0)}\n`);
  }
}

function checkGeneration(store) {
  const g = store.get(store.ids()[0]).version;
  const expectedIds = [];
  for (let i = 0; i < N; i++) if (inGeneration(i, g)) expectedIds.push(`doc${i}`);
  assert.deepEqual(store.ids().sort(), expectedIds.sort());
  for (let i = 0; i < N; i += 1) {
    if (!inGeneration(i, g)) continue;
    const rec = store.get(`doc${i}`);
    assert.equal(rec.version, g);
    assert.deepEqual(rec.vector, normalize(vectorOf(i, g), DIM));
  }
  return g;
}

// Lets the child finish two saves to learn how long a save takes, then kills it `fraction` of the
// way into a later save, so kills land inside saves whatever the machine's speed.
function runChildUntilKilled(dir, start, fraction) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      env: { ...process.env, SEARCH_R3_CRASH_CHILD: JSON.stringify({ dir, start }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let timer;
    let saveMs;
    proc.stdout.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      // The first save is slow (cold files, page faults), so time the second one.
      const done = lines.filter((l) => l.startsWith('saved '));
      if (saveMs === undefined) {
        if (done.length >= 2) saveMs = Number(done[1].split(' ')[2]);
      } else if (!timer && lines.at(-2)?.startsWith('saving ')) {
        timer = setTimeout(() => proc.kill('SIGKILL'), Math.floor(saveMs * 0.9 * fraction));
      }
    });
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child exited with ${code}/${signal}`));
      else resolve(out.split('\n').filter((l) => l.startsWith('sav')));
    });
  });
}

if (process.env.SEARCH_R3_CRASH_CHILD) {
  const { dir, start } = JSON.parse(process.env.SEARCH_R3_CRASH_CHILD);
  await child(dir, start);
} else {
  const { it } = await import('node:test');
  it('VectorStore.save survives kill -9 at random moments', { timeout: 180_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'store-crash-'));
    try {
      const savedEver = new Set();
      let rand = 12345;
      const next = () => (rand = (rand * 48271) % 2147483647) / 2147483647;
      const caughtMidSave = [];
      for (let round = 0; round < 6; round++) {
        const start = 1000 * (round + 1);
        const lines = await runChildUntilKilled(dir, start, next());
        for (const l of lines) if (l.startsWith('saved ')) savedEver.add(Number(l.split(' ')[1]));
        const inFlight = lines.at(-1)?.startsWith('saving ') ? Number(lines.at(-1).slice(7)) : undefined;
        const g = checkGeneration(await VectorStore.load(dir));
        // Either a completed save, or the one in flight when its manifest rename had just landed.
        assert.ok(savedEver.has(g) || g === inFlight, `loaded generation ${g}, saved ${[...savedEver]}, in flight ${inFlight}`);
        if (inFlight !== undefined) caughtMidSave.push(inFlight);
        t.diagnostic(`round ${round}: killed ${inFlight === undefined ? 'between saves' : `while saving ${inFlight}`}, loaded ${g}`);
      }
      // The test means something only if kills landed inside saves.
      assert.ok(caughtMidSave.length >= 3, `only ${caughtMidSave.length} of 6 kills landed mid-save`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

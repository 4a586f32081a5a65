// One writer per store directory, with real processes: a second writer gets ERR_STORE naming the
// directory and the holder's pid, a SIGKILLed writer's lock is taken over, and a reader loading
// while a writer saves in a loop always gets one complete save.
// Children are this same file, started with SEARCH_R3_LOCK_CHILD set (so the runner never sees a helper).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { VectorStore, HnswStore, normalize } = require('../dist/store/index.js');
const { saveDirectory } = require('../dist/store/persistence.js');
const { saveWithSnapshot } = require('../dist/store/vector-store.js');

const DIM = 64;

// Store `tag` at generation g is a pure function of (tag, g), so any process can check a loaded one.
function vectorOf(tag, i, g) {
  return Array.from({ length: DIM }, (_, j) => Math.sin(tag.charCodeAt(0) * 7 + i * 131 + j * 17 + g * 3 + 1));
}
function build(tag, g, n, Store = VectorStore) {
  const store = Store === VectorStore ? new VectorStore({ dim: DIM, capacity: n, kernel: 'js' }) : new Store({ dim: DIM, capacity: n });
  for (let i = 0; i < n; i++) store.upsert(`${tag}${i}`, vectorOf(tag, i, g), g);
  return store;
}
function assertIsStore(store, tag, g, n) {
  const ids = Array.from({ length: n }, (_, i) => `${tag}${i}`);
  assert.deepEqual(store.ids().sort(), ids.sort());
  for (let i = 0; i < n; i++) {
    const rec = store.get(`${tag}${i}`);
    assert.equal(rec.version, g, `${tag}${i} is from save ${rec.version}, the others from ${g}`);
    assert.deepEqual(rec.vector, normalize(vectorOf(tag, i, g), DIM));
  }
}

async function childMain({ mode, dir, tag, n, kind }) {
  const say = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`);
  if (mode === 'hold') {
    // Saves store `tag`, but stops inside the save (lock held, parts half written) until told "go".
    const store = build(tag, 1, n);
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    await saveWithSnapshot(store, ({ meta, parts }) => saveDirectory(dir, 'exact-vector-store', meta, [...parts, {
      name: 'pause',
      writeTo: async (file) => {
        await writeFile(file, '');
        say({ holding: process.pid });
        await lines.next();
      },
    }]));
    say({ saved: true });
    process.exit(0);
  } else if (mode === 'save') {
    const store = build(tag, 1, n, kind === 'hnsw' ? HnswStore : VectorStore);
    try {
      await store.save(dir);
      say({ ok: true });
    } catch (err) {
      say({ ok: false, name: err.name, code: err.code, message: err.message });
    }
  } else if (mode === 'loop') {
    for (let g = 1; ; g++) {
      await build(tag, g, n).save(dir);
      say({ saved: g });
    }
  }
}

// Starts a child and returns it with `next()`, the next JSON line it prints.
function start(args) {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, SEARCH_R3_LOCK_CHILD: JSON.stringify(args) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`child ${JSON.stringify(args)} ended: ${JSON.stringify(await exited)}`);
    return JSON.parse(value);
  };
  return { proc, next, exited };
}

if (process.env.SEARCH_R3_LOCK_CHILD) {
  await childMain(JSON.parse(process.env.SEARCH_R3_LOCK_CHILD));
} else {
  const { after, describe, it } = await import('node:test');
  const root = mkdtempSync(join(tmpdir(), 'store-lock-'));
  // A failed assertion must not leave a child waiting on its stdin forever.
  const children = [];
  const spawnChild = (args) => { const c = start(args); children.push(c.proc); return c; };
  after(() => {
    for (const proc of children) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  describe('VectorStore.save / HnswStore.save: one writer per directory', () => {
    it('a second process saving the same directory gets ERR_STORE naming it and the holder; the store equals the winner\'s', async () => {
      const dir = join(root, 'concurrent');
      const holder = spawnChild({ mode: 'hold', dir, tag: 'a', n: 50 });
      assert.deepEqual(await holder.next(), { holding: holder.proc.pid });
      for (const kind of ['vector', 'hnsw']) {
        const second = spawnChild({ mode: 'save', dir, tag: 'b', n: 40, kind });
        const result = await second.next();
        assert.equal(result.ok, false, `the ${kind} save succeeded while another process was saving`);
        assert.equal(result.code, 'ERR_STORE');
        assert.equal(result.message.startsWith(`Store directory ${dir} is being saved by another writer (pid ${holder.proc.pid} on `), true, result.message);
        assert.match(result.message, /one writer per store directory at a time/);
        assert.deepEqual(await second.exited, { code: 0, signal: null });
      }
      holder.proc.stdin.end('go\n');
      assert.deepEqual(await holder.next(), { saved: true });
      assert.deepEqual(await holder.exited, { code: 0, signal: null });
      assertIsStore(await VectorStore.load(dir), 'a', 1, 50);
      // The lock went with the holder: the next writer saves.
      await build('c', 7, 30).save(dir);
      assertIsStore(await VectorStore.load(dir), 'c', 7, 30);
    });

    it('a writer SIGKILLed mid-save leaves its lock, which the next save takes over; the previous save stays loadable', async () => {
      const dir = join(root, 'killed');
      await build('a', 3, 20).save(dir);
      const holder = spawnChild({ mode: 'hold', dir, tag: 'b', n: 25 });
      assert.deepEqual(await holder.next(), { holding: holder.proc.pid });
      assert.equal(existsSync(join(dir, '.writer.lock')), true, 'no lock held during a save');
      holder.proc.kill('SIGKILL');
      assert.deepEqual(await holder.exited, { code: null, signal: 'SIGKILL' });
      assert.equal(existsSync(join(dir, '.writer.lock')), true, 'the killed writer\'s lock is not left behind');
      assertIsStore(await VectorStore.load(dir), 'a', 3, 20);
      await build('c', 4, 15).save(dir);
      assertIsStore(await VectorStore.load(dir), 'c', 4, 15);
      assert.equal(existsSync(join(dir, '.writer.lock')), false);
      assert.equal(existsSync(join(dir, '.writer.owner.json')), false);
    });

    it('a lock without an owner (its writer killed between taking the lock and recording itself, or while releasing) is taken over', async () => {
      const dir = join(root, 'ownerless');
      await build('a', 1, 10).save(dir);
      mkdirSync(join(dir, '.writer.lock'));
      await build('b', 2, 12).save(dir);
      assertIsStore(await VectorStore.load(dir), 'b', 2, 12);
      assert.equal(existsSync(join(dir, '.writer.lock')), false);
    });

    it('a lock held from another host is respected while fresh and taken over once stale (10 s without a refresh)', async () => {
      const dir = join(root, 'foreign');
      await build('a', 1, 10).save(dir);
      mkdirSync(join(dir, '.writer.lock'));
      writeFileSync(join(dir, '.writer.owner.json'), JSON.stringify({ pid: 4242, host: 'elsewhere', since: '2026-01-01T00:00:00.000Z' }));
      await assert.rejects(build('b', 2, 10).save(dir), {
        code: 'ERR_STORE',
        message: `Store directory ${dir} is being saved by another writer (pid 4242 on elsewhere, since 2026-01-01T00:00:00.000Z); one writer per store directory at a time, so wait for that save to finish`,
      });
      // The holder's refreshes stop: its lock's mtime ages past the stale limit.
      const old = new Date(Date.now() - 11_000);
      utimesSync(join(dir, '.writer.lock'), old, old);
      await build('b', 2, 10).save(dir);
      assertIsStore(await VectorStore.load(dir), 'b', 2, 10);
    });

    it('two saves in one process: the second gets ERR_STORE naming this process', async () => {
      const dir = join(root, 'same-process');
      let resume;
      let holding;
      const held = new Promise((resolve) => { holding = resolve; });
      const first = saveWithSnapshot(build('a', 1, 20), ({ meta, parts }) => saveDirectory(dir, 'exact-vector-store', meta, [...parts, {
        name: 'pause',
        writeTo: async (file) => {
          await writeFile(file, '');
          holding();
          await new Promise((resolve) => { resume = resolve; });
        },
      }]));
      await held;
      await assert.rejects(build('b', 1, 10).save(dir), { code: 'ERR_STORE', message: new RegExp(`\\(pid ${process.pid} on `) });
      resume();
      await first;
      assertIsStore(await VectorStore.load(dir), 'a', 1, 20);
    });
  });

  describe('VectorStore.load during saves', () => {
    it('a reader loading while another process saves in a loop always gets one complete save', { timeout: 120_000 }, async (t) => {
      const dir = join(root, 'reader');
      const n = 3000;
      const writer = spawnChild({ mode: 'loop', dir, tag: 'a', n });
      try {
        assert.deepEqual(await writer.next(), { saved: 1 });
        let saves = 1;
        const counting = (async () => { for (;;) saves = (await writer.next()).saved; })().catch(() => {});
        const seen = new Set();
        let loads = 0;
        // Loads until the writer has replaced the store 30 times under us.
        while (saves < 31) {
          const store = await VectorStore.load(dir);
          const g = store.get('a0').version;
          assertIsStore(store, 'a', g, n);
          seen.add(g);
          loads++;
        }
        t.diagnostic(`${loads} loads across ${saves} saves saw ${seen.size} generations`);
        assert.ok(seen.size >= 3, `the loads saw only generations ${[...seen]}`);
        void counting;
      } finally {
        writer.proc.kill('SIGKILL');
        await writer.exited;
      }
    });
  });
}

// Feeds many mutated and truncated GGUF files to Model.load in a child process: every one must end
// in a loaded model or a SearchR3Error, never a crash of the process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { storiesPath, tempDir } from './helpers/models.mjs';
import { rng } from './helpers/random.mjs';


function mutants(bytes, count, seed) {
  const rand = rng(seed);
  const headerEnd = 24 * 1024; // KV metadata and tensor infos of stories260K live in the first ~20 KB
  const out = [];
  for (let i = 0; i < count; i++) {
    const b = Buffer.from(bytes);
    const kind = i % 5;
    if (kind === 0) {
      out.push(b.subarray(0, Math.floor(rand() * b.length)));
      continue;
    }
    const flips = 1 + Math.floor(rand() * 8);
    for (let k = 0; k < flips; k++) {
      const at = kind === 4 ? Math.floor(rand() * b.length) : Math.floor(rand() * headerEnd);
      if (kind === 2) b[at] = 0xff; // saturate: huge lengths and counts
      else if (kind === 3) b.writeUInt32LE(Math.floor(rand() * 2 ** 32), Math.min(at, b.length - 4));
      else b[at] ^= 1 << Math.floor(rand() * 8);
    }
    out.push(b);
  }
  return out;
}

test('mutated and truncated GGUF files never crash the process', { timeout: 600_000 }, () => {
  const dir = join(tempDir(), 'fuzz');
  mkdirSync(dir, { recursive: true });
  const files = mutants(readFileSync(storiesPath), 250, 20261120).map((bytes, i) => {
    const f = join(dir, `m${i}.gguf`);
    writeFileSync(f, bytes);
    return f;
  });
  const list = join(dir, 'files.json');
  writeFileSync(list, JSON.stringify(files));
  const child = fileURLToPath(new URL('./helpers/fuzz-child.mjs', import.meta.url));
  const res = spawnSync(process.execPath, [child, list], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const done = res.stdout.split('\n').filter((l) => l.startsWith('DONE '));
  const lastStart = res.stdout.split('\n').filter((l) => l.startsWith('START ')).pop();
  assert.equal(res.signal, null, `the child crashed with ${res.signal} at ${lastStart}: ${res.stderr.slice(-2000)}`);
  assert.equal(res.status, 0, `the child exited with ${res.status} at ${lastStart}: ${res.stderr.slice(-2000)}`);
  assert.equal(done.length, files.length);
  const unexpected = done.filter((l) => l.includes('UNEXPECTED'));
  assert.deepEqual(unexpected, [], 'every failure is a SearchR3Error');
  const outcomes = new Map();
  for (const l of done) {
    const o = l.split(' ')[2];
    outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
  }
  assert.ok((outcomes.get('ERR_GGUF') ?? 0) > 50, `most mutants are rejected before llama.cpp: ${JSON.stringify([...outcomes])}`);
});

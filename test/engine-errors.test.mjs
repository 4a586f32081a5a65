// Bad input gets a clear error and the process survives; disposal, concurrency and cancellation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gguf, lib, storiesPath, tempDir, tinyModel } from './helpers/models.mjs';
import { track } from './helpers/models.mjs';

const { Model } = lib;

test('missing, directory, empty, random and truncated files are clear errors', async () => {
  const dir = tempDir();
  await assert.rejects(Model.load(join(dir, 'nope.gguf')), { code: 'ERR_FILE', message: /nope\.gguf does not exist/ });
  mkdirSync(join(dir, 'adir'), { recursive: true });
  await assert.rejects(Model.load(join(dir, 'adir')), { code: 'ERR_FILE', message: /is a directory/ });
  writeFileSync(join(dir, 'empty.gguf'), '');
  await assert.rejects(Model.load(join(dir, 'empty.gguf')), { code: 'ERR_GGUF', message: /empty/ });
  writeFileSync(join(dir, 'random.gguf'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 255)));
  await assert.rejects(Model.load(join(dir, 'random.gguf')), { code: 'ERR_GGUF', message: /random\.gguf/ });
  const bytes = readFileSync(storiesPath);
  writeFileSync(join(dir, 'trunc.gguf'), bytes.subarray(0, bytes.length - 1000));
  await assert.rejects(Model.load(join(dir, 'trunc.gguf')), { code: 'ERR_GGUF', message: /trunc\.gguf.*truncated/ });
});

test('an unsupported architecture is an ERR_MODEL error quoting llama.cpp', async () => {
  const out = join(tempDir(), 'unknown-arch.gguf');
  await gguf.writeGguf(out, {
    metadata: new Map([['general.architecture', { type: gguf.GgufType.STRING, value: 'not-a-real-arch' }]]),
    tensors: [],
  });
  await assert.rejects(Model.load(out), { name: 'SearchR3Error', code: 'ERR_MODEL', message: /unknown model architecture: 'not-a-real-arch'/ });
});

test('invalid options are TypeErrors/RangeErrors that name the option', async () => {
  await assert.rejects(Model.load(storiesPath, { gpuLayers: 'all' }), { name: 'TypeError', message: 'Expected integer for gpuLayers but received "all" of type string' });
  await assert.rejects(Model.load(storiesPath, { gpuLayer: 1 }), { name: 'TypeError', message: 'Unknown option "gpuLayer" in options; did you mean "gpuLayers"?' });
  await assert.rejects(Model.load(42), { name: 'TypeError', message: 'Expected non-empty string for path but received 42 of type number' });
  const model = track(await Model.load(storiesPath));
  await assert.rejects(model.createSession({ sequences: 0 }), { name: 'RangeError', message: /sequences/ });
  const session = track(await model.createSession({ threads: 1 }));
  await assert.rejects(session.generate('x', { temperature: -1 }), { name: 'RangeError', message: /temperature/ });
  await assert.rejects(session.generate('x', { stop: 'no' }), { name: 'TypeError', message: /stop/ });
  await assert.rejects(session.evaluate([1, 2]), { name: 'TypeError', message: /Int32Array for tokens/ });
  await assert.rejects(session.evaluate(Int32Array.from([1, 99999])), { code: 'ERR_CONTEXT', message: /99999 is outside the vocabulary/ });
  assert.throws(() => model.detokenize([1, -5]), { name: 'RangeError', message: /element 1 is -5/ });
});

test('a prompt longer than a sequence is ERR_CONTEXT', async () => {
  const model = track(await Model.load(storiesPath));
  const session = track(await model.createSession({ contextSize: 256, threads: 1 }));
  const long = Int32Array.from({ length: 300 }, () => 100);
  await assert.rejects(session.generate(long, { maxTokens: 1 }), { code: 'ERR_CONTEXT', message: /prompt of 300 tokens but a sequence holds 256/ });
  const [ok] = await session.generate('still works', { maxTokens: 2 });
  assert.equal(ok.tokens.length, 2);
});

test('generation stops at the context end instead of overflowing', async () => {
  const model = track(await Model.load(storiesPath));
  const session = track(await model.createSession({ contextSize: 256, threads: 1 }));
  const [g] = await session.generate(Int32Array.from({ length: 250 }, () => 100), { maxTokens: 100 });
  assert.equal(g.finish, 'context');
  assert.ok(g.tokens.length <= 6);
});

test('one operation at a time per session: a concurrent call is ERR_BUSY', async () => {
  const model = track(await Model.load(storiesPath));
  const session = track(await model.createSession({ threads: 1 }));
  const first = session.generate('Once upon a time', { maxTokens: 64 });
  await assert.rejects(session.generate('again', { maxTokens: 1 }), { code: 'ERR_BUSY', message: /already running/ });
  assert.equal((await first)[0].tokens.length > 0, true);
});

test('AbortSignal cancels generation and the session stays usable', async () => {
  const model = track(await Model.load(storiesPath));
  const session = track(await model.createSession({ threads: 1, contextSize: 4096 }));
  const pre = AbortSignal.abort();
  await assert.rejects(session.generate('x', { signal: pre }), { code: 'ERR_ABORTED' });
  const ac = new AbortController();
  const running = session.generate('Once upon a time', { maxTokens: 3000, signal: ac.signal });
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(running, { name: 'SearchR3Error', code: 'ERR_ABORTED' });
  const [g] = await session.generate('Once upon a time', { maxTokens: 3 });
  assert.equal(g.tokens.length, 3);
});

test('disposal is idempotent, disposing a model disposes its sessions, use after dispose throws', async () => {
  const model = await Model.load(storiesPath);
  const session = await model.createSession({ threads: 1 });
  session.dispose();
  session.dispose();
  await assert.rejects(session.generate('x'), { code: 'ERR_DISPOSED' });
  const s2 = await model.createSession({ threads: 1 });
  model.dispose();
  model.dispose();
  assert.equal(s2.disposed, true);
  await assert.rejects(s2.generate('x'), { code: 'ERR_DISPOSED' });
  assert.throws(() => model.tokenize('x'), { code: 'ERR_DISPOSED' });
  await assert.rejects(model.createSession(), { code: 'ERR_DISPOSED' });
});

test('disposing a session while it runs stops it (ERR_DISPOSED, not ERR_ABORTED: the session is gone) and frees it afterwards', async () => {
  const model = track(await Model.load(storiesPath));
  const session = await model.createSession({ threads: 1, contextSize: 4096 });
  const running = session.generate('Once upon a time', { maxTokens: 3000 });
  session.dispose();
  await assert.rejects(running, { code: 'ERR_DISPOSED' });
  model.dispose();
});

test('adapters for another model or with wrong shapes are rejected', async () => {
  const model = track(await Model.load(storiesPath));
  const other = track(await Model.load(await tinyModel()));
  const { writeRandomLora } = await import('./helpers/models.mjs');
  const loraPath = await writeRandomLora(await tinyModel(), join(tempDir(), 'for-tiny.lora.gguf'));
  await assert.rejects(model.loadLora(loraPath), { code: 'ERR_MODEL', message: /could not load the LoRA adapter/ });
  const adapter = await other.loadLora(loraPath);
  const session = track(await model.createSession({ threads: 1 }));
  assert.throws(() => session.setLoras([{ adapter, scale: 1 }]), { code: 'ERR_MODEL', message: /another model/ });
});

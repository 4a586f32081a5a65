// dispose() while an operation runs (README, Library): it never throws, the operation in flight
// rejects with ERR_DISPOSED, native memory is freed only once the worker has stopped, later calls
// are ERR_DISPOSED and a second dispose() is harmless. No timing: every operation below has
// reached its native worker before dispose() is called, because each call queues its worker
// synchronously.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { lib, maxAbsDiff, tempDir, tinyModel, track, writeRandomLora } from './helpers/models.mjs';

const { Model, Embedder, LoraTrainer, SearchR3Error } = lib;

const disposedError = (err) => err instanceof SearchR3Error && err.code === 'ERR_DISPOSED';

/** Starts `op`, disposes `obj` at once, and checks the promise, dispose() and a second dispose(). */
async function disposeMidway(obj, op) {
  const running = op();
  assert.doesNotThrow(() => obj.dispose());
  await assert.rejects(running, disposedError);
  assert.doesNotThrow(() => obj.dispose());
}

test('dispose mid-generate: generate rejects ERR_DISPOSED, the session stays disposed', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = await model.createSession({ contextSize: 512, threads: 2 });
  await disposeMidway(session, () => session.generate('once upon a time', { maxTokens: 400 }));
  assert.equal(session.disposed, true);
  await assert.rejects(session.generate('again', { maxTokens: 4 }), disposedError);
});

test('dispose mid-evaluate: evaluate rejects ERR_DISPOSED', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = await model.createSession({ contextSize: 512, threads: 2 });
  const tokens = Int32Array.from({ length: 400 }, (_, i) => 100 + (i % 500));
  await disposeMidway(session, () => session.evaluate(tokens, { logits: true }));
  await assert.rejects(session.evaluate(tokens.subarray(0, 4)), disposedError);
});

test('Embedder dispose mid-embed: embed rejects ERR_DISPOSED', async () => {
  const model = track(await Model.load(await tinyModel()));
  const embedder = await Embedder.create(model, { sequences: 2, threads: 2 });
  const texts = Array.from({ length: 16 }, (_, i) => `document number ${i} about things`);
  await disposeMidway(embedder, () => embedder.embedDocuments(texts));
  await assert.rejects(embedder.embed(['a query']), disposedError);
});

test('LoraTrainer dispose mid-accumulate: accumulate rejects ERR_DISPOSED', async () => {
  const trainer = await LoraTrainer.open(await tinyModel(), { lora: { rank: 4, alpha: 8 }, threads: 2 });
  const seqs = Array.from({ length: 4 }, (_, b) => {
    const tokens = Int32Array.from({ length: 32 }, (_, i) => 100 + ((b * 131 + i * 37) % 900));
    return { tokens, targets: new Uint8Array(tokens.length).fill(1) };
  });
  await disposeMidway(trainer, () => trainer.accumulate(seqs, { sft: {} }));
  await assert.rejects(trainer.accumulate(seqs, { sft: {} }), disposedError);
  assert.throws(() => trainer.info, disposedError);
});

test('model disposed while its session generates: both end disposed, no crash, a new model works', async () => {
  const path = await tinyModel();
  const model = await Model.load(path);
  const session = await model.createSession({ contextSize: 512, threads: 2 });
  await disposeMidway(model, () => session.generate('once upon a time', { maxTokens: 400 }));
  assert.equal(model.disposed, true);
  assert.equal(session.disposed, true);
  assert.throws(() => model.tokenize('x'), disposedError);
  await assert.rejects(model.createSession(), disposedError);
  await assert.rejects(session.generate('x', { maxTokens: 2 }), disposedError);
  // The deferred free of the weights has run by the time a fresh model loads and generates.
  const again = track(await Model.load(path));
  const fresh = await again.createSession({ contextSize: 256, threads: 2 });
  const [g] = await fresh.generate('once upon a time', { maxTokens: 4 });
  assert.equal(g.tokens.length > 0, true);
});

test('model disposed while createSession runs: createSession rejects ERR_DISPOSED', async () => {
  const model = await Model.load(await tinyModel());
  const making = model.createSession({ contextSize: 256, threads: 2 });
  assert.doesNotThrow(() => model.dispose());
  await assert.rejects(making, disposedError);
  assert.equal(model.disposed, true);
});

test('an attached LoRA adapter disposed: it keeps serving its session, is freed on detach, cannot be attached again', async () => {
  const path = await tinyModel();
  const model = track(await Model.load(path));
  const adapter = await model.loadLora(await writeRandomLora(path, join(tempDir(), 'dispose.lora.gguf'), { scale: 0.2 }));
  const session = track(await model.createSession({ threads: 1 }));
  const other = track(await model.createSession({ threads: 1 }));
  const tokens = model.tokenize('adapters change outputs');
  session.setLoras([{ adapter, scale: 1 }]);
  const before = (await session.evaluate(tokens)).embeddings;
  assert.doesNotThrow(() => adapter.dispose());
  assert.equal(adapter.disposed, true);
  assert.doesNotThrow(() => adapter.dispose(), 'idempotent');
  assert.ok(maxAbsDiff((await session.evaluate(tokens)).embeddings, before) < 1e-6, 'the session still computes with it');
  assert.throws(() => other.setLoras([{ adapter, scale: 1 }]), disposedError);
  assert.throws(() => adapter.metadata, disposedError);
  session.setLoras([]);
  assert.throws(() => session.setLoras([{ adapter, scale: 1 }]), disposedError);
  assert.ok(maxAbsDiff((await session.evaluate(tokens)).embeddings, before) > 1e-3, 'detached: back to the base model');
});

test('an adapter disposed while its session generates, then the session: no throw, no crash, the model disposes cleanly', async () => {
  const path = await tinyModel();
  const model = track(await Model.load(path));
  const adapter = await model.loadLora(await writeRandomLora(path, join(tempDir(), 'dispose2.lora.gguf'), { scale: 0.2 }));
  const session = await model.createSession({ threads: 1 });
  session.setLoras([{ adapter, scale: 1 }]);
  const running = session.generate('once upon a time', { maxTokens: 400 });
  adapter.dispose();
  session.dispose();
  await assert.rejects(running, disposedError);
  await session.idle();
  await new Promise((r) => setImmediate(r));
  assert.doesNotThrow(() => model.dispose());
  assert.equal(model.disposed, true);
});

// The trainer's own forward graph against llama.cpp's inference on the same tokens, and an
// adapter the trainer writes against the same adapter attached in an inference session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { lib, tinyModel, storiesPath, track, tempDir, maxAbsDiff } from './helpers/models.mjs';
import { rng } from './helpers/random.mjs';

const { LoraTrainer, Model } = lib;

/** Every position but the first is a target, so logits come back for rows 0..T-2. */
function allTargets(tokens) {
  const targets = new Uint8Array(tokens.length).fill(1);
  targets[0] = 0;
  return targets;
}

async function inferenceOutputs(path, tokens, adapter) {
  const model = track(await Model.load(path));
  // Tracked before the session, so it is disposed after it (an attached adapter cannot be).
  const lora = adapter ? track(await model.loadLora(adapter)) : null;
  const session = track(await model.createSession({ contextSize: 256, flashAttention: 'off', cacheType: 'f32' }));
  if (lora) session.setLoras([{ adapter: lora, scale: 1 }]);
  const out = await session.evaluate(tokens, { logits: true });
  return { logits: out.logits, embeddings: out.embeddings, nVocab: model.info.nVocab, nEmbd: model.info.nEmbd };
}

async function checkParity(path, text) {
  const model = track(await Model.load(path));
  const tokens = model.tokenize(text, { addSpecial: true });
  const T = tokens.length;
  const ref = await inferenceOutputs(path, tokens);
  const trainer = track(await LoraTrainer.open(path, { lora: { rank: 4 }, threads: 2 }));
  // Hidden states at every position: one single-position sequence view per row would be slow, so
  // ask for each position as the embed row of its own copy of the sequence.
  const copies = Array.from({ length: T }, (_, i) => ({ tokens, embedAt: i, targets: allTargets(tokens) }));
  const out = await trainer.forward(copies.slice(0, 1), { logits: true, hidden: true });
  const logitsRef = ref.logits.subarray(0, (T - 1) * ref.nVocab);
  assert.equal(out.logits.length, logitsRef.length);
  assert.ok(maxAbsDiff(out.logits, logitsRef) <= 1e-3, `logits differ by ${maxAbsDiff(out.logits, logitsRef)}`);
  const hidden = await trainer.forward(copies, { hidden: true });
  const flat = new Float32Array(T * ref.nEmbd);
  hidden.hidden.forEach((h, i) => flat.set(h, i * ref.nEmbd));
  assert.ok(maxAbsDiff(flat, ref.embeddings) <= 1e-3, `hidden states differ by ${maxAbsDiff(flat, ref.embeddings)}`);
  return { trainer, tokens, ref };
}

test('LoraTrainer forward equals llama.cpp inference on a generated qwen2 model (GQA, QKV bias)', async () => {
  await checkParity(await tinyModel(), 'The quick brown fox jumps over the lazy dog near the river bank.');
});

test('LoraTrainer forward equals llama.cpp inference on a generated qwen3 model (per-head Q/K norms)', async () => {
  const { trainer } = await checkParity(await tinyModel({ arch: 'qwen3' }), 'The quick brown fox jumps over the lazy dog near the river bank.');
  assert.equal(trainer.info.architecture, 'qwen3');
});

test('LoraTrainer forward equals llama.cpp inference on stories260K (llama architecture)', async () => {
  const { trainer } = await checkParity(storiesPath, 'Once upon a time, there was a little girl named Lily.');
  assert.equal(trainer.info.architecture, 'llama');
});

test('LoraTrainer forward pads sequences of different lengths without changing any of them', async () => {
  const path = await tinyModel();
  const trainer = track(await LoraTrainer.open(path, { threads: 2 }));
  const a = Int32Array.from([151644, 872, 198, 9707, 1879, 11, 1246]);
  // Not a prefix of a: a batch that fed row 0's tokens to row 1 would not pass for b.
  const b = Int32Array.from([151644, 3838, 5000, 1879]);
  const aloneA = await trainer.forward([{ tokens: a, embedAt: 6 }], { hidden: true });
  const aloneB = await trainer.forward([{ tokens: b, embedAt: 3 }], { hidden: true });
  const together = await trainer.forward([{ tokens: a, embedAt: 6 }, { tokens: b, embedAt: 3 }], { hidden: true });
  assert.equal(together.hidden.length, 2);
  assert.ok(maxAbsDiff(aloneA.hidden[0], together.hidden[0]) < 1e-5);
  assert.ok(maxAbsDiff(aloneB.hidden[0], together.hidden[1]) < 1e-5);
  assert.ok(maxAbsDiff(aloneA.hidden[0], aloneB.hidden[0]) > 1e-2, 'the two sequences have different hidden states');
});

test('an adapter saved by the trainer gives the same logits in an inference session as in the training graph', async () => {
  const path = await tinyModel();
  const trainer = track(await LoraTrainer.open(path, { lora: { rank: 4, alpha: 8, seed: 3 }, threads: 2 }));
  const random = rng(11);
  // B starts at zero; give it values so the adapter matters.
  trainer.setTensors('params', trainer.tensors('params').map((t) => ({ name: t.name, data: t.data.map((x) => x + (random() - 0.5) * 0.2) })));
  const model = track(await Model.load(path));
  const tokens = model.tokenize('Adapters written here load in llama.cpp.', { addSpecial: true });
  const file = join(tempDir(), 'parity-adapter.gguf');
  await trainer.saveAdapter(file);
  const withAdapter = await inferenceOutputs(path, tokens, file);
  const base = await inferenceOutputs(path, tokens);
  const ours = await trainer.forward([{ tokens, targets: allTargets(tokens) }], { logits: true });
  const T = tokens.length;
  const ref = withAdapter.logits.subarray(0, (T - 1) * withAdapter.nVocab);
  assert.ok(maxAbsDiff(ours.logits, ref) <= 1e-3, `adapter logits differ by ${maxAbsDiff(ours.logits, ref)}`);
  assert.ok(maxAbsDiff(ref, base.logits.subarray(0, ref.length)) > 1e-2, 'the adapter must change the logits');
  const reference = await trainer.forward([{ tokens, targets: allTargets(tokens) }], { logits: true, lora: false });
  assert.ok(maxAbsDiff(reference.logits, base.logits.subarray(0, ref.length)) <= 1e-3, 'lora: false is the base model');

  const reloaded = track(await LoraTrainer.open(path, { lora: { rank: 4, alpha: 8, seed: 99 }, threads: 2 }));
  await reloaded.loadAdapter(file);
  assert.deepEqual(reloaded.tensors('params').map((t) => Array.from(t.data)), trainer.tensors('params').map((t) => Array.from(t.data)));
});

test('an output-head adapter (output.weight.lora_a/b) gives the same logits in llama.cpp as in the training graph', async () => {
  const path = await tinyModel({ tieEmbeddings: false });
  const trainer = track(await LoraTrainer.open(path, { lora: { rank: 4, alpha: 8, seed: 3, targets: ['output'] }, threads: 2 }));
  const random = rng(13);
  trainer.setTensors('params', trainer.tensors('params').map((t) => ({ name: t.name, data: t.data.map((x) => x + (random() - 0.5) * 0.2) })));
  const model = track(await Model.load(path));
  const tokens = model.tokenize('Only the output head is adapted here.', { addSpecial: true });
  const file = join(tempDir(), 'head-adapter.gguf');
  await trainer.saveAdapter(file);
  const withAdapter = await inferenceOutputs(path, tokens, file);
  const base = await inferenceOutputs(path, tokens);
  const ours = await trainer.forward([{ tokens, targets: allTargets(tokens) }], { logits: true });
  const ref = withAdapter.logits.subarray(0, (tokens.length - 1) * withAdapter.nVocab);
  assert.ok(maxAbsDiff(ours.logits, ref) <= 1e-3, `adapter logits differ by ${maxAbsDiff(ours.logits, ref)}`);
  assert.ok(maxAbsDiff(ref, base.logits.subarray(0, ref.length)) > 1e-2, 'the head adapter must change the logits');
  // The head comes after the final hidden state: embeddings are the base model's.
  assert.ok(maxAbsDiff(withAdapter.embeddings, base.embeddings) <= 1e-5, 'an output-head adapter leaves hidden states alone');
  const reloaded = track(await LoraTrainer.open(path, { lora: { rank: 4, alpha: 8, targets: ['output'] }, threads: 2 }));
  await reloaded.loadAdapter(file);
  assert.deepEqual(reloaded.tensors('params').map((t) => Array.from(t.data)), trainer.tensors('params').map((t) => Array.from(t.data)));
  assert.deepEqual(lib.adapterTargets(trainer.tensors('params').map((t) => t.name)), ['output']);
});

test('the output-head target needs a model with its own output.weight', async () => {
  await assert.rejects(LoraTrainer.open(await tinyModel(), { lora: { targets: ['attn_q', 'output'] }, threads: 2 }),
    { name: 'RangeError', message: "the LoRA target 'output' needs a model with its own output.weight; this one ties its output head to token_embd.weight" });
});

test('LoraTrainer.open rejects what it cannot train with a clear error', async () => {
  await assert.rejects(LoraTrainer.open(join(tempDir(), 'missing.gguf')), { code: 'ERR_FILE', message: /does not exist/ });
  await assert.rejects(LoraTrainer.open(await tinyModel(), { lora: { targets: ['attn_x'] } }), { name: 'RangeError', message: /lora\.targets/ });
  await assert.rejects(LoraTrainer.open(await tinyModel(), { lora: { rank: 0 } }), { name: 'RangeError', message: /lora\.rank/ });
  await assert.rejects(LoraTrainer.open(await tinyModel(), { lr: 1 }), { message: /lr/ });
  await assert.rejects(LoraTrainer.open(await tinyModel(), { transposedWeights: 'no' }), { name: 'TypeError', message: /transposedWeights/ });
  const trainer = track(await LoraTrainer.open(await tinyModel(), { threads: 2 }));
  await assert.rejects(trainer.forward([{ tokens: Int32Array.from([999999]) }], { hidden: true }), { name: 'RangeError', message: /token id/ });
  await assert.rejects(trainer.accumulate([{ tokens: Int32Array.from([1, 2]) }], { sft: {} }), { name: 'RangeError', message: /target token/ });
  await assert.rejects(trainer.step({ lr: 1e-3 }), { code: 'ERR_TRAIN', message: /accumulate/ });
  await assert.rejects(trainer.step({ lr: 1e-3, beta2: 1 }), { name: 'RangeError', message: /number in \[0, 1\) for beta2 but received 1/ });
  await assert.rejects(trainer.step({ lr: 1e-3, eps: 0 }), { name: 'RangeError', message: /for eps/ });
  await assert.rejects(trainer.accumulate([{ tokens: Int32Array.from([1, 2]), embedAt: 1 }, { tokens: Int32Array.from([3]) }], { infonce: { queries: [0], candidates: [1], labels: [0] } }),
    { name: 'RangeError', message: /infonce\.candidates\[0\] names sequence 1/ });
  // The flattened similarity matrix is indexed with int32: 46341^2 entries would overflow it.
  const many = new Array(46341).fill(0);
  await assert.rejects(trainer.accumulate([{ tokens: Int32Array.from([1, 2]), embedAt: 1 }], { infonce: { queries: many, candidates: many, labels: many } }),
    { name: 'RangeError', message: 'Expected infonce.queries x infonce.candidates below 2^31 but received 46341 x 46341' });
  trainer.dispose();
  assert.throws(() => trainer.info, { code: 'ERR_DISPOSED' });
});

test('an AbortSignal stops a running accumulate; the trainer stays usable', async () => {
  const trainer = track(await LoraTrainer.open(await tinyModel(), { threads: 2 }));
  const tokens = Int32Array.from({ length: 512 }, (_, i) => 100 + ((i * 37) % 900));
  const long = [{ tokens, targets: allTargets(tokens) }, { tokens, targets: allTargets(tokens) }];
  await assert.rejects(trainer.accumulate(long, { sft: {} }, { signal: AbortSignal.abort() }), { code: 'ERR_ABORTED' });
  await assert.rejects(trainer.accumulate(long, { sft: {} }, { signal: 'stop' }), { name: 'TypeError', message: /Expected AbortSignal for signal/ });
  // Mid-flight: the graph (about seconds of work here) stops at ggml's next node check.
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 20);
  const t0 = performance.now();
  await assert.rejects(trainer.accumulate(long, { sft: {} }, { signal: ac.signal }), { code: 'ERR_ABORTED' });
  const tokens2 = Int32Array.from([151644, 872, 198, 9707]);
  const r = await trainer.accumulate([{ tokens: tokens2, targets: allTargets(tokens2) }], { sft: {} });
  assert.ok(Number.isFinite(r.loss), 'a later accumulate runs normally');
  assert.ok(performance.now() - t0 < 60_000);
});

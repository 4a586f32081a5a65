// GPU offload (CUDA builds on a machine with a GPU): the same model, prompts and adapters give the
// CPU's tokens, log-probs and embeddings within float tolerance. Skipped, visibly, where no GPU
// device is registered (every CPU build, and a CUDA build without a driver).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { lib, storiesPath, tempDir, tinyModel, track, writeRandomLora } from './helpers/models.mjs';

const { Model, Embedder, LoraAdapter, systemInfo } = lib;
const gpus = systemInfo().devices.filter((d) => d.type === 'gpu');
const skip = gpus.length === 0 ? `no GPU device in this build/machine (cuda build: ${systemInfo().cuda})` : false;

function cosine(a, b) {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

async function greedy(path, gpuLayers, prompt, loraPath) {
  const model = track(await Model.load(path, { gpuLayers }));
  // The adapter is opened before the session so that track() (newest first) detaches it first.
  const adapter = loraPath ? track(await LoraAdapter.load(model, loraPath)) : null;
  const session = track(await model.createSession({ contextSize: 256 }));
  if (adapter) session.setLoras([{ adapter, scale: 1 }]);
  const [g] = await session.generate(prompt, { maxTokens: 12, logprobs: true });
  return g;
}

test('the GPU is listed with its memory', { skip }, () => {
  assert.ok(gpus[0].memoryTotal > 0, JSON.stringify(gpus[0]));
  console.log(`# GPU: ${gpus[0].description}, ${(gpus[0].memoryTotal / 2 ** 30).toFixed(1)} GiB`);
});

test('greedy generation with every layer on the GPU matches the CPU (tokens and log-probs)', { skip }, async () => {
  const cpu = await greedy(storiesPath, 0, 'Once upon a time', null);
  const gpu = await greedy(storiesPath, -1, 'Once upon a time', null);
  // Float order differs between backends: the first tokens must agree exactly, log-probs closely.
  assert.deepEqual([...gpu.tokens.slice(0, 6)], [...cpu.tokens.slice(0, 6)]);
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(gpu.logprobs[i] - cpu.logprobs[i]) < 0.02, `token ${i}: ${gpu.logprobs[i]} vs ${cpu.logprobs[i]}`);
});

test('a LoRA adapter applies on the GPU as on the CPU', { skip }, async () => {
  const path = await tinyModel();
  const lora = await writeRandomLora(path, join(tempDir(), 'gpu-lora.gguf'), { scale: 0.2 });
  const base = await greedy(path, -1, 'alpha beta gamma', null);
  const cpu = await greedy(path, 0, 'alpha beta gamma', lora);
  const gpu = await greedy(path, -1, 'alpha beta gamma', lora);
  assert.notDeepEqual([...gpu.logprobs], [...base.logprobs], 'the adapter changes the output');
  assert.equal(gpu.tokens[0], cpu.tokens[0]);
  assert.ok(Math.abs(gpu.logprobs[0] - cpu.logprobs[0]) < 0.02, `${gpu.logprobs[0]} vs ${cpu.logprobs[0]}`);
});

test('embeddings on the GPU equal the CPU\'s (cosine > 0.999), batched and reasoned', { skip }, async () => {
  const path = await tinyModel();
  const texts = ['who painted the sistine chapel', 'vitamin d deficiency', 'x', 'a longer query about coastal cities and their growth'];
  const run = async (gpuLayers) => {
    const model = track(await Model.load(path, { gpuLayers }));
    const e = track(await Embedder.create(model, { sequences: 4 }));
    return { direct: await e.embed(texts), docs: await e.embedDocuments(texts), reason: await e.embed(texts.slice(0, 2), { mode: 'reason' }) };
  };
  const cpu = await run(0);
  const gpu = await run(-1);
  for (const kind of ['direct', 'docs']) {
    for (const [i, r] of gpu[kind].entries()) assert.ok(cosine(r.vector, cpu[kind][i].vector) > 0.999, `${kind} ${i}`);
  }
  for (const r of gpu.reason) assert.ok(r.reasoningTokens > 0 && r.vector.length === cpu.reason[0].vector.length);
});

test('sampled copies on the GPU are reproducible for a seed', { skip }, async () => {
  const model = track(await Model.load(storiesPath, { gpuLayers: -1 }));
  const session = track(await model.createSession({ sequences: 4, contextSize: 1024 }));
  const opts = { maxTokens: 16, temperature: 0.9, topP: 0.95, seed: 11, copies: 4 };
  const a = await session.generate('The little dog', opts);
  const b = await session.generate('The little dog', opts);
  assert.equal(a.length, 4);
  assert.deepEqual(a.map((g) => g.text), b.map((g) => g.text));
  assert.ok(new Set(a.map((g) => g.text)).size > 1, 'copies differ');
});

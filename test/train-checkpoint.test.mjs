// Checkpoint files: LoRA adapters in llama.cpp's format and the training state, bit-exact round
// trips, loading in the inference engine, clear errors for foreign or broken files, and atomicity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gguf, lib, maxAbsDiff, root, tempDir, tinyModel, track, writeRandomLora } from './helpers/models.mjs';
import { readLoraAdapter, readTrainState, writeLoraAdapter, writeTrainState } from '../dist/train/checkpoint.js';

const dir = () => mkdtempSync(join(tempDir(), 'ckpt-'));

/** Deterministic values including the ones a careless round trip loses: -0, NaN payloads, ±Inf, subnormals. */
function values(n, seed) {
  const bits = new Uint32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) bits[i] = s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  bits.set([0x80000000, 0x7fc01234, 0xffa00001, 0x7f800000, 0xff800000, 0x00000001].slice(0, n));
  return new Float32Array(bits.buffer);
}

const bytesOf = (f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength);

function assertSameTensors(actual, expected) {
  assert.deepEqual(actual.map((t) => [t.name, t.dims]), expected.map((t) => [t.name, t.dims]));
  for (const [i, t] of expected.entries()) assert.ok(bytesOf(actual[i].data).equals(bytesOf(t.data)), `tensor ${t.name} differs`);
}

/** LoRA A/B for the given projections of every layer of a model, shaped from its GGUF. */
async function loraFor(modelPath, { rank = 4, targets = ['attn_q', 'ffn_down'], zeroB = false } = {}) {
  const info = await gguf.readGguf(modelPath);
  const tensors = [];
  for (const t of info.tensors) {
    const m = /^blk\.\d+\.([a-z_]+)\.weight$/.exec(t.name);
    if (!m || !targets.includes(m[1])) continue;
    const [nIn, nOut] = t.dims;
    const a = values(nIn * rank, tensors.length + 1).map((x, i) => ((i % 17) - 8) / 80);
    const b = zeroB ? new Float32Array(rank * nOut) : new Float32Array(rank * nOut).map((_, i) => ((i % 13) - 6) / 40);
    tensors.push({ name: `${t.name}.lora_a`, dims: [nIn, rank], data: a }, { name: `${t.name}.lora_b`, dims: [rank, nOut], data: b });
  }
  return { architecture: info.metadata.get('general.architecture').value, tensors };
}

test('writeLoraAdapter/readLoraAdapter: bit-exact round trip with metadata', async () => {
  const path = join(dir(), 'a.lora.gguf');
  const tensors = [
    { name: 'blk.0.attn_q.weight.lora_a', dims: [8, 2], data: values(16, 1) },
    { name: 'blk.0.attn_q.weight.lora_b', dims: [2, 6], data: values(12, 2) },
  ];
  const metadata = { 'general.name': 'stage 1', 'training.steps': 120, 'training.lr': 1e-4, 'training.offset': -3 };
  await writeLoraAdapter(path, { architecture: 'qwen2', alpha: 16, tensors, metadata });
  const back = await readLoraAdapter(path);
  assert.equal(back.architecture, 'qwen2');
  assert.equal(back.alpha, 16);
  assert.deepEqual(back.metadata, metadata);
  assertSameTensors(back.tensors, tensors);

  const file = await gguf.readGguf(path);
  const kv = Object.fromEntries([...file.metadata].map(([k, v]) => [k, v.type]));
  assert.deepEqual(kv, {
    'general.architecture': gguf.GgufType.STRING, 'general.type': gguf.GgufType.STRING, 'adapter.type': gguf.GgufType.STRING,
    'adapter.lora.alpha': gguf.GgufType.FLOAT32, 'general.name': gguf.GgufType.STRING,
    'training.steps': gguf.GgufType.INT64, 'training.lr': gguf.GgufType.FLOAT64, 'training.offset': gguf.GgufType.INT64,
  });
  assert.deepEqual(file.tensors.map((t) => t.type.name), ['F32', 'F32']);
});

test('writeLoraAdapter writes byte for byte what the reference adapter writer writes', async () => {
  const d = dir();
  const reference = await writeRandomLora(await tinyModel(), join(d, 'ref.gguf'), { rank: 3, alpha: 6, targets: ['attn_k', 'ffn_up'] });
  const { architecture, alpha, tensors } = await readLoraAdapter(reference);
  assert.equal(alpha, 6);
  assert.equal(tensors.length, 8); // 2 layers × 2 projections × (A, B)
  assert.deepEqual(tensors[0].dims, [64, 3]);
  assert.deepEqual(tensors[1].dims, [3, 32]); // attn_k maps 64 → 2 kv heads × 16
  await writeLoraAdapter(join(d, 'ours.gguf'), { architecture, alpha, tensors });
  assert.ok(readFileSync(join(d, 'ours.gguf')).equals(readFileSync(reference)));
});

test('an adapter from writeLoraAdapter loads in the engine; non-zero B changes the logits, zero B does not', async () => {
  const modelPath = await tinyModel();
  const d = dir();
  await writeLoraAdapter(join(d, 'live.gguf'), { ...(await loraFor(modelPath)), alpha: 8 });
  await writeLoraAdapter(join(d, 'zero.gguf'), { ...(await loraFor(modelPath, { zeroB: true })), alpha: 8 });
  const model = track(await lib.Model.load(modelPath));
  const live = track(await model.loadLora(join(d, 'live.gguf')));
  const zero = track(await model.loadLora(join(d, 'zero.gguf')));
  assert.equal(live.metadata['adapter.lora.alpha'], '8.000000');
  const session = track(await model.createSession({ threads: 1 }));
  const tokens = model.tokenize('adapters written by the trainer');
  const base = (await session.evaluate(tokens, { logits: true })).logits;
  session.setLoras([{ adapter: live, scale: 1 }]);
  const changed = (await session.evaluate(tokens, { logits: true })).logits;
  session.setLoras([{ adapter: zero, scale: 1 }]);
  const same = (await session.evaluate(tokens, { logits: true })).logits;
  session.setLoras([]);
  assert.ok(maxAbsDiff(base, changed) > 1e-3, `logits moved by only ${maxAbsDiff(base, changed)}`);
  assert.ok(maxAbsDiff(base, same) < 1e-6, `a zero B moved the logits by ${maxAbsDiff(base, same)}`);
});

test('writeLoraAdapter: rejects what llama.cpp could not load', async () => {
  const path = join(dir(), 'bad.gguf');
  const a = { name: 'blk.0.attn_q.weight.lora_a', dims: [8, 2], data: new Float32Array(16) };
  const b = { name: 'blk.0.attn_q.weight.lora_b', dims: [2, 4], data: new Float32Array(8) };
  const write = (over) => writeLoraAdapter(path, { architecture: 'qwen2', alpha: 4, tensors: [a, b], ...over });
  await assert.rejects(write({ tensors: [a] }), { name: 'RangeError', message: "LoRA tensor 'blk.0.attn_q.weight.lora_a' has no matching 'blk.0.attn_q.weight.lora_b'" });
  await assert.rejects(write({ tensors: [b] }), { name: 'RangeError', message: "LoRA tensor 'blk.0.attn_q.weight.lora_b' has no matching 'blk.0.attn_q.weight.lora_a'" });
  await assert.rejects(write({ tensors: [a, { ...b, dims: [3, 4], data: new Float32Array(12) }] }), {
    name: 'RangeError', message: "LoRA rank mismatch: 'blk.0.attn_q.weight.lora_a' has dims [8, 2] (rank 2) but 'blk.0.attn_q.weight.lora_b' has dims [3, 4] (rank 3)",
  });
  await assert.rejects(write({ tensors: [a, { ...b, data: new Float32Array(7) }] }), { name: 'RangeError', message: "Expected 8 values for tensor 'blk.0.attn_q.weight.lora_b' of dims [2, 4] but received 7" });
  await assert.rejects(write({ tensors: [{ ...a, name: 'blk.0.attn_q.weight' }, b] }), {
    name: 'RangeError', message: "Expected tensor name ending in '.lora_a' or '.lora_b' for tensors[0].name but received \"blk.0.attn_q.weight\" of type string",
  });
  const long = `blk.0.${'x'.repeat(60)}.weight`;
  await assert.rejects(write({ tensors: [{ ...a, name: `${long}.lora_a` }, { ...b, name: `${long}.lora_b` }] }), { name: 'RangeError', message: /at most 63 bytes for tensors\[0\]\.name but 'blk\.0\.x+\.weight\.lora_a' has 80/ });
  await assert.rejects(write({ tensors: [{ ...a, data: [0] }, b] }), { name: 'TypeError', message: 'Expected Float32Array for adapter.tensors[0].data but received array(1) of type array' });
  await assert.rejects(write({ alpha: 0 }), { name: 'RangeError', message: 'Expected finite number > 0 for adapter.alpha but received 0 of type number' });
  await assert.rejects(write({ metadata: { 'adapter.alora.invocation_tokens': 'x' } }), {
    name: 'RangeError', message: 'Expected non-empty key outside adapter.* and other than general.architecture, general.type, general.alignment for adapter.metadata key but received "adapter.alora.invocation_tokens" of type string',
  });
  await assert.rejects(write({ metadata: { 'general.type': 'model' } }), { name: 'RangeError', message: /for adapter\.metadata key but received "general\.type" of type string$/ });
  await assert.rejects(write({ metadata: { 'training.loss': NaN } }), { name: 'TypeError', message: "Expected number for adapter.metadata['training.loss'] but received NaN of type number" });
  await assert.rejects(write({ rank: 4 }), { name: 'TypeError', message: 'Unknown option "rank" in adapter; known options: architecture, alpha, tensors, metadata' });
  assert.throws(() => statSync(path), { code: 'ENOENT' }, 'nothing was written');
});

test('readLoraAdapter: a model, a training state or a missing file is a clear error', async () => {
  const d = dir();
  const modelPath = await tinyModel();
  await assert.rejects(readLoraAdapter(modelPath), { code: 'ERR_GGUF', message: `${modelPath}: not a LoRA adapter: general.type is "model", expected "adapter"` });
  const state = join(d, 'state.gguf');
  await writeTrainState(state, { tensors: { params: [], m: [], v: [] }, state: {} });
  await assert.rejects(readLoraAdapter(state), { code: 'ERR_GGUF', message: `${state}: not a LoRA adapter: key 'general.type' is missing` });
  await assert.rejects(readLoraAdapter(join(d, 'nope.gguf')), { code: 'ERR_FILE', message: `${join(d, 'nope.gguf')}: cannot open GGUF file (ENOENT)` });
});

function trainState(scale = 1) {
  const params = [
    { name: 'blk.0.attn_q.weight.lora_a', dims: [8, 2], data: values(16, 11 * scale) },
    { name: 'blk.0.attn_q.weight.lora_b', dims: [2, 8], data: values(16, 12 * scale) },
  ];
  const moment = (seed) => params.map((p, i) => ({ name: p.name, dims: p.dims, data: values(p.data.length, seed + i) }));
  return {
    tensors: { params, m: moment(20 * scale), v: moment(30 * scale) },
    state: { step: 120 * scale, config: { lr: 1e-4, schedule: 'cosine', negatives: [1, 2] }, cursor: { epoch: 1, order: [3, 0, 2, 1] }, rng: [0xdeadbeef, 7, 0, 4294967295], note: null },
  };
}

test('writeTrainState/readTrainState: parameters, AdamW moments and state come back bit-exact', async () => {
  const path = join(dir(), 'state.gguf');
  const written = trainState();
  await writeTrainState(path, written);
  const back = await readTrainState(path);
  assert.deepEqual(back.state, written.state);
  for (const group of ['params', 'm', 'v']) assertSameTensors(back.tensors[group], written.tensors[group]);
  const file = await gguf.readGguf(path);
  assert.deepEqual(file.tensors.map((t) => t.name), [
    'param.blk.0.attn_q.weight.lora_a', 'param.blk.0.attn_q.weight.lora_b',
    'adam_m.blk.0.attn_q.weight.lora_a', 'adam_m.blk.0.attn_q.weight.lora_b',
    'adam_v.blk.0.attn_q.weight.lora_a', 'adam_v.blk.0.attn_q.weight.lora_b',
  ]);
  assert.equal(file.metadata.get('search_r3.train_state').value, JSON.stringify(written.state));
  assert.equal(file.metadata.get('search_r3.train_state.version').value, 1);
});

test('writeTrainState: refuses state JSON cannot hold exactly and moments that do not match parameters', async () => {
  const path = join(dir(), 'state.gguf');
  const { tensors } = trainState();
  await assert.rejects(writeTrainState(path, { tensors, state: { loss: [1, NaN] } }), { name: 'RangeError', message: 'Expected a finite number for state.loss[1] but received NaN; JSON cannot hold it' });
  await assert.rejects(writeTrainState(path, { tensors, state: { seed: 1n } }), { name: 'TypeError', message: 'Expected a number for state.seed but received 1n of type bigint; JSON cannot hold it' });
  await assert.rejects(writeTrainState(path, { tensors, state: { order: new Map() } }), { name: 'TypeError', message: 'Expected a plain object or array for state.order but received Map; JSON cannot hold it exactly' });
  await assert.rejects(writeTrainState(path, { tensors, state: { rng: new Uint32Array(4) } }), { name: 'TypeError', message: 'Expected a plain object or array for state.rng but received Uint32Array; JSON cannot hold it exactly' });
  await assert.rejects(writeTrainState(path, { tensors: { ...tensors, m: tensors.m.slice(1) }, state: {} }), { name: 'RangeError', message: 'Expected one m tensor per parameter (2) but received 1' });
  const renamed = tensors.v.map((t, i) => (i ? { ...t, name: 'blk.9.x.lora_b' } : t));
  await assert.rejects(writeTrainState(path, { tensors: { ...tensors, v: renamed }, state: {} }), { name: 'RangeError', message: "v tensor 'blk.9.x.lora_b' has no parameter of that name" });
  const reshaped = tensors.m.map((t, i) => (i ? { ...t, dims: [8, 2] } : t));
  await assert.rejects(writeTrainState(path, { tensors: { ...tensors, m: reshaped }, state: {} }), { name: 'RangeError', message: "m tensor 'blk.0.attn_q.weight.lora_b' has dims [8, 2] but its parameter has [2, 8]" });
  assert.throws(() => statSync(path), { code: 'ENOENT' });
});

test('readTrainState: truncated, foreign and non-GGUF files are clear errors', async () => {
  const d = dir();
  const path = join(d, 'state.gguf');
  await writeTrainState(path, trainState());
  const size = statSync(path).size;
  truncateSync(path, size - 100);
  // The last tensor (64 bytes) is gone and the one before it (64 bytes) is cut short.
  await assert.rejects(readTrainState(path), { code: 'ERR_GGUF', message: `${path}: truncated: tensor 'adam_v.blk.0.attn_q.weight.lora_a' data ends at byte ${size - 64} but the file has ${size - 100} bytes` });
  const adapter = await writeRandomLora(await tinyModel(), join(d, 'a.gguf'));
  await assert.rejects(readTrainState(adapter), { code: 'ERR_GGUF', message: `${adapter}: not a search-r3 training state (no 'search_r3.train_state.version' key)` });
  writeFileSync(join(d, 'text.gguf'), '{"step": 3}\n');
  await assert.rejects(readTrainState(join(d, 'text.gguf')), { code: 'ERR_GGUF', message: `${join(d, 'text.gguf')}: bad magic "{\\"st" at byte 0, expected "GGUF" (not a GGUF file)` });
});

// A child process writes a new checkpoint over an old one and is killed with SIGKILL part-way
// through the tensor data (its third write() call), as a power cut or OOM kill would.
const CHILD = `
import { open } from 'node:fs/promises';
const { writeTrainState, writeLoraAdapter } = await import(${JSON.stringify(pathToFileURL(join(root, 'dist', 'train', 'checkpoint.js')).href)});
const [kind, path] = process.argv.slice(2);
const probe = await open(process.execPath, 'r');
const proto = Object.getPrototypeOf(probe);
await probe.close();
const write = proto.write;
let calls = 0;
proto.write = function (...args) {
  if (++calls === 3) process.kill(process.pid, 'SIGKILL');
  return write.apply(this, args);
};
const data = (n) => new Float32Array(n).fill(2.5);
const big = [{ name: 'w.lora_a', dims: [1024, 64], data: data(65536) }, { name: 'w.lora_b', dims: [64, 1024], data: data(65536) }];
if (kind === 'state') await writeTrainState(path, { tensors: { params: big, m: big, v: big }, state: { step: 999 } });
else await writeLoraAdapter(path, { architecture: 'qwen2', alpha: 1, tensors: big });
console.log('finished');
`;

function runChild(script, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (out += b));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

test('a crash in the middle of a checkpoint write leaves the previous file intact', async () => {
  const d = dir();
  const script = join(d, 'crash.mjs');
  writeFileSync(script, CHILD);
  const statePath = join(d, 'state.gguf');
  const adapterPath = join(d, 'adapter.gguf');
  const old = trainState();
  await writeTrainState(statePath, old);
  const oldAdapter = { architecture: 'qwen2', alpha: 4, tensors: old.tensors.params };
  await writeLoraAdapter(adapterPath, oldAdapter);
  const before = { state: readFileSync(statePath), adapter: readFileSync(adapterPath) };

  for (const [kind, path] of [['state', statePath], ['adapter', adapterPath]]) {
    const r = await runChild(script, [kind, path]);
    assert.equal(r.signal, 'SIGKILL', `the child should die mid-write: ${r.out}`);
    assert.ok(readFileSync(path).equals(before[kind]), `${kind}: the old file changed`);
    // The torn write is in a temporary file beside the target, shorter than the full ~0.5 MB of data.
    const temps = readdirSync(d).filter((f) => f.startsWith(`.${kind === 'state' ? 'state' : 'adapter'}.gguf.`) && f.endsWith('.tmp'));
    assert.equal(temps.length, 1);
    assert.ok(statSync(join(d, temps[0])).size < 65536 * 4 * 2, 'the child was killed before it wrote everything');
  }
  const state = await readTrainState(statePath);
  assert.deepEqual(state.state, old.state);
  assertSameTensors(state.tensors.params, old.tensors.params);
  assertSameTensors((await readLoraAdapter(adapterPath)).tensors, oldAdapter.tensors);
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  makeModel, planModel, readGguf, validateGguf, ggufInfo, readTensorBytes, metaStrings, MODEL_PRESETS, GgufType, TokenType,
  dequantizeRow, GgmlType,
} from '../dist/gguf/index.js';
import { tempDir, sha256 } from './gguf-helpers.mjs';

// Generating a model is the slow part (the 151,936-row embedding), so the tests share three.
let tmp;
const paths = {};
before(async () => {
  tmp = tempDir();
  for (const [name, options] of Object.entries({
    a: { seed: 7, type: 'q8_0' },
    b: { seed: 7, type: 'q8_0' },
    c: { seed: 8, type: 'q8_0' },
  })) {
    paths[name] = join(tmp.dir, `${name}.gguf`);
    await makeModel({ out: paths[name], ...options });
  }
});
after(() => tmp.cleanup());

test('makeModel is deterministic: same seed gives the same bytes, another seed other bytes', () => {
  const [ha, hb, hc] = [paths.a, paths.b, paths.c].map((p) => sha256(readFileSync(p)));
  assert.equal(ha, hb);
  assert.notEqual(ha, hc);
});

test('the tiny qwen2 model has llama.cpp\'s tensor names, shapes and hyperparameters', async () => {
  const g = await validateGguf(paths.a);
  const m = (k) => g.metadata.get(k)?.value;
  assert.equal(m('general.architecture'), 'qwen2');
  assert.equal(m('general.name'), 'search-r3 tiny qwen2 seed 7');
  assert.equal(m('qwen2.block_count'), 2);
  assert.equal(m('qwen2.context_length'), 4096);
  assert.equal(m('qwen2.embedding_length'), 64);
  assert.equal(m('qwen2.feed_forward_length'), 128);
  assert.equal(m('qwen2.attention.head_count'), 4);
  assert.equal(m('qwen2.attention.head_count_kv'), 2);
  assert.equal(m('qwen2.rope.freq_base'), 1e6);
  assert.equal(m('qwen2.attention.layer_norm_rms_epsilon'), Math.fround(1e-6));
  assert.equal(g.metadata.get('qwen2.block_count').type, GgufType.UINT32);
  assert.equal(g.metadata.get('qwen2.rope.freq_base').type, GgufType.FLOAT32);
  const shapes = Object.fromEntries(g.tensors.map((t) => [t.name, t.dims]));
  assert.equal(g.tensors.length, 2 + 2 * 12);
  assert.deepEqual(shapes['token_embd.weight'], [64, 151936]);
  assert.equal(shapes['output.weight'], undefined); // tied, as in Qwen2.5-0.5B
  assert.deepEqual(shapes['output_norm.weight'], [64]);
  assert.deepEqual(shapes['blk.1.attn_q.weight'], [64, 64]);
  assert.deepEqual(shapes['blk.1.attn_k.weight'], [64, 32]);
  assert.deepEqual(shapes['blk.1.attn_v.bias'], [32]);
  assert.deepEqual(shapes['blk.1.attn_q.bias'], [64]);
  assert.deepEqual(shapes['blk.1.attn_output.weight'], [64, 64]);
  assert.deepEqual(shapes['blk.1.ffn_gate.weight'], [64, 128]);
  assert.deepEqual(shapes['blk.1.ffn_up.weight'], [64, 128]);
  assert.deepEqual(shapes['blk.1.ffn_down.weight'], [128, 64]);
  // Norms are ones; block matrices have std 1/√fan_in (here 1/8), embeddings 0.02; all centred.
  assert.ok(new Float32Array((await readTensorBytes(g, 'blk.0.ffn_norm.weight')).buffer).every((v) => v === 1));
  const stats = (w) => {
    const mean = w.reduce((a, v) => a + v, 0) / w.length;
    return [mean, Math.sqrt(w.reduce((a, v) => a + (v - mean) ** 2, 0) / w.length)];
  };
  const [m1, s1] = stats(dequantizeRow(GgmlType.Q8_0, await readTensorBytes(g, 'blk.0.ffn_up.weight')));
  assert.ok(Math.abs(m1) < 0.01 && Math.abs(s1 - 0.125) < 0.005, `ffn_up mean ${m1} std ${s1}`);
  const embd = await readTensorBytes(g, 'token_embd.weight');
  const [m2, s2] = stats(dequantizeRow(GgmlType.Q8_0, embd.subarray(0, 34 * 2 * 1000)));
  assert.ok(Math.abs(m2) < 0.001 && Math.abs(s2 - 0.02) < 0.001, `token_embd mean ${m2} std ${s2}`);
});

test('qwen3: per-head Q/K norm weights (not the identity), no QKV biases, qwen3.* hyperparameters', () => {
  const plan = planModel({ out: 'unused.gguf', arch: 'qwen3' });
  const byName = Object.fromEntries(plan.tensors.map((t) => [t.name, t]));
  assert.equal(plan.tensors.length, 2 + 2 * 11);
  assert.deepEqual(byName['blk.0.attn_q_norm.weight'].dims, [16]);
  assert.deepEqual(byName['blk.1.attn_k_norm.weight'].dims, [16]);
  assert.equal(byName['blk.0.attn_q_norm.weight'].init, 'ones');
  assert.equal(byName['blk.0.attn_q_norm.weight'].std, 0.1);
  assert.equal(byName['blk.0.attn_q.bias'], undefined);
  assert.equal(planModel({ out: 'unused.gguf', arch: 'llama' }).tensors.some((t) => t.name.includes('_norm.weight') && t.name.includes('attn_q')), false);
});

test('q8_0 quantizes every matrix, token_embd included, and keeps norms and biases F32', async () => {
  const g = await readGguf(paths.a);
  assert.equal(g.metadata.get('general.file_type').value, 7);
  assert.equal(g.metadata.get('general.quantization_version').value, 2);
  for (const t of g.tensors) assert.equal(t.type.name, t.dims.length === 2 ? 'Q8_0' : 'F32', t.name);
  // A row length that is not a multiple of 32 falls back to F16, as llama.cpp's quantizer does.
  const plan = planModel({ out: 'unused.gguf', type: 'q8_0', embd: 48, heads: 3, kvHeads: 1 });
  assert.equal(plan.tensors.find((t) => t.name === 'blk.0.attn_q.weight').type, GgmlType.F16);
  assert.equal(plan.tensors.find((t) => t.name === 'blk.0.ffn_down.weight').type, GgmlType.Q8_0); // ff 128
  assert.equal(planModel({ out: 'unused.gguf' }).tensors.every((t) => t.type === GgmlType.F32), true);
});

test('the generated vocabulary is Qwen2.5\'s: padded to 151,936 with UNUSED [PAD] rows, ChatML, embed token', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'llama.gguf');
    await makeModel({ out: p, arch: 'llama', type: 'f16', layers: 1, seed: 3 });
    const g = await validateGguf(p);
    const tokens = metaStrings(g.metadata, 'tokenizer.ggml.tokens');
    const types = g.metadata.get('tokenizer.ggml.token_type').value.values;
    assert.equal(tokens.length, 151936);
    assert.equal(g.metadata.get('tokenizer.ggml.merges').value.values.length, 151387);
    assert.equal(g.metadata.get('tokenizer.ggml.model').value, 'gpt2');
    assert.equal(g.metadata.get('tokenizer.ggml.pre').value, 'qwen2');
    assert.deepEqual([tokens[151643], types[151643]], ['<|endoftext|>', TokenType.CONTROL]);
    assert.deepEqual([tokens[151645], types[151645]], ['<|im_end|>', TokenType.CONTROL]);
    assert.deepEqual([tokens[151657], types[151657]], ['<tool_call>', TokenType.USER_DEFINED]);
    assert.deepEqual([tokens[151664], types[151664]], ['<|file_sep|>', TokenType.CONTROL]);
    assert.deepEqual([tokens[151665], types[151665]], ['<|embed_token|>', TokenType.CONTROL]);
    assert.deepEqual([tokens[151666], types[151666]], ['[PAD151666]', TokenType.UNUSED]);
    assert.deepEqual([tokens[151935], types[151935]], ['[PAD151935]', TokenType.UNUSED]);
    assert.ok(g.metadata.get('tokenizer.chat_template').value.includes('<|im_start|>assistant'));
    const shapes = Object.fromEntries(g.tensors.map((t) => [t.name, [t.type.name, ...t.dims]]));
    assert.deepEqual(shapes['blk.0.attn_q.weight'], ['F16', 64, 64]);
    assert.equal(shapes['blk.0.attn_q.bias'], undefined); // llama has no QKV biases
    assert.deepEqual(shapes['blk.0.attn_norm.weight'], ['F32', 64]);
    const info = await ggufInfo(p);
    assert.deepEqual([info.architecture, info.nLayer, info.nVocab, info.fileTypeName, info.hasChatTemplate], ['llama', 1, 151936, 'MOSTLY_F16', true]);
    assert.deepEqual(info.specialTokens, { bos: 151643, eos: 151645, pad: 151643, unk: null, embed: 151665 });
    assert.equal(g.metadata.get('llama.rope.dimension_count').value, 16);
    assert.equal(g.metadata.get('llama.vocab_size').value, 151936);
  } finally {
    cleanup();
  }
});

test('the qwen2.5-0.5b preset has the real Qwen2.5-0.5B shapes (planned, not written)', () => {
  const plan = planModel({ out: '/tmp/unused.gguf', preset: 'qwen2.5-0.5b', type: 'q8_0' });
  assert.deepEqual(plan.shape, MODEL_PRESETS['qwen2.5-0.5b']);
  assert.equal(plan.parameters, 494032768); // Qwen2.5-0.5B's published parameter count
  assert.equal(plan.tensors.length, 2 + 24 * 12);
  const byName = Object.fromEntries(plan.tensors.map((t) => [t.name, t]));
  assert.deepEqual(byName['token_embd.weight'].dims, [896, 151936]);
  assert.deepEqual(byName['blk.23.attn_k.weight'].dims, [896, 128]);
  assert.deepEqual(byName['blk.23.attn_k.bias'].dims, [128]);
  assert.deepEqual(byName['blk.0.ffn_down.weight'].dims, [4864, 896]);
  assert.equal(byName['output.weight'], undefined);
  // Q8_0: 34 bytes per 32 weights for matrices, 4 bytes per F32 norm/bias value.
  const vectors = 24 * (2 * 896 + 896 + 2 * 128) + 896;
  assert.equal(plan.tensorBytes, ((494032768 - vectors) / 32) * 34 + vectors * 4);
  assert.equal(planModel({ out: '/tmp/unused.gguf', preset: 'qwen2.5-0.5b' }).tensorBytes, 494032768 * 4);
});

test('makeModel validates its options with the house messages', async () => {
  await assert.rejects(makeModel({ out: '/tmp/x.gguf', layer: 2 }), { name: 'TypeError', message: 'Unknown option "layer" in options; did you mean "layers"?' });
  await assert.rejects(makeModel({ out: '/tmp/x.gguf', preset: 'huge' }), { name: 'TypeError', message: /Expected one of "tiny", "qwen2.5-0.5b" for options.preset but received "huge"/ });
  await assert.rejects(makeModel({ out: '/tmp/x.gguf', type: 'q4_0' }), { name: 'TypeError', message: /for options.type but received "q4_0"/ });
  await assert.rejects(makeModel({ out: '/tmp/x.gguf', embd: 65 }), { name: 'RangeError', message: 'Expected options.embd (65) to be a multiple of options.heads (4)' });
  await assert.rejects(makeModel({ out: '/tmp/x.gguf', kvHeads: 3 }), { name: 'RangeError', message: 'Expected options.heads (4) to be a multiple of options.kvHeads (3)' });
  await assert.rejects(makeModel({ out: '/tmp/x.gguf', seed: -1 }), { name: 'RangeError', message: /options.seed/ });
  await assert.rejects(makeModel({ out: '' }), { name: 'TypeError', message: 'Expected non-empty string for options.out but received "" of type string' });
});

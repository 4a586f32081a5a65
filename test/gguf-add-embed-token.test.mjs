import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addEmbedToken, makeModel, readGguf, validateGguf, readTensorBytes, readTensorChunks, writeGguf, metaStrings,
  dequantizeRow, quantizeRow, GgmlType, TokenType, EMBED_TOKEN,
} from '../dist/gguf/index.js';
import { STORIES, tempDir, rejectsWith, sha256 } from './gguf-helpers.mjs';

/** Mean of all rows of an F32 [n, rows] tensor, accumulated in float64 then rounded to f32. */
function meanRow(values, n) {
  const sum = new Float64Array(n);
  for (let i = 0; i < values.length; i++) sum[i % n] += values[i];
  return Float32Array.from(sum, (s) => s / (values.length / n));
}

test('addEmbedToken takes the first [PAD] slot of a padded vocabulary and leaves tensors untouched', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const stock = join(dir, 'stock.gguf');
    const out = join(dir, 'with-embed.gguf');
    await makeModel({ out: stock, embedToken: false, layers: 1, type: 'q8_0' });
    const before = await readGguf(stock);
    const tokens = metaStrings(before.metadata, 'tokenizer.ggml.tokens');
    const firstPad = tokens.findIndex((t) => t.startsWith('[PAD'));
    assert.equal(firstPad, 151665);
    assert.equal(before.metadata.get('tokenizer.ggml.token_type').value.values[firstPad], TokenType.UNUSED);

    assert.deepEqual(await addEmbedToken(stock, out), { tokenId: firstPad, mode: 'padding-slot' });
    const after = await validateGguf(out);
    const newTokens = metaStrings(after.metadata, 'tokenizer.ggml.tokens');
    const newTypes = after.metadata.get('tokenizer.ggml.token_type').value.values;
    assert.equal(newTokens.length, 151936);
    assert.equal(newTokens[firstPad], EMBED_TOKEN);
    assert.equal(newTypes[firstPad], TokenType.CONTROL);
    assert.equal(newTokens[firstPad + 1], `[PAD${firstPad + 1}]`);
    for (let i = 0; i < tokens.length; i++) if (i !== firstPad && tokens[i] !== newTokens[i]) assert.fail(`token ${i} changed`);
    assert.deepEqual(after.tensors.map((t) => [t.name, t.dims]), before.tensors.map((t) => [t.name, t.dims]));
    for (const name of ['token_embd.weight', 'blk.0.attn_q.weight', 'output_norm.weight']) {
      assert.deepEqual(await readTensorBytes(after, name), await readTensorBytes(before, name), name);
    }
    // It is byte for byte the file makeModel writes when it adds the token itself.
    const direct = join(dir, 'direct.gguf');
    await makeModel({ out: direct, layers: 1, type: 'q8_0' });
    assert.equal(sha256(readFileSync(out)), sha256(readFileSync(direct)));

    await rejectsWith(addEmbedToken(out, join(dir, 'twice.gguf')), 'ERR_MODEL', `${out}: already has <|embed_token|> (token id ${firstPad})`);
  } finally {
    cleanup();
  }
});

test('addEmbedToken extends stories260K (no free slot) with the mean row, in place', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const out = join(dir, 'stories-embed.gguf');
    assert.deepEqual(await addEmbedToken(STORIES, out), { tokenId: 512, mode: 'extended' });
    const src = await readGguf(STORIES);
    const g = await validateGguf(out);
    const tokens = metaStrings(g.metadata, 'tokenizer.ggml.tokens');
    assert.equal(tokens.length, 513);
    assert.equal(tokens[512], EMBED_TOKEN);
    assert.equal(g.metadata.get('tokenizer.ggml.token_type').value.values[512], TokenType.CONTROL);
    assert.equal(g.metadata.get('tokenizer.ggml.scores').value.values.length, 513);
    assert.equal(g.metadata.get('tokenizer.ggml.scores').value.values[512], 0);
    for (const name of ['token_embd.weight', 'output.weight']) {
      const t = g.tensors.find((x) => x.name === name);
      assert.deepEqual(t.dims, [64, 513]);
      const oldBytes = await readTensorBytes(src, name);
      const newBytes = await readTensorBytes(g, name);
      assert.deepEqual(newBytes.subarray(0, oldBytes.length), oldBytes, `${name}: existing rows unchanged`);
      const want = meanRow(dequantizeRow(GgmlType.F32, oldBytes), 64);
      assert.deepEqual(dequantizeRow(GgmlType.F32, newBytes.subarray(oldBytes.length)), want, `${name}: new row is the mean`);
    }
    assert.equal(g.tensors.length, src.tensors.length);
    assert.deepEqual(await readTensorBytes(g, 'blk.4.ffn_down.weight'), await readTensorBytes(src, 'blk.4.ffn_down.weight'));
    // In place (out === in) is safe: the rename happens after everything was read.
    const copy = join(dir, 'copy.gguf');
    await addEmbedToken(STORIES, copy);
    await rejectsWith(addEmbedToken(copy, copy), 'ERR_MODEL', 'already has <|embed_token|> (token id 512)');
  } finally {
    cleanup();
  }
});

/** Copies stories260K with token_embd/output converted by `convert(name, f32Values) → { type, bytes }`. */
async function storiesWith(path, convert) {
  const src = await readGguf(STORIES);
  const tensors = [];
  for (const t of src.tensors) {
    if (t.name === 'token_embd.weight' || t.name === 'output.weight') {
      const { type, bytes } = convert(t.name, dequantizeRow(GgmlType.F32, await readTensorBytes(src, t.name)));
      tensors.push({ name: t.name, type, dims: t.dims, data: bytes });
    } else tensors.push({ name: t.name, type: t.type.id, dims: t.dims, data: () => readTensorChunks(src, t) });
  }
  await writeGguf(path, { metadata: src.metadata, tensors });
}

test('addEmbedToken extends quantized rows: Q8_0 gets the requantized mean, other types the EOS row', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q8 = join(dir, 'q8.gguf');
    await storiesWith(q8, (_, x) => ({ type: GgmlType.Q8_0, bytes: quantizeRow(GgmlType.Q8_0, x) }));
    const q8out = join(dir, 'q8-embed.gguf');
    assert.deepEqual(await addEmbedToken(q8, q8out), { tokenId: 512, mode: 'extended' });
    const before = await readTensorBytes(await readGguf(q8), 'token_embd.weight');
    const after = await readTensorBytes(await validateGguf(q8out), 'token_embd.weight');
    assert.equal(after.length, before.length + 68); // one row: 64 values = 2 blocks of 34 bytes
    const mean = meanRow(dequantizeRow(GgmlType.Q8_0, before), 64);
    assert.deepEqual(after.subarray(before.length), quantizeRow(GgmlType.Q8_0, mean));

    // Q4_0 cannot be decoded here: the new row copies EOS's (id 2). Any bytes are valid Q4_0 data.
    const q4 = join(dir, 'q4.gguf');
    await storiesWith(q4, (_, x) => ({ type: 2, bytes: Uint8Array.from({ length: (x.length / 32) * 18 }, (_, i) => (i * 37) & 0xff) }));
    const q4out = join(dir, 'q4-embed.gguf');
    assert.deepEqual(await addEmbedToken(q4, q4out), { tokenId: 512, mode: 'extended' });
    const q4before = await readTensorBytes(await readGguf(q4), 'output.weight');
    const q4after = await readTensorBytes(await validateGguf(q4out), 'output.weight');
    const rowBytes = 36; // 64 values = 2 Q4_0 blocks of 18 bytes
    assert.deepEqual(q4after.subarray(q4before.length), q4before.subarray(2 * rowBytes, 3 * rowBytes));
  } finally {
    cleanup();
  }
});

test('addEmbedToken reports bad input files and arguments', async () => {
  const { dir, cleanup } = tempDir();
  try {
    await rejectsWith(addEmbedToken(join(dir, 'none.gguf'), join(dir, 'out.gguf')), 'ERR_FILE', 'none.gguf');
    const noVocab = join(dir, 'novocab.gguf');
    await writeGguf(noVocab, { metadata: new Map(), tensors: [{ name: 'token_embd.weight', type: 0, dims: [4, 2], data: new Uint8Array(32) }] });
    await rejectsWith(addEmbedToken(noVocab, join(dir, 'out.gguf')), 'ERR_MODEL', 'needs tokenizer.ggml.tokens and token_embd.weight');
    await assert.rejects(addEmbedToken(STORIES, 5), { name: 'TypeError', message: 'Expected non-empty string for outPath but received 5 of type number' });
  } finally {
    cleanup();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { readGguf, validateGguf, ggufInfo, readTensorBytes, GgufType, metaStrings } from '../dist/gguf/index.js';
import { STORIES, buildGguf, validSpec, tempDir, writeTemp, rejectsWith, kv } from './gguf-helpers.mjs';

test('readGguf parses the stories260K fixture header', async () => {
  const g = await readGguf(STORIES);
  assert.equal(g.version, 3);
  assert.equal(g.alignment, 32);
  assert.equal(g.size, 1185376);
  assert.equal(g.dataOffset, 14176);
  assert.equal(g.metadata.size, 19);
  assert.equal(g.metadata.get('general.architecture').value, 'llama');
  assert.equal(g.metadata.get('llama.embedding_length').type, GgufType.UINT32);
  assert.equal(g.metadata.get('llama.block_count').value, 5);
  assert.equal(g.metadata.get('llama.feed_forward_length').value, 172);
  assert.equal(g.metadata.get('llama.attention.head_count_kv').value, 4);
  assert.equal(g.metadata.get('tokenizer.ggml.seperator_token_id').value, 4294967295);
  const tokens = metaStrings(g.metadata, 'tokenizer.ggml.tokens');
  assert.equal(tokens.length, 512);
  assert.deepEqual(tokens.slice(0, 3), ['<unk>', '<s>', '</s>']);
  const scores = g.metadata.get('tokenizer.ggml.scores').value;
  assert.ok(scores.values instanceof Float32Array);
  assert.equal(scores.values[511], -252);
  assert.equal(g.tensors.length, 48);
  const [embd, norm, out, q] = g.tensors;
  assert.deepEqual([embd.name, embd.dims, embd.type.name, embd.offset, embd.fileOffset, embd.nbytes],
    ['token_embd.weight', [64, 512], 'F32', 0, 14176, 131072]);
  assert.deepEqual([norm.name, norm.dims, norm.offset], ['output_norm.weight', [64], 131072]);
  assert.deepEqual([out.name, out.dims, out.fileOffset], ['output.weight', [64, 512], 145504]);
  assert.deepEqual([q.name, q.dims], ['blk.0.attn_q.weight', [64, 64]]);
  const last = g.tensors.at(-1);
  assert.equal(last.fileOffset + last.nbytes, g.size);
});

test('validateGguf accepts the fixture and ggufInfo summarises it', async () => {
  await validateGguf(STORIES);
  assert.deepEqual(await ggufInfo(STORIES), {
    file: STORIES, version: 3, sizeBytes: 1185376, architecture: 'llama', name: 'llama',
    nEmbd: 64, nLayer: 5, nHead: 8, nHeadKv: 4, nFf: 172, nVocab: 512, contextLength: 2048,
    fileType: null, fileTypeName: null, tensorCount: 48, tokenizerModel: 'llama', hasChatTemplate: false,
    specialTokens: { bos: 1, eos: 2, pad: null, unk: 0, embed: null },
  });
});

test('readTensorBytes reads the exact bytes of a tensor', async () => {
  const g = await readGguf(STORIES);
  const norm = await readTensorBytes(g, 'output_norm.weight');
  assert.equal(norm.length, 256);
  const f = new Float32Array(norm.buffer, norm.byteOffset, 64);
  assert.ok(f.every(Number.isFinite));
  await rejectsWith(readTensorBytes(g, 'nope'), 'ERR_MODEL', "has no tensor 'nope'");
});

test('readGguf reads every metadata value type, nested arrays and 64-bit values', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const spec = {
      kvs: [
        ['u8', kv.raw(0, (b) => b.u8(200))],
        ['i8', kv.raw(1, (b) => b.raw(Buffer.from([0xff])))],
        ['u16', kv.raw(2, (b) => b.raw(Buffer.from([0x34, 0x12])))],
        ['i16', kv.raw(3, (b) => b.raw(Buffer.from([0xfe, 0xff])))],
        ['f64', kv.raw(12, (b) => { const x = Buffer.alloc(8); x.writeDoubleLE(0.1); b.raw(x); })],
        ['u64', kv.raw(10, (b) => b.u64(2n ** 63n + 5n))],
        ['i64', kv.raw(11, (b) => { const x = Buffer.alloc(8); x.writeBigInt64LE(-7n); b.raw(x); })],
        ['bools', kv.raw(9, (b) => b.u32(7).u64(3).u8(1).u8(0).u8(1))],
        ['nested', kv.raw(9, (b) => { b.u32(9).u64(2); b.u32(4).u64(2).u32(1).u32(2); b.u32(8).u64(1).str('x'); })],
        ['empty', kv.raw(9, (b) => b.u32(6).u64(0))],
      ],
    };
    const p = writeTemp(dir, 'types.gguf', buildGguf(spec));
    const g = await readGguf(p);
    const v = (k) => g.metadata.get(k).value;
    assert.equal(v('u8'), 200);
    assert.equal(v('i8'), -1);
    assert.equal(v('u16'), 0x1234);
    assert.equal(v('i16'), -2);
    assert.equal(v('f64'), 0.1);
    assert.equal(v('u64'), 2n ** 63n + 5n);
    assert.equal(v('i64'), -7n);
    assert.deepEqual(v('bools'), { itemType: GgufType.BOOL, values: [true, false, true] });
    const nested = v('nested');
    assert.equal(nested.itemType, GgufType.ARRAY);
    assert.deepEqual(Array.from(nested.values[0].values), [1, 2]);
    assert.deepEqual(nested.values[1].values, ['x']);
    assert.equal(v('empty').values.length, 0);
    assert.equal(g.tensors.length, 0);
    // Spec-valid, but llama.cpp's gguf loader refuses arrays of arrays.
    await rejectsWith(validateGguf(p), 'ERR_GGUF', p, "key 'nested' is an array of arrays");
  } finally {
    cleanup();
  }
});

test('readGguf accepts GGUF v2 and a custom general.alignment', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const spec = validSpec();
    spec.version = 2;
    spec.alignment = 64;
    spec.kvs.push(['general.alignment', kv.u32(64)]);
    spec.tensors = [{ name: 'a', dims: [8, 2], type: 0, offset: 0 }, { name: 'b', dims: [8], type: 0, offset: 64 }];
    spec.data = Buffer.alloc(96);
    const p = writeTemp(dir, 'v2.gguf', buildGguf(spec));
    const g = await validateGguf(p);
    assert.equal(g.version, 2);
    assert.equal(g.alignment, 64);
    assert.equal(g.dataOffset % 64, 0);
  } finally {
    cleanup();
  }
});

test('missing files, directories and empty files are ERR_FILE', async () => {
  const { dir, cleanup } = tempDir();
  try {
    await rejectsWith(readGguf(join(dir, 'missing.gguf')), 'ERR_FILE', 'missing.gguf', 'ENOENT');
    mkdirSync(join(dir, 'd.gguf'));
    await rejectsWith(validateGguf(join(dir, 'd.gguf')), 'ERR_FILE', 'd.gguf: is a directory');
    await rejectsWith(ggufInfo(writeTemp(dir, 'empty.gguf', Buffer.alloc(0))), 'ERR_FILE', 'empty.gguf: file is empty');
    await assert.rejects(readGguf(42), { name: 'TypeError', message: 'Expected non-empty string for path but received 42 of type number' });
  } finally {
    cleanup();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  writeGguf, readGguf, validateGguf, readTensorBytes, readTensorChunks, GgufType, GgmlType, tensorBytes, quantizeQ8_0,
} from '../dist/gguf/index.js';
import { STORIES, tempDir, sha256 } from './gguf-helpers.mjs';

const S = (value) => ({ type: GgufType.STRING, value });

function sampleMetadata() {
  return new Map([
    ['general.architecture', S('llama')],
    ['general.alignment', { type: GgufType.UINT32, value: 64 }],
    ['u8', { type: GgufType.UINT8, value: 255 }],
    ['i8', { type: GgufType.INT8, value: -128 }],
    ['u16', { type: GgufType.UINT16, value: 65535 }],
    ['i16', { type: GgufType.INT16, value: -32768 }],
    ['u32', { type: GgufType.UINT32, value: 4294967295 }],
    ['i32', { type: GgufType.INT32, value: -2147483648 }],
    ['f32', { type: GgufType.FLOAT32, value: 0.5 }],
    ['f64', { type: GgufType.FLOAT64, value: Math.PI }],
    ['u64', { type: GgufType.UINT64, value: 2n ** 64n - 1n }],
    ['i64', { type: GgufType.INT64, value: -(2n ** 63n) }],
    ['bool', { type: GgufType.BOOL, value: true }],
    ['unicode', S('héllo ✓ 𝄞')],
    ['strs', { type: GgufType.ARRAY, value: { itemType: GgufType.STRING, values: ['a', '', 'ç'] } }],
    ['f32s', { type: GgufType.ARRAY, value: { itemType: GgufType.FLOAT32, values: Float32Array.of(1.5, -2) } }],
    ['u64s', { type: GgufType.ARRAY, value: { itemType: GgufType.UINT64, values: BigUint64Array.of(1n, 2n ** 40n) } }],
    ['bools', { type: GgufType.ARRAY, value: { itemType: GgufType.BOOL, values: [false, true] } }],
    ['nested', { type: GgufType.ARRAY, value: { itemType: GgufType.ARRAY, values: [
      { itemType: GgufType.INT32, values: Int32Array.of(-1, 7) }, { itemType: GgufType.STRING, values: ['z'] },
    ] } }],
  ]);
}

test('writeGguf → readGguf round-trips every value type and tensor bytes', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'rt.gguf');
    const f32 = new Uint8Array(Float32Array.from({ length: 96 }, (_, i) => i / 7).buffer);
    const q8 = quantizeQ8_0(Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)));
    const f16 = new Uint8Array(2 * 32).map((_, i) => i);
    const chunks = () => (async function* gen() { yield f32.subarray(0, 100); yield f32.subarray(100); })();
    await writeGguf(p, {
      metadata: sampleMetadata(),
      tensors: [
        { name: 'streamed', type: GgmlType.F32, dims: [32, 3], data: chunks },
        { name: 'q8', type: GgmlType.Q8_0, dims: [32, 2], data: q8 },
        { name: 'h', type: GgmlType.F16, dims: [4, 2, 2, 2], data: f16 },
      ],
    });
    const g = await readGguf(p);
    assert.equal(g.version, 3);
    assert.equal(g.alignment, 64);
    assert.equal(g.dataOffset % 64, 0);
    const want = sampleMetadata();
    assert.deepEqual([...g.metadata.keys()], [...want.keys()]);
    for (const [key, kv] of want) {
      const got = g.metadata.get(key);
      assert.equal(got.type, kv.type, key);
      if (key === 'f32s') assert.deepEqual(Array.from(got.value.values), [1.5, -2]);
      else if (key === 'nested') {
        assert.deepEqual(Array.from(got.value.values[0].values), [-1, 7]);
        assert.deepEqual(got.value.values[1].values, ['z']);
      } else assert.deepEqual(got.value, kv.value, key);
    }
    assert.deepEqual(g.tensors.map((t) => [t.name, t.type.name, t.dims, t.offset, t.nbytes]), [
      ['streamed', 'F32', [32, 3], 0, 384],
      ['q8', 'Q8_0', [32, 2], 384, 68],
      ['h', 'F16', [4, 2, 2, 2], 512, 64], // q8's 68 bytes pad to 128 at alignment 64
    ]);
    assert.deepEqual(await readTensorBytes(g, 'streamed'), f32);
    assert.deepEqual(await readTensorBytes(g, 'q8'), q8);
    assert.deepEqual(await readTensorBytes(g, 'h'), f16);
    assert.equal(g.size, g.dataOffset + 512 + 64);
  } finally {
    cleanup();
  }
});

test('copying stories260K through readGguf/writeGguf reproduces it byte for byte', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const src = await readGguf(STORIES);
    const p = join(dir, 'copy.gguf');
    const tensors = src.tensors.map((t) => ({ name: t.name, type: t.type.id, dims: t.dims, data: () => readTensorChunks(src, t, 4096) }));
    await writeGguf(p, { metadata: src.metadata, tensors });
    assert.equal(sha256(readFileSync(p)), sha256(readFileSync(STORIES)));
  } finally {
    cleanup();
  }
});

test('writeGguf leaves no file and no temp file when a source yields the wrong size or throws', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'bad.gguf');
    const meta = new Map([['general.architecture', S('llama')]]);
    await assert.rejects(writeGguf(p, { metadata: meta, tensors: [{ name: 'w', type: GgmlType.F32, dims: [4], data: () => (async function* g() { yield new Uint8Array(12); })() }] }),
      { name: 'RangeError', message: "Tensor 'w' data source produced 12 bytes but its shape needs 16" });
    await assert.rejects(writeGguf(p, { metadata: meta, tensors: [{ name: 'w', type: GgmlType.F32, dims: [4], data: () => (async function* g() { yield new Uint8Array(8); throw new Error('disk on fire'); })() }] }),
      { message: 'disk on fire' });
    assert.deepEqual(readdirSync(dir), []);
    // An existing file is replaced only by a complete new one.
    writeFileSync(p, 'old');
    await assert.rejects(writeGguf(p, { metadata: meta, tensors: [{ name: 'w', type: GgmlType.F32, dims: [4], data: () => (async function* g() { yield new Uint8Array(20); })() }] }),
      { name: 'RangeError', message: "Tensor 'w' data source produced more than the 16 bytes its shape needs" });
    assert.equal(readFileSync(p, 'utf8'), 'old');
    assert.deepEqual(readdirSync(dir), ['bad.gguf']);
    await writeGguf(p, { metadata: meta, tensors: [{ name: 'w', type: GgmlType.F32, dims: [4], data: new Uint8Array(16) }] });
    await validateGguf(p);
    assert.ok(existsSync(p));
  } finally {
    cleanup();
  }
});

test('writeGguf rejects invalid tensors and metadata with argument errors', async () => {
  const meta = new Map();
  const w = (tensors, metadata = meta) => writeGguf('/tmp/never-written.gguf', { metadata, tensors });
  await assert.rejects(w([{ name: 'q', type: GgmlType.Q8_0, dims: [48], data: new Uint8Array(51) }]),
    { name: 'RangeError', message: "Expected tensors[0].dims[0] (48) to be a multiple of Q8_0's block size 32" });
  await assert.rejects(w([{ name: 'a', type: 0, dims: [1], data: new Uint8Array(4) }, { name: 'a', type: 0, dims: [1], data: new Uint8Array(4) }]),
    { name: 'RangeError', message: "Duplicate tensor name 'a' in tensors[1]" });
  await assert.rejects(w([{ name: 'a', type: 4, dims: [1], data: new Uint8Array(4) }]), { name: 'RangeError', message: /known ggml type id for tensors\[0\]\.type but received 4/ });
  await assert.rejects(w([{ name: 'a', type: 0, dims: [0], data: new Uint8Array(0) }]), { name: 'RangeError', message: /positive integer dims/ });
  await assert.rejects(w([{ name: 'a', type: 0, dims: [2], data: new Uint8Array(4) }]), { name: 'RangeError', message: "Expected 8 bytes of data for tensor 'a' but received 4" });
  await assert.rejects(w([], new Map([['k', { type: GgufType.STRING, value: 3 }]])), { name: 'TypeError', message: "Expected string for metadata key 'k' but received 3 of type number" });
  await assert.rejects(w([], new Map([['general.alignment', { type: GgufType.UINT32, value: 24 }]])), { name: 'RangeError', message: /u32 power of 2/ });
  assert.equal(existsSync('/tmp/never-written.gguf'), false);
  assert.equal(tensorBytes(GgmlType.Q8_0, [64, 3]), 204);
});

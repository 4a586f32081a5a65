// The corrupt-file corpus: every malformed file must be rejected by validateGguf with
// SearchR3Error ERR_GGUF, a message naming the file and the problem; never another error type.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readGguf, validateGguf } from '../dist/gguf/index.js';
import { STORIES, buildGguf, validSpec, tempDir, writeTemp, rejectsWith, kv } from './gguf-helpers.mjs';

function variant(mutate) {
  const spec = validSpec();
  mutate(spec);
  return buildGguf(spec);
}

// [name, bytes, ...expected message substrings]
const CASES = [
  ['bad magic', (() => { const b = buildGguf(validSpec()); b.write('GGML', 0, 'latin1'); return b; })(), 'bad magic "GGML" at byte 0'],
  ['version 1', variant((s) => { s.version = 1; }), 'GGUF version 1 is no longer supported'],
  ['version 4', variant((s) => { s.version = 4; }), 'unsupported GGUF version 4'],
  ['version 0', variant((s) => { s.version = 0; }), 'unsupported GGUF version 0'],
  ['big-endian', variant((s) => { s.version = 0x03000000; }), 'big-endian'],
  ['forged kv count', variant((s) => { s.nKv = 2n ** 62n; }), 'truncated or forged header: it claims 4611686018427387904 key-value pairs'],
  ['forged tensor count', variant((s) => { s.nTensors = 2n ** 40n; }), 'forged header', 'and 1099511627776 tensors'],
  ['kv count one too many', variant((s) => { s.nKv = 7; s.data = Buffer.alloc(0); s.tensors = []; s.nTensors = 0; }), 'truncated'],
  ['forged key length', variant((s) => { s.kvs[0] = ['general.architecture', kv.raw(8, (b) => b.u64(2n ** 63n))]; }),
    "key 'general.architecture': truncated or forged string: length 9223372036854775808", 'exceeds the'],
  ['forged key name length', (() => { const b = buildGguf(validSpec()); b.writeBigUInt64LE(2n ** 50n, 24); return b; })(),
    'key 0 name: truncated or forged string: length 1125899906842624 at byte 24 exceeds the'],
  ['invalid value type', variant((s) => { s.kvs[1] = ['llama.embedding_length', kv.raw(13, (b) => b.u32(8))]; }),
    "key 'llama.embedding_length': invalid value type 13"],
  ['invalid array element type', variant((s) => { s.kvs[4] = ['tokenizer.ggml.scores', kv.raw(9, (b) => b.u32(99).u64(5))]; }),
    "key 'tokenizer.ggml.scores' array element: invalid value type 99"],
  ['forged array count', variant((s) => { s.kvs[4] = ['tokenizer.ggml.scores', kv.raw(9, (b) => b.u32(6).u64(2n ** 61n))]; }),
    "key 'tokenizer.ggml.scores': truncated or forged array: 2305843009213693952 f32 elements", 'are left in the file'],
  ['forged string array count', variant((s) => { s.kvs[3] = ['tokenizer.ggml.tokens', kv.raw(9, (b) => b.u32(8).u64(2n ** 40n))]; }),
    "key 'tokenizer.ggml.tokens': truncated or forged array: 1099511627776 str elements"],
  ['array nested too deep', variant((s) => { s.kvs.push(['deep', kv.raw(9, (b) => { for (let i = 0; i < 12; i++) b.u32(9).u64(1); b.u32(4).u64(0); })]); }),
    "key 'deep'", 'nested deeper than 8 levels'],
  ['duplicate key', variant((s) => { s.kvs.push(['llama.embedding_length', kv.u32(9)]); }), "duplicate key 'llama.embedding_length' (key 6"],
  ['empty key', variant((s) => { s.kvs.push(['', kv.u32(9)]); }), 'key 6 at byte', 'has an empty name'],
  ['bool not 0/1', variant((s) => { s.kvs.push(['flag', kv.bool(7)]); }), "key 'flag': bool value 7"],
  ['alignment not a power of 2', variant((s) => { s.kvs.push(['general.alignment', kv.u32(48)]); }), "'general.alignment' is 48, which is not a power of 2"],
  ['alignment zero', variant((s) => { s.kvs.push(['general.alignment', kv.u32(0)]); }), "'general.alignment' is 0"],
  ['alignment wrong type', variant((s) => { s.kvs.push(['general.alignment', kv.i32(32)]); }), "'general.alignment' must be of type u32 but is i32"],
  ['zero dimensions', variant((s) => { s.tensors[1].dims = []; }), "tensor 'b' has 0 dimensions", 'expected 1 to 4'],
  ['five dimensions', variant((s) => { s.tensors[1].dims = [8, 1, 1, 1, 1]; }), "tensor 'b' has 5 dimensions"],
  ['zero-sized dimension', variant((s) => { s.tensors[0].dims = [8, 0]; }), "tensor 'a' dimension 1 is 0, expected a positive size"],
  ['negative dimension', variant((s) => { s.tensors[0].dims = [8, 2n ** 64n - 3n]; }), "tensor 'a' dimension 1 is -3"],
  ['forged huge shape', variant((s) => { s.tensors[0].dims = [2n ** 40n, 2n ** 40n]; }), "tensor 'a' shape claims more than"],
  ['invalid ggml type', variant((s) => { s.tensors[1].type = 99; }), "tensor 'b' has invalid or removed ggml type 99"],
  ['removed ggml type', variant((s) => { s.tensors[1].type = 4; }), "tensor 'b' has invalid or removed ggml type 4"],
  ['row not a multiple of the block', variant((s) => { s.tensors[2].dims = [48, 1]; }),
    "tensor 'c' of type Q8_0 has 48 elements per row, not a multiple of the block size 32"],
  ['misaligned offset', variant((s) => { s.tensors[1].offset = 68; }), "tensor 'b' data offset 68 is not a multiple of the alignment 32"],
  ['overlapping tensors', variant((s) => { s.tensors[1].offset = 32; }), "tensors 'a' (data bytes 0..64) and 'b' (from 32) overlap"],
  ['tensor data beyond the file', variant((s) => { s.tensors[2].offset = 128; }), "truncated: tensor 'c' data ends at byte", 'but the file has'],
  ['offset beyond the file', variant((s) => { s.tensors[2].offset = 2 ** 40; }), "tensor 'c' data offset 1099511627776 is beyond the end"],
  ['duplicate tensor name', variant((s) => { s.tensors[1].name = 'a'; }), "duplicate tensor name 'a' (tensor 1"],
  ['empty tensor name', variant((s) => { s.tensors[1].name = ''; }), 'tensor 1 at byte', 'has an empty name'],
  ['data section cut', variant((s) => { s.data = s.data.subarray(0, 100); }), "truncated: tensor 'c' data ends at byte"],
  // llama.cpp loader rules (validateGguf only)
  ['tensors with a gap', variant((s) => { s.tensors[2].offset = 128; s.data = Buffer.alloc(200); }), "tensor 'c' has data offset 128 but llama.cpp expects 96"],
  ['tensors out of order', variant((s) => { s.tensors[0].offset = 32; s.tensors[1].offset = 0; }), "tensor 'a' has data offset 32 but llama.cpp expects 0"],
  ['tensor name too long', variant((s) => { s.tensors[1].name = 'x'.repeat(64); }), 'is 64 bytes; llama.cpp allows at most 63'],
  ['duplicate vocab token', variant((s) => { s.kvs[3] = ['tokenizer.ggml.tokens', kv.strs(['<unk>', '<s>', '</s>', 'a', 'a'])]; }),
    'has the token "a" twice (ids 3 and 4)'],
  ['vocab tokens not strings', variant((s) => { s.kvs[3] = ['tokenizer.ggml.tokens', kv.i32s([1, 2])]; }), "'tokenizer.ggml.tokens' must be an array of strings"],
  ['short scores', variant((s) => { s.kvs[4] = ['tokenizer.ggml.scores', kv.f32s([0, 0])]; }), "'tokenizer.ggml.scores' has 2 entries for 5 tokens"],
  ['token types of the wrong type', variant((s) => { s.kvs[5] = ['tokenizer.ggml.token_type', kv.f32s([1, 1, 1, 1, 1])]; }),
    "'tokenizer.ggml.token_type' must be an array of i32"],
  ['heads not divisible by kv heads', variant((s) => { s.kvs.push(['llama.attention.head_count_kv', kv.u32(3)]); }),
    'head_count 2 is not a multiple of head_count_kv 3'],
  ['rope dimension mismatch', variant((s) => { s.kvs.push(['llama.rope.dimension_count', kv.u32(2)]); }),
    'llama.rope.dimension_count is 2 but the head size is 4'],
  ['unknown rope scaling', variant((s) => { s.kvs.push(['llama.rope.scaling.type', kv.str('cubic')]); }), "'llama.rope.scaling.type' is \"cubic\""],
];

test('the valid base file passes, so each case below fails for its own reason', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const g = await validateGguf(writeTemp(dir, 'ok.gguf', buildGguf(validSpec())));
    assert.deepEqual(g.tensors.map((t) => [t.name, t.offset, t.nbytes]), [['a', 0, 64], ['b', 64, 32], ['c', 96, 34]]);
  } finally {
    cleanup();
  }
});

test('validateGguf rejects each crafted corruption with a message naming the file and the problem', async () => {
  const { dir, cleanup } = tempDir();
  try {
    for (const [i, [name, bytes, ...substrings]] of CASES.entries()) {
      const p = writeTemp(dir, `case-${i}.gguf`, bytes);
      await rejectsWith(validateGguf(p), 'ERR_GGUF', `${p}: `, ...substrings).catch((err) => {
        err.message = `case "${name}": ${err.message}`;
        throw err;
      });
    }
  } finally {
    cleanup();
  }
});

test('every truncation of a small file and of stories260K is rejected as truncated', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const small = buildGguf(validSpec());
    for (let n = 1; n < small.length; n++) {
      const p = writeTemp(dir, `small-${n}.gguf`, small.subarray(0, n));
      await rejectsWith(validateGguf(p), 'ERR_GGUF', p, n < 4 ? 'truncated: magic' : 'truncated');
    }
    const stories = readFileSync(STORIES);
    const cuts = [3, 4, 10, 24, 25, 100, 1000, 5000, 8000, 14000, 14176, 14177, 20000, 145503, 600000, stories.length - 1];
    for (let k = 1; k <= 40; k++) cuts.push(Math.floor(((k * 7919) % 1000) / 1000 * stories.length));
    for (const n of cuts) {
      const p = writeTemp(dir, `stories-${n}.gguf`, stories.subarray(0, n));
      await rejectsWith(validateGguf(p), 'ERR_GGUF', p, 'truncated');
    }
  } finally {
    cleanup();
  }
});

// xorshift32: deterministic fuzz input
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
}

test('random bytes are rejected, with or without a valid GGUF preamble', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const next = rng(12345);
    for (let i = 0; i < 150; i++) {
      const bytes = Buffer.alloc(1 + (next() % 4096));
      for (let j = 0; j < bytes.length; j++) bytes[j] = next() & 0xff;
      if (i % 2 === 1 && bytes.length >= 8) { bytes.write('GGUF', 0, 'latin1'); bytes.writeUInt32LE(3, 4); }
      const p = writeTemp(dir, `random-${i}.gguf`, bytes);
      await rejectsWith(validateGguf(p), 'ERR_GGUF', p);
    }
  } finally {
    cleanup();
  }
});

test('byte flips in headers never produce anything but success or ERR_GGUF', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const next = rng(777);
    const stories = readFileSync(STORIES);
    const small = buildGguf(validSpec());
    let rejected = 0;
    for (let i = 0; i < 150; i++) {
      const base = i % 3 === 0 ? stories : small;
      const headerEnd = base === stories ? 14176 : small.length - 130;
      const bytes = Buffer.from(base);
      for (let f = 0; f < 1 + (next() % 4); f++) bytes[next() % headerEnd] = next() & 0xff;
      const p = writeTemp(dir, 'flip.gguf', bytes);
      try {
        await readGguf(p);
        await validateGguf(p);
      } catch (err) {
        assert.equal(err.name, 'SearchR3Error', `flip ${i}: ${err.stack}`);
        assert.equal(err.code, 'ERR_GGUF');
        assert.ok(err.message.startsWith(`${p}: `), err.message);
        rejected++;
      }
    }
    assert.ok(rejected > 50, `only ${rejected} of 150 flipped files were rejected`);
  } finally {
    cleanup();
  }
});

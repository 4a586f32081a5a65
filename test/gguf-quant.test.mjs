import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  f32ToF16, f16ToF32, f32ToBf16, bf16ToF32, quantizeQ8_0, dequantizeQ8_0, quantizeRow, dequantizeRow, GgmlType,
} from '../dist/gguf/index.js';

test('f32ToF16 rounds to nearest even and handles the edges as ggml does', () => {
  const cases = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [NaN, 0x7e00], [2 ** -24, 0x0001], [2 ** -25, 0x0000],
    [2 ** -25 * 1.5, 0x0001], [2 ** -14, 0x0400], [0.1, 0x2e66], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
  ];
  for (const [x, h] of cases) assert.equal(f32ToF16(x), h, `f32ToF16(${x})`);
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaN payloads are not preserved
    assert.equal(f32ToF16(f16ToF32(h)), h, `round trip of half 0x${h.toString(16)}`);
  }
  assert.equal(f16ToF32(0x3555), 0.333251953125);
});

test('f32ToBf16 rounds to nearest even and keeps NaN quiet', () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(-2), 0xc000);
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // halfway, even stays
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // halfway, odd rounds up
  assert.equal(f32ToBf16(Infinity), 0x7f80);
  assert.equal(f32ToBf16(NaN), 0x7fc0);
  assert.equal(bf16ToF32(0x4049), 3.140625);
});

test('quantizeQ8_0 matches a hand-computed block', () => {
  const x = new Float32Array(32);
  x[0] = 1.27; x[1] = -0.635; x[2] = 0.005; x[3] = -0.005; x[4] = 0.0149;
  const q = quantizeQ8_0(x);
  assert.equal(q.length, 34);
  const d = Math.fround(Math.fround(1.27) / 127); // 0.01
  assert.equal(q[0] | (q[1] << 8), f32ToF16(d));
  const qs = Int8Array.from(q.subarray(2));
  // -0.635/0.01 = -63.5 → -64 (roundf rounds halves away from zero); ±0.5 → ±1 likewise.
  assert.deepEqual(Array.from(qs.subarray(0, 6)), [127, -64, 1, -1, 1, 0]);
  assert.deepEqual(Array.from(dequantizeQ8_0(quantizeQ8_0(new Float32Array(32)))), new Array(32).fill(0));
  assert.throws(() => quantizeQ8_0(new Float32Array(33)), { name: 'RangeError', message: 'Expected a multiple of 32 values for Q8_0 but received 33' });
});

test('Q8_0 round-trip error stays within ggml\'s bound (half a step plus the f16 scale error)', () => {
  let s = 99;
  const rand = () => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 2 ** 32 - 0.5; };
  const x = Float32Array.from({ length: 32 * 500 }, (_, i) => rand() * [1e-4, 0.02, 1, 1000][i % 4]);
  const y = dequantizeQ8_0(quantizeQ8_0(x));
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]));
    const d = amax / 127;
    // rounding: ≤ d/2; the f16 scale is off by ≤ 2^-11·d, times |q| ≤ 127.
    const bound = d * (0.5 + 127 * 2 ** -11) * (1 + 1e-6);
    for (let j = 0; j < 32; j++) assert.ok(Math.abs(x[b + j] - y[b + j]) <= bound, `block ${b / 32} element ${j}`);
  }
});

test('quantizeRow/dequantizeRow convert F32, F16, BF16 and Q8_0 rows', () => {
  const x = Float32Array.from({ length: 64 }, (_, i) => (i - 32) / 8);
  for (const type of [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0]) {
    const bytes = quantizeRow(type, x);
    assert.equal(bytes.length, { 0: 256, 1: 128, 30: 128, 8: 68 }[type]);
    // Multiples of 1/8 up to 4 are exact in F32, F16 and BF16; Q8_0 is within one step (amax/127).
    const y = dequantizeRow(type, Buffer.concat([Buffer.alloc(1), bytes]).subarray(1)); // unaligned input
    const tol = type === GgmlType.Q8_0 ? 4 / 127 : 0;
    for (let i = 0; i < 64; i++) assert.ok(Math.abs(y[i] - x[i]) <= tol, `type ${type} element ${i}`);
  }
  assert.throws(() => quantizeRow(2, x), { name: 'RangeError' });
  assert.deepEqual(quantizeRow(GgmlType.F16, Float32Array.of(1, 2)), Uint8Array.of(0x00, 0x3c, 0x00, 0x40));
});

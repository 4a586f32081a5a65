import { GgmlType } from './constants.js';

/**
 * Conversions between F32 and the storage types search-r3 writes (F16, BF16, Q8_0), bit-exact
 * with ggml's reference code (`ggml-impl.h` ggml_compute_fp32_to_fp16/bf16 and `ggml-quants.c`
 * quantize_row_q8_0_ref), so a file written here equals one written by llama.cpp's tools.
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function bitsOf(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0]!;
}

function fromBits(bits: number): number {
  scratchU32[0] = bits >>> 0;
  return scratchF32[0]!;
}

/**
 * F32 → IEEE half bits, rounding to nearest even; NaN becomes a quiet NaN (0x7e00) as in ggml.
 * @example f32ToF16(1) // 0x3c00
 */
export function f32ToF16(x: number): number {
  return f16FromF32Bits(bitsOf(x));
}

/** The conversion on raw F32 bits, so bulk loops can view a Float32Array as Uint32Array once. */
function f16FromF32Bits(w: number): number {
  const sign = (w >>> 16) & 0x8000;
  const exp = (w >>> 23) & 0xff;
  const mant = w & 0x7fffff;
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Result is a half subnormal: count units of 2^-24, i.e. shift the full significand right.
    const shift = 126 - exp;
    if (shift > 24) return sign;
    const full = mant | 0x800000;
    const q = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    return sign | (rem > halfway || (rem === halfway && (q & 1) === 1) ? q + 1 : q);
  }
  const h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and 65520+ becomes infinity).
  return rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1) ? h + 1 : h;
}

/** IEEE half bits → number. @example f16ToF32(0x3c00) // 1 */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** F32 → bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN. @example f32ToBf16(1) // 0x3f80 */
export function f32ToBf16(x: number): number {
  const u = bitsOf(x);
  if ((u & 0x7fffffff) >>> 0 > 0x7f800000) return ((u >>> 16) | 64) & 0xffff;
  return ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16) & 0xffff;
}

/** bfloat16 bits → number. @example bf16ToF32(0x3f80) // 1 */
export function bf16ToF32(b: number): number {
  return fromBits((b & 0xffff) << 16);
}

/** Q8_0: blocks of 32 values, each an f16 scale d = amax/127 followed by 32 int8 round(x/d). */
export const Q8_0_BLOCK = 32;
export const Q8_0_BYTES = 34;

/**
 * Quantizes F32 values (length a multiple of 32) to Q8_0 blocks.
 * @example quantizeQ8_0(new Float32Array(32).fill(0.5)).length // 34
 */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % Q8_0_BLOCK !== 0) throw new RangeError(`Expected a multiple of ${Q8_0_BLOCK} values for Q8_0 but received ${x.length}`);
  const out = new Uint8Array((x.length / Q8_0_BLOCK) * Q8_0_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0, o = 0; b < x.length; b += Q8_0_BLOCK, o += Q8_0_BYTES) {
    let amax = 0;
    for (let j = b; j < b + Q8_0_BLOCK; j++) {
      const v = x[j]!;
      const a = v < 0 ? -v : v;
      amax = amax > a ? amax : a; // C's MAX(amax, fabsf(v)), including its NaN behaviour
    }
    // Math.fround after each step reproduces C float arithmetic exactly for these operations.
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    view.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const v = Math.fround(x[b + j]! * id);
      out[o + 2 + j] = (v < 0 ? -Math.round(-v) : Math.round(v)) & 0xff; // C roundf: halves away from zero
    }
  }
  return out;
}

/** Expands Q8_0 blocks back to F32. @example dequantizeQ8_0(quantizeQ8_0(v)) // ≈ v */
export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  if (bytes.length % Q8_0_BYTES !== 0) throw new RangeError(`Expected a multiple of ${Q8_0_BYTES} bytes for Q8_0 but received ${bytes.length}`);
  const out = new Float32Array((bytes.length / Q8_0_BYTES) * Q8_0_BLOCK);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let o = 0, k = 0; o < bytes.length; o += Q8_0_BYTES) {
    const d = f16ToF32(view.getUint16(o, true));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[k++] = view.getInt8(o + 2 + j) * d;
  }
  return out;
}

/** The ggml types whose rows {@link quantizeRow} and {@link dequantizeRow} convert. */
export const CONVERTIBLE_TYPES: readonly number[] = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0];

/**
 * Encodes F32 values as a row of the given ggml type (F32, F16, BF16 or Q8_0), little-endian.
 * @example quantizeRow(GgmlType.F16, new Float32Array([1, 2])) // Uint8Array [0x00,0x3c,0x00,0x40]
 */
export function quantizeRow(type: number, x: Float32Array): Uint8Array {
  switch (type) {
    case GgmlType.F32: return new Uint8Array(Float32Array.from(x).buffer);
    case GgmlType.F16: {
      const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
      const h = new Uint16Array(x.length);
      for (let i = 0; i < x.length; i++) h[i] = f16FromF32Bits(bits[i]!);
      return new Uint8Array(h.buffer);
    }
    case GgmlType.BF16: {
      const h = new Uint16Array(x.length);
      for (let i = 0; i < x.length; i++) h[i] = f32ToBf16(x[i]!);
      return new Uint8Array(h.buffer);
    }
    case GgmlType.Q8_0: return quantizeQ8_0(x);
    default: throw new RangeError(`Expected one of ggml types F32, F16, BF16, Q8_0 for type but received ${type}`);
  }
}

/**
 * Decodes a row of the given ggml type (F32, F16, BF16 or Q8_0) to F32.
 * @example dequantizeRow(GgmlType.F16, new Uint8Array([0x00, 0x3c])) // Float32Array [1]
 */
export function dequantizeRow(type: number, bytes: Uint8Array): Float32Array {
  // Copy first: a Buffer slice may not be aligned for a typed-array view.
  const aligned = new Uint8Array(bytes);
  switch (type) {
    case GgmlType.F32: return new Float32Array(aligned.buffer, 0, aligned.length >> 2);
    case GgmlType.F16: {
      const h = new Uint16Array(aligned.buffer, 0, aligned.length >> 1);
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = f16ToF32(h[i]!);
      return out;
    }
    case GgmlType.BF16: {
      const h = new Uint16Array(aligned.buffer, 0, aligned.length >> 1);
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = bf16ToF32(h[i]!);
      return out;
    }
    case GgmlType.Q8_0: return dequantizeQ8_0(aligned);
    default: throw new RangeError(`Expected one of ggml types F32, F16, BF16, Q8_0 for type but received ${type}`);
  }
}

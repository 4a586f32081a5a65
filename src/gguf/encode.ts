import { expected } from '../util/validate.js';
import { GGUF_TYPE_NAMES, GgufType } from './constants.js';
import type { GgufArray, GgufValue } from './reader.js';

/**
 * A growable little-endian byte buffer for the GGUF header. The header of a 150k-token vocabulary
 * is a few MB, so it is built in memory and written in one go; tensor data is streamed separately.
 */
export class HeaderEncoder {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  u8(v: number): void { const at = this.room(1); this.buf.writeUInt8(v, at); }
  i8(v: number): void { const at = this.room(1); this.buf.writeInt8(v, at); }
  u16(v: number): void { const at = this.room(2); this.buf.writeUInt16LE(v, at); }
  i16(v: number): void { const at = this.room(2); this.buf.writeInt16LE(v, at); }
  u32(v: number): void { const at = this.room(4); this.buf.writeUInt32LE(v, at); }
  i32(v: number): void { const at = this.room(4); this.buf.writeInt32LE(v, at); }
  f32(v: number): void { const at = this.room(4); this.buf.writeFloatLE(v, at); }
  f64(v: number): void { const at = this.room(8); this.buf.writeDoubleLE(v, at); }
  u64(v: number | bigint): void { const at = this.room(8); this.buf.writeBigUInt64LE(BigInt(v), at); }
  i64(v: number | bigint): void { const at = this.room(8); this.buf.writeBigInt64LE(BigInt(v), at); }

  string(s: string): void {
    const n = Buffer.byteLength(s);
    this.u64(n);
    const at = this.room(n); // room() may replace this.buf, so it runs before this.buf is read
    this.buf.write(s, at, 'utf8');
  }

  /** Zero bytes up to the next multiple of `alignment`. */
  pad(alignment: number): void {
    const padded = Math.ceil(this.length / alignment) * alignment;
    this.room(padded - this.length); // new space is already zero: Buffer.alloc zero-fills
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function checkNumeric(v: unknown, type: GgufType, key: string): void {
  if (typeof v === 'number') return;
  if (typeof v === 'bigint' && (type === GgufType.UINT64 || type === GgufType.INT64)) return;
  throw new TypeError(expected(`${GGUF_TYPE_NAMES[type]} value`, `metadata key '${key}'`, v));
}

function writeScalar(enc: HeaderEncoder, type: GgufType, v: unknown, key: string): void {
  if (type === GgufType.BOOL) {
    if (typeof v !== 'boolean') throw new TypeError(expected('boolean', `metadata key '${key}'`, v));
    enc.u8(v ? 1 : 0);
    return;
  }
  if (type === GgufType.STRING) {
    if (typeof v !== 'string') throw new TypeError(expected('string', `metadata key '${key}'`, v));
    enc.string(v);
    return;
  }
  checkNumeric(v, type, key);
  const n = v as number;
  switch (type) {
    case GgufType.UINT8: enc.u8(n); break;
    case GgufType.INT8: enc.i8(n); break;
    case GgufType.UINT16: enc.u16(n); break;
    case GgufType.INT16: enc.i16(n); break;
    case GgufType.UINT32: enc.u32(n); break;
    case GgufType.INT32: enc.i32(n); break;
    case GgufType.FLOAT32: enc.f32(n); break;
    case GgufType.FLOAT64: enc.f64(n); break;
    case GgufType.UINT64: enc.u64(v as number | bigint); break;
    case GgufType.INT64: enc.i64(v as number | bigint); break;
    default: throw new TypeError(expected('GGUF value type 0..12', `type of metadata key '${key}'`, type));
  }
}

/** Appends one metadata value of the given type (arrays recursively). */
export function encodeValue(enc: HeaderEncoder, type: GgufType, value: GgufValue, key: string): void {
  if (type !== GgufType.ARRAY) {
    writeScalar(enc, type, value, key);
    return;
  }
  const arr = value as GgufArray;
  if (typeof arr !== 'object' || arr === null || !('itemType' in arr) || !('values' in arr)) {
    throw new TypeError(expected('{ itemType, values } array', `metadata key '${key}'`, value));
  }
  if (!(arr.itemType in GGUF_TYPE_NAMES)) throw new TypeError(expected('GGUF value type 0..12', `itemType of metadata key '${key}'`, arr.itemType));
  enc.u32(arr.itemType);
  enc.u64(arr.values.length);
  for (let i = 0; i < arr.values.length; i++) encodeValue(enc, arr.itemType, arr.values[i] as GgufValue, key);
}

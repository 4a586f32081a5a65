import type { VectorInput } from './types.js';

function shape(value: unknown): string {
  if (value instanceof Float32Array || value instanceof Float64Array) return `${value.constructor.name}(${value.length})`;
  if (Array.isArray(value)) return `array(${value.length})`;
  return `${value === null ? 'null' : typeof value}`;
}

/**
 * Checks that `value` is a finite, non-zero vector of length `dim` and returns it scaled to unit
 * length as a new Float32Array. The norm is taken in double precision so that rounding to F32
 * happens once, at the end.
 *
 * @example const unit = normalize([3, 4], 2); // Float32Array [0.6, 0.8]
 */
export function normalize(value: VectorInput, dim: number, name = 'vector'): Float32Array {
  const ok = value instanceof Float32Array || value instanceof Float64Array || Array.isArray(value);
  if (!ok) throw new TypeError(`Expected Float32Array, Float64Array or number[] for ${name} but received ${shape(value)}`);
  if (value.length !== dim) {
    throw new RangeError(`Expected vector of length ${dim} for ${name} but received ${shape(value)}`);
  }
  let sq = 0;
  for (let i = 0; i < dim; i++) {
    const x = value[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new TypeError(`Expected finite numbers in ${name} but received ${String(x)} at index ${i}`);
    }
    sq += x * x;
  }
  // A zero vector has no direction, so cosine similarity to it is undefined.
  if (sq === 0) throw new RangeError(`Expected non-zero vector for ${name} but received all zeros`);
  const inv = 1 / Math.sqrt(sq);
  const out = new Float32Array(dim);
  for (let i = 0; i < dim; i++) out[i] = value[i]! * inv;
  return out;
}

/**
 * Dot product of row `row` of a row-major slab with `query`, summed left to right in double
 * precision. Every score the store reports comes from this one loop, so the native and the
 * TypeScript search paths report bit-identical scores.
 */
export function dotRow(slab: Float32Array, row: number, dim: number, query: Float32Array, queryOffset = 0): number {
  const base = row * dim;
  let s = 0;
  for (let i = 0; i < dim; i++) s += slab[base + i]! * query[queryOffset + i]!;
  return s;
}

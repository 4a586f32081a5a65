import { GgufType } from './constants.js';
import type { GgufArray, GgufKv } from './reader.js';

/**
 * Typed getters over GGUF metadata. They return `undefined` when a key is absent or has another
 * type, so callers decide whether that is an error (validation) or a default (summaries).
 */

type Metadata = ReadonlyMap<string, GgufKv>;

const NUMERIC: ReadonlySet<number> = new Set([
  GgufType.UINT8, GgufType.INT8, GgufType.UINT16, GgufType.INT16, GgufType.UINT32, GgufType.INT32,
  GgufType.FLOAT32, GgufType.FLOAT64, GgufType.UINT64, GgufType.INT64,
]);

/**
 * A numeric value as a JS number (64-bit integers converted).
 * @example metaNumber(gguf.metadata, 'qwen2.block_count') // 24
 */
export function metaNumber(metadata: Metadata, key: string): number | undefined {
  const kv = metadata.get(key);
  if (kv === undefined || !NUMERIC.has(kv.type)) return undefined;
  return Number(kv.value);
}

/** @example metaString(gguf.metadata, 'general.architecture') // 'qwen2' */
export function metaString(metadata: Metadata, key: string): string | undefined {
  const kv = metadata.get(key);
  return kv?.type === GgufType.STRING ? (kv.value as string) : undefined;
}

/** @example metaArray(gguf.metadata, 'tokenizer.ggml.tokens')?.values.length // 151936 */
export function metaArray(metadata: Metadata, key: string): GgufArray | undefined {
  const kv = metadata.get(key);
  return kv?.type === GgufType.ARRAY ? (kv.value as GgufArray) : undefined;
}

/** The string elements of an array key, or undefined when it is missing or not an array of strings. */
export function metaStrings(metadata: Metadata, key: string): string[] | undefined {
  const arr = metaArray(metadata, key);
  return arr?.itemType === GgufType.STRING ? (arr.values as string[]) : undefined;
}

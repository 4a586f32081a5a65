// Argument checks every retriever runs first, so all of them reject misuse with the same words.
import { SearchR3Error } from '../util/errors';
import { assertInteger, assertOneOf, assertString, checkKeys, expected } from '../util/validate';
import type { RetrieveOptions } from './types';

/** Most documents one query may ask for: far beyond any ranking use, short of a corpus dump. */
export const MAX_TOPK = 10_000;

/** A lookup of a document's stored text by id: a Map, or a function (e.g. over an index's texts). */
export type DocumentContents = ReadonlyMap<string, string> | ((id: string) => string | undefined);

/**
 * Validates `retrieve(queries, options)`: queries an array of strings, `topk` a positive integer
 * up to {@link MAX_TOPK}, `mode` direct|reason, and an already-aborted signal is ERR_ABORTED.
 */
export function checkRetrieve(queries: readonly string[], options: RetrieveOptions): void {
  if (!Array.isArray(queries)) throw new TypeError(expected('array of strings', 'queries', queries));
  queries.forEach((q, i) => assertString(q, `queries[${i}]`));
  if (options === undefined || options === null) throw new TypeError(expected('object with topk', 'options', options));
  checkKeys(options, ['topk', 'mode', 'signal', 'onProgress'], 'options');
  assertInteger(options.topk, 'topk', 1, MAX_TOPK);
  if (options.mode !== undefined) assertOneOf(options.mode, 'mode', ['direct', 'reason'] as const);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new TypeError(expected('function', 'onProgress', options.onProgress));
  throwIfAborted(options.signal);
}

/** ERR_ABORTED when `signal` has fired (checked before and between a retriever's steps). */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new SearchR3Error('ERR_ABORTED', 'the retrieval was aborted');
}

/** Turns a {@link DocumentContents} into a function that throws ERR_STORE for an id it lacks. */
export function contentsLookup(contents: DocumentContents, owner: string): (id: string) => string {
  if (!(contents instanceof Map) && typeof contents !== 'function') throw new TypeError(expected('Map or function', 'contents', contents));
  const get = contents instanceof Map ? (id: string) => contents.get(id) : (contents as (id: string) => string | undefined);
  return (id) => {
    const text = get(id);
    if (typeof text !== 'string') throw new SearchR3Error('ERR_STORE', `${owner}: document "${id}" is indexed but has no stored text`);
    return text;
  };
}

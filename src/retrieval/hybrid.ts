import { assertInteger, assertNumber, checkKeys, expected } from '../util/validate';
import { checkRetrieve, MAX_TOPK } from './check';
import type { RetrievedDoc, RetrieveOptions, RetrieveResult, TextRetriever } from './types';

/** RRF's k: Cormack, Clarke & Büttcher (SIGIR 2009) found 60 near-best across TREC runs; the usual default since. */
export const RRF_K = 60;
/** Documents taken from each ranking before fusing: deep enough that a document ranked low by one retriever can still rise. */
export const HYBRID_DEPTH = 100;

/**
 * Reciprocal rank fusion of a BM25 and a dense ranking of one query:
 * score(d) = Σ over the rankings that hold d of 1 / (k + rank(d)), ranks counted from 1.
 * Each fused document carries the scores it had in each ranking (absent where it was not ranked).
 * Ties are broken by id, ascending. Returns the top `topk`.
 *
 * @example
 * fuseRankings([{ id: 'a', … }], [{ id: 'b', … }, { id: 'a', … }], 2)
 * // a: 1/61 + 1/62, b: 1/61 → [a, b]
 */
export function fuseRankings(bm25: readonly RetrievedDoc[], dense: readonly RetrievedDoc[], topk: number, k = RRF_K): RetrievedDoc[] {
  const fused = new Map<string, RetrievedDoc & { scores: { bm25?: number; dense?: number } }>();
  const add = (docs: readonly RetrievedDoc[], key: 'bm25' | 'dense'): void => {
    docs.forEach((d, i) => {
      let f = fused.get(d.id);
      if (!f) fused.set(d.id, (f = { id: d.id, contents: d.contents, score: 0, scores: {} }));
      f.score += 1 / (k + i + 1);
      f.scores[key] = d.score;
    });
  };
  add(bm25, 'bm25');
  add(dense, 'dense');
  return [...fused.values()].sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, topk);
}

/** Options of {@link HybridRetriever}. */
export interface HybridRetrieverOptions {
  /** The lexical ranking (its scores land in `scores.bm25`). */
  bm25: TextRetriever;
  /** The dense ranking (its scores land in `scores.dense`; its reasoning is passed on). */
  dense: TextRetriever;
  /** RRF's k. Default {@link RRF_K} (60). */
  k?: number;
  /** Documents fetched from each retriever per query, at least `topk`. Default {@link HYBRID_DEPTH} (100). */
  depth?: number;
}

/**
 * BM25 and dense retrieval fused by reciprocal rank ({@link fuseRankings}): the score is the RRF
 * sum, and `scores` holds each retriever's own score. Both retrievers run on the same batch at once.
 *
 * @example
 * const hybrid = new HybridRetriever({ bm25, dense });
 * const [r] = await hybrid.retrieve(['tides moon'], { topk: 10 });
 * r.docs[0].scores; // { bm25: 7.1, dense: 0.83 }
 */
export class HybridRetriever implements TextRetriever {
  readonly name = 'hybrid';
  readonly k: number;
  readonly depth: number;
  readonly #bm25: TextRetriever;
  readonly #dense: TextRetriever;

  constructor(options: HybridRetrieverOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError(expected('object', 'options', options));
    checkKeys(options, ['bm25', 'dense', 'k', 'depth'], 'options');
    for (const key of ['bm25', 'dense'] as const) {
      if (typeof options[key]?.retrieve !== 'function') throw new TypeError(expected('TextRetriever', key, options[key]));
    }
    this.k = options.k ?? RRF_K;
    assertNumber(this.k, 'k', 0);
    this.depth = options.depth ?? HYBRID_DEPTH;
    assertInteger(this.depth, 'depth', 1, MAX_TOPK);
    this.#bm25 = options.bm25;
    this.#dense = options.dense;
  }

  async retrieve(queries: readonly string[], options: RetrieveOptions): Promise<RetrieveResult[]> {
    checkRetrieve(queries, options);
    if (queries.length === 0) return [];
    const depth = Math.max(this.depth, options.topk);
    const [lexical, dense] = await Promise.all([
      this.#bm25.retrieve(queries, { topk: depth, signal: options.signal }),
      this.#dense.retrieve(queries, { topk: depth, mode: options.mode, signal: options.signal, onProgress: options.onProgress }),
    ]);
    return queries.map((_, i) => {
      const { docs: _docs, ...rest } = dense[i]!;
      return { ...rest, docs: fuseRankings(lexical[i]!.docs, dense[i]!.docs, options.topk, this.k) };
    });
  }
}

import type { Bm25Index } from '../store/bm25';
import { expected } from '../util/validate';
import { checkRetrieve, contentsLookup, type DocumentContents } from './check';
import type { RetrieveOptions, RetrieveResult, TextRetriever } from './types';

/** Options of {@link Bm25Retriever}. */
export interface Bm25RetrieverOptions {
  /** The lexical index searched. */
  index: Bm25Index;
  /** Each indexed document's text, returned as `contents`. */
  contents: DocumentContents;
}

/**
 * BM25 over a {@link Bm25Index}: every query scored on the calling thread (a BM25 search is
 * postings arithmetic, well under a millisecond per query on a laptop-sized corpus). Scores are
 * BM25 sums; only documents sharing a term with the query are returned, so a list can be shorter
 * than `topk`.
 *
 * @example
 * const bm25 = new Bm25Retriever({ index, contents: texts });
 * const [r] = await bm25.retrieve(['tides moon'], { topk: 5 });
 */
export class Bm25Retriever implements TextRetriever {
  readonly name = 'bm25';
  readonly index: Bm25Index;
  readonly #contents: (id: string) => string;

  constructor(options: Bm25RetrieverOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError(expected('object', 'options', options));
    if (typeof options.index?.search !== 'function') throw new TypeError(expected('Bm25Index', 'index', options.index));
    this.index = options.index;
    this.#contents = contentsLookup(options.contents, 'bm25 retriever');
  }

  async retrieve(queries: readonly string[], options: RetrieveOptions): Promise<RetrieveResult[]> {
    checkRetrieve(queries, options);
    const results = queries.map((q) => ({
      docs: this.index.search(q, options.topk).map((h) => ({ id: h.id, contents: this.#contents(h.id), score: h.score })),
    }));
    options.onProgress?.(queries.length, queries.length);
    return results;
  }
}

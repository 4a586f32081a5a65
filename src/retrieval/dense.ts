import type { EmbedMode, Embedder } from '../engine/embedder';
import type { SearchHit, VectorIndex, VectorInput } from '../store/types';
import { assertInteger, assertOneOf, checkKeys, expected } from '../util/validate';
import { checkRetrieve, contentsLookup, throwIfAborted, type DocumentContents } from './check';
import { fitText } from './encode';
import type { RetrieveOptions, RetrieveResult, TextRetriever } from './types';

/** Options of {@link DenseRetriever}. */
export interface DenseRetrieverOptions {
  /** Embeds the queries; the store's vectors must come from the same model, adapter and template. */
  embedder: Embedder;
  /** The document vectors (exact {@link VectorStore} or approximate {@link HnswStore}). */
  store: VectorIndex;
  /** Each stored document's text, returned as `contents`. */
  contents: DocumentContents;
  /** How queries are embedded unless a call says otherwise. Default `direct`. */
  mode?: EmbedMode;
  /**
   * Body tokens a query keeps per mode before it is cut (a reason-mode query must leave room in
   * its sequence for the reasoning). Default: the embedder's own cut (the whole sequence).
   */
  queryTokens?: Partial<Record<EmbedMode, number>>;
}

type BatchSearch = { searchBatch(queries: readonly VectorInput[], k: number): Promise<SearchHit[][]> };

/**
 * Dense retrieval: the queries embedded by an {@link Embedder} as parallel sequences in one call
 * (`direct`: the prompt ends in `<|embed_token|>`; `reason`: the model writes an analysis first,
 * returned as `reasoning`), then top-k by cosine over the store. Documents are always embedded
 * directly, as in Search-R3; only the query side reasons.
 *
 * @example
 * const dense = new DenseRetriever({ embedder, store, contents: texts, mode: 'reason' });
 * const [r] = await dense.retrieve(['why is the sky blue'], { topk: 10 });
 * console.log(r.reasoning, r.docs[0].id);
 */
export class DenseRetriever implements TextRetriever {
  readonly name = 'dense';
  readonly embedder: Embedder;
  readonly store: VectorIndex;
  readonly mode: EmbedMode;
  readonly #contents: (id: string) => string;
  readonly #queryTokens: Partial<Record<EmbedMode, number>>;
  // A plain embedder runs one call at a time (a second is ERR_BUSY), so concurrent retrieve calls
  // queue here; an EmbedQueue's view takes them all and merges their queries into shared batches.
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: DenseRetrieverOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError(expected('object', 'options', options));
    checkKeys(options, ['embedder', 'store', 'contents', 'mode', 'queryTokens'], 'options');
    if (typeof options.embedder?.embed !== 'function') throw new TypeError(expected('Embedder', 'embedder', options.embedder));
    if (typeof options.store?.search !== 'function') throw new TypeError(expected('VectorStore or HnswStore', 'store', options.store));
    this.mode = options.mode ?? 'direct';
    assertOneOf(this.mode, 'mode', ['direct', 'reason'] as const);
    checkKeys(options.queryTokens, ['direct', 'reason'], 'queryTokens');
    for (const [k, v] of Object.entries(options.queryTokens ?? {})) assertInteger(v, `queryTokens.${k}`, 1);
    this.embedder = options.embedder;
    this.store = options.store;
    this.#contents = contentsLookup(options.contents, 'dense retriever');
    this.#queryTokens = { ...options.queryTokens };
  }

  /**
   * Embeds the queries and searches the store. Concurrent calls run one after another, in call
   * order — unless the embedder accepts concurrent calls (an {@link EmbedQueue.asEmbedder} view),
   * when their queries share the embedder's batches.
   */
  async retrieve(queries: readonly string[], options: RetrieveOptions): Promise<RetrieveResult[]> {
    checkRetrieve(queries, options);
    if (queries.length === 0) return [];
    if (this.embedder.acceptsConcurrentCalls) return this.#retrieve(queries, options);
    const run = this.#queue.then(() => this.#retrieve(queries, options));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #retrieve(queries: readonly string[], options: RetrieveOptions): Promise<RetrieveResult[]> {
    throwIfAborted(options.signal);
    const mode = options.mode ?? this.mode;
    const cap = this.#queryTokens[mode];
    const texts = queries.map((q) => (cap === undefined ? q : fitText(this.embedder.model, q, cap).text));
    const embedded = await this.embedder.embed(texts, { mode, signal: options.signal, onProgress: options.onProgress });
    throwIfAborted(options.signal);
    const hits = await this.#search(embedded.map((r) => r.vector), options.topk);
    return embedded.map((r, i) => ({
      docs: hits[i]!.map((h) => ({ id: h.id, contents: this.#contents(h.id), score: h.score })),
      ...(mode === 'reason' ? { reasoning: r.reasoning } : {}),
      reasoningTokens: r.reasoningTokens,
      finish: r.finish,
    }));
  }

  // One pass over the rows for all queries when the store can (the exact store), else one search each.
  async #search(vectors: Float32Array[], k: number): Promise<SearchHit[][]> {
    const batch = (this.store as Partial<BatchSearch>).searchBatch;
    if (typeof batch === 'function') return batch.call(this.store, vectors, k);
    return Promise.all(vectors.map((v) => this.store.search(v, k)));
  }
}

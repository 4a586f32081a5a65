import { VectorStore } from '../store/vector-store';
import { SearchR3Error } from '../util/errors';
import { assertInteger, assertString, checkKeys, expected } from '../util/validate';

/**
 * The Search-R3 RL environment: the corpus embeddings GRPO ranks against, kept in a versioned
 * {@link VectorStore} whose rows record the adapter step that encoded them. Only the rows a step's
 * rewards look at ({@link CorpusEnvironment.refreshStale}) and what the refresh policy adds
 * ({@link CorpusEnvironment.refresh}) are re-encoded with the current adapter, so the store drifts
 * toward the current model without a full re-encode every step.
 */

/** One corpus document. */
export interface CorpusDoc {
  id: string;
  text: string;
}

/** Encodes document texts with the *current* adapter; returns unit vectors, one per text, in order. */
export type EncodeDocuments = (texts: string[], signal?: AbortSignal) => Promise<Float32Array[]>;

/**
 * What a refresh re-encodes besides the step's touched documents:
 * - `touched`: nothing more;
 * - `budget`: also the stalest `fraction` of the corpus (ceil(fraction · size) rows, oldest version
 *   first, ties by id);
 * - `full`: the whole corpus, every step (the slow baseline).
 */
export type RefreshPolicy = { kind: 'touched' } | { kind: 'budget'; fraction: number } | { kind: 'full' };

/** What one refresh did, and the store's staleness after it. */
export interface RefreshStats {
  /** Rows re-encoded. */
  reencoded: number;
  /** reencoded / corpus size. */
  share: number;
  /** Largest age (step − row version) after the refresh, in steps. */
  staleMax: number;
  /** Mean age after the refresh, in steps. */
  staleMean: number;
  /** Wall time of the refresh (encoding and writing), in seconds. */
  seconds: number;
}

/** Options of {@link CorpusEnvironment.create} and {@link CorpusEnvironment.load}. */
export interface CorpusEnvironmentOptions {
  /** The corpus: non-empty, ids distinct and non-empty. */
  docs: readonly CorpusDoc[];
  /** Embedding dimension (the model's hidden size). */
  dim: number;
  /** Encodes documents with the current adapter. */
  encode: EncodeDocuments;
  policy: RefreshPolicy;
  /** Re-encode everything when step % fullRefreshEvery === 0; 0 = never (default 0). */
  fullRefreshEvery?: number;
  /** Called after each encoded chunk while `create` encodes the corpus. */
  onProgress?: (done: number, total: number) => void;
  /** Threads a store search uses; 0 = all hardware threads (default 0, as {@link VectorStore}). */
  threads?: number;
}

const OPTION_KEYS = ['docs', 'dim', 'encode', 'policy', 'fullRefreshEvery', 'onProgress', 'threads'] as const;
// Texts per encode call: large enough to keep an Embedder's sequences busy, small enough that
// progress moves and an abort lands between chunks.
const ENCODE_CHUNK = 256;
const REFRESH_SPEC = 'touched, budget=F (0 < F ≤ 1) or full';

/**
 * Parses a refresh policy as the CLI's `--refresh` gives it.
 * @example parseRefresh('budget=0.02') // { kind: 'budget', fraction: 0.02 }
 */
export function parseRefresh(spec: string): RefreshPolicy {
  if (typeof spec !== 'string') throw new TypeError(expected(REFRESH_SPEC, 'refresh', spec));
  if (spec === 'touched' || spec === 'full') return { kind: spec };
  const m = /^budget=(.+)$/.exec(spec);
  const fraction = m ? Number(m[1]) : NaN;
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(expected(REFRESH_SPEC, 'refresh', spec));
  return { kind: 'budget', fraction };
}

function checkPolicy(policy: RefreshPolicy): void {
  const kind = (policy as { kind?: unknown } | undefined)?.kind;
  if (kind === 'touched' || kind === 'full') return checkKeys(policy, ['kind'], 'policy');
  if (kind !== 'budget') throw new TypeError(expected('refresh policy { kind: "touched" | "budget" | "full" }', 'policy', policy));
  checkKeys(policy, ['kind', 'fraction'], 'policy');
  const f = (policy as { fraction: unknown }).fraction;
  if (typeof f !== 'number' || !(f > 0 && f <= 1)) throw new RangeError(expected('number in (0, 1]', 'policy.fraction', f));
}

/** Validates options and the corpus; returns doc id → corpus index. */
function checkOptions(o: CorpusEnvironmentOptions): Map<string, number> {
  if (typeof o !== 'object' || o === null) throw new TypeError(expected('options object', 'options', o));
  checkKeys(o, OPTION_KEYS, 'options');
  if (!Array.isArray(o.docs)) throw new TypeError(expected('array of { id, text }', 'docs', o.docs));
  if (o.docs.length === 0) throw new SearchR3Error('ERR_FORMAT', 'The corpus is empty: stage 2 needs at least one document to rank');
  assertInteger(o.dim, 'dim', 1, 1 << 24);
  if (typeof o.encode !== 'function') throw new TypeError(expected('function (texts, signal) => Promise<Float32Array[]>', 'encode', o.encode));
  checkPolicy(o.policy);
  if (o.fullRefreshEvery !== undefined) assertInteger(o.fullRefreshEvery, 'fullRefreshEvery', 0);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError(expected('function', 'onProgress', o.onProgress));
  const index = new Map<string, number>();
  o.docs.forEach((d, i) => {
    assertString(d?.id, `docs[${i}].id`, { nonEmpty: true });
    assertString(d.text, `docs[${i}].text`);
    if (index.has(d.id)) throw new SearchR3Error('ERR_FORMAT', `The corpus has document id ${JSON.stringify(d.id)} twice (docs[${index.get(d.id)}] and docs[${i}]); ids must be distinct`);
    index.set(d.id, i);
  });
  return index;
}

function checkAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new SearchR3Error('ERR_ABORTED', `${what} was aborted`);
}

/**
 * The corpus side of stage 2. Rows are encoded at version 0 by `create`; `refreshStale(step, ids)`
 * re-encodes the named rows older than `step` (stage 2: what a step's rewards look at, before the
 * rewards); `refresh(step, touched)` re-encodes `touched` plus what the policy adds, writing version
 * `step`; `search` ranks against the store as it stands (the rewards' oracle).
 *
 * @example
 * const env = await CorpusEnvironment.create({ docs, dim: 64, encode, policy: parseRefresh('budget=0.02') });
 * const [top] = await env.search([queryVector], 10);
 * const stats = await env.refresh(1, [...positives, ...top]); // { reencoded, share, staleMax, … }
 */
export class CorpusEnvironment {
  readonly #docs: readonly CorpusDoc[];
  readonly #index: Map<string, number>;
  readonly #store: VectorStore;
  readonly #encode: EncodeDocuments;
  readonly #policy: RefreshPolicy;
  readonly #fullEvery: number;
  readonly #threads: number | undefined;
  #step: number;

  private constructor(o: CorpusEnvironmentOptions, index: Map<string, number>, store: VectorStore) {
    this.#docs = o.docs.map((d) => ({ id: d.id, text: d.text }));
    this.#index = index;
    this.#store = store;
    this.#encode = o.encode;
    this.#policy = { ...o.policy };
    this.#fullEvery = o.fullRefreshEvery ?? 0;
    this.#threads = o.threads;
    let newest = 0;
    for (const b of store.stalenessHistogram(0)) newest = Math.max(newest, b.version);
    this.#step = newest;
  }

  /** Encodes every document at version 0 (reporting progress) and returns the environment. */
  static async create(o: CorpusEnvironmentOptions): Promise<CorpusEnvironment> {
    const index = checkOptions(o);
    const store = new VectorStore({ dim: o.dim, capacity: o.docs.length, threads: o.threads });
    const vectors = await encodeAll(o.encode, o.dim, o.docs.map((d) => d.text), undefined, o.onProgress);
    o.docs.forEach((d, i) => store.add(d.id, vectors[i]!, 0));
    return new CorpusEnvironment(o, index, store);
  }

  /** Documents in the corpus. */
  get size(): number {
    return this.#docs.length;
  }

  /** The newest step the store has been refreshed at (0 after `create`). */
  get step(): number {
    return this.#step;
  }

  has(id: string): boolean {
    return this.#index.has(id);
  }

  /** The document's text; a RangeError for an id not in the corpus. */
  text(id: string): string {
    return this.#docs[this.#indexOf(id, 'id')]!.text;
  }

  /** A copy of the document's stored unit vector and the step that encoded it. */
  row(id: string): { vector: Float32Array; version: number } {
    this.#indexOf(id, 'id');
    const r = this.#store.get(id)!;
    return { vector: r.vector, version: r.version };
  }

  /** Top-k doc ids (best first, ties by id) for each query vector, from the store as it stands. */
  async search(queries: readonly Float32Array[], k: number): Promise<string[][]> {
    return (await this.#store.searchBatch(queries, k)).map((hits) => hits.map((h) => h.id));
  }

  /**
   * After the update of `step` (adapter version = step): re-encodes `touched` ∪ (budget: the
   * stalest fraction of the rest) — or everything under `full` or when step % fullRefreshEvery === 0
   * — writing version `step`. Rows already at version `step` are current and are not re-encoded.
   * The store changes only once every vector is encoded, so an abort or an encoder failure leaves it
   * as it was. `step` may not go back (it must be ≥ {@link CorpusEnvironment.step}).
   */
  async refresh(step: number, touched: Iterable<string>, signal?: AbortSignal): Promise<RefreshStats> {
    assertInteger(step, 'step', this.#step);
    const ids = checkIds(touched, 'touched');
    return this.#encodeRows(step, this.#select(step, ids), signal);
  }

  /**
   * Re-encodes exactly the named rows whose version is older than `step` with the current encoder
   * (adapter version = `step`), writing version `step`; the refresh policy adds nothing. Stage 2
   * calls it between a step's first search and its rewards, so every document the rewards look at
   * (the positives, hard negatives and retrieved top-k) is encoded by the adapter that sampled the
   * rollouts. Same atomicity and `step` rule as {@link CorpusEnvironment.refresh}.
   */
  async refreshStale(step: number, ids: Iterable<string>, signal?: AbortSignal): Promise<RefreshStats> {
    assertInteger(step, 'step', this.#step);
    const chosen = new Set<number>();
    for (const id of checkIds(ids, 'ids')) chosen.add(this.#indexOf(id, 'ids'));
    return this.#encodeRows(step, this.#currentOnly(step, chosen), signal);
  }

  /** Encodes the rows `picked` (corpus indices) and writes them at version `step`, all or nothing. */
  async #encodeRows(step: number, picked: number[], signal?: AbortSignal): Promise<RefreshStats> {
    const started = performance.now();
    checkAborted(signal, 'the corpus refresh');
    const vectors = await encodeAll(this.#encode, this.#store.dim, picked.map((i) => this.#docs[i]!.text), signal);
    picked.forEach((i, n) => this.#store.update(this.#docs[i]!.id, vectors[n]!, step));
    this.#step = step;
    const { max, mean } = this.staleness(step);
    return { reencoded: picked.length, share: picked.length / this.size, staleMax: max, staleMean: mean, seconds: (performance.now() - started) / 1000 };
  }

  /** The chosen rows older than `step`, in corpus order (so encoder batches are reproducible). */
  #currentOnly(step: number, chosen: Set<number>): number[] {
    return [...chosen].filter((i) => this.#store.versionOf(this.#docs[i]!.id)! < step).sort((a, b) => a - b);
  }

  /** Corpus indices to re-encode at `step`, in corpus order (so encoder batches are reproducible). */
  #select(step: number, touched: readonly string[]): number[] {
    const full = this.#policy.kind === 'full' || (this.#fullEvery > 0 && step % this.#fullEvery === 0);
    const chosen = new Set<number>();
    if (full) {
      for (let i = 0; i < this.size; i++) chosen.add(i);
    } else {
      for (const id of touched) chosen.add(this.#indexOf(id, 'touched'));
      if (this.#policy.kind === 'budget') {
        let budget = Math.ceil(this.#policy.fraction * this.size);
        // staleIds is oldest version first, ties by id: deterministic, so a resumed run picks the same rows.
        for (const id of this.#store.staleIds(step)) {
          if (budget === 0) break;
          const i = this.#index.get(id)!;
          if (chosen.has(i)) continue;
          chosen.add(i);
          budget--;
        }
      }
    }
    return this.#currentOnly(step, chosen);
  }

  /** Age of the rows (step − version) at `step`: the largest and the mean, in steps. */
  staleness(step: number): { max: number; mean: number } {
    assertInteger(step, 'step', 0);
    let max = 0;
    let sum = 0;
    for (const b of this.#store.stalenessHistogram(step)) {
      max = Math.max(max, b.age);
      sum += b.age * b.count;
    }
    return { max, mean: sum / this.size };
  }

  /**
   * Encodes the whole corpus with the current encoder into a scratch store (the environment's own
   * store is untouched) and searches it: the reference that `rewardAgreement` compares against.
   */
  async searchFresh(queries: readonly Float32Array[], k: number, signal?: AbortSignal): Promise<string[][]> {
    checkAborted(signal, 'the full re-encode');
    const scratch = new VectorStore({ dim: this.#store.dim, capacity: this.size, threads: this.#threads });
    const vectors = await encodeAll(this.#encode, this.#store.dim, this.#docs.map((d) => d.text), signal);
    this.#docs.forEach((d, i) => scratch.add(d.id, vectors[i]!, this.#step));
    return (await scratch.searchBatch(queries, k)).map((hits) => hits.map((h) => h.id));
  }

  /** Checkpoints the rows, vectors and versions to `dir`, atomically (a crash keeps the previous save). */
  async save(dir: string): Promise<void> {
    await this.#store.save(dir);
  }

  /**
   * Reopens a checkpoint written by {@link CorpusEnvironment.save} for the corpus `o.docs` (texts come
   * from `o`, vectors and versions from `dir`); a directory whose ids or dimension differ from
   * `o` is refused with ERR_FORMAT, a corrupt one with ERR_STORE.
   */
  static async load(dir: string, o: CorpusEnvironmentOptions): Promise<CorpusEnvironment> {
    assertString(dir, 'dir', { nonEmpty: true });
    const index = checkOptions(o);
    const store = await VectorStore.load(dir, { threads: o.threads });
    if (store.dim !== o.dim) throw new SearchR3Error('ERR_FORMAT', `Corpus checkpoint ${dir} holds vectors of dimension ${store.dim}, but dim is ${o.dim}`);
    const missing = o.docs.find((d) => !store.has(d.id));
    const extra = missing ? undefined : store.ids().find((id) => !index.has(id));
    if (missing || extra !== undefined || store.size !== o.docs.length) {
      const which = missing ? `lacks corpus document ${JSON.stringify(missing.id)}` : `holds document ${JSON.stringify(extra)} that the corpus does not`;
      throw new SearchR3Error('ERR_FORMAT', `Corpus checkpoint ${dir} is for another corpus: it ${which} (${store.size} rows, corpus has ${o.docs.length} documents)`);
    }
    return new CorpusEnvironment(o, index, store);
  }

  #indexOf(id: string, name: string): number {
    const i = this.#index.get(id);
    if (i === undefined) throw new RangeError(expected('a document id of the corpus', name, id));
    return i;
  }
}

/** The ids of an iterable, refusing a string (iterable too, but as characters: almost surely one id without brackets). */
function checkIds(ids: Iterable<string>, name: string): string[] {
  if (typeof ids === 'string' || typeof (ids as Iterable<string> | null)?.[Symbol.iterator] !== 'function') {
    throw new TypeError(expected('iterable of doc ids (an array or Set, not a string)', name, ids));
  }
  return [...ids];
}

/** Encodes `texts` in chunks, checking what the encoder returns. */
async function encodeAll(encode: EncodeDocuments, dim: number, texts: string[], signal?: AbortSignal, onProgress?: (done: number, total: number) => void): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let start = 0; start < texts.length; start += ENCODE_CHUNK) {
    checkAborted(signal, 'encoding the corpus');
    const chunk = texts.slice(start, start + ENCODE_CHUNK);
    const vectors = await encode(chunk, signal);
    if (!Array.isArray(vectors) || vectors.length !== chunk.length) {
      throw new TypeError(expected(`array of ${chunk.length} vectors (one per text)`, 'the result of encode', vectors));
    }
    vectors.forEach((v, i) => {
      if (!(v instanceof Float32Array) || v.length !== dim) throw new TypeError(expected(`Float32Array of length ${dim}`, `encode(texts)[${start + i}]`, v));
      out.push(v);
    });
    onProgress?.(out.length, texts.length);
  }
  // An abort during the last chunk still lands: the caller gets ERR_ABORTED and nothing is written.
  checkAborted(signal, 'encoding the corpus');
  return out;
}

import { SearchR3Error } from '../util/errors.js';
import { assertNumber, assertString, checkKeys, expected } from '../util/validate.js';
import { assertPositiveInteger } from './checks.js';
import { createEnglishAnalyzer, type Analyzer } from './analyzer.js';
import { loadStoreDirectory, saveDirectory, type LoadedDirectory } from './persistence.js';

/** Options of {@link Bm25Index}. */
export interface Bm25Options {
  /** Term-frequency saturation. Default 0.9 (Anserini's MS MARCO/BEIR setting). */
  k1?: number;
  /** Length normalisation, 0 = none, 1 = full. Default 0.4 (Anserini). */
  b?: number;
  /** Text → terms. Default {@link createEnglishAnalyzer}(). A custom one must be passed again to `load`. */
  analyzer?: Analyzer;
}

/** One BM25 result. */
export interface Bm25Hit {
  id: string;
  score: number;
}

interface Postings {
  docs: number[];
  tfs: number[];
}

interface IndexFile {
  ids: string[];
  lengths: number[];
  terms: [string, number[], number[]][];
}

const KIND = 'bm25-index';

/**
 * A BM25 inverted index with incremental adds, top-k search and atomic save/load.
 *
 * score(q, d) = Σ over query terms t (repeats count) of
 *   idf(t) · tf·(k1+1) / (tf + k1·(1 − b + b·|d|/avgdl)),  idf(t) = ln(1 + (N − df + 0.5)/(df + 0.5))
 * with Lucene's idf (never negative). Document lengths are exact term counts (Lucene rounds them
 * into one byte, so scores differ from Anserini's in late digits; rankings rarely do).
 *
 * @example
 * const bm25 = new Bm25Index();
 * bm25.add('d1', 'The quick brown fox');
 * bm25.add('d2', 'A lazy dog sleeps');
 * bm25.search('quick foxes', 10); // [{ id: 'd1', score: 0.58… }]
 */
export class Bm25Index {
  readonly k1: number;
  readonly b: number;
  #analyze: Analyzer;
  #custom: boolean;
  #ids: string[] = [];
  #docOf = new Map<string, number>();
  #lengths: number[] = [];
  #totalLength = 0;
  #postings = new Map<string, Postings>();

  constructor(options: Bm25Options = {}) {
    checkKeys(options, ['k1', 'b', 'analyzer'], 'options');
    this.k1 = options.k1 ?? 0.9;
    this.b = options.b ?? 0.4;
    assertNumber(this.k1, 'k1', 0);
    assertNumber(this.b, 'b', 0, 1);
    if (options.analyzer !== undefined && typeof options.analyzer !== 'function') throw new TypeError(expected('function', 'analyzer', options.analyzer));
    this.#custom = options.analyzer !== undefined;
    this.#analyze = options.analyzer ?? createEnglishAnalyzer();
  }

  /** Number of documents. */
  get size(): number {
    return this.#ids.length;
  }

  /** Distinct terms in the index. */
  get vocabularySize(): number {
    return this.#postings.size;
  }

  has(id: string): boolean {
    return this.#docOf.has(id);
  }

  /** Indexes one document; a RangeError when `id` is already indexed. */
  add(id: string, text: string): void {
    assertString(id, 'id', { nonEmpty: true });
    assertString(text, 'text');
    if (this.#docOf.has(id)) throw new RangeError(expected('an id not in the index', 'id', id));
    const terms = this.#analyze(text);
    const doc = this.#ids.length;
    this.#ids.push(id);
    this.#docOf.set(id, doc);
    this.#lengths.push(terms.length);
    this.#totalLength += terms.length;
    const tf = new Map<string, number>();
    for (const t of terms) tf.set(t, (tf.get(t) ?? 0) + 1);
    for (const [term, n] of tf) {
      let p = this.#postings.get(term);
      if (!p) this.#postings.set(term, (p = { docs: [], tfs: [] }));
      // Docs are numbered in insertion order, so postings stay sorted by appending.
      p.docs.push(doc);
      p.tfs.push(n);
    }
  }

  /** Lucene's idf of an (already analysed) term; 0 when no document has it. */
  idf(term: string): number {
    const df = this.#postings.get(term)?.docs.length ?? 0;
    if (df === 0) return 0;
    const n = this.size;
    return Math.log(1 + (n - df + 0.5) / (df + 0.5));
  }

  /**
   * Top-k documents for a free-text query, best first, ties by id; only documents sharing a
   * term with the query are returned.
   * @example bm25.search('what causes tides', 100)
   */
  search(query: string, k: number): Bm25Hit[] {
    assertString(query, 'query');
    assertPositiveInteger(k, 'k');
    const scores = new Map<number, number>();
    const avgdl = this.size === 0 ? 0 : this.#totalLength / this.size;
    for (const [term, qtf] of countTerms(this.#analyze(query))) {
      const p = this.#postings.get(term);
      if (!p) continue;
      const weight = qtf * this.idf(term) * (this.k1 + 1);
      for (let i = 0; i < p.docs.length; i++) {
        const doc = p.docs[i]!;
        const tf = p.tfs[i]!;
        const norm = this.k1 * (1 - this.b + (this.b * this.#lengths[doc]!) / avgdl);
        scores.set(doc, (scores.get(doc) ?? 0) + (weight * tf) / (tf + norm));
      }
    }
    const hits = [...scores].map(([doc, score]) => ({ id: this.#ids[doc]!, score }));
    hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return hits.slice(0, k);
  }

  /**
   * Saves atomically to `dir` (same scheme as the vector stores).
   * @example await bm25.save('./corpus.bm25'); const again = await Bm25Index.load('./corpus.bm25');
   */
  async save(dir: string): Promise<void> {
    assertString(dir, 'dir', { nonEmpty: true });
    const file: IndexFile = { ids: this.#ids, lengths: this.#lengths, terms: [...this.#postings].map(([t, p]) => [t, p.docs, p.tfs]) };
    await saveDirectory(dir, KIND, { k1: this.k1, b: this.b, size: this.size, analyzer: this.#custom ? 'custom' : 'english' },
      [{ name: 'index', chunks: [Buffer.from(JSON.stringify(file))] }]);
  }

  /** Loads an index saved by {@link Bm25Index.save}; pass the same custom analyzer if one was used. */
  static async load(dir: string, options: Pick<Bm25Options, 'analyzer'> = {}): Promise<Bm25Index> {
    assertString(dir, 'dir', { nonEmpty: true });
    checkKeys(options, ['analyzer'], 'options');
    return loadStoreDirectory(dir, KIND, (loaded) => Bm25Index.#fromDirectory(dir, loaded, options));
  }

  static #fromDirectory = async (dir: string, loaded: LoadedDirectory, options: Pick<Bm25Options, 'analyzer'>): Promise<Bm25Index> => {
    const meta = loaded.meta as { k1: number; b: number; size: number; analyzer: string };
    if (meta.analyzer === 'custom' && options.analyzer === undefined) {
      throw new TypeError(`The BM25 index at ${dir} was built with a custom analyzer; pass it as options.analyzer`);
    }
    const index = new Bm25Index({ k1: meta.k1, b: meta.b, ...options });
    const path = loaded.path('index');
    let file: IndexFile;
    try {
      file = JSON.parse((await loaded.read('index')).toString('utf8')) as IndexFile;
    } catch (err) {
      if (err instanceof SearchR3Error) throw err;
      throw new SearchR3Error('ERR_STORE', `Store file ${path} is not valid JSON`, { cause: err });
    }
    if (!Array.isArray(file.ids) || file.ids.length !== meta.size || file.lengths?.length !== meta.size || !Array.isArray(file.terms)) {
      throw new SearchR3Error('ERR_STORE', `Store file ${path} does not hold ${meta.size} documents`);
    }
    index.#ids = file.ids;
    file.ids.forEach((id, doc) => index.#docOf.set(id, doc));
    index.#lengths = file.lengths;
    index.#totalLength = file.lengths.reduce((a, b) => a + b, 0);
    for (const [term, docs, tfs] of file.terms) index.#postings.set(term, { docs, tfs });
    return index;
  };
}

function countTerms(terms: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const t of terms) counts.set(t, (counts.get(t) ?? 0) + 1);
  return counts;
}

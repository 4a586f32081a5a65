import { HierarchicalNSW } from 'hnswlib-node';
import { SearchR3Error } from '../util/errors.js';
import { assertInteger, assertString, checkKeys } from '../util/validate.js';
import { compareHits } from './exact-search.js';
import { loadStoreDirectory, saveDirectory, type LoadedDirectory } from './persistence.js';
import type { SearchHit, SearchOptions, StalenessBucket, StoredVector, VectorIndex, VectorInput } from './types.js';
import { normalize } from './vector-math.js';
import { assertPositiveInteger } from './checks.js';
import { restoreStore, saveWithSnapshot, VectorStore } from './vector-store.js';

/** Options of {@link HnswStore}; the graph parameters are hnswlib's, with its defaults. */
export interface HnswStoreOptions {
  /** Vector dimension (required). */
  dim: number;
  /** Elements the graph has room for before it is resized (doubling). Default 1024. */
  capacity?: number;
  /** Graph degree M: higher = better recall, more memory. Default 16. */
  m?: number;
  /** Candidate list size while building: higher = better graph, slower inserts. Default 200. */
  efConstruction?: number;
  /** Candidate list size while searching (raised to k when smaller): the recall/latency knob. Default 64. */
  efSearch?: number;
  /** Seed of the level generator, for reproducible graphs. Default 100. */
  seed?: number;
}

const OPTION_KEYS = ['dim', 'capacity', 'm', 'efConstruction', 'efSearch', 'seed'] as const;
const KIND = 'hnsw-vector-store';

interface LabelsFile {
  idOfLabel: (string | null)[];
  free: number[];
}

/**
 * Approximate nearest-neighbour search over the same records as {@link VectorStore}, using
 * hnswlib (hnswlib-node) on inner product of unit vectors. The records (vectors, versions, times)
 * are kept in an exact VectorStore beside the graph, so `get`, staleness queries and reported
 * scores are exact; only *which* neighbours are found is approximate. Deleted ids free their
 * graph label for reuse, so churn does not grow the graph. Searches run on the calling thread
 * (hnswlib answers in well under a millisecond); a version filter is applied inside the graph walk.
 *
 * @example
 * const ann = new HnswStore({ dim: 768, efSearch: 128 });
 * ann.upsert('doc1', vector, 0);
 * const hits = ann.searchSync(query, 10);
 */
export class HnswStore implements VectorIndex {
  readonly dim: number;
  #records: VectorStore;
  #graph: HierarchicalNSW;
  #labelOf = new Map<string, number>();
  #idOfLabel: (string | null)[] = [];
  #free: number[] = [];
  #efSearch: number;

  constructor(options: HnswStoreOptions) {
    checkKeys(options, OPTION_KEYS, 'options');
    const o = { capacity: 1024, m: 16, efConstruction: 200, efSearch: 64, seed: 100, ...options };
    assertPositiveInteger(o.dim, 'dim', 1 << 16);
    assertPositiveInteger(o.capacity, 'capacity', 2 ** 31 - 1);
    assertInteger(o.m, 'm', 2, 1024);
    assertInteger(o.efConstruction, 'efConstruction', 1, 1 << 20);
    assertInteger(o.efSearch, 'efSearch', 1, 1 << 20);
    assertInteger(o.seed, 'seed', 0, 2 ** 31 - 1);
    this.dim = o.dim;
    this.#efSearch = o.efSearch;
    this.#records = new VectorStore({ dim: o.dim, capacity: o.capacity, kernel: 'js' });
    this.#graph = new HierarchicalNSW('ip', o.dim);
    this.#graph.initIndex({ maxElements: o.capacity, m: o.m, efConstruction: o.efConstruction, randomSeed: o.seed });
  }

  get size(): number {
    return this.#records.size;
  }

  /** The recall/latency knob of searches; see {@link HnswStoreOptions.efSearch}. */
  get efSearch(): number {
    return this.#efSearch;
  }

  set efSearch(value: number) {
    assertInteger(value, 'efSearch', 1, 1 << 20);
    this.#efSearch = value;
  }

  has(id: string): boolean {
    return this.#records.has(id);
  }

  get(id: string): StoredVector | undefined {
    return this.#records.get(id);
  }

  add(id: string, vector: VectorInput, version: number): void {
    this.#records.add(id, vector, version);
    this.#place(id);
  }

  update(id: string, vector: VectorInput, version: number): void {
    this.#records.update(id, vector, version);
    this.#place(id);
  }

  upsert(id: string, vector: VectorInput, version: number): boolean {
    const added = this.#records.upsert(id, vector, version);
    this.#place(id);
    return added;
  }

  delete(id: string): boolean {
    if (!this.#records.delete(id)) return false;
    const label = this.#labelOf.get(id)!;
    this.#graph.markDelete(label);
    this.#labelOf.delete(id);
    this.#idOfLabel[label] = null;
    this.#free.push(label);
    return true;
  }

  async search(query: VectorInput, k: number, options?: SearchOptions): Promise<SearchHit[]> {
    return this.searchSync(query, k, options);
  }

  /**
   * Approximate top-k, best first by exact cosine, ties by id.
   * @example const hits = ann.searchSync(query, 10, { minVersion: 3 });
   */
  searchSync(query: VectorInput, k: number, options?: SearchOptions): SearchHit[] {
    assertPositiveInteger(k, 'k');
    checkKeys(options, ['minVersion', 'maxVersion'], 'options');
    const lo = options?.minVersion ?? 0;
    const hi = options?.maxVersion ?? Number.MAX_SAFE_INTEGER;
    if (options?.minVersion !== undefined) assertInteger(lo, 'minVersion', 0, Number.MAX_SAFE_INTEGER);
    if (options?.maxVersion !== undefined) assertInteger(hi, 'maxVersion', 0, Number.MAX_SAFE_INTEGER);
    const unit = normalize(query, this.dim, 'query');
    const n = Math.min(k, this.size);
    if (n === 0) return [];
    this.#graph.setEf(Math.max(this.#efSearch, n));
    const filtered = options?.minVersion !== undefined || options?.maxVersion !== undefined;
    const filter = filtered
      ? (label: number) => {
        const v = this.#records.versionOf(this.#idOfLabel[label] ?? '');
        return v !== undefined && v >= lo && v <= hi;
      }
      : undefined;
    const { neighbors } = this.#graph.searchKnn(Array.from(unit), n, filter);
    const hits = neighbors.map((label) => {
      const rec = this.#records.get(this.#idOfLabel[label]!)!;
      let score = 0;
      // Same left-to-right double sum as the exact store, so both backends report equal scores.
      for (let i = 0; i < this.dim; i++) score += rec.vector[i]! * unit[i]!;
      return { id: rec.id, score, version: rec.version };
    });
    return hits.sort(compareHits);
  }

  staleIds(version: number, limit?: number): string[] {
    return this.#records.staleIds(version, limit);
  }

  stalenessHistogram(currentVersion: number): StalenessBucket[] {
    return this.#records.stalenessHistogram(currentVersion);
  }

  /** Saves records and graph under one manifest, atomically. */
  async save(dir: string): Promise<void> {
    assertString(dir, 'dir', { nonEmpty: true });
    // Writes go through the records store first, so holding it busy also keeps the labels and the
    // graph still while they are written.
    await saveWithSnapshot(this.#records, async ({ meta, parts }) => {
      const labels: LabelsFile = { idOfLabel: this.#idOfLabel, free: this.#free };
      await saveDirectory(dir, KIND, { ...meta, efSearch: this.#efSearch }, [
        ...parts,
        { name: 'labels', chunks: [Buffer.from(JSON.stringify(labels))] },
        { name: 'graph', writeTo: async (file) => { await this.#graph.writeIndex(file); } },
      ]);
    });
  }

  /** Loads a store written by {@link HnswStore.save}; a corrupt or missing file is ERR_STORE naming it. */
  static async load(dir: string): Promise<HnswStore> {
    assertString(dir, 'dir', { nonEmpty: true });
    return loadStoreDirectory(dir, KIND, (loaded) => HnswStore.#fromDirectory(dir, loaded));
  }

  static #fromDirectory = async (dir: string, loaded: LoadedDirectory): Promise<HnswStore> => {
    const records = await restoreStore(dir, loaded, { kernel: 'js' });
    const meta = loaded.meta as { efSearch?: unknown };
    const labels = JSON.parse((await loaded.read('labels')).toString('utf8')) as LabelsFile;
    await loaded.verify('graph');
    const store = new HnswStore({ dim: records.dim, capacity: 1, efSearch: Number.isSafeInteger(meta.efSearch) ? meta.efSearch as number : 64 });
    await store.#graph.readIndex(loaded.path('graph'));
    store.#records = records;
    store.#idOfLabel = labels.idOfLabel;
    store.#free = labels.free;
    labels.idOfLabel.forEach((id, label) => { if (id !== null) store.#labelOf.set(id, label); });
    if (store.#labelOf.size !== records.size) {
      throw new SearchR3Error('ERR_STORE', `Store file ${loaded.path('labels')} maps ${store.#labelOf.size} ids but the store holds ${records.size}`);
    }
    return store;
  };

  // Puts the record's current (normalised) vector into the graph under its label.
  #place(id: string): void {
    let label = this.#labelOf.get(id);
    if (label === undefined) {
      label = this.#free.pop() ?? this.#idOfLabel.length;
      if (label >= this.#graph.getMaxElements()) this.#graph.resizeIndex(Math.max(label + 1, this.#graph.getMaxElements() * 2));
      this.#labelOf.set(id, label);
      this.#idOfLabel[label] = id;
    }
    // For a reused label hnswlib un-deletes the element and moves it (updatePoint); for a known one it moves it.
    this.#graph.addPoint(Array.from(this.#records.get(id)!.vector), label);
  }
}

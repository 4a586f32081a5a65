import { join } from 'node:path';
import { SearchR3Error } from '../util/errors.js';
import { assertInteger, assertOneOf, assertString, checkKeys, expected } from '../util/validate.js';
import { exactSearch, exactSearchSync, type SearchView } from './exact-search.js';
import { loadVectorKernels, scanJs, type ScanRequest, type VectorKernelBinding } from './kernels.js';
import { loadStoreDirectory, saveDirectory, type LoadedDirectory, type PartSource } from './persistence.js';
import type { SearchHit, SearchOptions, StalenessBucket, StoredVector, VectorIndex, VectorInput } from './types.js';
import { normalize } from './vector-math.js';
import { assertPositiveInteger } from './checks.js';

/** Which scan runs searches: the native SIMD kernel, the TypeScript loop, or native when built. */
export type KernelChoice = 'auto' | 'native' | 'js';

/** Options of {@link VectorStore}. */
export interface VectorStoreOptions {
  /** Vector dimension (required). */
  dim: number;
  /** Rows to allocate up front; the slab doubles when full. Default 1024. */
  capacity?: number;
  /** Threads a native search uses; 0 = all hardware threads. Default 0. */
  threads?: number;
  /** Search implementation. Default 'auto' (native when the addon has the kernel). */
  kernel?: KernelChoice;
}

/** Options of {@link VectorStore.load}: as for the constructor, minus what the directory fixes. */
export type VectorStoreLoadOptions = Omit<VectorStoreOptions, 'dim' | 'capacity'>;

const OPTION_KEYS = ['dim', 'capacity', 'threads', 'kernel'] as const;
const SEARCH_KEYS = ['minVersion', 'maxVersion'] as const;
// Below this many floats a scan takes well under a millisecond, so it runs on the JS thread
// rather than paying for a trip through the libuv pool.
const ASYNC_MIN_FLOATS = 1 << 18;
const MAX_VERSION = Number.MAX_SAFE_INTEGER;
const STORE_KIND = 'exact-vector-store';

type StoreSnapshot = { meta: { dim: number; size: number }; parts: PartSource[] };
/**
 * @internal Runs `save` with the parts and metadata of a store, for a backend that saves it
 * alongside its own files; the store refuses writes (ERR_BUSY) until `save` settles, since the
 * vectors part is a view of its memory.
 */
export let saveWithSnapshot: (store: VectorStore, save: (snapshot: StoreSnapshot) => Promise<void>) => Promise<void>;
/** @internal Rebuilds a store from a verified directory written with {@link saveWithSnapshot}'s parts. */
export let restoreStore: (dir: string, loaded: LoadedDirectory, options: VectorStoreLoadOptions) => Promise<VectorStore>;

interface RecordsFile {
  ids: string[];
  versions: number[];
  updatedAt: number[];
}

/**
 * An exact, versioned vector store: string id → unit-length F32 vector, plus the model/adapter
 * version (a non-negative integer, larger = newer) that produced it and when it was written.
 *
 * Rows live in one contiguous Float32Array slab; a delete moves the last row into the hole, so
 * the live rows are always rows 0..size-1 and a search streams them linearly (no free list to skip).
 * Search is exact cosine top-k, ties broken by id, on a native SIMD multi-threaded kernel when the
 * addon provides it and a TypeScript loop otherwise; both report identical results.
 *
 * While an asynchronous search or a save is running, writes throw `ERR_BUSY` (a scan reads the
 * slab from other threads); await them first. Searches may overlap each other.
 *
 * @example
 * const store = new VectorStore({ dim: 3 });
 * store.upsert('doc1', [1, 0, 0], 0);
 * store.upsert('doc2', [0, 1, 0], 1);
 * const hits = await store.search([1, 0.1, 0], 1); // [{ id: 'doc1', score: 0.995…, version: 0 }]
 * store.staleIds(1); // ['doc1']
 */
export class VectorStore implements VectorIndex {
  readonly dim: number;
  #slab: Float32Array;
  #versions: Float64Array;
  #times: Float64Array;
  #ids: string[] = [];
  #rowOf = new Map<string, number>();
  #size = 0;
  #threads: number;
  #binding: VectorKernelBinding | null;
  #running = 0;

  constructor(options: VectorStoreOptions) {
    checkKeys(options, OPTION_KEYS, 'options');
    if (options === undefined) throw new TypeError(expected('object', 'options', options));
    assertPositiveInteger(options.dim, 'dim', 1 << 24);
    const capacity = options.capacity ?? 1024;
    assertPositiveInteger(capacity, 'capacity', 2 ** 31 - 1);
    const threads = options.threads ?? 0;
    assertInteger(threads, 'threads', 0, 256);
    const kernel = options.kernel ?? 'auto';
    assertOneOf(kernel, 'kernel', ['auto', 'native', 'js'] as const);
    this.#binding = kernel === 'js' ? null : loadVectorKernels();
    if (kernel === 'native' && !this.#binding) {
      throw new SearchR3Error('ERR_NATIVE', 'kernel "native" was asked for, but the search-r3 addon is not built or lacks the vector kernels (npm run build:native)');
    }
    this.dim = options.dim;
    this.#threads = threads;
    this.#slab = new Float32Array(capacity * this.dim);
    this.#versions = new Float64Array(capacity);
    this.#times = new Float64Array(capacity);
  }

  /** Number of records. */
  get size(): number {
    return this.#size;
  }

  /** Rows the slab holds before it must grow. */
  get capacity(): number {
    return this.#versions.length;
  }

  /** The search implementation in use: 'native' (SIMD kernel) or 'js'. */
  get kernel(): 'native' | 'js' {
    return this.#binding ? 'native' : 'js';
  }

  has(id: string): boolean {
    return this.#rowOf.has(id);
  }

  /** A copy of the record, or undefined. */
  get(id: string): StoredVector | undefined {
    const row = this.#rowOf.get(id);
    if (row === undefined) return undefined;
    const vector = this.#slab.slice(row * this.dim, (row + 1) * this.dim);
    return { id, vector, version: this.#versions[row]!, updatedAt: this.#times[row]! };
  }

  /** The version of a record's vector, or undefined when absent (cheaper than `get`). */
  versionOf(id: string): number | undefined {
    const row = this.#rowOf.get(id);
    return row === undefined ? undefined : this.#versions[row];
  }

  /** Ids in storage order (which changes as records are deleted). */
  ids(): string[] {
    return this.#ids.slice(0, this.#size);
  }

  add(id: string, vector: VectorInput, version: number): void {
    assertString(id, 'id', { nonEmpty: true });
    if (this.#rowOf.has(id)) throw new RangeError(`${expected('an id not in the store', 'id', id)} (use update or upsert)`);
    this.upsert(id, vector, version);
  }

  update(id: string, vector: VectorInput, version: number): void {
    assertString(id, 'id', { nonEmpty: true });
    if (!this.#rowOf.has(id)) throw new RangeError(`${expected('an id in the store', 'id', id)} (use add or upsert)`);
    this.upsert(id, vector, version);
  }

  upsert(id: string, vector: VectorInput, version: number): boolean {
    assertString(id, 'id', { nonEmpty: true });
    assertInteger(version, 'version', 0, MAX_VERSION);
    const unit = normalize(vector, this.dim);
    this.#assertWritable('write');
    let row = this.#rowOf.get(id);
    const added = row === undefined;
    if (row === undefined) {
      if (this.#size === this.capacity) this.#grow(this.#size + 1);
      row = this.#size++;
      this.#rowOf.set(id, row);
      this.#ids[row] = id;
    }
    this.#slab.set(unit, row * this.dim);
    this.#versions[row] = version;
    this.#times[row] = Date.now();
    return added;
  }

  delete(id: string): boolean {
    assertString(id, 'id');
    const row = this.#rowOf.get(id);
    if (row === undefined) return false;
    this.#assertWritable('delete');
    const last = this.#size - 1;
    if (row !== last) {
      // Compaction on delete: the last row fills the hole, keeping rows 0..size-1 dense.
      this.#slab.copyWithin(row * this.dim, last * this.dim, (last + 1) * this.dim);
      this.#versions[row] = this.#versions[last]!;
      this.#times[row] = this.#times[last]!;
      const moved = this.#ids[last]!;
      this.#ids[row] = moved;
      this.#rowOf.set(moved, row);
    }
    this.#ids.length = last;
    this.#rowOf.delete(id);
    this.#size = last;
    return true;
  }

  /** Releases slab capacity beyond the current size (after many deletes). */
  shrinkToFit(): void {
    this.#assertWritable('shrink');
    this.#resize(Math.max(1, this.#size));
  }

  /**
   * Exact top-k by cosine similarity, best first, ties broken by id; k larger than the store
   * returns everything. Large stores are scanned off the JS thread.
   * @example const hits = await store.search(queryVector, 10, { minVersion: 3 });
   */
  async search(query: VectorInput, k: number, options?: SearchOptions): Promise<SearchHit[]> {
    return (await this.searchBatch([query], k, options))[0]!;
  }

  searchSync(query: VectorInput, k: number, options?: SearchOptions): SearchHit[] {
    return this.searchBatchSync([query], k, options)[0]!;
  }

  /**
   * Top-k for several queries in one pass over the slab (each row is read once for all of them).
   * @example const [a, b] = await store.searchBatch([q1, q2], 10);
   */
  async searchBatch(queries: readonly VectorInput[], k: number, options?: SearchOptions): Promise<SearchHit[][]> {
    const { packed, filter } = this.#prepare(queries, k, options);
    const view = this.#view();
    const binding = this.#binding;
    if (!binding || view.rows * this.dim < ASYNC_MIN_FLOATS) return exactSearchSync(view, packed, k, filter, (r) => this.#scanSync(r));
    this.#running++;
    try {
      return await exactSearch(view, packed, k, filter, (r) =>
        binding.vectorTopK(r.slab, r.rows, r.dim, r.queries, r.k, { ...filter, threads: this.#threads }));
    } finally {
      this.#running--;
    }
  }

  searchBatchSync(queries: readonly VectorInput[], k: number, options?: SearchOptions): SearchHit[][] {
    const { packed, filter } = this.#prepare(queries, k, options);
    return exactSearchSync(this.#view(), packed, k, filter, (r) => this.#scanSync(r));
  }

  /**
   * Ids whose vectors are older than `version`, oldest first then by id; at most `limit`.
   * @example for (const id of store.staleIds(step, 256)) store.upsert(id, await embed(id), step);
   */
  staleIds(version: number, limit = Infinity): string[] {
    assertInteger(version, 'version', 0, MAX_VERSION);
    if (limit !== Infinity) assertInteger(limit, 'limit', 0);
    const rows: number[] = [];
    for (let row = 0; row < this.#size; row++) if (this.#versions[row]! < version) rows.push(row);
    rows.sort((a, b) => this.#versions[a]! - this.#versions[b]! || (this.#ids[a]! < this.#ids[b]! ? -1 : 1));
    return rows.slice(0, limit).map((row) => this.#ids[row]!);
  }

  /**
   * How many vectors each version produced, newest first, with their age relative to `currentVersion`.
   * @example store.stalenessHistogram(7) // [{ version: 7, age: 0, count: 900 }, { version: 5, age: 2, count: 100 }]
   */
  stalenessHistogram(currentVersion: number): StalenessBucket[] {
    assertInteger(currentVersion, 'currentVersion', 0, MAX_VERSION);
    const counts = new Map<number, number>();
    for (let row = 0; row < this.#size; row++) counts.set(this.#versions[row]!, (counts.get(this.#versions[row]!) ?? 0) + 1);
    return [...counts].sort((a, b) => b[0] - a[0]).map(([version, count]) => ({ version, age: currentVersion - version, count }));
  }

  /**
   * Saves to `dir` atomically (see persistence.ts): a crash mid-save leaves the previous save loadable.
   * @example await store.save('./corpus.store'); const again = await VectorStore.load('./corpus.store');
   */
  async save(dir: string): Promise<void> {
    assertString(dir, 'dir', { nonEmpty: true });
    await this.#saveWithSnapshot(({ meta, parts }) => saveDirectory(dir, STORE_KIND, meta, parts));
  }

  async #saveWithSnapshot(save: (snapshot: StoreSnapshot) => Promise<void>): Promise<void> {
    this.#running++;
    try {
      await save(this.#snapshot());
    } finally {
      this.#running--;
    }
  }

  /**
   * Loads a store saved by {@link VectorStore.save}, verifying checksums; failures are
   * `SearchR3Error` with code `ERR_STORE` naming the file.
   * @example const store = await VectorStore.load('./corpus.store', { threads: 4 });
   */
  static async load(dir: string, options: VectorStoreLoadOptions = {}): Promise<VectorStore> {
    assertString(dir, 'dir', { nonEmpty: true });
    checkKeys(options, ['threads', 'kernel'], 'options');
    return loadStoreDirectory(dir, STORE_KIND, (loaded) => VectorStore.#fromDirectory(dir, loaded, options));
  }

  static #fromDirectory = async (dir: string, loaded: LoadedDirectory, options: VectorStoreLoadOptions): Promise<VectorStore> => {
    const meta = loaded.meta as { dim?: unknown; size?: unknown };
    if (!Number.isSafeInteger(meta.dim) || !Number.isSafeInteger(meta.size) || (meta.dim as number) < 1 || (meta.size as number) < 0) {
      throw new SearchR3Error('ERR_STORE', `Store manifest ${join(dir, 'manifest.json')} has no valid dim/size`);
    }
    const dim = meta.dim as number;
    const size = meta.size as number;
    const records = parseRecords(await loaded.read('records'), size, loaded.path('records'));
    const store = new VectorStore({ ...options, dim, capacity: Math.max(1, size) });
    await loaded.readInto('vectors', new Uint8Array(store.#slab.buffer, 0, size * dim * 4));
    store.#restore(records);
    return store;
  };

  // Friends for HnswStore, which saves its vectors in the same directory as its graph so that one
  // manifest covers both; kept off the public class surface.
  static {
    saveWithSnapshot = (store, save) => store.#saveWithSnapshot(save);
    restoreStore = (dir, loaded, options) => VectorStore.#fromDirectory(dir, loaded, options);
  }

  #snapshot(): StoreSnapshot {
    const n = this.#size;
    const records: RecordsFile = { ids: this.#ids.slice(0, n), versions: Array.from(this.#versions.subarray(0, n)), updatedAt: Array.from(this.#times.subarray(0, n)) };
    // A view, not a copy: writes are refused (ERR_BUSY) until the save has finished with it.
    const vectors = new Uint8Array(this.#slab.buffer, this.#slab.byteOffset, n * this.dim * 4);
    return {
      meta: { dim: this.dim, size: n },
      parts: [{ name: 'vectors', chunks: [vectors] }, { name: 'records', chunks: [Buffer.from(JSON.stringify(records))] }],
    };
  }

  #restore(records: RecordsFile): void {
    records.ids.forEach((id, row) => {
      this.#ids[row] = id;
      this.#rowOf.set(id, row);
      this.#versions[row] = records.versions[row]!;
      this.#times[row] = records.updatedAt[row]!;
    });
    this.#size = records.ids.length;
  }

  #prepare(queries: readonly VectorInput[], k: number, options: SearchOptions | undefined) {
    assertPositiveInteger(k, 'k');
    checkKeys(options, SEARCH_KEYS, 'options');
    if (!Array.isArray(queries) || queries.length === 0) throw new TypeError(expected('non-empty array of vectors', 'queries', queries));
    const filter: Pick<ScanRequest, 'versions' | 'minVersion' | 'maxVersion'> = {};
    if (options?.minVersion !== undefined) assertInteger((filter.minVersion = options.minVersion), 'minVersion', 0, MAX_VERSION);
    if (options?.maxVersion !== undefined) assertInteger((filter.maxVersion = options.maxVersion), 'maxVersion', 0, MAX_VERSION);
    if (filter.minVersion !== undefined || filter.maxVersion !== undefined) filter.versions = this.#versions;
    const packed = new Float32Array(queries.length * this.dim);
    queries.forEach((q, i) => packed.set(normalize(q, this.dim, queries.length === 1 ? 'query' : `queries[${i}]`), i * this.dim));
    return { packed, filter };
  }

  #view(): SearchView {
    return { slab: this.#slab, rows: this.#size, dim: this.dim, ids: this.#ids, versions: this.#versions };
  }

  #scanSync(r: ScanRequest) {
    if (!this.#binding) return scanJs(r);
    return this.#binding.vectorTopKSync(r.slab, r.rows, r.dim, r.queries, r.k, {
      threads: this.#threads, versions: r.versions, minVersion: r.minVersion, maxVersion: r.maxVersion,
    });
  }

  #assertWritable(what: string): void {
    if (this.#running > 0) {
      throw new SearchR3Error('ERR_BUSY', `Cannot ${what} while ${this.#running} search(es) or save(s) of this store are running; await them first`);
    }
  }

  #grow(minRows: number): void {
    let cap = this.capacity;
    while (cap < minRows) cap = Math.min(2 ** 31 - 1, cap * 2);
    this.#resize(cap);
  }

  #resize(rows: number): void {
    const slab = new Float32Array(rows * this.dim);
    slab.set(this.#slab.subarray(0, this.#size * this.dim));
    const versions = new Float64Array(rows);
    versions.set(this.#versions.subarray(0, this.#size));
    const times = new Float64Array(rows);
    times.set(this.#times.subarray(0, this.#size));
    [this.#slab, this.#versions, this.#times] = [slab, versions, times];
  }
}

function parseRecords(data: Buffer, size: number, file: string): RecordsFile {
  let records: RecordsFile;
  try {
    records = JSON.parse(data.toString('utf8')) as RecordsFile;
  } catch (err) {
    throw new SearchR3Error('ERR_STORE', `Store file ${file} is not valid JSON`, { cause: err });
  }
  const ok = Array.isArray(records.ids) && Array.isArray(records.versions) && Array.isArray(records.updatedAt)
    && records.ids.length === size && records.versions.length === size && records.updatedAt.length === size
    && new Set(records.ids).size === size && records.ids.every((id) => typeof id === 'string' && id.length > 0);
  if (!ok) throw new SearchR3Error('ERR_STORE', `Store file ${file} does not hold ${size} distinct ids with versions and times`);
  return records;
}

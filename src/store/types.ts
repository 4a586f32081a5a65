/** A vector accepted by the store: any array of finite numbers of the store's dimension. */
export type VectorInput = Float32Array | Float64Array | readonly number[];

/** One search result. */
export interface SearchHit {
  /** The record's id. */
  id: string;
  /** Cosine similarity between the (normalised) query and the stored vector, in double precision. */
  score: number;
  /** Model/adapter version that produced the stored vector. */
  version: number;
}

/** A stored record as returned by `get`. */
export interface StoredVector {
  id: string;
  /** A copy of the stored, unit-length vector. */
  vector: Float32Array;
  /** Model/adapter version that produced it: a non-negative integer, larger is newer. */
  version: number;
  /** When it was last written, in milliseconds since the Unix epoch. */
  updatedAt: number;
}

/** Options of `search` / `searchBatch`. */
export interface SearchOptions {
  /** Only vectors whose version is at least this (e.g. "fresh only"). Default: no lower bound. */
  minVersion?: number;
  /** Only vectors whose version is at most this (e.g. "stale only" = current − 1). Default: no upper bound. */
  maxVersion?: number;
}

/** One bucket of {@link VectorIndex.stalenessHistogram}. */
export interface StalenessBucket {
  /** The version the bucket's vectors were produced by. */
  version: number;
  /** `currentVersion - version`: 0 = fresh, negative = newer than the given current version. */
  age: number;
  /** How many vectors carry this version. */
  count: number;
}

/**
 * What every vector backend offers: the exact {@link VectorStore} and the approximate
 * {@link HnswStore}. Versions are non-negative integers (an adapter step counter), so "older than"
 * is a plain comparison; ids are non-empty strings.
 */
export interface VectorIndex {
  /** Vector dimension. */
  readonly dim: number;
  /** Number of records. */
  readonly size: number;
  /** Inserts a new record; a RangeError when `id` exists. */
  add(id: string, vector: VectorInput, version: number): void;
  /** Replaces an existing record's vector and version; a RangeError when `id` is missing. */
  update(id: string, vector: VectorInput, version: number): void;
  /** Inserts or replaces; returns true when the id was new. */
  upsert(id: string, vector: VectorInput, version: number): boolean;
  /** Removes a record; returns false when it did not exist. */
  delete(id: string): boolean;
  has(id: string): boolean;
  get(id: string): StoredVector | undefined;
  /** Top-k by cosine, best first, ties broken by id ascending. */
  search(query: VectorInput, k: number, options?: SearchOptions): Promise<SearchHit[]>;
  /** {@link VectorIndex.search} on the calling thread. */
  searchSync(query: VectorInput, k: number, options?: SearchOptions): SearchHit[];
  /** Ids whose vectors were produced by a version older than `version`, oldest first then by id. */
  staleIds(version: number, limit?: number): string[];
  /** Count of vectors per version, newest first. */
  stalenessHistogram(currentVersion: number): StalenessBucket[];
  /** Writes the index to a directory atomically. */
  save(dir: string): Promise<void>;
}

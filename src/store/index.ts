/**
 * The store layer: an exact versioned vector store (the RL reward oracle), an HNSW backend for
 * large serving corpora, and BM25 as a lexical baseline and retriever.
 */
export { VectorStore, type VectorStoreOptions, type VectorStoreLoadOptions, type KernelChoice } from './vector-store.js';
export { HnswStore, type HnswStoreOptions } from './hnsw.js';
export { Bm25Index, type Bm25Options, type Bm25Hit } from './bm25.js';
export { createEnglishAnalyzer, ENGLISH_STOP_WORDS, type Analyzer, type AnalyzerOptions } from './analyzer.js';
export { normalize } from './vector-math.js';
export { loadVectorKernels, type VectorKernelBinding, type ScanResult } from './kernels.js';
export type { SearchHit, SearchOptions, StalenessBucket, StoredVector, VectorIndex, VectorInput } from './types.js';

/**
 * Retrievers: text in, ranked documents out, behind one interface ({@link TextRetriever}) that the
 * bench, the document index, the server and the agent share.
 */
export type { TextRetriever, RetrievedDoc, RetrieveResult, RetrieveOptions } from './types';
export { MAX_TOPK, type DocumentContents } from './check';
export { Bm25Retriever, type Bm25RetrieverOptions } from './bm25';
export { DenseRetriever, type DenseRetrieverOptions } from './dense';
export { HybridRetriever, fuseRankings, RRF_K, HYBRID_DEPTH, type HybridRetrieverOptions } from './hybrid';
export { HttpRetriever, type HttpRetrieverOptions } from './http';
export { MAX_DOCUMENT_TOKENS, fitText, encodeDocuments, documentTokenBudget, queryTokenBudgets, type EncodedDocuments } from './encode';

// The one text-to-ranked-documents interface of the library. The bench, the document index and
// its `search` command, the HTTP server's /retrieve and /search, and the Search-R1 agent all call
// retrievers through it, so a BM25, dense, hybrid or remote retriever is interchangeable everywhere.
import type { EmbedFinish, EmbedMode } from '../engine/embedder';

/** One retrieved document, best first in its list. */
export interface RetrievedDoc {
  /** The document's id in its corpus. */
  id: string;
  /** The document's text as stored (for a titled document: `"Title"\ntext`, FlashRAG's form). */
  contents: string;
  /** The score the list is ranked by (higher is better; its scale depends on the retriever). */
  score: number;
  /** Per-retriever scores when several were fused (hybrid), absent entries meaning "not ranked". */
  scores?: { bm25?: number; dense?: number };
}

/** What one query returned. */
export interface RetrieveResult {
  /** The top documents, best first, at most `topk`. */
  docs: RetrievedDoc[];
  /** The reasoning written before the query was embedded (dense retrievers in `reason` mode). */
  reasoning?: string;
  /** Reasoning tokens written for the query (dense retrievers; 0 in `direct` mode). */
  reasoningTokens?: number;
  /** How the query's embedding ended (dense retrievers; see {@link EmbedFinish}). */
  finish?: EmbedFinish;
}

/** Options of {@link TextRetriever.retrieve}. */
export interface RetrieveOptions {
  /** Documents per query (a positive integer). */
  topk: number;
  /** Dense retrievers: how queries are embedded (default: the retriever's own). Others ignore it. */
  mode?: EmbedMode;
  signal?: AbortSignal;
  /** Called as queries are done (dense retrievers report per embedded chunk, others once at the end). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Text in, ranked documents out, for a batch of queries at once (one result per query, in order).
 * Implementations batch the whole call where they can (a dense retriever embeds all queries as
 * parallel sequences) and never share mutable state between concurrent calls.
 *
 * @example
 * const [hits] = await retriever.retrieve(['who wrote hamlet'], { topk: 3 });
 * hits.docs.map((d) => d.id);
 */
export interface TextRetriever {
  /** A short name for reports and logs (`bm25`, `dense`, `hybrid`, a URL…). */
  readonly name: string;
  retrieve(queries: readonly string[], options: RetrieveOptions): Promise<RetrieveResult[]>;
}

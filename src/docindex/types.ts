// The options and reports of the document index, apart from the class so each file reads in one sitting.
import type { Embedder, EmbedMode } from '../engine/embedder';
import type { Corpus, CorpusDoc } from './corpus';
import type { IndexSettings } from './files';
import type { EncoderIdentity } from './identity';

/** A corpus as `DocumentIndex.build` and `DocumentIndex.update` take it: a path for `readCorpus`, a read corpus, or documents. */
export type CorpusInput = string | Corpus | readonly CorpusDoc[];

/** Where a commit is: its vectors and BM25 are written but not yet committed (`parts`), or committed. */
export type CheckpointPhase = 'parts' | 'committed';

/** Options of `DocumentIndex.update` (and of the encoding part of a build). */
export interface UpdateOptions {
  /** Called as documents are encoded: done so far of those to encode. */
  onProgress?: (done: number, total: number) => void;
  /** Stops between encoder chunks with ERR_ABORTED, after committing what was encoded. */
  signal?: AbortSignal;
  /**
   * Seconds of encoding between commits: what a kill can cost. Each commit rewrites the index, so
   * commits are also at least four times their own duration apart. Default 10; 0 = after every chunk.
   */
  checkpointSeconds?: number;
  /**
   * Called at each commit with the documents encoded so far. Phase `parts` comes after the new
   * vectors and BM25 are written, before the catalog names them. For progress displays, and for
   * tests that kill a process at an exact point of the commit.
   */
  onCheckpoint?: (phase: CheckpointPhase, done: number, total: number) => void;
}

/** Options of `DocumentIndex.build`. */
export interface BuildOptions extends UpdateOptions {
  /** Encodes the documents (and later the queries); the caller keeps ownership. */
  embedder: Embedder;
  /** Query mode of searches unless told otherwise. Default `direct`. */
  mode?: EmbedMode;
  /** Approximate (HNSW) vector search instead of exact. Default false. */
  hnsw?: boolean;
  /** The embedder's reasoning budget (what `maxReasoningTokens` it was created with), to leave room for it in reason-mode queries. Default 128. */
  maxReasoningTokens?: number;
  /** Replace an index already in `dir` (it stays searchable until the new one's first commit). Default false. */
  force?: boolean;
}

/** Options of `DocumentIndex.open`. */
export interface OpenOptions {
  /** Encodes queries and updates; must be what encoded the index unless `reencode`. Without one, only BM25 search works. */
  embedder?: Embedder;
  /** Accept an embedder with another model, adapter or template: every row becomes stale and the next update re-encodes it. */
  reencode?: boolean;
}

/** Options of `DocumentIndex.openWithModel`. */
export interface OpenWithModelOptions {
  /** An adapter to use instead of the recorded one (`null`: none). A different one needs `reencode`. */
  lora?: string | null;
  reencode?: boolean;
  /** CPU threads of the embedder (default: all). */
  threads?: number;
  /** Parallel sequences of the embedder (default 8). */
  sequences?: number;
}

/** What an update did. */
export interface UpdateReport {
  /** Documents new to the index, encoded. */
  added: number;
  /** Documents whose text changed (by sha256), re-encoded. */
  changed: number;
  /** Documents no longer in the corpus, removed. */
  removed: number;
  /** Unchanged documents re-encoded because an earlier encoder (another adapter) wrote them. */
  reencoded: number;
  /** Documents left as they were. */
  unchanged: number;
  /** Encoded documents cut to the document budget. */
  truncated: number;
  /** Prompt tokens fed to the encoder. */
  encodedTokens: number;
  /** Seconds spent encoding (the throughput denominator). */
  encodeSeconds: number;
  /** Seconds the whole update took, reading the corpus excluded. */
  seconds: number;
}

/** What `DocumentIndex.info` tells. */
export interface IndexInfo {
  dir: string;
  documents: number;
  /** Documents whose vector an earlier encoder wrote (a re-encode was interrupted, or has not run yet). */
  staleDocuments: number;
  identity: EncoderIdentity;
  encoderVersion: number;
  settings: IndexSettings;
  generation: number;
  createdAt: string;
  savedAt: string;
}

/** Options of `DocumentIndex.retriever`. */
export interface IndexRetrieverOptions {
  /** `bm25`, `dense` or `hybrid` (default `dense`, or `hybrid` with `hybrid: true`). */
  kind?: 'bm25' | 'dense' | 'hybrid';
  hybrid?: boolean;
  /** Query mode (default: the index's). */
  mode?: EmbedMode;
}

/**
 * The shape of a benchmark result: what `search-r3-bench --json` writes and what the table and the
 * HTML report are drawn from. Field names carry their units.
 */

/** The retrievers the bench knows, in the order they run and are shown. */
export const RETRIEVER_NAMES = ['bm25', 'direct', 'reason'] as const;
export type RetrieverName = (typeof RETRIEVER_NAMES)[number];

/** Retrieval depth of every retriever: Recall@100 needs 100 documents per query. */
export const TOP_K = 100;

/** Quality on the evaluated queries, computed by src/eval (trec_eval's definitions). */
export interface Quality {
  /** trec_eval `ndcg_cut_10`. */
  ndcg10: number;
  /** trec_eval `map` over the retrieved top 100 (= `map_cut_100`). */
  map: number;
  /** trec_eval `recall_100`. */
  recall100: number;
  /** trec_eval `recip_rank` with `-M 10`: the reciprocal rank of the first relevant document in the top 10. */
  mrr10: number;
}

/** The four quality measures with their display names, in display order. */
export const QUALITY_MEASURES: readonly { key: keyof Quality; label: string }[] = [
  { key: 'ndcg10', label: 'nDCG@10' },
  { key: 'map', label: 'MAP' },
  { key: 'recall100', label: 'Recall@100' },
  { key: 'mrr10', label: 'MRR@10' },
];

export interface Latency {
  /** Queries timed one at a time (embed + search each). */
  samples: number;
  p50Ms: number;
  p95Ms: number;
  meanMs: number;
  /** Every timed query's latency in milliseconds, in query order (the report plots them). */
  valuesMs: number[];
}

export interface Speed {
  /** Corpus throughput: BM25 indexing, or document encoding (shared by `direct` and `reason`). */
  docsPerSecond: number;
  /** Seconds spent indexing or encoding the corpus. */
  indexSeconds: number;
  /** Query throughput of the batched path (all queries at once: embed, then search). */
  queriesPerSecond: number;
  /** Mean reasoning tokens written per query (0 for `bm25` and `direct`). */
  reasoningTokensPerQuery: number;
  latency: Latency;
  /** Peak resident set size of the process when this retriever finished, in MiB (cumulative: earlier phases count). */
  peakRssMiB: number;
}

export interface RetrieverResult {
  name: RetrieverName;
  quality: Quality;
  speed: Speed;
  /** Queries for which the retriever returned at least one document. */
  queriesWithResults: number;
  /**
   * For `reason`: how each query's reasoning ended (`embed` = the model emitted `<|embed_token|>`,
   * `budget` = the budget ran out, `stopped` = it ended its turn). Empty for the others.
   */
  finishes: Record<string, number>;
}

export interface DatasetInfo {
  /** `synthetic (seed 1)` or the directory's name. */
  name: string;
  /** The BEIR directory, or null for the embedded synthetic dataset. */
  dir: string | null;
  split: 'test';
  docs: number;
  /** Evaluated queries (test queries with judgements, after `--limit-queries`). */
  queries: number;
  /** Their ids, so a consumer can re-evaluate a written run on exactly these queries. */
  queryIds: string[];
  /** Documents cut to fit the model's context when encoded (0 without a dense retriever). */
  truncatedDocs: number;
}

export interface ModelInfoSummary {
  path: string;
  /** `demo`: the generated default model; `file`: given with `--model`. */
  origin: 'demo' | 'file';
  /** False for the untrained demo model (dense rows are then a floor); null when unknown (a user's file). */
  trained: boolean | null;
  lora: string | null;
  architecture: string;
  layers: number;
  nEmbd: number;
  parameters: number;
}

export interface BenchSettings {
  retrievers: RetrieverName[];
  maxReasoningTokens: number;
  limitQueries: number | null;
  latencyQueries: number;
  threads: number | null;
  sequences: number;
  topK: number;
}

export interface BenchReport {
  /** Format version of this object. */
  version: 1;
  startedAt: string;
  wallSeconds: number;
  dataset: DatasetInfo;
  /** Null when only `bm25` ran. */
  model: ModelInfoSummary | null;
  settings: BenchSettings;
  retrievers: RetrieverResult[];
  /** Plain-language caveats the reader must see (e.g. an untrained model). */
  notes: string[];
  /** `cpus`: hardware threads; `threads`: what the model session reports it used (null: no model ran). */
  host: { platform: string; arch: string; cpus: number; threads: number | null; node: string };
}

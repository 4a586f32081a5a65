import { EMBED_TEMPLATE_NAMES } from '../engine/templates';
import { assertBoolean, assertInteger, assertOneOf, assertString, checkKeys, expected } from '../util/validate';
import { RETRIEVER_NAMES, type RetrieverName } from './types';

/** Options of {@link runBench}. Every field has a default; the defaults are the embedded demo. */
export interface BenchOptions {
  /** A BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv). Default: the synthetic dataset, generated in memory. */
  dataset?: string;
  /** A GGUF with `<|embed_token|>`. Default: the demo model, generated into the cache (untrained). */
  model?: string;
  /** A LoRA adapter (llama.cpp adapter GGUF) applied at scale 1 to the dense retrievers. */
  lora?: string;
  /** Prompt wording of the dense retrievers: a name of EMBED_TEMPLATES (`default`, `search-r3.0`). Default `default`. */
  template?: string;
  /** Which retrievers run (always in the order bm25, direct, reason). Default all three. */
  retrievers?: RetrieverName[];
  /**
   * Reasoning budget per query in `reason` mode. Default 64: long enough for the paper's short
   * analyses, short enough that the default run stays within minutes on two cores.
   */
  maxReasoningTokens?: number;
  /** Evaluate only the first N judged test queries. Default: all. */
  limitQueries?: number;
  /**
   * Queries timed one at a time per retriever for p50/p95 latency (the first N evaluated queries).
   * Default 50 (every query of the default run); all when there are fewer. Single-query reasoning
   * is slow, so on large query sets this is a sample.
   */
  latencyQueries?: number;
  /** CPU threads for the model. Default: all hardware threads. */
  threads?: number;
  /** Parallel sequences the embedder decodes in one batch. Default 8. */
  sequences?: number;
  /** Write each retriever's run as a TREC run file `<dir>/<retriever>.run`. Default: none. */
  runsDir?: string;
  /** Show progress bars on stderr. Default true. */
  progress?: boolean;
  /** Receives one-line status messages (model generation, loading). Default: none. */
  log?: (line: string) => void;
}

export type ResolvedBenchOptions = Required<Omit<BenchOptions, 'dataset' | 'model' | 'lora' | 'limitQueries' | 'threads' | 'runsDir'>> &
  Pick<BenchOptions, 'dataset' | 'model' | 'lora' | 'runsDir'> & { limitQueries: number | null; threads: number | null };

const KEYS = ['dataset', 'model', 'lora', 'template', 'retrievers', 'maxReasoningTokens', 'limitQueries', 'latencyQueries', 'threads', 'sequences', 'runsDir', 'progress', 'log'];

/**
 * Checks options and fills in defaults in one place, so the run itself never re-checks.
 *
 * @example resolveBenchOptions({ retrievers: ['bm25'] }).maxReasoningTokens // 64
 */
export function resolveBenchOptions(options: BenchOptions = {}): ResolvedBenchOptions {
  checkKeys(options, KEYS, 'options');
  for (const key of ['dataset', 'model', 'lora', 'runsDir'] as const) {
    if (options[key] !== undefined) assertString(options[key], `options.${key}`, { nonEmpty: true });
  }
  const retrievers = options.retrievers ?? [...RETRIEVER_NAMES];
  if (!Array.isArray(retrievers) || retrievers.length === 0) throw new TypeError(expected('non-empty array of retriever names', 'options.retrievers', retrievers));
  for (const r of retrievers) {
    if (!(RETRIEVER_NAMES as readonly string[]).includes(r)) throw new TypeError(expected(`one of ${RETRIEVER_NAMES.join(', ')}`, 'options.retrievers', r));
  }
  if (new Set(retrievers).size !== retrievers.length) throw new TypeError(expected('each retriever at most once', 'options.retrievers', retrievers.join(',')));
  const dense = retrievers.some((r) => r !== 'bm25');
  if (!dense && (options.model !== undefined || options.lora !== undefined)) {
    throw new TypeError(`options.${options.model !== undefined ? 'model' : 'lora'} needs a dense retriever (direct or reason) in options.retrievers`);
  }
  const o = {
    maxReasoningTokens: options.maxReasoningTokens ?? 64,
    latencyQueries: options.latencyQueries ?? 50,
    sequences: options.sequences ?? 8,
    progress: options.progress ?? true,
    template: options.template ?? 'default',
  };
  assertOneOf(o.template, 'options.template', EMBED_TEMPLATE_NAMES);
  assertInteger(o.maxReasoningTokens, 'options.maxReasoningTokens', 1, 8192);
  assertInteger(o.latencyQueries, 'options.latencyQueries', 0, 1 << 20);
  assertInteger(o.sequences, 'options.sequences', 1, 256);
  assertBoolean(o.progress, 'options.progress');
  if (options.limitQueries !== undefined) assertInteger(options.limitQueries, 'options.limitQueries', 1);
  if (options.threads !== undefined) assertInteger(options.threads, 'options.threads', 1, 1024);
  if (options.log !== undefined && typeof options.log !== 'function') throw new TypeError(expected('function', 'options.log', options.log));
  return {
    ...o,
    retrievers: [...RETRIEVER_NAMES].filter((r) => retrievers.includes(r)),
    dataset: options.dataset,
    model: options.model,
    lora: options.lora,
    runsDir: options.runsDir,
    limitQueries: options.limitQueries ?? null,
    threads: options.threads ?? null,
    log: options.log ?? (() => {}),
  };
}

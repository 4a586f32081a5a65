/**
 * The shape of a `search-r3-bench --task qa` result: what `--json` writes and what the table and
 * the HTML report are drawn from.
 */
import type { Latency, ModelInfoSummary } from './types';

/** The methods `--task qa` runs, in report order: no retrieval, RAG, the Search-R1 agent. */
export const QA_METHOD_NAMES = ['direct', 'rag', 'agent'] as const;
export type QaMethodName = (typeof QA_METHOD_NAMES)[number];

/** Answer quality over a set of questions (each a mean over questions, 0–1). */
export interface QaScores {
  /** Exact match after SQuAD normalisation (src/eval/qa.ts `exactMatch`). */
  em: number;
  /** SQuAD token F1, best over the gold answers. */
  f1: number;
  /** A gold answer occurs inside the normalised prediction (Search-R1's `subem_check`). */
  subem: number;
  /** Share of questions whose response held an `<answer>` span at all. */
  answered: number;
}

/** The three measures with display names, in display order. */
export const QA_MEASURES: readonly { key: 'em' | 'f1' | 'subem'; label: string }[] = [
  { key: 'em', label: 'EM' },
  { key: 'f1', label: 'F1' },
  { key: 'subem', label: 'substring EM' },
];

/** Scores of the questions with a given number of hops. */
export interface HopScores extends QaScores {
  hops: number;
  questions: number;
}

export interface QaMethodResult {
  name: QaMethodName;
  scores: QaScores;
  /** One row per hop count, ascending; empty when the data carries no `hops`. */
  perHop: HopScores[];
  /** Mean tokens generated per question. */
  generatedTokensPerQuestion: number;
  /** Mean prompt (and observation) tokens read per question. */
  promptTokensPerQuestion: number;
  searchesPerQuestion: number;
  /** Questions per second of the batched pass (all questions as parallel sequences). */
  questionsPerSecond: number;
  /** Questions answered one at a time (retrieval + generation each). */
  latency: Latency;
  /** Each evaluated question's answer (null: none), in question order, for inspection. */
  answers: (string | null)[];
}

export interface QaBenchReport {
  version: 1;
  task: 'qa';
  startedAt: string;
  wallSeconds: number;
  dataset: {
    /** The QA file, or `synthetic (seed N)` for the embedded default. */
    qa: string;
    corpus: string;
    docs: number;
    /** Questions evaluated (after `--limit-questions`). */
    questions: number;
    questionIds: string[];
    /** Questions per hop count, when the data has `hops`. */
    hops: Record<string, number>;
  };
  model: ModelInfoSummary;
  retriever: string;
  settings: { methods: QaMethodName[]; topk: number; maxTokens: number; maxTurns: number; limitQuestions: number | null; latencyQuestions: number; sequences: number; threads: number | null };
  methods: QaMethodResult[];
  notes: string[];
  host: { platform: string; arch: string; cpus: number; threads: number | null; node: string };
}

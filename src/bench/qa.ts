// `search-r3-bench --task qa`: answer quality and cost of the QA methods on the same questions.
import { availableParallelism } from 'node:os';
import { directMethod, ragMethod, type QaMethod, type QaOutput } from '../agent/methods';
import { Agent } from '../agent/agent';
import { agentMethod } from '../agent/agent-method';
import { readCorpus, type CorpusDoc } from '../docindex/corpus';
import type { Session } from '../engine/session';
import { exactMatch, f1Score, substringMatch } from '../eval/qa';
import { readQaJsonl, syntheticQa, type QaItem } from '../eval/qa-data';
import { makeSyntheticDataset } from '../eval/synthetic';
import { startProgress } from '../util/progress';
import { assertBoolean, assertInteger, assertString, checkKeys, expected } from '../util/validate';
import { DEMO_DATASET } from './dataset';
import { checkQaRetriever, openQaRetriever, type OpenedRetriever } from './qa-retriever';
import { QA_METHOD_NAMES, type HopScores, type QaBenchReport, type QaMethodName, type QaMethodResult, type QaScores } from './qa-types';
import { loadBenchModel, UNTRAINED_NOTE } from './run';
import { mean, msSince, rate, summarizeLatency } from './stats';

/** Options of {@link runQaBench}. `qa` and `corpus` go together; without both, synthetic multi-hop QA. */
export interface QaBenchOptions {
  /** QA JSONL `{id?, question, golden_answers, hops?}`. Default: the synthetic dataset's test questions. */
  qa?: string;
  /** The corpus the retriever searches: FlashRAG JSONL, a BEIR corpus, or a folder (readCorpus). */
  corpus?: string;
  /** GGUF model that answers. Default: the generated demo model (untrained). */
  model?: string;
  /** LoRA adapter applied at scale 1. */
  lora?: string;
  /**
   * `bm25` (default), `dense` (the model's own `<|embed_token|>` embeddings of the corpus, direct
   * mode), `hybrid` (both, reciprocal-rank fused), or a Search-R1 `/retrieve` URL (http or https).
   */
  retriever?: string;
  /** Which methods run (report order: direct, rag, agent). Default all. */
  methods?: QaMethodName[];
  /** Documents per retrieval (default 3, Search-R1's). */
  topk?: number;
  /** Tokens generated per answer at most (default 128); for the agent, per turn. */
  maxTokens?: number;
  /** The agent's model turns per question at most (default 4, Search-R1's). */
  maxTurns?: number;
  /** Evaluate the first N questions only. */
  limitQuestions?: number;
  /** Questions answered one at a time per method for latency (default 20; all when fewer). */
  latencyQuestions?: number;
  /** Parallel sequences of the batched pass (default 8). */
  sequences?: number;
  threads?: number;
  progress?: boolean;
  log?: (line: string) => void;
}

const KEYS = ['qa', 'corpus', 'model', 'lora', 'retriever', 'methods', 'topk', 'maxTokens', 'maxTurns', 'limitQuestions', 'latencyQuestions', 'sequences', 'threads', 'progress', 'log'];

function resolve(options: QaBenchOptions) {
  checkKeys(options, KEYS, 'options');
  for (const key of ['qa', 'corpus', 'model', 'lora', 'retriever'] as const) {
    if (options[key] !== undefined) assertString(options[key], `options.${key}`, { nonEmpty: true });
  }
  if ((options.qa === undefined) !== (options.corpus === undefined)) {
    throw new TypeError(`options.${options.qa === undefined ? 'corpus' : 'qa'} needs options.${options.qa === undefined ? 'qa' : 'corpus'}: questions and the corpus they are answered from go together`);
  }
  const retriever = options.retriever ?? 'bm25';
  checkQaRetriever(retriever, 'options.retriever');
  const methods = options.methods ?? [...QA_METHOD_NAMES];
  if (!Array.isArray(methods) || methods.length === 0 || methods.some((m) => !(QA_METHOD_NAMES as readonly string[]).includes(m))) {
    throw new TypeError(expected(`a non-empty array of ${QA_METHOD_NAMES.join(', ')}`, 'options.methods', methods));
  }
  const o = {
    topk: options.topk ?? 3, maxTokens: options.maxTokens ?? 128, maxTurns: options.maxTurns ?? 4, latencyQuestions: options.latencyQuestions ?? 20,
    sequences: options.sequences ?? 8, progress: options.progress ?? true,
  };
  assertInteger(o.topk, 'options.topk', 1, 100);
  assertInteger(o.maxTokens, 'options.maxTokens', 1, 8192);
  assertInteger(o.maxTurns, 'options.maxTurns', 1, 64);
  assertInteger(o.latencyQuestions, 'options.latencyQuestions', 0, 1 << 20);
  assertInteger(o.sequences, 'options.sequences', 1, 256);
  assertBoolean(o.progress, 'options.progress');
  if (options.limitQuestions !== undefined) assertInteger(options.limitQuestions, 'options.limitQuestions', 1);
  if (options.threads !== undefined) assertInteger(options.threads, 'options.threads', 1, 1024);
  if (options.log !== undefined && typeof options.log !== 'function') throw new TypeError(expected('function', 'options.log', options.log));
  return {
    ...o, retriever, methods: QA_METHOD_NAMES.filter((m) => methods.includes(m)), qa: options.qa, corpus: options.corpus,
    model: options.model, lora: options.lora, limitQuestions: options.limitQuestions ?? null, threads: options.threads ?? null,
    log: options.log ?? (() => {}),
  };
}

function scoresOf(items: readonly QaItem[], outputs: readonly QaOutput[]): QaScores {
  const per = items.map((item, i) => {
    const a = outputs[i]!.answer;
    return a === null ? [0, 0, 0, 0] : [exactMatch(a, item.goldenAnswers), f1Score(a, item.goldenAnswers), substringMatch(a, item.goldenAnswers), 1];
  });
  const col = (k: number): number => mean(per.map((p) => p[k]!));
  return { em: col(0), f1: col(1), subem: col(2), answered: col(3) };
}

/**
 * Scores a method's outputs against the gold answers: EM, F1 and substring EM of each extracted
 * answer (a response without `<answer>` scores 0 on all three), overall and per hop count.
 *
 * @example scoreQa(items, outputs).scores.em
 */
export function scoreQa(items: readonly QaItem[], outputs: readonly QaOutput[]): { scores: QaScores; perHop: HopScores[] } {
  if (!Array.isArray(items) || !Array.isArray(outputs) || items.length !== outputs.length) {
    throw new RangeError(`Expected one output per question but received ${outputs?.length} outputs for ${items?.length} questions`);
  }
  const hops = [...new Set(items.map((i) => i.hops).filter((h): h is number => h !== undefined))].sort((a, b) => a - b);
  const perHop = hops.map((h) => {
    const idx = items.map((item, i) => (item.hops === h ? i : -1)).filter((i) => i >= 0);
    return { hops: h, questions: idx.length, ...scoresOf(idx.map((i) => items[i]!), idx.map((i) => outputs[i]!)) };
  });
  return { scores: scoresOf(items, outputs), perHop };
}

async function loadQa(o: ReturnType<typeof resolve>): Promise<{ items: QaItem[]; corpus: CorpusDoc[]; qaName: string; corpusName: string }> {
  if (o.qa === undefined) {
    const qa = syntheticQa(makeSyntheticDataset(DEMO_DATASET));
    return { items: qa.questions.test, corpus: qa.corpus, qaName: `synthetic (seed ${DEMO_DATASET.seed})`, corpusName: `synthetic (seed ${DEMO_DATASET.seed})` };
  }
  const { items } = await readQaJsonl(o.qa);
  const corpus = await readCorpus(o.corpus!);
  return { items, corpus: corpus.docs, qaName: o.qa, corpusName: o.corpus! };
}

async function measure(method: QaMethod, items: QaItem[], o: ReturnType<typeof resolve>): Promise<QaMethodResult> {
  const outputs: QaOutput[] = [];
  const bar = startProgress(`answer ${method.name}`, items.length, { unit: 'questions', silent: !o.progress });
  const start = process.hrtime.bigint();
  try {
    for (let i = 0; i < items.length; i += o.sequences) {
      const chunk = items.slice(i, i + o.sequences);
      outputs.push(...(await method.answer(chunk)));
      bar.tick(chunk.length);
    }
  } finally {
    bar.stop();
  }
  const seconds = msSince(start) / 1000;
  const latencies: number[] = [];
  for (const item of items.slice(0, o.latencyQuestions)) {
    const t = process.hrtime.bigint();
    await method.answer([item]);
    latencies.push(msSince(t));
  }
  return {
    name: method.name as QaMethodName,
    ...scoreQa(items, outputs),
    generatedTokensPerQuestion: mean(outputs.map((x) => x.generatedTokens)),
    promptTokensPerQuestion: mean(outputs.map((x) => x.promptTokens)),
    searchesPerQuestion: mean(outputs.map((x) => x.searches)),
    questionsPerSecond: rate(items.length, seconds),
    latency: summarizeLatency(latencies),
    answers: outputs.map((x) => x.answer),
  };
}

/**
 * Runs `--task qa`: every method answers the same questions (batched as parallel sequences for
 * quality and throughput, then the first `latencyQuestions` one at a time for latency) and is
 * scored by EM, F1 and substring EM, overall and per hop. With no options: the synthetic dataset's
 * multi-hop test questions over its corpus, BM25, and the untrained demo model.
 *
 * @example const r = await runQaBench({ qa: 'test.jsonl', corpus: 'corpus.jsonl', model: 'm.gguf' }); r.methods[1].scores.em
 */
export async function runQaBench(options: QaBenchOptions = {}): Promise<QaBenchReport> {
  const o = resolve(options);
  const startedAt = new Date();
  const wall = process.hrtime.bigint();
  const loaded = await loadBenchModel(o);
  let session: Session | null = null;
  let agent: Agent | null = null;
  let opened: OpenedRetriever | null = null;
  try {
    const data = await loadQa(o);
    const items = o.limitQuestions === null ? data.items : data.items.slice(0, o.limitQuestions);
    o.log(`qa ${data.qaName}: ${items.length} questions; corpus ${data.corpusName}: ${data.corpus.length} documents`);
    const lora = o.lora === undefined ? undefined : await loaded.model.loadLora(o.lora);
    opened = await openQaRetriever(o.retriever, data.corpus, loaded.model, { sequences: o.sequences, threads: o.threads, lora });
    if (opened.encodedDocs > 0) o.log(`encoded ${opened.encodedDocs} documents for ${o.retriever} retrieval in ${opened.encodeSeconds.toFixed(1)} s`);
    const retriever = opened.retriever;
    // Room per sequence for the RAG prompt (k short documents) and the answer budget.
    const perSequence = Math.min(loaded.model.info.contextLength, 1024 + 256 * o.topk + o.maxTokens);
    session = await loaded.model.createSession({ sequences: o.sequences, contextSize: perSequence * o.sequences, ...(o.threads === null ? {} : { threads: o.threads }) });
    if (lora) session.setLoras([{ adapter: lora, scale: 1 }]);
    // One untimed decode of every sequence first: the first decodes of a session pay one-off costs
    // (buffer allocation, weight repacking) that would otherwise be charged to whichever method runs first.
    await session.generate(Array.from({ length: o.sequences }, () => 'Answer the given question.'), { maxTokens: 2 });
    if (o.methods.includes('agent')) {
      // The agent's own session: room per sequence for the prompt and every turn with its documents.
      agent = await Agent.create(loaded.model, {
        retriever, topk: o.topk, maxTurns: o.maxTurns, maxTurnTokens: o.maxTokens, sequences: o.sequences, lora,
        contextPerSequence: Math.min(loaded.model.info.contextLength, 1024 + o.maxTurns * (o.maxTokens + 256 * o.topk)),
        ...(o.threads === null ? {} : { threads: o.threads }),
      });
    }
    const methods: QaMethod[] = o.methods.map((m) => (m === 'direct'
      ? directMethod({ session: session!, maxTokens: o.maxTokens })
      : m === 'rag' ? ragMethod({ session: session!, retriever, topk: o.topk, maxTokens: o.maxTokens }) : agentMethod(agent!)));
    const results: QaMethodResult[] = [];
    for (const m of methods) results.push(await measure(m, items, o));
    const hops: Record<string, number> = {};
    for (const i of items) if (i.hops !== undefined) hops[String(i.hops)] = (hops[String(i.hops)] ?? 0) + 1;
    const notes: string[] = [];
    if (loaded.summary.trained === false) notes.push(UNTRAINED_NOTE.replace('dense rows are', 'answers are'));
    const timed = Math.min(o.latencyQuestions, items.length);
    if (timed < items.length) notes.push(`latency: the first ${timed} of ${items.length} questions answered one at a time per method`);
    return {
      version: 1, task: 'qa', startedAt: startedAt.toISOString(), wallSeconds: msSince(wall) / 1000,
      dataset: { qa: data.qaName, corpus: data.corpusName, docs: data.corpus.length, questions: items.length, questionIds: items.map((i) => i.id), hops },
      model: loaded.summary,
      retriever: retriever.name,
      settings: {
        methods: o.methods, topk: o.topk, maxTokens: o.maxTokens, maxTurns: o.maxTurns, limitQuestions: o.limitQuestions, latencyQuestions: o.latencyQuestions,
        sequences: o.sequences, threads: o.threads,
      },
      methods: results,
      notes,
      host: { platform: process.platform, arch: process.arch, cpus: availableParallelism(), threads: session.info.threads ?? null, node: process.version },
    };
  } finally {
    agent?.dispose();
    session?.dispose();
    opened?.dispose();
    loaded.model.dispose();
  }
}

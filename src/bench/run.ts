import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { writeRun, type Run } from '../eval/trec';
import { Embedder } from '../engine/embedder';
import { Model } from '../engine/model';
import { SearchR3Error } from '../util/errors';
import { startProgress } from '../util/progress';
import { openBeirDataset, syntheticBenchDataset, type BenchDataset } from './dataset';
import { DEMO_MODEL, ensureDemoModel } from './demo';
import { denseRetriever, encodeCorpus, MAX_DOCUMENT_TOKENS, type DenseIndex } from './dense';
import { resolveBenchOptions, type BenchOptions, type ResolvedBenchOptions } from './options';
import { scoreRun } from './quality';
import { bm25Retriever, type ProgressFactory, type Retriever } from './retrievers';
import { mean, msSince, peakRssMiB, rate, summarizeLatency } from './stats';
import { TOP_K, type BenchReport, type ModelInfoSummary, type RetrieverResult } from './types';

/** The caveat printed with every result of the untrained demo model. */
export const UNTRAINED_NOTE = 'untrained demo model: dense rows are a floor, not a result';

/** A model the bench loaded, with what its report says about it. */
export interface LoadedModel {
  model: Model;
  summary: ModelInfoSummary;
}

/**
 * Loads `--model`, or generates (or finds cached) the untrained demo model when none is given.
 * Shared by the retrieval bench and `--task qa`.
 */
export async function loadBenchModel(o: Pick<ResolvedBenchOptions, 'model' | 'lora' | 'log'>): Promise<LoadedModel> {
  let path = o.model;
  let origin: ModelInfoSummary['origin'] = 'file';
  if (path === undefined) {
    origin = 'demo';
    const demo = await ensureDemoModel();
    o.log(`${demo.generated ? 'generated' : 'using cached'} demo model ${demo.path} (${DEMO_MODEL.layers} layers, n_embd ${DEMO_MODEL.embd}, random weights)`);
    path = demo.path;
  }
  const model = await Model.load(path);
  const info = model.info;
  return {
    model,
    summary: {
      path: info.path, origin, trained: origin === 'demo' ? false : null, lora: o.lora ?? null,
      architecture: info.architecture, layers: info.nLayer, nEmbd: info.nEmbd, parameters: info.parameters,
    },
  };
}

async function openEmbedder(model: Model, o: ResolvedBenchOptions): Promise<Embedder> {
  const lora = o.lora === undefined ? undefined : await model.loadLora(o.lora);
  // Room for a full-length document, or a query plus its reasoning budget, whichever is longer.
  const contextPerSequence = MAX_DOCUMENT_TOKENS + 64 + (o.retrievers.includes('reason') ? o.maxReasoningTokens : 0);
  return Embedder.create(model, {
    maxReasoningTokens: o.maxReasoningTokens, sequences: o.sequences, contextPerSequence, lora, ...(o.threads === null ? {} : { threads: o.threads }),
  });
}

/** Runs one retriever over the queries: batched for quality and throughput, then one by one for latency. */
async function measure(retriever: Retriever, dataset: BenchDataset, o: ResolvedBenchOptions, progress: ProgressFactory): Promise<{ result: RetrieverResult; run: Run }> {
  const { queries } = dataset;
  const start = process.hrtime.bigint();
  const batch = await retriever.searchAll(queries, progress);
  const batchSeconds = msSince(start) / 1000;
  const run: Run = { runid: retriever.name, queries: new Map() };
  queries.forEach((q, i) => {
    if (batch.hits[i]!.length > 0) run.queries.set(q.id, batch.hits[i]!);
  });
  const sample = queries.slice(0, o.latencyQueries);
  const bar = progress(`latency ${retriever.name}`, sample.length, 'queries');
  const latencies: number[] = [];
  try {
    for (const q of sample) {
      const t = process.hrtime.bigint();
      await retriever.searchOne(q);
      latencies.push(msSince(t));
      bar.tick();
    }
  } finally {
    bar.stop();
  }
  const finishes: Record<string, number> = {};
  if (retriever.name === 'reason') for (const f of batch.finishes) finishes[f] = (finishes[f] ?? 0) + 1;
  return {
    run,
    result: {
      name: retriever.name,
      quality: scoreRun(dataset.qrels, run),
      speed: {
        docsPerSecond: retriever.docsPerSecond,
        indexSeconds: retriever.indexSeconds,
        queriesPerSecond: rate(queries.length, batchSeconds),
        reasoningTokensPerQuery: mean(batch.reasoningTokens),
        latency: summarizeLatency(latencies),
        peakRssMiB: peakRssMiB(),
      },
      queriesWithResults: run.queries.size,
      finishes,
    },
  };
}

/**
 * Runs the benchmark: loads the dataset (or generates the synthetic default), indexes the corpus
 * for each retriever, retrieves the top 100 for every judged test query, scores the runs with
 * src/eval, and times throughput and per-query latency. With no options it runs the embedded
 * default: the synthetic dataset and the (untrained) demo model, every retriever.
 *
 * @example
 * const report = await runBench({ retrievers: ['bm25', 'direct'], limitQueries: 20, progress: false });
 * report.retrievers[0].quality.ndcg10;
 */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const o = resolveBenchOptions(options);
  // The run files are written last; their directory is made first, so a bad --runs fails in seconds.
  if (o.runsDir !== undefined) {
    await mkdir(o.runsDir, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
      throw new SearchR3Error('ERR_FILE', `cannot create the runs directory ${o.runsDir}: ${e.code === 'EEXIST' || e.code === 'ENOTDIR' ? 'a file is in the way' : e.message}`);
    });
  }
  const startedAt = new Date();
  const wall = process.hrtime.bigint();
  const progress: ProgressFactory = (label, total, unit) => startProgress(label, total, { unit, silent: !o.progress });
  const dataset = o.dataset === undefined ? syntheticBenchDataset(o.limitQueries) : await openBeirDataset(o.dataset, o.limitQueries);
  o.log(`dataset ${dataset.name}: ${dataset.docCount} documents, ${dataset.queries.length} judged test queries`);

  const dense = o.retrievers.filter((r) => r !== 'bm25');
  // The model loads before any indexing, so a bad --model or --lora fails in seconds, not after BM25.
  const loaded = dense.length > 0 ? await loadBenchModel(o) : null;
  let embedder: Embedder | null = null;
  try {
    const results: RetrieverResult[] = [];
    const runs: Run[] = [];
    let denseIndex: DenseIndex | null = null;
    if (loaded) embedder = await openEmbedder(loaded.model, o);
    for (const name of o.retrievers) {
      let retriever: Retriever;
      if (name === 'bm25') {
        retriever = await bm25Retriever(dataset, progress);
      } else {
        denseIndex ??= await encodeCorpus(embedder!, dataset, o.maxReasoningTokens, progress);
        retriever = denseRetriever(denseIndex, name);
      }
      const { result, run } = await measure(retriever, dataset, o, progress);
      results.push(result);
      runs.push(run);
    }
    if (o.runsDir !== undefined) {
      for (const run of runs) await writeRun(join(o.runsDir, `${run.runid}.run`), run);
    }
    const notes: string[] = [];
    if (loaded?.summary.trained === false) notes.push(UNTRAINED_NOTE);
    const timed = Math.min(o.latencyQueries, dataset.queries.length);
    if (timed < dataset.queries.length) notes.push(`latency: the first ${timed} of ${dataset.queries.length} queries timed one at a time per retriever`);
    if (denseIndex && denseIndex.truncatedDocs > 0) notes.push(`${denseIndex.truncatedDocs} documents were cut to ${MAX_DOCUMENT_TOKENS} tokens for the dense retrievers`);
    return {
      version: 1,
      startedAt: startedAt.toISOString(),
      wallSeconds: msSince(wall) / 1000,
      dataset: {
        name: dataset.name, dir: dataset.dir, split: 'test', docs: dataset.docCount, queries: dataset.queries.length,
        queryIds: dataset.queries.map((q) => q.id), truncatedDocs: denseIndex?.truncatedDocs ?? 0,
      },
      model: loaded?.summary ?? null,
      settings: {
        retrievers: o.retrievers, maxReasoningTokens: o.maxReasoningTokens, limitQueries: o.limitQueries, latencyQueries: o.latencyQueries,
        threads: o.threads, sequences: o.sequences, topK: TOP_K,
      },
      retrievers: results,
      notes,
      host: { platform: process.platform, arch: process.arch, cpus: availableParallelism(), threads: embedder?.session.info.threads ?? null, node: process.version },
    };
  } finally {
    embedder?.dispose();
    loaded?.model.dispose();
  }
}

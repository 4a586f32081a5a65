import type { BeirQuery } from '../eval/beir';
import type { ScoredDoc } from '../eval/trec';
import { Bm25Retriever } from '../retrieval/bm25';
import type { RetrieveResult, TextRetriever } from '../retrieval/types';
import { Bm25Index } from '../store/bm25';
import { SearchR3Error } from '../util/errors';
import type { Progress } from '../util/progress';
import { documentText, type BenchDataset } from './dataset';
import { msSince, rate } from './stats';
import { TOP_K, type RetrieverName } from './types';

/** Starts a progress display; the bench passes a silent one to library callers and tests. */
export type ProgressFactory = (label: string, total: number, unit: string) => Progress;

/** What a retriever returns for all queries at once (the batched path). */
export interface BatchResult {
  /** Per query, in query order: the top documents, best first. */
  hits: ScoredDoc[][];
  /** Per query: reasoning tokens written (all 0 unless the retriever reasons). */
  reasoningTokens: number[];
  /** Per query: how its embedding ended (empty strings for retrievers that do not embed). */
  finishes: string[];
}

/**
 * One retriever over an indexed corpus, as the bench drives it: every query batched for
 * throughput and quality, and one query at a time for latency.
 */
export interface Retriever {
  readonly name: RetrieverName;
  /** Corpus throughput of the index this retriever searches. */
  readonly indexSeconds: number;
  readonly docsPerSecond: number;
  searchAll(queries: BeirQuery[], progress: ProgressFactory): Promise<BatchResult>;
  /** Answers one query the way an interactive caller would (its time is the query latency). */
  searchOne(query: BeirQuery): Promise<ScoredDoc[]>;
}

/**
 * Runs a library retriever the way the bench drives one: every query in one batched call (with a
 * progress bar labelled `label`) and one query at a time for latency, top {@link TOP_K} each.
 *
 * @example const r = benchRetriever('bm25', new Bm25Retriever({ index, contents }), 0.5, 6000, 'search bm25');
 */
export function benchRetriever(name: RetrieverName, retriever: TextRetriever, indexSeconds: number, docsPerSecond: number, label: string): Retriever {
  const toScored = (r: RetrieveResult): ScoredDoc[] => r.docs.map((d) => ({ docno: d.id, score: d.score }));
  return {
    name,
    indexSeconds,
    docsPerSecond,
    async searchAll(queries, progress) {
      const bar = progress(label, queries.length, 'queries');
      let reported = 0;
      try {
        const results = await retriever.retrieve(queries.map((q) => q.text), {
          topk: TOP_K,
          onProgress: (done) => {
            bar.tick(done - reported);
            reported = done;
          },
        });
        return { hits: results.map(toScored), reasoningTokens: results.map((r) => r.reasoningTokens ?? 0), finishes: results.map((r) => r.finish ?? '') };
      } finally {
        bar.stop();
      }
    },
    async searchOne(query) {
      const [result] = await retriever.retrieve([query.text], { topk: TOP_K });
      return toScored(result!);
    },
  };
}

/**
 * Indexes the corpus with BM25 (Anserini's k1 = 0.9, b = 0.4) and returns it as a retriever.
 *
 * @example const bm25 = await bm25Retriever(dataset, progress); await bm25.searchOne(query);
 */
export async function bm25Retriever(dataset: BenchDataset, progress: ProgressFactory): Promise<Retriever> {
  const index = new Bm25Index();
  const texts = new Map<string, string>();
  const bar = progress('index bm25', dataset.docCount, 'docs');
  const start = process.hrtime.bigint();
  try {
    for await (const doc of dataset.docs()) {
      if (index.has(doc.id)) throw new SearchR3Error('ERR_FORMAT', `dataset ${dataset.name}: corpus has document id "${doc.id}" more than once`);
      const text = documentText(doc);
      index.add(doc.id, text);
      texts.set(doc.id, text);
      bar.tick();
    }
  } finally {
    bar.stop();
  }
  const indexSeconds = msSince(start) / 1000;
  return benchRetriever('bm25', new Bm25Retriever({ index, contents: texts }), indexSeconds, rate(index.size, indexSeconds), 'search bm25');
}

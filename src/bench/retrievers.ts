import type { BeirQuery } from '../eval/beir';
import type { ScoredDoc } from '../eval/trec';
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
 * Indexes the corpus with BM25 (Anserini's k1 = 0.9, b = 0.4) and returns it as a retriever.
 *
 * @example const bm25 = await bm25Retriever(dataset, progress); await bm25.searchOne(query);
 */
export async function bm25Retriever(dataset: BenchDataset, progress: ProgressFactory): Promise<Retriever> {
  const index = new Bm25Index();
  const bar = progress('index bm25', dataset.docCount, 'docs');
  const start = process.hrtime.bigint();
  try {
    for await (const doc of dataset.docs()) {
      if (index.has(doc.id)) throw new SearchR3Error('ERR_FORMAT', `dataset ${dataset.name}: corpus has document id "${doc.id}" more than once`);
      index.add(doc.id, documentText(doc));
      bar.tick();
    }
  } finally {
    bar.stop();
  }
  const indexSeconds = msSince(start) / 1000;
  const search = (q: BeirQuery): ScoredDoc[] => index.search(q.text, TOP_K).map((h) => ({ docno: h.id, score: h.score }));
  return {
    name: 'bm25',
    indexSeconds,
    docsPerSecond: rate(index.size, indexSeconds),
    async searchAll(queries, progressFactory) {
      const queryBar = progressFactory('search bm25', queries.length, 'queries');
      try {
        const hits = queries.map((q) => {
          const h = search(q);
          queryBar.tick();
          return h;
        });
        return { hits, reasoningTokens: queries.map(() => 0), finishes: queries.map(() => '') };
      } finally {
        queryBar.stop();
      }
    },
    async searchOne(query) {
      return search(query);
    },
  };
}

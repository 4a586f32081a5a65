import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { documentText, readBeirCorpus, readBeirQrels, readBeirQueries, type BeirDoc, type BeirQuery } from '../eval/beir';
import { makeSyntheticDataset, type SyntheticOptions } from '../eval/synthetic';
import type { Qrels } from '../eval/trec';
import { SearchR3Error } from '../util/errors';

/**
 * What the bench evaluates: a corpus that can be streamed more than once (BM25 indexing and dense
 * encoding each read it), and the judged test queries with their qrels held in memory.
 */
export interface BenchDataset {
  name: string;
  /** The BEIR directory, or null for an in-memory dataset. */
  dir: string | null;
  /** Number of corpus documents (progress bars need a total before encoding starts). */
  docCount: number;
  /** A fresh pass over the corpus on every call. */
  docs(): AsyncIterable<BeirDoc>;
  /** Test queries that have judgements, in file order, after the limit. */
  queries: BeirQuery[];
  /** Test qrels of exactly those queries. */
  qrels: Qrels;
}

export { documentText };

function restrict(queries: BeirQuery[], qrels: Qrels, limit: number | null): { queries: BeirQuery[]; qrels: Qrels } {
  const judged = queries.filter((q) => qrels.has(q.id));
  const kept = limit === null ? judged : judged.slice(0, limit);
  return { queries: kept, qrels: new Map(kept.map((q) => [q.id, qrels.get(q.id)!])) };
}

/**
 * Opens a BEIR directory for the bench: reads the test qrels and queries, and counts the corpus in
 * one streaming pass, which also checks every line before minutes are spent encoding. A missing
 * directory or file is an ERR_FILE error naming it.
 *
 * @example const ds = await openBeirDataset('data/scifact', 50); ds.queries.length // ≤ 50
 */
export async function openBeirDataset(dir: string, limit: number | null): Promise<BenchDataset> {
  const abs = resolve(dir);
  const st = await stat(abs).catch(() => null);
  if (!st) throw new SearchR3Error('ERR_FILE', `dataset directory ${dir} does not exist`);
  if (!st.isDirectory()) throw new SearchR3Error('ERR_FILE', `dataset ${dir} is not a directory (expected a BEIR folder with corpus.jsonl, queries.jsonl, qrels/test.tsv)`);
  const { qrels } = await readBeirQrels(abs, 'test');
  const all: BeirQuery[] = [];
  for await (const q of readBeirQueries(abs)) all.push(q);
  const picked = restrict(all, qrels, limit);
  if (picked.queries.length === 0) {
    throw new SearchR3Error('ERR_FORMAT', `dataset ${dir}: no query in queries.jsonl has a judgement in qrels/test.tsv`);
  }
  let docCount = 0;
  for await (const _ of readBeirCorpus(abs)) docCount++;
  if (docCount === 0) throw new SearchR3Error('ERR_FORMAT', `dataset ${dir}: corpus.jsonl holds no documents`);
  return { name: basename(abs), dir: abs, docCount, docs: () => readBeirCorpus(abs), ...picked };
}

/** The embedded default dataset's generator settings (src/eval/synthetic.ts defaults, seed fixed). */
export const DEMO_DATASET: Readonly<Required<Pick<SyntheticOptions, 'seed' | 'docs' | 'queries'>>> = Object.freeze({ seed: 1, docs: 300, queries: 200 });

/**
 * The embedded default dataset: the synthetic benchmark generated in memory from a seed, test
 * split only. Nothing is read from disk or downloaded.
 *
 * @example const ds = syntheticBenchDataset(null); ds.docCount // 300
 */
export function syntheticBenchDataset(limit: number | null, options: SyntheticOptions = DEMO_DATASET): BenchDataset {
  const data = makeSyntheticDataset(options);
  const picked = restrict(data.queries.filter((q) => q.split === 'test'), data.qrels.test, limit);
  return {
    name: `synthetic (seed ${options.seed ?? 1})`,
    dir: null,
    docCount: data.corpus.length,
    docs: async function* docs() { yield* data.corpus; },
    ...picked,
  };
}

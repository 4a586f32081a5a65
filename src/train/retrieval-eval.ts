import type { Model } from '../engine/model';
import type { EmbedTemplate } from '../engine/templates';
import { documentText, readBeirCorpus, readBeirQrels, readBeirQueries, type BeirDoc, type BeirQuery } from '../eval/beir';
import { evaluate } from '../eval/metrics';
import type { Qrels, Run } from '../eval/trec';
import { VectorStore } from '../store/vector-store';
import { encodeEmbedText } from './data';
import type { LoraTrainer } from './trainer';

/** A held-out retrieval split: what nDCG is measured on during and after training. */
export interface RetrievalSplit {
  corpus: BeirDoc[];
  queries: BeirQuery[];
  qrels: Qrels;
}

export interface RetrievalScores {
  ndcg10: number;
  recall10: number;
  queries: number;
}

/**
 * Embeds a split with the trainer's current adapter (its own forward graph, no file round trip)
 * and scores exact cosine ranking with trec_eval's nDCG@10 and recall@10.
 *
 * @example
 * const { ndcg10 } = await evaluateRetrieval(trainer, tokenizer, DEFAULT_EMBED_TEMPLATE, split);
 */
export async function evaluateRetrieval(
  trainer: LoraTrainer, tokenizer: Model, template: EmbedTemplate, split: RetrievalSplit,
  options: {
    maxTokens?: number; batch?: number; signal?: AbortSignal;
    /** Embeds the judged queries instead of the trainer's direct form (stage 2 scores `reason` mode this way); unit vectors, in order. */
    queryVectors?: (texts: string[]) => Promise<Float32Array[]>;
  } = {},
): Promise<RetrievalScores> {
  const maxTokens = options.maxTokens ?? 256;
  const batch = options.batch ?? 16;
  const embed = async (side: 'query' | 'document', texts: string[], each: (i: number, v: Float32Array) => void): Promise<void> => {
    for (let i = 0; i < texts.length; i += batch) {
      const sequences = texts.slice(i, i + batch).map((t) => {
        const tokens = encodeEmbedText(tokenizer, template, side, t, maxTokens);
        return { tokens, embedAt: tokens.length - 1 };
      });
      const r = await trainer.forward(sequences, { hidden: true, signal: options.signal });
      r.hidden!.forEach((h, j) => each(i + j, h!));
    }
  };
  // The package's exact store (unit vectors, cosine top-k): the same ranking the bench uses.
  const store = new VectorStore({ dim: trainer.info.nEmbd, capacity: split.corpus.length });
  await embed('document', split.corpus.map(documentText), (i, v) => store.upsert(split.corpus[i]!.id, v, 0));
  const judged = split.queries.filter((q) => split.qrels.has(q.id));
  let queries: Float32Array[] = [];
  if (options.queryVectors) queries = await options.queryVectors(judged.map((q) => q.text));
  else await embed('query', judged.map((q) => q.text), (_, v) => queries.push(v));
  const hits = await store.searchBatch(queries, Math.min(100, store.size));
  const run: Run = { runid: 'search-r3-train', queries: new Map() };
  judged.forEach((q, qi) => run.queries.set(q.id, hits[qi]!.map((h) => ({ docno: h.id, score: h.score }))));
  const e = evaluate(split.qrels, run, { measures: ['ndcg_cut.10', 'recall.10'] });
  return { ndcg10: Number(e.summary.ndcg_cut_10), recall10: Number(e.summary.recall_10), queries: judged.length };
}

/**
 * Reads a held-out split from a BEIR directory: its corpus, queries and test qrels.
 *
 * @example const split = await readRetrievalSplit('data/scifact');
 */
export async function readRetrievalSplit(dir: string): Promise<RetrievalSplit> {
  const corpus = [];
  for await (const d of readBeirCorpus(dir)) corpus.push(d);
  const queries = [];
  for await (const q of readBeirQueries(dir)) queries.push(q);
  return { corpus, queries, qrels: (await readBeirQrels(dir, 'test')).qrels };
}

import type { Model } from '../engine/model';
import type { EmbedTemplate } from '../engine/templates';
import { documentText, type BeirDoc, type BeirQuery } from '../eval/beir';
import { evaluate } from '../eval/metrics';
import type { Qrels, Run } from '../eval/trec';
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
  options: { maxTokens?: number; batch?: number; signal?: AbortSignal } = {},
): Promise<RetrievalScores> {
  const maxTokens = options.maxTokens ?? 256;
  const batch = options.batch ?? 16;
  const embed = async (side: 'query' | 'document', texts: string[]): Promise<Float32Array[]> => {
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += batch) {
      const sequences = texts.slice(i, i + batch).map((t) => {
        const tokens = encodeEmbedText(tokenizer, template, side, t, maxTokens);
        return { tokens, embedAt: tokens.length - 1 };
      });
      const r = await trainer.forward(sequences, { hidden: true, signal: options.signal });
      for (const h of r.hidden!) out.push(normalize(h!));
    }
    return out;
  };
  const judged = split.queries.filter((q) => split.qrels.has(q.id));
  const docs = await embed('document', split.corpus.map(documentText));
  const queries = await embed('query', judged.map((q) => q.text));
  const run: Run = { runid: 'search-r3-train', queries: new Map() };
  judged.forEach((q, qi) => {
    const scored = split.corpus.map((d, di) => ({ docno: d.id, score: dot(queries[qi], docs[di]) }));
    scored.sort((a, b) => b.score - a.score);
    run.queries.set(q.id, scored.slice(0, 100));
  });
  const e = evaluate(split.qrels, run, { measures: ['ndcg_cut.10', 'recall.10'] });
  return { ndcg10: Number(e.summary.ndcg_cut_10), recall10: Number(e.summary.recall_10), queries: judged.length };
}

function normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  return v.map((x) => x * inv);
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

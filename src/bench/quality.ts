import { evaluate } from '../eval/metrics';
import type { Qrels, Run } from '../eval/trec';
import type { Quality } from './types';

/**
 * Scores a run with src/eval (trec_eval's definitions) on the queries of `qrels`. Every query in
 * `qrels` counts, one the retriever found nothing for scoring 0 (trec_eval `-c`): otherwise a
 * retriever would look better for failing to answer hard queries at all.
 *
 * @example scoreRun(qrels, run) // { ndcg10: 0.41, map: 0.33, recall100: 0.9, mrr10: 0.38 }
 */
export function scoreRun(qrels: Qrels, run: Run): Quality {
  const base = evaluate(qrels, run, { measures: ['ndcg_cut.10', 'map', 'recall.100'], averageComplete: true });
  // MRR@10 is recip_rank over each ranking's top 10, which is trec_eval's -M 10.
  const top10 = evaluate(qrels, run, { measures: ['recip_rank'], averageComplete: true, maxDocsPerTopic: 10 });
  return {
    ndcg10: base.summary.ndcg_cut_10 as number,
    map: base.summary.map as number,
    recall100: base.summary.recall_100 as number,
    mrr10: top10.summary.recip_rank as number,
  };
}

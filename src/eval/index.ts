/**
 * Evaluation: trec_eval-exact metrics, TREC and BEIR file formats, QA exact match, and the
 * synthetic benchmark used by `search-r3-bench` and for contrastive fine-tuning.
 */
export { readQrels, readRun, writeRun, formatRun, type Qrels, type Run, type ScoredDoc } from './trec';
export { readLines, MAX_SKIPPED_KEPT, type ReadOptions, type ReadReport, type SkippedLine } from './lines';
export { evaluate, selectMeasures, type EvaluateOptions, type Evaluation, type MeasureFormat } from './metrics';
export { MEASURES, MEASURE_SETS } from './measures';
export { formatFixed, formatTrecEval } from './format';
export { rankDocs } from './ranking';
export { runEvalCli } from './cli';
export {
  readBeirCorpus, readBeirQueries, readBeirQrels, writeBeir, BEIR_SPLITS,
  type BeirDoc, type BeirQuery, type BeirSplit, type BeirDataset, type RecordStream,
} from './beir';
export { normalizeAnswer, exactMatch, substringMatch, f1Score, extractAnswer } from './qa';
export {
  makeSyntheticDataset, writeSyntheticDataset,
  type SyntheticDataset, type SyntheticQuery, type SyntheticKind, type SyntheticOptions,
} from './synthetic';
export { makeCatalogTask, type CatalogTask, type CatalogTaskOptions } from './synthetic-catalog';
export { readQaJsonl, writeQaJsonl, writeFlashragCorpus, syntheticQa, writeSyntheticQa, type QaItem, type SyntheticQa } from './qa-data';

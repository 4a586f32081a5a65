/**
 * The benchmark behind `search-r3-bench`: BM25, direct and reasoning dense retrieval on a BEIR
 * directory or the embedded synthetic default, scored with src/eval and timed, with text, JSON and
 * HTML output.
 */
export { runBench, UNTRAINED_NOTE } from './run';
export { resolveBenchOptions, type BenchOptions, type ResolvedBenchOptions } from './options';
export { openBeirDataset, syntheticBenchDataset, documentText, DEMO_DATASET, type BenchDataset } from './dataset';
export { ensureDemoModel, cacheDir, demoModelFileName, DEMO_MODEL, type DemoModel } from './demo';
export { scoreRun } from './quality';
export { formatReport, formatSig, textTable } from './table';
export { benchReportHtml } from './html';
export { groupedBarChart, latencyChart } from './svg';
export {
  RETRIEVER_NAMES, QUALITY_MEASURES, TOP_K,
  type RetrieverName, type Quality, type Speed, type Latency, type RetrieverResult, type BenchReport, type DatasetInfo, type ModelInfoSummary, type BenchSettings,
} from './types';
export { runQaBench, scoreQa, type QaBenchOptions } from './qa';
export { formatQaReport, qaReportHtml } from './qa-report';
export { QA_METHOD_NAMES, QA_MEASURES, type QaMethodName, type QaBenchReport, type QaMethodResult, type QaScores, type HopScores } from './qa-types';

/**
 * search-r3: run, evaluate and post-train reasoning embedding models on llama.cpp.
 * This file is the only public entry point.
 */
export { SearchR3Error, type ErrorCode } from './util/errors';
export { Model, EMBED_TOKEN_TEXT, type ModelInfo, type ModelLoadOptions, type TokenizeOptions, type ChatMessage } from './engine/model';
export {
  Session, type SessionOptions, type SamplingOptions, type GenerateOptions, type Generation, type FinishReason, type LoraAttachment,
} from './engine/session';
export { LoraAdapter } from './engine/lora';
export {
  Sequence, type SequenceGenerateOptions, type SequenceInput, type SequenceStep, type SequenceGeneration, type SequenceStepResult,
} from './engine/sequence';
export {
  Embedder, type EmbedMode, type EmbedFinish, type EmbedResult, type EmbedderOptions, type EmbedCallOptions,
} from './engine/embedder';
export { buildEmbedPrompt, fitEmbedPrompt, DEFAULT_EMBED_TEMPLATE, SEARCH_R3_0_TEMPLATE, EMBED_TEMPLATES, EMBED_TEMPLATE_NAMES, resolveEmbedTemplate, type EmbedTemplate, type FittedPrompt, type LongTextPolicy, type PromptSide } from './engine/templates';
export { systemInfo, setLogLevel } from './engine/system';
export {
  readGguf, validateGguf, writeGguf, makeModel, planModel, addEmbedToken, ggufInfo, MODEL_PRESETS, MODEL_PRESET_NAMES,
  type GgufFile, type GgufInfo, type MakeModelOptions, type ModelPlan, type ModelPresetName, type AddEmbedTokenResult,
} from './gguf/index';
export {
  evaluate, readQrels, readRun, writeRun, formatTrecEval, selectMeasures, MEASURES,
  readBeirCorpus, readBeirQueries, readBeirQrels, writeBeir, makeSyntheticDataset, writeSyntheticDataset, makeCatalogTask,
  normalizeAnswer, exactMatch, f1Score, extractAnswer,
  type Qrels, type Run, type ScoredDoc, type Evaluation, type EvaluateOptions, type BeirDoc, type BeirQuery, type BeirSplit,
  type SyntheticDataset, type SyntheticOptions, type CatalogTask, type CatalogTaskOptions,
} from './eval/index';
export {
  VectorStore, HnswStore, Bm25Index, createEnglishAnalyzer, ENGLISH_STOP_WORDS,
  type VectorStoreOptions, type HnswStoreOptions, type Bm25Options, type Bm25Hit, type SearchHit, type SearchOptions,
  type StalenessBucket, type StoredVector, type VectorIndex,
} from './store/index';
export {
  LoraTrainer, LORA_MODULES, LORA_TARGETS, adapterTargets,
  type LoraModule, type LoraConfig, type LoraTrainerOptions, type TrainerInfo, type LossPart, type AccumulateResult,
  type StepOptions, type StepResult, type ForwardOptions, type ForwardResult, type TrainerState,
} from './train/trainer';
export { packBatch, type TrainSequence, type LossOptions, type GrpoLossOptions } from './train/batch';
export {
  readPairsJsonl, readBeirPairs, loadTrainingData, encodePair, encodeEmbedText, fitTrainingData, makeRetrievalTask,
  type PairRecord, type EncodedPair, type RetrievalTask, type RetrievalTaskOptions,
} from './train/data';
export { trainStage1, type Stage1StepLog, type Stage1Result, type Stage1Hooks } from './train/stage1';
export type { RunPhase, TrainHooks } from './train/run';
export { resolveStage1, stage1DefaultLr, STAGE1_LR_RULE, type Stage1Options, type Stage1LossWeights } from './train/stage1-config';
export { evaluateRetrieval, type RetrievalSplit, type RetrievalScores } from './train/retrieval-eval';
export { lrAt, resolveLrSchedule, LR_SCHEDULE_KINDS, type LrScheduleKind, type LrScheduleOptions } from './train/schedule';
export {
  writeLoraAdapter, readLoraAdapter, writeTrainState, readTrainState,
  type NamedTensor, type LoraAdapterFile, type TrainStateFile,
} from './train/checkpoint';
export {
  REWARD_FUNCTIONS, REWARD_DEFAULTS, parseRewardSpec, computeRewards, groupAdvantages, rewardAgreement,
  dcgReward, mrrReward, recallReward, formatReward,
  type Relevance, type ScoredRollout, type RewardFunction, type RewardTerm,
} from './train/rewards';
export {
  CorpusEnvironment, parseRefresh,
  type CorpusDoc as EnvironmentDoc, type EncodeDocuments, type RefreshPolicy, type RefreshStats, type CorpusEnvironmentOptions,
} from './train/rl-env';
export { runBench, benchReportHtml, type BenchOptions } from './bench/index';
export {
  runQaBench, scoreQa, formatQaReport, qaReportHtml, QA_METHOD_NAMES,
  type QaBenchOptions, type QaMethodName, type QaBenchReport, type QaMethodResult, type QaScores, type HopScores,
} from './bench/index';
export {
  Bm25Retriever, DenseRetriever, HybridRetriever, HttpRetriever, fuseRankings, RRF_K, HYBRID_DEPTH, MAX_TOPK,
  type TextRetriever, type RetrievedDoc, type RetrieveResult, type RetrieveOptions, type DocumentContents,
  type Bm25RetrieverOptions, type DenseRetrieverOptions, type HybridRetrieverOptions, type HttpRetrieverOptions,
} from './retrieval/index';
export {
  DocumentIndex, readCorpus, titledContents, TEXT_EXTENSIONS,
  type Corpus, type CorpusDoc, type CorpusKind, type BuildOptions, type OpenOptions, type OpenWithModelOptions, type UpdateOptions,
  type UpdateReport, type IndexInfo, type IndexRetrieverOptions, type CorpusInput, type CheckpointPhase, type EncoderIdentity, type FileRef,
  type IndexSettings,
} from './docindex/index';
export { EmbedQueue, EMBED_QUEUE_DEFAULTS, type EmbedQueueOptions, type EmbedQueueCallOptions, type EmbedSide } from './engine/embed-queue';
export { createServer, SERVER_DEFAULTS, type ServerOptions, type SearchR3Server } from './server/server';
export * from './agent/index';
export {
  readQaJsonl, writeQaJsonl, writeFlashragCorpus, syntheticQa, writeSyntheticQa, type QaItem, type SyntheticQa,
} from './eval/qa-data';
export { trainStage2, type Stage2StepLog, type Stage2Result, type Stage2Hooks } from './train/stage2';
export { resolveStage2, STAGE2_DEFAULTS, type Stage2Options, type Stage2LossWeights } from './train/stage2-config';
export { trainSearchR1, type SearchR1StepLog, type SearchR1Result, type SearchR1Hooks } from './train/search-r1';
export { resolveSearchR1, SEARCH_R1_DEFAULTS, type SearchR1Options, type CollapseRule } from './train/search-r1-config';
export { collapseCheck, rolloutSignals, type RolloutSignals, type CollapseInput, type CollapseState } from './train/search-r1-signals';
export { accumulateTrajectories, modelLogprobs } from './train/search-r1-update';
export { accumulateGrpo, grpoLoss, LOGP_TOLERANCE, type GrpoPass } from './train/grpo-update';

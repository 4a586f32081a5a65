/**
 * The persistent document index: corpora (BEIR, FlashRAG JSONL, folders of text files) encoded
 * once, updated incrementally, searched through the library's retrievers.
 */
export { readCorpus, titledContents, TEXT_EXTENSIONS, type Corpus, type CorpusDoc, type CorpusKind } from './corpus';
export {
  DocumentIndex,
  type BuildOptions, type OpenOptions, type OpenWithModelOptions, type UpdateOptions, type UpdateReport, type IndexInfo,
  type IndexRetrieverOptions, type CorpusInput, type CheckpointPhase,
} from './document-index';
export type { EncoderIdentity, FileRef } from './identity';
export type { IndexSettings } from './files';

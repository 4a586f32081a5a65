import type { BeirDoc } from '../eval/beir';
import type { EmbedMode, Embedder } from '../engine/embedder';
import { DenseRetriever } from '../retrieval/dense';
import { documentTokenBudget, encodeChunkSize, encodeDocuments, queryTokenBudgets } from '../retrieval/encode';
import { VectorStore } from '../store/vector-store';
import { SearchR3Error } from '../util/errors';
import { documentText, type BenchDataset } from './dataset';
import { benchRetriever, type ProgressFactory, type Retriever } from './retrievers';
import { msSince, rate } from './stats';

export { MAX_DOCUMENT_TOKENS, fitText } from '../retrieval/encode';

/**
 * The corpus encoded once with an {@link Embedder} into an exact vector store; the `direct` and
 * `reason` retrievers both search it (documents are always embedded directly, as in Search-R3).
 */
export interface DenseIndex {
  embedder: Embedder;
  store: VectorStore;
  /** Each document's text, by id (what a retrieved document's `contents` shows). */
  texts: Map<string, string>;
  encodeSeconds: number;
  docsPerSecond: number;
  truncatedDocs: number;
  /** Body tokens a query may have before it is cut (room for the prompt and, in reason mode, the budget). */
  maxQueryTokens: Record<EmbedMode, number>;
}

/**
 * Encodes the corpus with `embedder` (direct document embeddings) into a new exact vector store.
 * `maxReasoningTokens` reserves room in each sequence for reason-mode queries.
 *
 * @example const index = await encodeCorpus(embedder, dataset, 64, progress); index.store.size
 */
export async function encodeCorpus(embedder: Embedder, dataset: BenchDataset, maxReasoningTokens: number, progress: ProgressFactory): Promise<DenseIndex> {
  const perSeq = embedder.session.info.contextPerSequence;
  const docRoom = documentTokenBudget(embedder);
  const maxQueryTokens = queryTokenBudgets(embedder, maxReasoningTokens);
  if (docRoom < 16 || maxQueryTokens.reason < 16) {
    throw new SearchR3Error('ERR_CONTEXT', `a sequence of ${perSeq} tokens leaves too little room for documents (${docRoom}) or reasoning queries (${maxQueryTokens.reason}); lower --max-reasoning-tokens`);
  }
  const store = new VectorStore({ dim: embedder.model.info.nEmbd, capacity: dataset.docCount });
  const texts = new Map<string, string>();
  const bar = progress('encode corpus', dataset.docCount, 'docs');
  const start = process.hrtime.bigint();
  let truncatedDocs = 0;
  let pending: BeirDoc[] = [];
  const flush = async (): Promise<void> => {
    const encoded = await encodeDocuments(embedder, pending.map(documentText), docRoom, { onProgress: (n) => bar.tick(n) });
    pending.forEach((d, i) => {
      store.add(d.id, encoded.vectors[i]!, 0);
      texts.set(d.id, documentText(d));
      if (encoded.truncated[i]) truncatedDocs++;
    });
    pending = [];
  };
  try {
    for await (const doc of dataset.docs()) {
      if (store.has(doc.id) || pending.some((d) => d.id === doc.id)) {
        throw new SearchR3Error('ERR_FORMAT', `dataset ${dataset.name}: corpus has document id "${doc.id}" more than once`);
      }
      pending.push(doc);
      if (pending.length >= encodeChunkSize(embedder)) await flush();
    }
    if (pending.length > 0) await flush();
  } finally {
    bar.stop();
  }
  const encodeSeconds = msSince(start) / 1000;
  return { embedder, store, texts, encodeSeconds, docsPerSecond: rate(store.size, encodeSeconds), truncatedDocs, maxQueryTokens };
}

/**
 * The library's {@link DenseRetriever} over an encoded corpus as a bench retriever: queries embedded
 * in `mode` (`direct`: the prompt ends in `<|embed_token|>`; `reason`: the model writes an analysis
 * first), top 100 by cosine.
 *
 * @example const reason = denseRetriever(index, 'reason'); await reason.searchAll(queries, progress);
 */
export function denseRetriever(index: DenseIndex, mode: EmbedMode): Retriever {
  const dense = new DenseRetriever({ embedder: index.embedder, store: index.store, contents: index.texts, mode, queryTokens: index.maxQueryTokens });
  return benchRetriever(mode, dense, index.encodeSeconds, index.docsPerSecond, mode === 'reason' ? 'reason queries' : 'embed queries');
}

import type { BeirDoc, BeirQuery } from '../eval/beir';
import type { ScoredDoc } from '../eval/trec';
import type { EmbedMode, Embedder } from '../engine/embedder';
import type { Model } from '../engine/model';
import { VectorStore } from '../store/vector-store';
import { SearchR3Error } from '../util/errors';
import { documentText, type BenchDataset } from './dataset';
import type { ProgressFactory, Retriever } from './retrievers';
import { msSince, rate } from './stats';
import { TOP_K } from './types';

/** Documents are cut to this many tokens of body text, BEIR's usual dense-encoder limit. */
export const MAX_DOCUMENT_TOKENS = 512;

/**
 * Cuts `text` so that its tokens number at most `maxTokens`; returns it unchanged when it fits.
 * A byte-level BPE token covers at least one UTF-8 byte, so texts with no more bytes than
 * `maxTokens` are never tokenized (most documents of most corpora).
 *
 * @example fitText(model, longPassage, 500).truncated // true
 */
export function fitText(model: Model, text: string, maxTokens: number): { text: string; truncated: boolean } {
  if (Buffer.byteLength(text) <= maxTokens) return { text, truncated: false };
  const tokens = model.tokenize(text, { addSpecial: false, parseSpecial: false });
  if (tokens.length <= maxTokens) return { text, truncated: false };
  // Detokenizing then re-tokenizing can merge differently at the cut; a few tokens of slack absorb it.
  return { text: model.detokenize(tokens.subarray(0, Math.max(1, maxTokens - 4))), truncated: true };
}

/**
 * The corpus encoded once with an {@link Embedder} into an exact vector store; the `direct` and
 * `reason` retrievers both search it (documents are always embedded directly, as in Search-R3).
 */
export interface DenseIndex {
  embedder: Embedder;
  store: VectorStore;
  encodeSeconds: number;
  docsPerSecond: number;
  truncatedDocs: number;
  /** Body tokens a query may have before it is cut (room for the prompt and, in reason mode, the budget). */
  maxQueryTokens: Record<EmbedMode, number>;
}

/** How many documents go to the embedder per call: enough to keep every sequence busy. */
function encodeChunk(embedder: Embedder): number {
  return embedder.session.info.sequences * 8;
}

/**
 * Encodes the corpus with `embedder` (direct document embeddings) into a new exact vector store.
 * `maxReasoningTokens` reserves room in each sequence for reason-mode queries.
 *
 * @example const index = await encodeCorpus(embedder, dataset, 64, progress); index.store.size
 */
export async function encodeCorpus(embedder: Embedder, dataset: BenchDataset, maxReasoningTokens: number, progress: ProgressFactory): Promise<DenseIndex> {
  const perSeq = embedder.session.info.contextPerSequence;
  const overhead = (side: 'document' | 'query' | 'reason') => embedder.promptFor('', side).length;
  const docRoom = Math.min(MAX_DOCUMENT_TOKENS, perSeq - overhead('document'));
  const maxQueryTokens = { direct: perSeq - overhead('query'), reason: perSeq - overhead('reason') - maxReasoningTokens - 2 };
  if (docRoom < 16 || maxQueryTokens.reason < 16) {
    throw new SearchR3Error('ERR_CONTEXT', `a sequence of ${perSeq} tokens leaves too little room for documents (${docRoom}) or reasoning queries (${maxQueryTokens.reason}); lower --max-reasoning-tokens`);
  }
  const store = new VectorStore({ dim: embedder.model.info.nEmbd, capacity: dataset.docCount });
  const bar = progress('encode corpus', dataset.docCount, 'docs');
  const start = process.hrtime.bigint();
  let truncatedDocs = 0;
  let pending: BeirDoc[] = [];
  const flush = async (): Promise<void> => {
    const texts = pending.map((d) => {
      const fit = fitText(embedder.model, documentText(d), docRoom);
      if (fit.truncated) truncatedDocs++;
      return fit.text;
    });
    let reported = 0;
    const results = await embedder.embedDocuments(texts, {
      onProgress: (done) => {
        bar.tick(done - reported);
        reported = done;
      },
    });
    results.forEach((r, i) => store.add(pending[i]!.id, r.vector, 0));
    pending = [];
  };
  try {
    for await (const doc of dataset.docs()) {
      if (store.has(doc.id) || pending.some((d) => d.id === doc.id)) {
        throw new SearchR3Error('ERR_FORMAT', `dataset ${dataset.name}: corpus has document id "${doc.id}" more than once`);
      }
      pending.push(doc);
      if (pending.length >= encodeChunk(embedder)) await flush();
    }
    if (pending.length > 0) await flush();
  } finally {
    bar.stop();
  }
  const encodeSeconds = msSince(start) / 1000;
  return { embedder, store, encodeSeconds, docsPerSecond: rate(store.size, encodeSeconds), truncatedDocs, maxQueryTokens };
}

function toScored(hits: { id: string; score: number }[]): ScoredDoc[] {
  return hits.map((h) => ({ docno: h.id, score: h.score }));
}

/**
 * A dense retriever over an encoded corpus: queries embedded in `mode` (`direct`: the prompt ends
 * in `<|embed_token|>`; `reason`: the model writes an analysis first), top 100 by cosine.
 *
 * @example const reason = denseRetriever(index, 'reason'); await reason.searchAll(queries, progress);
 */
export function denseRetriever(index: DenseIndex, mode: EmbedMode): Retriever {
  const { embedder, store } = index;
  const textOf = (q: BeirQuery): string => fitText(embedder.model, q.text, index.maxQueryTokens[mode]).text;
  return {
    name: mode,
    indexSeconds: index.encodeSeconds,
    docsPerSecond: index.docsPerSecond,
    async searchAll(queries, progress) {
      const bar = progress(mode === 'reason' ? 'reason queries' : 'embed queries', queries.length, 'queries');
      let reported = 0;
      let results;
      try {
        results = await embedder.embed(queries.map(textOf), {
          mode,
          onProgress: (done) => {
            bar.tick(done - reported);
            reported = done;
          },
        });
      } finally {
        bar.stop();
      }
      const hits = await store.searchBatch(results.map((r) => r.vector), TOP_K);
      return { hits: hits.map(toScored), reasoningTokens: results.map((r) => r.reasoningTokens), finishes: results.map((r) => r.finish) };
    },
    async searchOne(query) {
      const [r] = await embedder.embed([textOf(query)], { mode });
      return toScored(await store.search(r!.vector, TOP_K));
    },
  };
}

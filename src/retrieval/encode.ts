// Document encoding shared by the bench and the document index: fit each text to the document
// budget, embed in chunks that keep every sequence busy, and count what had to be cut.
import type { EmbedMode, Embedder } from '../engine/embedder';
import type { Model } from '../engine/model';

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

/** Body tokens a document may have in `embedder`'s sequences: {@link MAX_DOCUMENT_TOKENS}, or less when the sequence is shorter. */
export function documentTokenBudget(embedder: Embedder): number {
  return Math.min(MAX_DOCUMENT_TOKENS, embedder.session.info.contextPerSequence - embedder.promptFor('', 'document').length);
}

/** How many documents go to the embedder per call: enough to keep every sequence busy, few enough to report progress often. */
export function encodeChunkSize(embedder: Embedder): number {
  return embedder.session.info.sequences * 8;
}

/** What {@link encodeDocuments} returns, in input order. */
export interface EncodedDocuments {
  vectors: Float32Array[];
  /** Per document: whether its text was cut to the budget. */
  truncated: boolean[];
  /** Prompt tokens fed for all the documents (the throughput numerator). */
  promptTokens: number;
}

/**
 * Embeds document texts (direct form, document instruction), each cut to `maxTokens` body tokens.
 * `onProgress(n)` is told how many more documents are done after each embedder chunk.
 *
 * @example const { vectors } = await encodeDocuments(embedder, texts, documentTokenBudget(embedder));
 */
export async function encodeDocuments(
  embedder: Embedder, texts: readonly string[], maxTokens: number,
  options: { signal?: AbortSignal; onProgress?: (newlyDone: number) => void } = {},
): Promise<EncodedDocuments> {
  const fitted = texts.map((t) => fitText(embedder.model, t, maxTokens));
  let reported = 0;
  const results = await embedder.embedDocuments(fitted.map((f) => f.text), {
    signal: options.signal,
    onProgress: (done) => {
      options.onProgress?.(done - reported);
      reported = done;
    },
  });
  return {
    vectors: results.map((r) => r.vector),
    truncated: fitted.map((f) => f.truncated),
    promptTokens: results.reduce((n, r) => n + r.promptTokens, 0),
  };
}

/**
 * Body tokens a query may keep per mode in `embedder`'s sequences: the whole sequence less the
 * prompt in `direct` mode; less the prompt, the reasoning budget and its two closing tokens in `reason` mode.
 *
 * @example new DenseRetriever({ …, queryTokens: queryTokenBudgets(embedder, 128) })
 */
export function queryTokenBudgets(embedder: Embedder, maxReasoningTokens: number): Record<EmbedMode, number> {
  const perSeq = embedder.session.info.contextPerSequence;
  return {
    direct: perSeq - embedder.promptFor('', 'query').length,
    reason: perSeq - embedder.promptFor('', 'reason').length - maxReasoningTokens - 2,
  };
}

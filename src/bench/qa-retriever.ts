// The retriever `--task qa` searches with: BM25 over the corpus, dense (the model's own embeddings,
// `<|embed_token|>`, direct mode), hybrid (both, fused by reciprocal rank), or a /retrieve URL.
import { Embedder } from '../engine/embedder';
import type { LoraAdapter } from '../engine/lora';
import type { Model } from '../engine/model';
import type { CorpusDoc } from '../docindex/corpus';
import { Bm25Retriever } from '../retrieval/bm25';
import { DenseRetriever } from '../retrieval/dense';
import { documentTokenBudget, encodeDocuments, queryTokenBudgets } from '../retrieval/encode';
import { HttpRetriever } from '../retrieval/http';
import { HybridRetriever } from '../retrieval/hybrid';
import type { TextRetriever } from '../retrieval/types';
import { Bm25Index } from '../store/bm25';
import { VectorStore } from '../store/vector-store';
import { expected } from '../util/validate';

/** The named retrievers of `--retriever`; anything else must be an http(s) URL. */
export const QA_RETRIEVER_NAMES = ['bm25', 'dense', 'hybrid'] as const;

/** Throws unless `name` is a known retriever or an http(s) URL. */
export function checkQaRetriever(name: string, what: string): void {
  if (!(QA_RETRIEVER_NAMES as readonly string[]).includes(name) && !/^https?:\/\//.test(name)) {
    throw new TypeError(expected(`${QA_RETRIEVER_NAMES.join(', ')} or an http(s) URL`, what, name));
  }
}

/** A retriever and what must be disposed with it. */
export interface OpenedRetriever {
  retriever: TextRetriever;
  /** Documents encoded for the dense index (0 without one), and seconds spent on them. */
  encodedDocs: number;
  encodeSeconds: number;
  dispose(): void;
}

function bm25Over(corpus: readonly CorpusDoc[], contents: Map<string, string>): Bm25Retriever {
  const index = new Bm25Index();
  for (const d of corpus) index.add(d.id, d.contents);
  return new Bm25Retriever({ index, contents });
}

/**
 * Opens the retriever `name` over `corpus`. Dense and hybrid embed the corpus with `model` itself
 * (it needs `<|embed_token|>`; a Search-R3 model reasons, embeds and answers with one set of
 * weights), in direct mode with the document instruction, on a session of its own.
 */
export async function openQaRetriever(
  name: string, corpus: readonly CorpusDoc[], model: Model,
  o: { sequences: number; threads: number | null; lora?: LoraAdapter },
): Promise<OpenedRetriever> {
  const contents = new Map(corpus.map((d) => [d.id, d.contents]));
  if (name === 'bm25') return { retriever: bm25Over(corpus, contents), encodedDocs: 0, encodeSeconds: 0, dispose: () => {} };
  if (name !== 'dense' && name !== 'hybrid') return { retriever: new HttpRetriever({ url: name }), encodedDocs: 0, encodeSeconds: 0, dispose: () => {} };
  const embedder = await Embedder.create(model, { sequences: o.sequences, ...(o.threads === null ? {} : { threads: o.threads }), ...(o.lora ? { lora: o.lora } : {}) });
  try {
    const start = process.hrtime.bigint();
    const { vectors } = await encodeDocuments(embedder, corpus.map((d) => d.contents), documentTokenBudget(embedder));
    const store = new VectorStore({ dim: model.info.nEmbd });
    corpus.forEach((d, i) => store.add(d.id, vectors[i]!, 0));
    const dense = new DenseRetriever({ embedder, store, contents, queryTokens: queryTokenBudgets(embedder, 1) });
    const retriever = name === 'dense' ? dense : new HybridRetriever({ bm25: bm25Over(corpus, contents), dense });
    return { retriever, encodedDocs: corpus.length, encodeSeconds: Number(process.hrtime.bigint() - start) / 1e9, dispose: () => embedder.dispose() };
  } catch (err) {
    embedder.dispose();
    throw err;
  }
}

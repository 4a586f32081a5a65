// The inputs of Search-R1 training: training questions, the corpus and the retriever over it.
import type { QaItem } from '../eval/qa-data';
import { readQaJsonl } from '../eval/qa-data';
import { readCorpus } from '../docindex/corpus';
import { Bm25Retriever } from '../retrieval/bm25';
import type { TextRetriever } from '../retrieval/types';
import { Bm25Index } from '../store/bm25';
import { SearchR3Error } from '../util/errors';
import { assertString, expected } from '../util/validate';
import type { ResolvedSearchR1 } from './search-r1-config';

/** What training reads: the questions, the corpus' contents by id (null with only a retriever) and the retriever. */
export interface SearchR1Data {
  items: QaItem[];
  contents: Map<string, string> | null;
  retriever: TextRetriever;
}

/** Checks in-memory questions as readQaJsonl checks a file's records (naming the item). */
function checkItems(items: readonly QaItem[]): QaItem[] {
  if (items.length === 0) throw new RangeError('train has no questions');
  items.forEach((q, i) => {
    if (typeof q !== 'object' || q === null) throw new TypeError(expected('a QA item { id, question, goldenAnswers }', `train[${i}]`, q));
    assertString(q.question, `train[${i}].question`, { nonEmpty: true });
    if (!Array.isArray(q.goldenAnswers) || q.goldenAnswers.length === 0 || q.goldenAnswers.some((g) => typeof g !== 'string')) {
      throw new TypeError(expected('a non-empty array of strings', `train[${i}].goldenAnswers`, q.goldenAnswers));
    }
  });
  return [...items];
}

/**
 * Reads the questions (a bad record stops the run naming `FILE:LINE`, ERR_FORMAT) and the corpus,
 * and builds the default BM25 retriever over it when no retriever is given. An empty corpus is
 * ERR_FORMAT.
 */
export async function loadSearchR1Data(c: ResolvedSearchR1): Promise<SearchR1Data> {
  const items = typeof c.train === 'string' ? (await readQaJsonl(c.train)).items : checkItems(c.train);
  let contents: Map<string, string> | null = null;
  if (c.corpus !== null) {
    const docs: readonly { id: string; contents: string }[] = typeof c.corpus === 'string' ? (await readCorpus(c.corpus)).docs : c.corpus!;
    if (docs.length === 0) throw new SearchR3Error('ERR_FORMAT', `corpus ${typeof c.corpus === 'string' ? c.corpus : '(in memory)'} has no documents; the agent searches a corpus`);
    contents = new Map(docs.map((d) => [d.id, d.contents]));
  }
  return { items, contents, retriever: c.retriever ?? bm25Over(contents!) };
}

/** BM25 over documents' contents. */
function bm25Over(contents: Map<string, string>): TextRetriever {
  const index = new Bm25Index();
  for (const [id, text] of contents) index.add(id, text);
  return new Bm25Retriever({ index, contents });
}

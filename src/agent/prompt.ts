// The texts a Search-R1 rollout is made of, quoted from Search-R1's public code
// (github.com/PeterGriffinJin/Search-R1): the instruction prompt of scripts/data_process/nq_search.py
// (`make_prefix`, template "base"), the corrective message and the document formatting of
// search_r1/llm_agent/generation.py (`execute_predictions`, `_passages2string`), and the RAG prompt of
// scripts/data_process/nq_rag.py. A model trained by Search-R1 expects these strings byte for byte.
import { assertString, expected } from '../util/validate';

/** Where a template takes the question. */
export const QUESTION_SLOT = '{question}';
/** Where the RAG template takes the formatted documents. */
export const CONTEXT_SLOT = '{context}';

/**
 * Search-R1's instruction prompt (its `make_prefix`, template `base`), with `{question}` where the
 * question goes. The question is given with a trailing `?` added when missing, as Search-R1's data
 * preparation does (see {@link buildAgentPrompt}).
 */
export const SEARCH_R1_TEMPLATE =
  'Answer the given question. ' +
  'You must conduct reasoning inside <think> and </think> first every time you get new information. ' +
  'After reasoning, if you find you lack some knowledge, you can call a search engine by <search> query </search> ' +
  'and it will return the top searched results between <information> and </information>. ' +
  'You can search as many times as your want. ' +
  'If you find no further external knowledge needed, you can directly provide the answer inside <answer> and </answer>, ' +
  'without detailed illustrations. For example, <answer> Beijing </answer>. Question: {question}\n';

/**
 * Search-R1's RAG baseline prompt (nq_rag.py, template `base`): the question and the top-k documents
 * retrieved with it, answered in one turn.
 */
export const RAG_TEMPLATE =
  'Answer the given question with some potentially useful context. ' +
  'You should analyze the question carefully, evaluate the given context (which may or may not be useful), ' +
  'and then generate an accurate and well-reasoned response. ' +
  'You should first have a reasoning process in mind and then provides the answer. ' +
  'Show your reasoning in <think> </think> tags and return the final answer in <answer> </answer> tags, ' +
  'for example <answer> Beijing </answer>. Question: {question} Context: {context} \n';

/**
 * The no-retrieval baseline prompt: {@link RAG_TEMPLATE} without its context sentence (ours; the
 * same instructions, so the two baselines differ only in the documents).
 */
export const DIRECT_TEMPLATE =
  'Answer the given question. ' +
  'You should first have a reasoning process in mind and then provides the answer. ' +
  'Show your reasoning in <think> </think> tags and return the final answer in <answer> </answer> tags, ' +
  'for example <answer> Beijing </answer>. Question: {question}\n';

/**
 * What Search-R1 appends after a turn that is neither a search nor an answer (generation.py,
 * `execute_predictions`), verbatim with its surrounding newlines.
 */
export const INVALID_ACTION_MESSAGE =
  '\nMy previous action is invalid. ' +
  'If I want to search, I should put the query between <search> and </search>. ' +
  'If I want to give the final answer, I should put the answer between <answer> and </answer>. Let me try again.\n';

/** A retrieved document as the formatting needs it: FlashRAG's `contents`, `"Title"\ntext`. */
export interface PassageLike {
  contents: string;
}

/** Search-R1 ends every question with `?` (its data scripts add one when missing). */
export function normalizeQuestion(question: string): string {
  assertString(question, 'question', { nonEmpty: true });
  const q = question.trim();
  if (q.length === 0) throw new RangeError(expected('a question with text', 'question', question));
  return q.endsWith('?') ? q : `${q}?`;
}

function fill(template: string, name: string, slots: Record<string, string>): string {
  assertString(template, name);
  let out = template;
  for (const [slot, value] of Object.entries(slots)) {
    if (!out.includes(slot)) throw new RangeError(`Expected ${name} to contain ${slot} but it does not`);
    // split/join, not replace: a `$&` in a question must stay literal text.
    out = out.split(slot).join(value);
  }
  return out;
}

/**
 * The agent's prompt for a question: `template` (default {@link SEARCH_R1_TEMPLATE}) with every
 * `{question}` replaced by the question, `?`-terminated.
 *
 * @example buildAgentPrompt('capital of france').endsWith('Question: capital of france?\n') // true
 */
export function buildAgentPrompt(question: string, template: string = SEARCH_R1_TEMPLATE): string {
  return fill(template, 'template', { [QUESTION_SLOT]: normalizeQuestion(question) });
}

/**
 * The no-retrieval baseline's prompt ({@link DIRECT_TEMPLATE} by default).
 *
 * @example buildDirectPrompt('who wrote hamlet')
 */
export function buildDirectPrompt(question: string, template: string = DIRECT_TEMPLATE): string {
  return fill(template, 'template', { [QUESTION_SLOT]: normalizeQuestion(question) });
}

/**
 * The RAG baseline's prompt: the question and its documents formatted by {@link formatPassages}.
 *
 * @example buildRagPrompt('who wrote hamlet', [{ contents: '"Hamlet"\nA play by Shakespeare.' }])
 */
export function buildRagPrompt(question: string, docs: readonly PassageLike[], template: string = RAG_TEMPLATE): string {
  return fill(template, 'template', { [QUESTION_SLOT]: normalizeQuestion(question), [CONTEXT_SLOT]: formatPassages(docs) });
}

/**
 * Search-R1's `_passages2string`: `Doc i(Title: <first line>) <the other lines>\n` per document, in
 * rank order. The first line of a FlashRAG document is its quoted title, so the quotes stay, as in
 * Search-R1's transcripts (`Doc 1(Title: "Paris") Paris is…`).
 *
 * @example formatPassages([{ contents: '"Paris"\nCapital of France.' }]) // 'Doc 1(Title: "Paris") Capital of France.\n'
 */
export function formatPassages(docs: readonly PassageLike[]): string {
  if (!Array.isArray(docs)) throw new TypeError(expected('array of documents', 'docs', docs));
  return docs.map((d, i) => {
    assertString(d?.contents, `docs[${i}].contents`);
    const [title, ...rest] = d.contents.split('\n');
    return `Doc ${i + 1}(Title: ${title}) ${rest.join('\n')}\n`;
  }).join('');
}

/**
 * The observation appended after a search: the formatted documents, trimmed, inside
 * `<information>…</information>` with Search-R1's blank lines around it.
 *
 * @example informationBlock([{ contents: '"Paris"\nCapital.' }]) // '\n\n<information>Doc 1(Title: "Paris") Capital.</information>\n\n'
 */
export function informationBlock(docs: readonly PassageLike[]): string {
  return `\n\n<information>${formatPassages(docs).trim()}</information>\n\n`;
}

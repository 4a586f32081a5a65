// The ways `--task qa` answers questions, behind one interface so that the agent plugs in beside
// the baselines: no retrieval (answer directly) and RAG (retrieve once with the question, then
// answer). Each answers a batch of questions as parallel sequences of one session.
import type { Session } from '../engine/session';
import type { QaItem } from '../eval/qa-data';
import type { TextRetriever } from '../retrieval/types';
import { assertInteger, expected } from '../util/validate';
import { buildDirectPrompt, buildRagPrompt } from './prompt';
import { responseAnswer } from './rewards';

/** What a method produced for one question. */
export interface QaOutput {
  /** Everything after the prompt: what the model wrote, and any retrieved text a multi-turn method appended. */
  response: string;
  /** The last `<answer>` span's text, or null when the response has none (scored as wrong). */
  answer: string | null;
  /** Tokens the model generated for this question (all turns). */
  generatedTokens: number;
  /** Prompt and observation tokens it read (the first prompt plus anything appended later). */
  promptTokens: number;
  /** Searches made (0 without retrieval, 1 for RAG, the agent's count for the agent). */
  searches: number;
}

/** A way of answering questions. `answer` returns one output per question, in order. */
export interface QaMethod {
  /** Short name for reports (`direct`, `rag`, `agent`). */
  readonly name: string;
  answer(items: readonly QaItem[], signal?: AbortSignal): Promise<QaOutput[]>;
}

/** Options shared by the single-turn baselines. */
export interface BaselineOptions {
  session: Session;
  /** Tokens generated per question at most (default 128). */
  maxTokens?: number;
}

/** Options of {@link ragMethod}. */
export interface RagOptions extends BaselineOptions {
  retriever: TextRetriever;
  /** Documents retrieved per question (default 3, Search-R1's). */
  topk?: number;
}

const ANSWER_STOP = '</answer>';

function checkSession(o: BaselineOptions): number {
  if (typeof o?.session?.generate !== 'function') throw new TypeError(expected('Session', 'options.session', o?.session));
  const maxTokens = o.maxTokens ?? 128;
  assertInteger(maxTokens, 'options.maxTokens', 1, 8192);
  return maxTokens;
}

async function answerPrompts(session: Session, prompts: string[], maxTokens: number, searches: number, signal?: AbortSignal): Promise<QaOutput[]> {
  if (prompts.length === 0) return [];
  const gens = await session.generate(prompts, { maxTokens, stop: [ANSWER_STOP], temperature: 0, signal });
  return gens.map((g) => {
    // The stop string is cut from the text; put it back so the response reads as the model wrote it.
    const response = g.finish === 'stop' ? `${g.text}${ANSWER_STOP}` : g.text;
    return { response, answer: responseAnswer(response), generatedTokens: g.tokens.length, promptTokens: g.promptTokens, searches };
  });
}

/**
 * No retrieval: the model answers from its own knowledge ({@link buildDirectPrompt}), greedy, until
 * `</answer>`.
 *
 * @example const outs = await directMethod({ session }).answer(items);
 */
export function directMethod(options: BaselineOptions): QaMethod {
  const maxTokens = checkSession(options);
  return {
    name: 'direct',
    answer: (items, signal) => answerPrompts(options.session, items.map((i) => buildDirectPrompt(i.question)), maxTokens, 0, signal),
  };
}

/**
 * RAG: every question retrieves its top-k documents once (one batched call), the documents go into
 * Search-R1's RAG prompt ({@link buildRagPrompt}), and the model answers in one turn.
 *
 * @example const outs = await ragMethod({ session, retriever: bm25, topk: 3 }).answer(items);
 */
export function ragMethod(options: RagOptions): QaMethod {
  const maxTokens = checkSession(options);
  if (typeof options.retriever?.retrieve !== 'function') throw new TypeError(expected('TextRetriever', 'options.retriever', options.retriever));
  const topk = options.topk ?? 3;
  assertInteger(topk, 'options.topk', 1, 100);
  return {
    name: 'rag',
    async answer(items, signal) {
      if (items.length === 0) return [];
      const results = await options.retriever.retrieve(items.map((i) => i.question), { topk, signal });
      const prompts = items.map((item, i) => buildRagPrompt(item.question, results[i]!.docs));
      return answerPrompts(options.session, prompts, maxTokens, 1, signal);
    },
  };
}

// Supervised warm-up for Search-R1 training: a small model that has never seen the tags cannot
// discover them from an outcome reward, so it first imitates trajectories written by a rule.
import { substringMatch } from '../eval/qa';
import type { QaItem } from '../eval/qa-data';
import type { TrainSequence } from '../train/batch';
import type { TextRetriever } from '../retrieval/types';
import { assertInteger, assertString, checkKeys, expected } from '../util/validate';
import { buildAgentPrompt, informationBlock, SEARCH_R1_TEMPLATE } from './prompt';
import { addSegment, finishTrajectory, newTrajectory, tokenizeTrajectory, trajectorySequence, type Trajectory } from './trajectory';

/** The reasoning the rule writes before each search and before the answer. */
export const WARMUP_THINK = Object.freeze({
  search: 'I need to search for information to answer this question.',
  next: 'The documents name the next thing to look up, so I will search for it.',
  answer: 'The retrieved documents contain the answer.',
});

/** Options of {@link warmupTrajectories}. */
export interface WarmupOptions {
  /** The retriever the searches go to. */
  retriever: TextRetriever;
  /** Documents per search (default 3, Search-R1's). */
  topk?: number;
  /** Searches per question at most (default 4). */
  maxTurns?: number;
  /** The agent prompt template (default Search-R1's). */
  template?: string;
  /**
   * Document contents by id, for multi-hop questions: the next search is the title of the next
   * document on the question's path (`metadata.bridges`, then `metadata.target`). Without it, or
   * for questions without a path, only the question itself is searched.
   */
  contents?: ReadonlyMap<string, string>;
}

/** What {@link warmupTrajectories} made. */
export interface WarmupSet {
  trajectories: Trajectory[];
  /** Questions left out because no search within the turn limit retrieved text holding the answer. */
  skipped: string[];
}

interface Pending {
  item: QaItem;
  t: Trajectory;
  query: string;
  /** Documents on the question's path, in hop order (bridges, then the target). */
  path: string[];
  /** Every document retrieved so far. */
  retrieved: Set<string>;
}

function titleOf(contents: string | undefined): string | null {
  if (contents === undefined) return null;
  const first = contents.split('\n')[0]!.trim();
  const unquoted = first.startsWith('"') && first.endsWith('"') && first.length >= 2 ? first.slice(1, -1) : first;
  return unquoted.length > 0 ? unquoted : null;
}

function pathOf(item: QaItem): string[] {
  const m = item.metadata ?? {};
  const bridges = Array.isArray(m.bridges) ? m.bridges.filter((b): b is string => typeof b === 'string') : [];
  return typeof m.target === 'string' ? [...bridges, m.target] : bridges;
}

/**
 * The next search of a question with a path: the title of the first document on it not yet
 * retrieved, provided the document before it was (that name is read there; the first document's
 * title is the question's own description in the corpus's words); null when there is none.
 */
function nextHop(p: Pending, contents: ReadonlyMap<string, string> | undefined): string | null {
  const k = p.path.findIndex((id) => !p.retrieved.has(id));
  if (k < 0 || (k > 0 && !p.retrieved.has(p.path[k - 1]!))) return null;
  const title = titleOf(contents?.get(p.path[k]!));
  return title === null || p.t.searches.includes(title) ? null : title;
}

function turn(think: string, tag: 'search' | 'answer', content: string): string {
  return `<think>${think}</think>\n<${tag}> ${content} </${tag}>`;
}

/**
 * Writes supervised trajectories by a fixed rule: the model searches with the question; the
 * retrieved documents come back as `<information>` (masked out of the loss later); when that text
 * holds a gold answer (SQuAD-normalised substring), the model answers with the first gold answer
 * the text holds; otherwise, for a question with a path (`metadata.bridges`/`target`, as synthetic
 * QA has), it searches for the title of the next document on the path not retrieved yet — first
 * the bridge's own title, then the entity a retrieved bridge names — and looks again, up to
 * `maxTurns` searches (a later name is only searched once the document naming it was retrieved). Questions whose answer is never retrieved are skipped
 * (listed), never answered from nowhere. Every trajectory is in Search-R1's valid format. All
 * questions of a round are retrieved in one batched call.
 *
 * @example const { trajectories } = await warmupTrajectories(train, { retriever: bm25, contents });
 */
export async function warmupTrajectories(items: readonly QaItem[], options: WarmupOptions): Promise<WarmupSet> {
  checkKeys(options, ['retriever', 'topk', 'maxTurns', 'template', 'contents'], 'options');
  if (!Array.isArray(items)) throw new TypeError(expected('array of QA items', 'items', items));
  if (typeof options?.retriever?.retrieve !== 'function') throw new TypeError(expected('TextRetriever', 'options.retriever', options?.retriever));
  const topk = options.topk ?? 3;
  const maxTurns = options.maxTurns ?? 4;
  assertInteger(topk, 'options.topk', 1, 100);
  assertInteger(maxTurns, 'options.maxTurns', 1, 64);
  const template = options.template ?? SEARCH_R1_TEMPLATE;
  assertString(template, 'options.template');
  const done: Trajectory[] = new Array(items.length);
  const skipped: string[] = [];
  let pending: Pending[] = items.map((item) => {
    const t = newTrajectory(item.question, buildAgentPrompt(item.question, template));
    addSegment(t, 'model', turn(WARMUP_THINK.search, 'search', item.question.trim()));
    return { item, t, query: item.question.trim(), path: pathOf(item), retrieved: new Set<string>() };
  });
  const order = new Map(items.map((item, i) => [item, i]));
  while (pending.length > 0) {
    const results = await options.retriever.retrieve(pending.map((p) => p.query), { topk });
    const next: Pending[] = [];
    pending.forEach((p, i) => {
      const docs = results[i]!.docs;
      const info = informationBlock(docs);
      addSegment(p.t, 'information', info);
      const gold = p.item.goldenAnswers.find((g) => substringMatch(info, [g]) === 1);
      if (gold !== undefined) {
        addSegment(p.t, 'model', turn(WARMUP_THINK.answer, 'answer', gold));
        done[order.get(p.item)!] = finishTrajectory(p.t, 'answer');
        return;
      }
      for (const d of docs) p.retrieved.add(d.id);
      const query = nextHop(p, options.contents);
      if (query === null || p.t.searches.length >= maxTurns) {
        skipped.push(p.item.id);
        return;
      }
      addSegment(p.t, 'model', turn(WARMUP_THINK.next, 'search', query));
      next.push({ ...p, query });
    });
    pending = next;
  }
  return { trajectories: done.filter((t) => t !== undefined), skipped };
}

/**
 * Tokenizes warm-up trajectories into training sequences whose loss covers the model's turns only
 * (see {@link trajectorySequence}). `tokenize(text, first)` must add the BOS token for the first
 * segment only, e.g. `(s, first) => model.tokenize(s, { addSpecial: first, parseSpecial: false })`.
 *
 * @example const seqs = warmupSequences(set.trajectories, (s, first) => model.tokenize(s, { addSpecial: first }));
 */
export function warmupSequences(trajectories: readonly Trajectory[], tokenize: (text: string, first: boolean) => Int32Array): TrainSequence[] {
  if (!Array.isArray(trajectories)) throw new TypeError(expected('array of trajectories', 'trajectories', trajectories));
  return trajectories.map((t) => trajectorySequence(tokenizeTrajectory(t, tokenize)));
}

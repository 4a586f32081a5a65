// Search-R1's outcome rewards: exact match of the final answer, and the format-aware variant of its
// v0.3 release (verl/utils/reward_score/qa_em_format.py). Both read the response (what follows the
// prompt); pure functions of text and gold answers.
import { exactMatch, extractAnswer } from '../eval/qa';
import { assertNumber, assertString, checkKeys, expected } from '../util/validate';

/** The reward names `train search-r1 --reward` accepts. */
export const QA_REWARD_NAMES = ['em', 'em-format'] as const;
export type QaRewardName = (typeof QA_REWARD_NAMES)[number];

/** The answer of a response: its last complete `<answer>` span, trimmed, or null. */
export function responseAnswer(response: string): string | null {
  // Search-R1 needs two spans because it scores prompt + response and the prompt shows one
  // (`<answer> Beijing </answer>`); we score the response alone, so one span is the answer.
  return extractAnswer(response, { minSpans: 1 });
}

/**
 * Exact match of the response's answer against the gold answers (SQuAD normalisation): 1 or 0; no
 * answer is 0. Search-R1's `qa_em.compute_score_em`.
 *
 * @example emReward('<think>…</think><answer> Paris </answer>', ['paris']) // 1
 */
export function emReward(response: string, goldenAnswers: readonly string[]): number {
  const answer = responseAnswer(response);
  return answer === null ? 0 : exactMatch(answer, goldenAnswers);
}

/** Why a response is or is not in Search-R1's format. */
export interface FormatCheck {
  valid: boolean;
  reason: string;
}

const TAG = /^<\/?(?:think|search|information|answer)>$/;
const SPLIT = /(<\/?(?:think|search|information|answer)>)/;
// state → tag → next state: Search-R1's is_valid_sequence automaton, one table instead of if/elif.
const NEXT: Record<string, Record<string, string>> = {
  start: { '<think>': 'in_think' },
  information: { '<think>': 'in_think' },
  in_think: { '</think>': 'after_think' },
  after_think: { '<search>': 'in_search', '<answer>': 'in_answer' },
  in_search: { '</search>': 'after_search' },
  after_search: { '<information>': 'in_information' },
  in_information: { '</information>': 'information' },
  in_answer: { '</answer>': 'end' },
};
const INSIDE = new Set(['in_think', 'in_search', 'in_information', 'in_answer']);

/**
 * Search-R1 v0.3's `is_valid_sequence`: the tags think, search, information and answer are
 * balanced, and the response is `<think>…</think>` then either `<search>…</search><information>…</information>`
 * (repeated, each followed by a new think) or `<answer>…</answer>` at the end, with only whitespace
 * between tags. Search-R1 applies it to the text after the chat template's assistant marker; we
 * apply it to the response, the same text without a template to look for. A corrective message is
 * text between tags, so a trajectory that needed one is not valid, as in Search-R1.
 *
 * @example isValidFormat('<think>a</think><answer>b</answer>').valid // true
 */
export function isValidFormat(response: string): FormatCheck {
  assertString(response, 'response');
  for (const tag of ['think', 'search', 'information', 'answer']) {
    const open = response.split(`<${tag}>`).length - 1;
    const close = response.split(`</${tag}>`).length - 1;
    if (open !== close) return { valid: false, reason: `Mismatch in ${tag} tags: ${open} opening vs ${close} closing tags` };
  }
  let state = 'start';
  for (const part of response.split(SPLIT)) {
    if (part.trim() === '') continue;
    if (TAG.test(part)) {
      const next = NEXT[state]?.[part];
      if (next === undefined) return { valid: false, reason: `Unexpected tag ${part} in state ${state}` };
      state = next;
    } else if (!INSIDE.has(state)) {
      return { valid: false, reason: `Unexpected content '${part.trim()}' between tags (state: ${state})` };
    }
  }
  if (state !== 'end') return { valid: false, reason: `Incomplete sequence, ended in state ${state}` };
  return { valid: true, reason: 'Valid sequence format' };
}

/** The scores of {@link emFormatReward}; Search-R1 v0.3's defaults. */
export interface EmFormatScores {
  /** Correct answer, valid format. Default 1. */
  correct?: number;
  /** Taken off a correct answer in an invalid format (`structure_format_score`). Default 0.2. */
  structure?: number;
  /** Wrong answer, invalid format (`final_format_score`). Default 0.1. */
  final?: number;
}

export const EM_FORMAT_DEFAULTS: Readonly<Required<EmFormatScores>> = Object.freeze({ correct: 1, structure: 0.2, final: 0.1 });

/**
 * Search-R1 v0.3's format-aware exact match (`qa_em_format.compute_score_em` with
 * `structure_format_score` 0.2, `final_format_score` 0.1, `retrieval_score` 0): correct + valid
 * format 1.0, correct + invalid 0.8, wrong + valid 0.2, wrong + invalid 0.1, no answer 0.
 *
 * @example emFormatReward('<think>x</think><answer>Rome</answer>', ['Paris']) // 0.2
 */
export function emFormatReward(response: string, goldenAnswers: readonly string[], scores: EmFormatScores = {}): number {
  checkKeys(scores, ['correct', 'structure', 'final'], 'scores');
  const s = { ...EM_FORMAT_DEFAULTS, ...scores };
  for (const k of ['correct', 'structure', 'final'] as const) assertNumber(s[k], `scores.${k}`, 0);
  const answer = responseAnswer(response);
  if (answer === null) return 0;
  const valid = isValidFormat(response).valid;
  if (exactMatch(answer, goldenAnswers) === 1) return valid ? s.correct : s.correct - s.structure;
  return valid ? s.structure : s.final;
}

/** One scored rollout: its response text and its question's gold answers. */
export interface QaRollout {
  response: string;
  goldenAnswers: readonly string[];
}

/** A reward over a batch of rollouts, one number each (the shape the GRPO loop combines). */
export type QaRewardFunction = (rollouts: readonly QaRollout[]) => number[];

/** The QA rewards by name, as batch functions. */
export const QA_REWARDS: Readonly<Record<QaRewardName, QaRewardFunction>> = Object.freeze({
  em: (rollouts: readonly QaRollout[]) => rollouts.map((r) => emReward(r.response, r.goldenAnswers)),
  'em-format': (rollouts: readonly QaRollout[]) => rollouts.map((r) => emFormatReward(r.response, r.goldenAnswers)),
});

/**
 * The reward function of a name, with a clear error for an unknown one.
 *
 * @example qaReward('em-format')([{ response, goldenAnswers: ['Paris'] }])
 */
export function qaReward(name: string): QaRewardFunction {
  if (!(QA_REWARD_NAMES as readonly string[]).includes(name)) throw new TypeError(expected(`one of ${QA_REWARD_NAMES.join(', ')}`, 'reward', name));
  return QA_REWARDS[name as QaRewardName];
}

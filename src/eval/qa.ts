import { assertInteger, assertString, checkKeys, expected } from '../util/validate';

/**
 * Question-answering scores as Search-R1 computes its outcome reward (the SQuAD normalisation):
 * exact match, substring match and token F1 against a list of gold answers.
 */

// Python's string.punctuation: the ASCII punctuation characters SQuAD's normaliser removes.
const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;
// Python's re `\b(a|an|the)\b` on str is Unicode-aware; JS `\b` is ASCII-only, so spell it out.
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/**
 * Normalises an answer: lower-case, remove ASCII punctuation, remove the articles a/an/the,
 * collapse whitespace. Identical to SQuAD's `normalize_answer`, which Search-R1 uses.
 *
 * @example normalizeAnswer('The  Eiffel-Tower!') // "eiffeltower"
 */
export function normalizeAnswer(text: string): string {
  assertString(text, 'text');
  const noPunct = text.toLowerCase().replace(PUNCTUATION, '');
  return noPunct.replace(ARTICLES, ' ').split(/\s+/u).filter((t) => t.length > 0).join(' ');
}

function golds(answers: string | readonly string[]): readonly string[] {
  const list = typeof answers === 'string' ? [answers] : answers;
  if (!Array.isArray(list) || list.some((a) => typeof a !== 'string')) {
    throw new TypeError(expected('string or array of strings', 'gold answers', answers));
  }
  return list;
}

/**
 * 1 when the normalised prediction equals any normalised gold answer, else 0.
 *
 * @example exactMatch('the Beatles', ['Beatles', 'The Fab Four']) // 1
 */
export function exactMatch(prediction: string, answers: string | readonly string[]): 0 | 1 {
  const p = normalizeAnswer(prediction);
  return golds(answers).some((g) => normalizeAnswer(g) === p) ? 1 : 0;
}

/**
 * 1 when any normalised gold answer occurs inside the normalised prediction (Search-R1's
 * `subem_check`), else 0.
 *
 * @example substringMatch('it was Paris, France', ['paris']) // 1
 */
export function substringMatch(prediction: string, answers: string | readonly string[]): 0 | 1 {
  const p = normalizeAnswer(prediction);
  return golds(answers).some((g) => p.includes(normalizeAnswer(g))) ? 1 : 0;
}

function tokenF1(prediction: string, gold: string): number {
  const p = normalizeAnswer(prediction).split(' ').filter(Boolean);
  const g = normalizeAnswer(gold).split(' ').filter(Boolean);
  const counts = new Map<string, number>();
  for (const t of g) counts.set(t, (counts.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) { common++; counts.set(t, c - 1); }
  }
  if (common === 0) return 0;
  const precision = common / p.length;
  const recall = common / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/**
 * SQuAD token F1 (multiset overlap of normalised tokens), the best over the gold answers.
 *
 * @example f1Score('Eiffel tower in Paris', ['the Eiffel Tower']) // 0.6666…
 */
export function f1Score(prediction: string, answers: string | readonly string[]): number {
  assertString(prediction, 'prediction');
  return Math.max(0, ...golds(answers).map((g) => tokenF1(prediction, g)));
}

/**
 * The text of the last `<answer>…</answer>` span, trimmed, or null when there is none.
 * `minSpans` is the number of spans required before one counts: Search-R1 scores whole transcripts
 * whose prompt already shows an example `<answer>` span, so it uses 2 there.
 *
 * @example extractAnswer('<think>…</think><answer> Paris </answer>') // "Paris"
 */
export function extractAnswer(text: string, options?: { minSpans?: number }): string | null {
  assertString(text, 'text');
  checkKeys(options, ['minSpans'], 'options');
  const minSpans = options?.minSpans ?? 1;
  assertInteger(minSpans, 'options.minSpans', 1);
  const spans = [...text.matchAll(/<answer>([\s\S]*?)<\/answer>/g)];
  if (spans.length < minSpans) return null;
  return spans[spans.length - 1]![1]!.trim();
}

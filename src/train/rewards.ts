import type { EmbedFinish } from '../engine/embedder';
import { assertInteger, assertNumber, expected } from '../util/validate';

/**
 * Stage-2 (GRPO) rewards and group advantages, as small pure functions in TRL's pattern: a reward
 * is a function of a batch of rollouts, and several combine with weights (`parseRewardSpec`,
 * `computeRewards`). Every function here is checked against hand-computed values in
 * test/train-rewards.test.mjs.
 */

/** Doc id → relevance grade (> 0 relevant), as qrels give it. */
export type Relevance = ReadonlyMap<string, number>;

/** What a reward function sees of one rollout. */
export interface ScoredRollout {
  /** Corpus doc ids, best first, as the store returned them for the rollout's embedding (ties already broken: the order given is the rank). */
  ranking: readonly string[];
  /** The query's judgements: doc id → grade; grades ≤ 0 count as not relevant. */
  relevant: Relevance;
  /** How the reasoning ended (`embed` = the model emitted `<|embed_token|>` itself). */
  finish: EmbedFinish;
  /** Reasoning tokens sampled before `<|embed_token|>`. */
  reasoningTokens: number;
}

/** Scores a batch of rollouts, one number per rollout, in order. */
export type RewardFunction = (rollouts: readonly ScoredRollout[]) => number[];

/** One weighted term of a reward spec. */
export interface RewardTerm {
  name: string;
  weight: number;
}

/**
 * Defaults of the stage-2 reward. `cutoff`: ranks past it earn nothing (the issue states "0 past the
 * cutoff"; 10 matches the nDCG@10 that evaluation reports). `formatPenalty`: what the `format` term
 * takes from a rollout that did not emit `<|embed_token|>` itself (our choice: half of a perfect
 * retrieval reward, so a rollout that ranks the positive first but runs out of budget still beats one
 * that emits the token and misses). `eps`: the advantage denominator's ε (TRL's 1e-4).
 */
export const REWARD_DEFAULTS = Object.freeze({ cutoff: 10, formatPenalty: 0.5, spec: 'dcg=1,format=1', eps: 1e-4 });

/** Grades of the relevant documents (grade > 0), highest first. */
function relevantGrades(relevant: Relevance): number[] {
  const grades: number[] = [];
  for (const g of relevant.values()) if (g > 0) grades.push(g);
  return grades.sort((a, b) => b - a);
}

/** Each relevant document's 1-based rank within the cutoff, with its grade; a repeated id counts once, at its first rank. */
function relevantRanks(r: ScoredRollout, cutoff: number): { rank: number; grade: number }[] {
  const seen = new Set<string>();
  const out: { rank: number; grade: number }[] = [];
  const n = Math.min(cutoff, r.ranking.length);
  for (let i = 0; i < n; i++) {
    const id = r.ranking[i]!;
    if (seen.has(id)) continue;
    seen.add(id);
    const grade = r.relevant.get(id) ?? 0;
    if (grade > 0) out.push({ rank: i + 1, grade });
  }
  return out;
}

/**
 * nDCG at `cutoff` with gain = grade (trec_eval's `ndcg_cut` gains): DCG = Σ grade / log2(1 + rank)
 * over relevant documents ranked within the cutoff, divided by the ideal ranking's DCG. With one
 * relevant document of grade 1 this is exactly 1/log2(1 + rank); with several binary ones it is the
 * binary nDCG (our choice: every relevant document counts, so a ranking that finds both of two
 * positives beats one that finds only the first). A query with no relevant document gets 0.
 * @example dcgReward(10)([{ ranking: ['a', 'b'], relevant: new Map([['b', 1]]), finish: 'embed', reasoningTokens: 5 }]) // [1 / Math.log2(3)]
 */
export function dcgReward(cutoff: number = REWARD_DEFAULTS.cutoff): RewardFunction {
  assertInteger(cutoff, 'cutoff', 1);
  return (rollouts) => rollouts.map((r) => {
    const ideal = relevantGrades(r.relevant).slice(0, cutoff);
    let idcg = 0;
    ideal.forEach((g, i) => (idcg += g / Math.log2(2 + i)));
    if (idcg === 0) return 0;
    let dcg = 0;
    for (const { rank, grade } of relevantRanks(r, cutoff)) dcg += grade / Math.log2(1 + rank);
    return dcg / idcg;
  });
}

/**
 * Reciprocal rank of the first relevant document within `cutoff`, else 0.
 * @example mrrReward(10)([{ ranking: ['a', 'b', 'c'], relevant: new Map([['c', 1]]), finish: 'embed', reasoningTokens: 5 }]) // [1 / 3]
 */
export function mrrReward(cutoff: number = REWARD_DEFAULTS.cutoff): RewardFunction {
  assertInteger(cutoff, 'cutoff', 1);
  return (rollouts) => rollouts.map((r) => {
    const first = relevantRanks(r, cutoff)[0];
    return first ? 1 / first.rank : 0;
  });
}

/**
 * Share of the relevant documents ranked within `cutoff` (trec_eval's recall_k: divided by all
 * relevant documents, so it stays below 1 when there are more of them than the cutoff); 0 without any.
 * @example recallReward(2)([{ ranking: ['a', 'b', 'c'], relevant: new Map([['a', 1], ['c', 1]]), finish: 'embed', reasoningTokens: 5 }]) // [0.5]
 */
export function recallReward(cutoff: number = REWARD_DEFAULTS.cutoff): RewardFunction {
  assertInteger(cutoff, 'cutoff', 1);
  return (rollouts) => rollouts.map((r) => {
    const total = relevantGrades(r.relevant).length;
    return total === 0 ? 0 : relevantRanks(r, cutoff).length / total;
  });
}

/**
 * The format term: 0 when the model emitted `<|embed_token|>` itself (`embed`) or the prompt forced
 * it (`direct`, not a reasoning rollout), −penalty when the engine had to append it (`budget`: the
 * reasoning budget ran out; `stopped`: the model ended its turn without it).
 * @example formatReward(0.5)([{ ranking: [], relevant: new Map(), finish: 'budget', reasoningTokens: 64 }]) // [-0.5]
 */
export function formatReward(penalty: number = REWARD_DEFAULTS.formatPenalty): RewardFunction {
  assertNumber(penalty, 'penalty', 0, 1e6);
  return (rollouts) => rollouts.map((r) => (r.finish === 'budget' || r.finish === 'stopped' ? -penalty : 0));
}

/**
 * The named rewards a spec may combine, at their defaults: `dcg` (the default; nDCG@10, see
 * {@link dcgReward}), `mrr` (MRR@10), `recall` (recall@10), `format` (−0.5 without a self-emitted
 * `<|embed_token|>`).
 */
export const REWARD_FUNCTIONS: Readonly<Record<string, RewardFunction>> = Object.freeze({
  dcg: dcgReward(),
  mrr: mrrReward(),
  recall: recallReward(),
  format: formatReward(),
});

/**
 * Parses a reward spec: comma-separated `name` or `name=weight` (weight a finite number ≥ 0; a bare
 * name weighs 1), each name once, from {@link REWARD_FUNCTIONS}.
 * @example parseRewardSpec('dcg=1,format=0.5') // [{ name: 'dcg', weight: 1 }, { name: 'format', weight: 0.5 }]
 */
export function parseRewardSpec(spec: string): RewardTerm[] {
  if (typeof spec !== 'string') throw new TypeError(expected('reward spec string such as "dcg=1,format=0.5"', 'reward', spec));
  const known = Object.keys(REWARD_FUNCTIONS);
  const bad = (why: string) => new RangeError(`Invalid reward spec ${JSON.stringify(spec)}: ${why}; expected name[=weight],… with names from ${known.join(', ')}`);
  if (spec.trim() === '') throw bad('it is empty');
  const terms: RewardTerm[] = [];
  for (const part of spec.split(',')) {
    const [rawName, rawWeight, extra] = part.split('=');
    const name = rawName!.trim();
    if (!Object.hasOwn(REWARD_FUNCTIONS, name)) throw bad(`unknown reward ${JSON.stringify(name)}`);
    if (terms.some((t) => t.name === name)) throw bad(`${name} is given twice`);
    const weight = rawWeight === undefined ? 1 : rawWeight.trim() === '' ? NaN : Number(rawWeight);
    if (extra !== undefined || !Number.isFinite(weight) || weight < 0 || weight > 1e6) throw bad(`the weight of ${name} must be a number between 0 and 1e6`);
    terms.push({ name, weight });
  }
  if (terms.every((t) => t.weight === 0)) throw bad('every weight is 0, so every reward would be 0');
  return terms;
}

const FINISHES: readonly EmbedFinish[] = ['direct', 'embed', 'budget', 'stopped'];

function checkRollouts(rollouts: readonly ScoredRollout[]): void {
  if (!Array.isArray(rollouts)) throw new TypeError(expected('array of rollouts', 'rollouts', rollouts));
  rollouts.forEach((r, i) => {
    if (typeof r !== 'object' || r === null) throw new TypeError(expected('rollout object', `rollouts[${i}]`, r));
    if (!Array.isArray(r.ranking)) throw new TypeError(expected('array of doc ids', `rollouts[${i}].ranking`, r.ranking));
    if (!(r.relevant instanceof Map)) throw new TypeError(expected('Map of doc id to grade', `rollouts[${i}].relevant`, r.relevant));
    if (!FINISHES.includes(r.finish)) throw new TypeError(expected(`one of ${FINISHES.join(', ')}`, `rollouts[${i}].finish`, r.finish));
    assertInteger(r.reasoningTokens, `rollouts[${i}].reasoningTokens`, 0);
  });
}

/**
 * Scores rollouts with weighted terms: `total[i] = Σ weight · term(rollouts)[i]`; `parts` keeps each
 * term's unweighted values (for logging, and for `rewardAgreement` on the retrieval term alone).
 * @example const { total, parts } = computeRewards(parseRewardSpec('dcg,format'), rollouts);
 */
export function computeRewards(terms: readonly RewardTerm[], rollouts: readonly ScoredRollout[]): { total: Float64Array; parts: Record<string, number[]> } {
  if (!Array.isArray(terms) || terms.length === 0) throw new TypeError(expected('non-empty array of reward terms (parseRewardSpec)', 'terms', terms));
  checkRollouts(rollouts);
  const total = new Float64Array(rollouts.length);
  const parts: Record<string, number[]> = {};
  terms.forEach((t, k) => {
    const fn = typeof t?.name === 'string' && Object.hasOwn(REWARD_FUNCTIONS, t.name) ? REWARD_FUNCTIONS[t.name]! : undefined;
    if (!fn) throw new RangeError(expected(`a reward name from ${Object.keys(REWARD_FUNCTIONS).join(', ')}`, `terms[${k}].name`, t?.name));
    assertNumber(t.weight, `terms[${k}].weight`, 0, 1e6);
    const values = fn(rollouts);
    parts[t.name] = values;
    values.forEach((v, i) => (total[i]! += t.weight * v));
  });
  return { total, parts };
}

/**
 * Group-relative advantages (GRPO): rewards come in consecutive groups of `groupSize` rollouts of one
 * query, and each becomes (r − mean) / (std + eps) within its group, with the *sample* standard
 * deviation (divisor G − 1, as `torch.std` in TRL's GRPO trainer). A group whose rewards are all
 * equal carries no signal: its advantages are exactly 0 and it is counted in `zeroVarianceGroups`
 * (as is every group when `groupSize` is 1).
 * @example groupAdvantages([1, 0, 0.5, 0.5], 2) // advantages ≈ [0.7070, -0.7070, 0, 0] (ε = 1e-4), zeroVarianceGroups 1
 */
export function groupAdvantages(rewards: ArrayLike<number>, groupSize: number, eps: number = REWARD_DEFAULTS.eps): { advantages: Float32Array; zeroVarianceGroups: number } {
  const n = checkNumbers(rewards, 'rewards');
  assertInteger(groupSize, 'groupSize', 1);
  assertNumber(eps, 'eps', 0, 1);
  if (n % groupSize !== 0) throw new RangeError(`Expected a multiple of groupSize ${groupSize} rewards but received ${n}`);
  const advantages = new Float32Array(n);
  let zeroVarianceGroups = 0;
  for (let start = 0; start < n; start += groupSize) {
    const first = rewards[start]!;
    let same = true;
    let sum = 0;
    for (let i = start; i < start + groupSize; i++) {
      sum += rewards[i]!;
      if (rewards[i] !== first) same = false;
    }
    // Exact equality, not std < tolerance: equal rewards can give a mean that differs from them in
    // the last bit, and such a group must contribute exactly nothing.
    if (same) {
      zeroVarianceGroups++;
      continue;
    }
    const mean = sum / groupSize;
    let sq = 0;
    for (let i = start; i < start + groupSize; i++) sq += (rewards[i]! - mean) ** 2;
    const std = Math.sqrt(sq / (groupSize - 1));
    for (let i = start; i < start + groupSize; i++) advantages[i] = (rewards[i]! - mean) / (std + eps);
  }
  return { advantages, zeroVarianceGroups };
}

/**
 * How far rewards from the incremental (partly stale) store agree with rewards from a full re-encode
 * of the same rollouts: 1 − mean |incremental[i] − full[i]|, for rewards in [0, 1] (pass the
 * retrieval term, e.g. `parts.dcg`, not a total with penalties). 1 = identical; 0 = as far apart as
 * rewards in [0, 1] can be.
 * @example rewardAgreement([1, 0.5], [1, 0.25]) // 0.875
 */
export function rewardAgreement(incremental: ArrayLike<number>, full: ArrayLike<number>): number {
  const n = checkNumbers(incremental, 'incremental', 0, 1);
  const m = checkNumbers(full, 'full', 0, 1);
  if (n !== m) throw new RangeError(`Expected as many full rewards as incremental ones (${n}) but received ${m}`);
  if (n === 0) throw new RangeError('Expected at least one reward to compare but received none');
  let diff = 0;
  for (let i = 0; i < n; i++) diff += Math.abs(incremental[i]! - full[i]!);
  return 1 - diff / n;
}

/** Checks an array-like of finite numbers (within [min, max]) and returns its length. */
function checkNumbers(values: ArrayLike<number>, name: string, min = -Infinity, max = Infinity): number {
  if (typeof values !== 'object' || values === null || typeof values.length !== 'number') throw new TypeError(expected('array of numbers', name, values));
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(expected('finite number', `${name}[${i}]`, v));
    if (v < min || v > max) throw new RangeError(expected(`number between ${min} and ${max}`, `${name}[${i}]`, v));
  }
  return values.length;
}

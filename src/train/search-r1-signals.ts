// What a Search-R1 step's rollouts say about the policy (the signals its GRPO collapse shows in),
// and the documented rule that stops a collapsing run.
import { isValidFormat } from '../agent/rewards';
import { responseText, type Trajectory } from '../agent/trajectory';
import type { CollapseRule } from './search-r1-config';

/** Per-step rollout statistics, logged with every GRPO step. */
export interface RolloutSignals {
  /** Policy entropy estimate: −mean log-prob of the sampled model tokens (nats per token). */
  entropy: number;
  /** Mean model-written tokens per trajectory. */
  responseLength: number;
  /** Mean searches per trajectory. */
  searches: number;
  /** Invalid turns over all model turns. */
  invalidRate: number;
  /** Share of trajectories in Search-R1's valid format (isValidFormat). */
  validFormat: number;
  /** How trajectories ended (StopReason → count). */
  stops: Record<string, number>;
}

/**
 * The signals of a step's trajectories (run with `logprobs`).
 *
 * @example rolloutSignals(trajectories).invalidRate
 */
export function rolloutSignals(ts: readonly Trajectory[]): RolloutSignals {
  let logp = 0;
  let tokens = 0;
  let turns = 0;
  let invalid = 0;
  let searches = 0;
  let valid = 0;
  const stops: Record<string, number> = {};
  for (const t of ts) {
    for (const s of t.segments) {
      if (s.origin !== 'model') continue;
      tokens += s.tokens?.length ?? 0;
      if (s.logprobs) for (const v of s.logprobs) logp += v;
    }
    turns += t.turns;
    invalid += t.invalidActions;
    searches += t.searches.length;
    if (isValidFormat(responseText(t)).valid) valid++;
    stops[t.stop ?? 'running'] = (stops[t.stop ?? 'running'] ?? 0) + 1;
  }
  const n = Math.max(1, ts.length);
  return {
    entropy: tokens > 0 ? -logp / tokens : 0, responseLength: tokens / n, searches: searches / n,
    invalidRate: turns > 0 ? invalid / turns : 0, validFormat: valid / n, stops,
  };
}

/** The part of a step's log the collapse rule reads. */
export interface CollapseInput {
  reward: number;
  invalidRate: number;
  responseLength: number;
}

/** What {@link collapseCheck} found. */
export interface CollapseState {
  collapsed: boolean;
  /** Consecutive steps meeting the rule, ending at the last one. */
  streak: number;
  /** Best moving average so far, the step it was reached at (1-based index into history), and the last average. */
  best: number;
  bestAt: number;
  average: number;
  /** Why, when collapsed: one sentence for the error message. */
  reason?: string;
}

/**
 * Applies the collapse rule to the GRPO steps so far (oldest first). With moving average m_t of the
 * reward over the last `window` steps and m* its best so far (reached at step t*, where the mean
 * response length was L*), step t meets the rule when m* ≥ minBest, m_t ≤ rewardRatio · m*, and
 * either its invalid-action rate ≥ invalidRate or its response length ≥ lengthRatio · L*. The run
 * has collapsed when the last `patience` steps all meet it. A pure function of the history, so a
 * resumed run (which re-reads its log) decides as the uninterrupted one.
 *
 * @example collapseCheck(history, { window: 5, patience: 3, rewardRatio: 0.5, invalidRate: 0.5, lengthRatio: 2, minBest: 0.05 }).collapsed
 */
export function collapseCheck(history: readonly CollapseInput[], rule: Required<CollapseRule>): CollapseState {
  let best = -Infinity;
  let bestAt = 0;
  let bestLength = 0;
  let streak = 0;
  let average = 0;
  for (let t = 0; t < history.length; t++) {
    const from = Math.max(0, t - rule.window + 1);
    const win = history.slice(from, t + 1);
    average = win.reduce((a, h) => a + h.reward, 0) / win.length;
    // Only full windows set the best, so one lucky first step does not make every later one a fall.
    if (win.length === rule.window && average > best) {
      best = average;
      bestAt = t + 1;
      bestLength = win.reduce((a, h) => a + h.responseLength, 0) / win.length;
    }
    const h = history[t]!;
    const fell = best >= rule.minBest && average <= rule.rewardRatio * best;
    const degenerate = h.invalidRate >= rule.invalidRate || (bestLength > 0 && h.responseLength >= rule.lengthRatio * bestLength);
    streak = fell && degenerate ? streak + 1 : 0;
  }
  const collapsed = streak >= rule.patience;
  const state: CollapseState = { collapsed, streak, best: Number.isFinite(best) ? best : 0, bestAt, average };
  if (collapsed) {
    const last = history.at(-1)!;
    state.reason = `training collapsed: the reward's ${rule.window}-step average fell to ${average.toFixed(3)} from its best ${best.toFixed(3)} (GRPO step ${bestAt}) ` +
      `for ${streak} steps while the invalid-action rate is ${last.invalidRate.toFixed(2)} and responses average ${last.responseLength.toFixed(0)} tokens ` +
      `(${bestLength.toFixed(0)} at the best)`;
  }
  return state;
}

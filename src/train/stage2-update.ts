import type { Model } from '../engine/model';
import type { EmbedTemplate } from '../engine/templates';
import type { LossOptions, TrainSequence } from './batch';
import { encodeEmbedText } from './data';
import type { ResolvedStage2 } from './stage2-config';
import type { Stage2Query } from './stage2-data';
import type { Rollout } from './stage2-rollout';
import type { LoraTrainer, LossPart } from './trainer';

/**
 * Largest |engine − trainer| log-prob of a sampled token under which the engine's log-probs serve
 * as logp_old: a ratio error of at most 1%, far inside the clip range. Above it the trainer's own
 * log-probs of the same tokens (the same adapter, before the update) are used instead, so the
 * ratio is exactly 1 at the sampling policy. (Measured on the tiny test model with an F32 KV
 * cache: max 1.1e-3, mean 1.7e-4 per token; README "Stage 2".)
 */
export const LOGP_TOLERANCE = 1e-2;

/** What one update did. */
export interface UpdateResult {
  loss: number;
  parts: Partial<Record<LossPart, number>>;
  /** |engine − trainer| log-prob over the sampled tokens. */
  logpDiff: { max: number; mean: number };
  /** Whose log-probs were logp_old. */
  logpOld: 'engine' | 'trainer';
  /** Share of sampled tokens whose ratio fell outside [1 − clipLow, 1 + clipHigh]. */
  clipFraction: number;
  /** Trainer tokens (forward + backward) and the time of accumulate + step. */
  tokens: number;
  gradNorm: number;
  seconds: number;
}

/**
 * One optimizer step on a step's rollouts: GRPO on the sampled tokens with the group advantages
 * and InfoNCE of each rollout's embed-token state against its query's positive, the other
 * queries' positives and the hard negatives, in one forward/backward.
 */
export async function updateOnRollouts(
  trainer: LoraTrainer, model: Model, template: EmbedTemplate, c: ResolvedStage2, queries: readonly Stage2Query[],
  rollouts: readonly Rollout[], advantages: Float32Array, lr: number, signal?: AbortSignal,
): Promise<UpdateResult> {
  const t0 = performance.now();
  const sequences: TrainSequence[] = rollouts.map((r) => r.sequence);
  const doc = (text: string): TrainSequence => {
    const tokens = encodeEmbedText(model, template, 'document', text, c.maxTokens);
    return { tokens, embedAt: tokens.length - 1 };
  };
  const wantInfonce = c.lossWeights.infonce > 0;
  if (wantInfonce) {
    for (const q of queries) sequences.push(doc(q.positive));
    for (const q of queries) for (const n of q.negatives.slice(0, c.hardNegatives)) sequences.push(doc(n));
  }
  const R = rollouts.length;
  const empty = new Float32Array(0);
  const targets = rollouts.reduce((a, r) => a + r.logp.length, 0);
  const wantGrpo = c.lossWeights.grpo > 0 && targets > 0;
  const losses = (logpOld: readonly Float32Array[]): LossOptions => {
    const l: LossOptions = {};
    if (wantGrpo) {
      l.grpo = {
        weight: c.lossWeights.grpo, advantages: Float32Array.from(sequences, (_, i) => (i < R ? advantages[i]! : 0)),
        logpOld: sequences.map((_, i) => (i < R ? logpOld[i]! : empty)), epsLow: c.clipLow, epsHigh: c.clipHigh, klCoef: c.kl,
      };
    }
    if (wantInfonce) {
      const candidates = sequences.map((_, i) => i).slice(R);
      l.infonce = { weight: c.lossWeights.infonce, temperature: c.infonceTemperature, queries: rollouts.map((_, i) => i), candidates, labels: rollouts.map((r) => r.query) };
    }
    // Sampled tokens stay targets even without GRPO, so their log-probs are checked; with no loss reading them they cost nothing.
    return l;
  };
  const engine = rollouts.map((r) => r.logp);
  let r = await trainer.accumulate(sequences, losses(engine), { signal });
  let logpOld: 'engine' | 'trainer' = 'engine';
  const trainerLogp = r.logp ? r.logp.slice(0, R) : null;
  const logpDiff = trainerLogp ? diff(engine, trainerLogp) : { max: 0, mean: 0 };
  if (trainerLogp && logpDiff.max > LOGP_TOLERANCE) {
    // The engine's numbers are not the trainer's policy closely enough: redo the pass with the trainer's.
    trainer.zeroGrads();
    r = await trainer.accumulate(sequences, losses(trainerLogp), { signal });
    logpOld = 'trainer';
  }
  const clipFraction = trainerLogp ? clipShare(logpOld === 'engine' ? engine : trainerLogp, trainerLogp, c.clipLow, c.clipHigh) : 0;
  const s = await trainer.step({ lr });
  return {
    loss: r.loss, parts: r.parts, logpDiff, logpOld, clipFraction, tokens: r.tokens, gradNorm: s.gradNorm, seconds: (performance.now() - t0) / 1000,
  };
}

function diff(a: readonly Float32Array[], b: readonly Float32Array[]): { max: number; mean: number } {
  let max = 0;
  let sum = 0;
  let n = 0;
  a.forEach((x, i) => x.forEach((v, j) => {
    const d = Math.abs(v - b[i]![j]!);
    max = Math.max(max, d);
    sum += d;
    n++;
  }));
  return { max, mean: n > 0 ? sum / n : 0 };
}

function clipShare(old: readonly Float32Array[], now: readonly Float32Array[], low: number, high: number): number {
  let out = 0;
  let n = 0;
  old.forEach((x, i) => x.forEach((v, j) => {
    const ratio = Math.exp(now[i]![j]! - v);
    if (ratio < 1 - low || ratio > 1 + high) out++;
    n++;
  }));
  return n > 0 ? out / n : 0;
}

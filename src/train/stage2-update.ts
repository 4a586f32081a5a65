import type { Model } from '../engine/model';
import type { EmbedTemplate } from '../engine/templates';
import type { LossOptions, TrainSequence } from './batch';
import { encodeEmbedText } from './data';
import type { ResolvedStage2 } from './stage2-config';
import type { Stage2Query } from './stage2-data';
import type { Rollout } from './stage2-rollout';
import { accumulateGrpo, grpoLoss } from './grpo-update';
import type { LoraTrainer, LossPart } from './trainer';

export { LOGP_TOLERANCE } from './grpo-update';

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
  const targets = rollouts.reduce((a, r) => a + r.logp.length, 0);
  const wantGrpo = c.lossWeights.grpo > 0 && targets > 0;
  const losses = (logpOld: readonly Float32Array[]): LossOptions => {
    const l: LossOptions = {};
    if (wantGrpo) l.grpo = grpoLoss(sequences.length, advantages, logpOld, { weight: c.lossWeights.grpo, clipLow: c.clipLow, clipHigh: c.clipHigh, kl: c.kl });
    if (wantInfonce) {
      const candidates = sequences.map((_, i) => i).slice(R);
      l.infonce = { weight: c.lossWeights.infonce, temperature: c.infonceTemperature, queries: rollouts.map((_, i) => i), candidates, labels: rollouts.map((r) => r.query) };
    }
    // Sampled tokens stay targets even without GRPO, so their log-probs are checked; with no loss reading them they cost nothing.
    return l;
  };
  const { result: r, logpDiff, logpOld, clipFraction } = await accumulateGrpo(
    trainer, sequences, rollouts.map((x) => x.logp), losses, { low: c.clipLow, high: c.clipHigh }, signal,
  );
  const s = await trainer.step({ lr });
  return {
    loss: r.loss, parts: r.parts, logpDiff, logpOld, clipFraction, tokens: r.tokens, gradNorm: s.gradNorm, seconds: (performance.now() - t0) / 1000,
  };
}

// The GRPO pass both RL stages share: one forward/backward whose logp_old is the engine's sampled
// log-probs when they agree with the trainer's, else the trainer's own (the pass is then redone).
import type { LossOptions, TrainSequence } from './batch';
import type { AccumulateResult, LoraTrainer } from './trainer';

/**
 * Largest |engine − trainer| log-prob of a sampled token under which the engine's log-probs serve
 * as logp_old: a ratio error of at most 1%, far inside the clip range. Above it the trainer's own
 * log-probs of the same tokens (the same adapter, before the update) are used instead, so the
 * ratio is exactly 1 at the sampling policy. (Measured on the tiny test model with an F32 KV
 * cache: max 1.1e-3, mean 1.7e-4 per token; README "Stage 2".)
 */
export const LOGP_TOLERANCE = 1e-2;

/** What {@link accumulateGrpo} did. */
export interface GrpoPass {
  result: AccumulateResult;
  /** |engine − trainer| log-prob over the sampled tokens. */
  logpDiff: { max: number; mean: number };
  /** Whose log-probs were logp_old. */
  logpOld: 'engine' | 'trainer';
  /** Share of sampled tokens whose ratio fell outside [1 − clipLow, 1 + clipHigh]. */
  clipFraction: number;
}

/**
 * Accumulates the gradients of `losses(logpOld)` over `sequences`, whose first `engine.length` are
 * the policy's rollouts with their targets on the sampled tokens only and `engine[i]` the engine's
 * log-probs of those tokens. The engine's numbers are checked against the trainer's forward of the
 * same tokens; beyond {@link LOGP_TOLERANCE} the pass is redone with the trainer's as logp_old.
 * Does not step the optimizer.
 */
export async function accumulateGrpo(
  trainer: LoraTrainer, sequences: readonly TrainSequence[], engine: readonly Float32Array[],
  losses: (logpOld: readonly Float32Array[]) => LossOptions, clip: { low: number; high: number }, signal?: AbortSignal,
): Promise<GrpoPass> {
  const R = engine.length;
  let result = await trainer.accumulate(sequences, losses(engine), { signal });
  let logpOld: 'engine' | 'trainer' = 'engine';
  const trainerLogp = result.logp ? result.logp.slice(0, R) : null;
  const logpDiff = trainerLogp ? diff(engine, trainerLogp) : { max: 0, mean: 0 };
  if (trainerLogp && logpDiff.max > LOGP_TOLERANCE) {
    // The engine's numbers are not the trainer's policy closely enough: redo the pass with the trainer's.
    trainer.zeroGrads();
    result = await trainer.accumulate(sequences, losses(trainerLogp), { signal });
    logpOld = 'trainer';
  }
  const clipFraction = trainerLogp ? clipShare(logpOld === 'engine' ? engine : trainerLogp, trainerLogp, clip.low, clip.high) : 0;
  return { result, logpDiff, logpOld, clipFraction };
}

/**
 * The GRPO loss of `R` rollouts (the first R of `n` sequences) with their advantages; the other
 * sequences (e.g. InfoNCE documents) get advantage 0 and no targets' log-probs.
 */
export function grpoLoss(
  n: number, advantages: Float32Array, logpOld: readonly Float32Array[], c: { weight: number; clipLow: number; clipHigh: number; kl: number },
): NonNullable<LossOptions['grpo']> {
  const R = logpOld.length;
  const empty = new Float32Array(0);
  return {
    weight: c.weight, advantages: Float32Array.from({ length: n }, (_, i) => (i < R ? advantages[i]! : 0)),
    logpOld: Array.from({ length: n }, (_, i) => (i < R ? logpOld[i]! : empty)), epsLow: c.clipLow, epsHigh: c.clipHigh, klCoef: c.kl,
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

/**
 * The one home of LoraTrainer's policy defaults. TS resolves every option against these tables and
 * always passes each value to the addon, which has no defaults of its own: it requires every value
 * and range-checks it (native/train/trainer_wrap.cc), so a value can never be defaulted twice, or
 * differently, on the two sides of the seam. Stage-1's recipe has its own defaults in
 * stage1-config.ts and passes them explicitly.
 *
 * @example
 * import { STEP_DEFAULTS } from './defaults';
 * const { beta1 = STEP_DEFAULTS.beta1 } = options;
 */

/** AdamW and clipping defaults of {@link LoraTrainer.step} (see StepOptions for each field). */
export const STEP_DEFAULTS = Object.freeze({
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  /** Global gradient-norm clip; 0 = none. */
  clipNorm: 1,
});

/** Loss defaults of {@link LoraTrainer.accumulate} (see LossOptions and GrpoLossOptions). */
export const LOSS_DEFAULTS = Object.freeze({
  /** Weight of every loss that is given without one. */
  weight: 1,
  /** InfoNCE temperature τ. */
  temperature: 0.05,
  /** Triplet margin on cosine distance. */
  margin: 0.2,
  /** GRPO ratio clip [1 - epsLow, 1 + epsHigh]: PPO's 0.2 below, DAPO's clip-higher 0.28 above (arXiv 2503.14476). */
  epsLow: 0.2,
  epsHigh: 0.28,
  /** Coefficient of GRPO's k3 KL term to the reference. */
  klCoef: 0,
});

/** Adapter defaults of {@link LoraTrainer.open}; the default targets are all of LORA_MODULES. */
export const LORA_DEFAULTS = Object.freeze({
  rank: 8,
  /** alpha = alphaPerRank × rank, so the update scale alpha / rank is 2 whatever the rank. */
  alphaPerRank: 2,
  seed: 0,
  transposedWeights: true,
});

import { assertInteger, assertNumber, assertOneOf, checkKeys, expected } from '../util/validate';

/** How the learning rate falls after warm-up. */
export type LrScheduleKind = 'cosine' | 'linear' | 'constant';
/** The accepted values of `schedule`, in the order error messages list them. */
export const LR_SCHEDULE_KINDS: readonly LrScheduleKind[] = ['cosine', 'linear', 'constant'];

/**
 * Learning-rate schedule. The shapes are those of Hugging Face transformers'
 * `get_cosine_with_min_lr_schedule_with_warmup` and `get_linear_schedule_with_warmup`, so a
 * configuration copied from a TRL/transformers recipe behaves the same here.
 */
export interface LrScheduleOptions {
  /** Peak learning rate, reached at the end of warm-up. Required; > 0. */
  lr: number;
  /** Optimizer steps in the whole run; the decay reaches its floor here. Required; ≥ 1. */
  totalSteps: number;
  /** Steps of linear warm-up from 0 to `lr` (default 0: start at `lr`). At most `totalSteps`. */
  warmupSteps?: number;
  /** Decay after warm-up (default 'cosine'); 'constant' stays at `lr`. */
  schedule?: LrScheduleKind;
  /** Floor of the decay as a fraction of `lr`, 0–1 (default 0). Ignored by 'constant'. */
  minLrRatio?: number;
}

/**
 * Checks a schedule and fills in its defaults; errors quote the numbers that do not fit together.
 *
 * @example resolveLrSchedule({ lr: 1e-4, totalSteps: 100 }) // { lr: 1e-4, totalSteps: 100, warmupSteps: 0, schedule: 'cosine', minLrRatio: 0 }
 */
export function resolveLrSchedule(options: LrScheduleOptions): Required<LrScheduleOptions> {
  if (typeof options !== 'object' || options === null) throw new TypeError(expected('object { lr, totalSteps }', 'options', options));
  checkKeys(options, ['lr', 'totalSteps', 'warmupSteps', 'schedule', 'minLrRatio'], 'options');
  const o = { warmupSteps: 0, schedule: 'cosine' as LrScheduleKind, minLrRatio: 0, ...options };
  assertNumber(o.lr, 'options.lr');
  if (!(o.lr > 0 && Number.isFinite(o.lr))) throw new RangeError(expected('finite number > 0', 'options.lr', o.lr));
  assertInteger(o.totalSteps, 'options.totalSteps', 1);
  assertInteger(o.warmupSteps, 'options.warmupSteps', 0);
  assertOneOf(o.schedule, 'options.schedule', LR_SCHEDULE_KINDS);
  assertNumber(o.minLrRatio, 'options.minLrRatio', 0, 1);
  if (o.warmupSteps > o.totalSteps) {
    throw new RangeError(`Expected warmupSteps ≤ totalSteps but received warmupSteps ${o.warmupSteps} and totalSteps ${o.totalSteps}`);
  }
  return o;
}

/**
 * The learning rate for optimizer step `step` (0-based: the first update is step 0). Warm-up
 * rises linearly from 0 (`lr · step / warmupSteps`); after it, `progress = (step − warmupSteps) /
 * (totalSteps − warmupSteps)` runs from 0 to 1 and the rate is `lr · (r + (1 − r) · f)` with
 * `r = minLrRatio` and `f = ½(1 + cos(π·progress))` (cosine) or `1 − progress` (linear).
 * Steps past `totalSteps` stay at the floor, so a resumed run that overshoots does not restart.
 *
 * @example
 * lrAt(0, { lr: 1e-3, totalSteps: 100, warmupSteps: 10 }) // 0
 * lrAt(10, { lr: 1e-3, totalSteps: 100, warmupSteps: 10 }) // 0.001
 * lrAt(55, { lr: 1e-3, totalSteps: 100, warmupSteps: 10 }) // 0.0005 (half-way down the cosine)
 */
export function lrAt(step: number, options: LrScheduleOptions): number {
  assertInteger(step, 'step', 0);
  const o = resolveLrSchedule(options);
  if (step < o.warmupSteps) return (o.lr * step) / o.warmupSteps;
  if (o.schedule === 'constant') return o.lr;
  // Checked before dividing: when warmupSteps === totalSteps the decay has no length.
  if (step >= o.totalSteps) return o.lr * o.minLrRatio;
  const progress = (step - o.warmupSteps) / (o.totalSteps - o.warmupSteps);
  const f = o.schedule === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return o.lr * (o.minLrRatio + (1 - o.minLrRatio) * f);
}

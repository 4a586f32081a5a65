// The Search-R1 GRPO update on agent trajectories: the loss covers model-written tokens only.
import type { Trajectory } from '../agent/trajectory';
import { trajectorySequence } from '../agent/trajectory';
import { accumulateGrpo, grpoLoss, type GrpoPass } from './grpo-update';
import type { LoraTrainer } from './trainer';

/**
 * The engine's log-probs of a trajectory's model-written tokens, in order (the targets of its
 * training sequence). A model segment recorded without log-probs gives +Infinity, which fails the
 * agreement check, so the trainer's own log-probs become logp_old.
 */
export function modelLogprobs(t: Trajectory): Float32Array {
  const parts = t.segments.filter((s) => s.origin === 'model');
  const n = parts.reduce((a, s) => a + (s.tokens?.length ?? 0), 0);
  const out = new Float32Array(n);
  let at = 0;
  for (const s of parts) {
    const k = s.tokens?.length ?? 0;
    if (s.logprobs && s.logprobs.length === k) out.set(s.logprobs, at);
    else out.fill(Infinity, at, at + k);
    at += k;
  }
  return out;
}

/**
 * Accumulates the GRPO gradients of tokenized trajectories with their group advantages (no
 * optimizer step). Each trajectory becomes one training sequence whose targets are its `model`
 * tokens (trajectorySequence): the prompt, the retrieved `<information>` and the corrective text
 * are read as context but are neither in the policy loss nor in its KL term, Search-R1's
 * retrieved-token mask.
 *
 * @example const pass = await accumulateTrajectories(trainer, trajectories, advantages, { clipLow: 0.2, clipHigh: 0.28, kl: 0.001 });
 */
export async function accumulateTrajectories(
  trainer: LoraTrainer, trajectories: readonly Trajectory[], advantages: Float32Array,
  c: { clipLow: number; clipHigh: number; kl: number }, signal?: AbortSignal,
): Promise<GrpoPass> {
  if (advantages.length !== trajectories.length) throw new RangeError(`Expected ${trajectories.length} advantages (one per trajectory) but received ${advantages.length}`);
  const sequences = trajectories.map((t) => trajectorySequence(t));
  const engine = trajectories.map(modelLogprobs);
  return accumulateGrpo(
    trainer, sequences, engine, (old) => ({ grpo: grpoLoss(sequences.length, advantages, old, { weight: 1, ...c }) }), { low: c.clipLow, high: c.clipHigh }, signal,
  );
}

import type { TrainSequence } from './batch';
import type { EncodedPair } from './data';
import type { ResolvedStage1 } from './stage1-config';
import type { LoraTrainer } from './trainer';

type Losses = Parameters<LoraTrainer['accumulate']>[1];

/** What {@link stage1MicroBatch} reads of the resolved stage-1 options. */
export type Stage1BatchSettings = Pick<ResolvedStage1, 'losses' | 'temperature' | 'margin' | 'hardNegatives'>;

/**
 * The token targets of one stage-1 micro-batch and the SFT weight over them. The trainer has one
 * SFT term per batch (a mean over its target tokens), so the rule (README, Training, "Reasoning
 * traces") is:
 * - `sft > 0`: the direct assistant turns are targets, and the traces too when `reasoning > 0`, all
 *   at weight `sft`;
 * - `sft = 0` (the default) and the batch has traces and `reasoning > 0`: the traces alone are
 *   targets, at weight `reasoning` (default 1), so a trace is learned although SFT is off;
 * - otherwise only the direct turns are targets, and no SFT runs (KL alone may read them).
 * KL, when on, reads the same targets.
 */
export function targetRule(losses: Stage1BatchSettings['losses'], hasTraces: boolean): { direct: boolean; traces: boolean; sftWeight: number } {
  const traces = hasTraces && losses.reasoning > 0;
  if (losses.sft > 0) return { direct: true, traces, sftWeight: losses.sft };
  if (traces) return { direct: false, traces, sftWeight: losses.reasoning };
  return { direct: true, traces: false, sftWeight: 0 };
}

/**
 * One stage-1 micro-batch from encoded pairs. Sequences, in order: the B direct queries, the traced
 * queries of the pairs that have a trace (in pair order), the B positives, then each pair's hard
 * negatives. A traced pair trains both of its query forms, so `direct` mode keeps learning from it
 * while `reason` mode learns from the trace: each query (direct or traced) is scored by InfoNCE
 * against every positive and negative (label: its pair's positive) and by the triplet loss against
 * its pair's first hard negative (or the next pair's positive). A direct sequence's targets are its
 * last `directTargets` tokens (the direct assistant turn); a traced query's are its trace and
 * `<|embed_token|>`; which of them count is {@link targetRule}'s. Every sequence's embedding is
 * read at its last token, the `<|embed_token|>`.
 *
 * @example
 * const { sequences, losses } = stage1MicroBatch(pairs, resolveStage1(options), 5);
 */
export function stage1MicroBatch(pairs: readonly EncodedPair[], c: Stage1BatchSettings, directTargets: number): { sequences: TrainSequence[]; losses: Losses } {
  const B = pairs.length;
  const tracedPairs = pairs.map((p, i) => (p.trace ? i : -1)).filter((i) => i >= 0);
  const rule = targetRule(c.losses, tracedPairs.length > 0);
  const direct = (tokens: Int32Array): TrainSequence => {
    const targets = new Uint8Array(tokens.length);
    if (rule.direct) targets.fill(1, Math.max(1, tokens.length - directTargets));
    return { tokens, targets, embedAt: tokens.length - 1 };
  };
  const traced = ({ ids, start }: NonNullable<EncodedPair['trace']>): TrainSequence => {
    const targets = new Uint8Array(ids.length);
    if (rule.traces) targets.fill(1, Math.max(1, start));
    return { tokens: ids, targets, embedAt: ids.length - 1 };
  };
  const sequences: TrainSequence[] = [...pairs.map((p) => direct(p.query)), ...tracedPairs.map((i) => traced(pairs[i]!.trace!))];
  const firstPositive = sequences.length;
  sequences.push(...pairs.map((p) => direct(p.positive)));
  const firstNegative: number[] = [];
  for (const p of pairs) {
    const hard = p.negatives.slice(0, c.hardNegatives);
    firstNegative.push(hard.length > 0 ? sequences.length : -1);
    for (const neg of hard) sequences.push({ tokens: neg, embedAt: neg.length - 1 });
  }
  // Query q belongs to pair pairOf[q]: the direct queries first, then the traced ones.
  const pairOf = [...pairs.map((_, i) => i), ...tracedPairs];
  const queries = pairOf.map((_, q) => q);
  const candidates = sequences.map((_, i) => i).slice(firstPositive);
  const w = c.losses;
  const losses: Losses = {};
  const anyTargets = sequences.some((s) => s.targets?.some((t, i) => i > 0 && t === 1));
  if (rule.sftWeight > 0 && anyTargets) losses.sft = { weight: rule.sftWeight };
  if (w.kl > 0 && anyTargets) losses.kl = { weight: w.kl };
  if (w.infonce > 0) losses.infonce = { weight: w.infonce, temperature: c.temperature, queries, candidates, labels: pairOf };
  const negativeOf = pairs.map((_, i) => (firstNegative[i]! >= 0 ? firstNegative[i]! : firstPositive + ((i + 1) % B)));
  if (w.triplet > 0 && negativeOf.every((neg, i) => neg !== firstPositive + i)) {
    losses.triplet = { weight: w.triplet, margin: c.margin, anchors: queries, positives: pairOf.map((i) => firstPositive + i), negatives: pairOf.map((i) => negativeOf[i]!) };
  }
  return { sequences, losses };
}

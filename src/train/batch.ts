import type { NativeLossSpec, NativeTrainBatch } from '../native';
import { assertInteger, assertNumber, checkKeys, expected } from '../util/validate';
import { LOSS_DEFAULTS } from './defaults';

/**
 * One training sequence. `targets[i] = 1` makes token i a target of the token-level losses (it
 * is predicted from position i - 1, so `targets[0]` is ignored); `embedAt` is the position of
 * the sequence's `<|embed_token|>`, whose final hidden state the embedding losses use.
 */
export interface TrainSequence {
  tokens: Int32Array;
  targets?: Uint8Array;
  embedAt?: number;
}

/** The GRPO policy loss of one batch (Search-R1 / DeepSeekMath form, PPO-clipped). */
export interface GrpoLossOptions {
  weight?: number;
  /** Advantage of each sequence (group-normalised reward), one per sequence. */
  advantages: ArrayLike<number>;
  /** Log-probs of each sequence's target tokens under the sampling policy, in target order. */
  logpOld: readonly Float32Array[];
  /** Clip range of the ratio: [1 - epsLow, 1 + epsHigh]. Defaults 0.2 and 0.28 (DAPO's clip-higher). */
  epsLow?: number;
  epsHigh?: number;
  /** Coefficient of the k3 KL estimate to the reference (the model without LoRA). Default 0. */
  klCoef?: number;
  /** 'token': mean over all target tokens of the batch (default); 'sequence': mean of per-sequence means. */
  normalize?: 'token' | 'sequence';
}

/**
 * The losses of one micro-batch, each with its weight. Embedding losses refer to sequences by
 * their index in the batch; every sequence they name needs `embedAt`.
 */
export interface LossOptions {
  /** Masked next-token cross-entropy, mean over target tokens. */
  sft?: { weight?: number };
  /** KL(current || reference) over the full vocabulary at the target tokens, mean over them. */
  kl?: { weight?: number };
  /** InfoNCE with cosine similarity: query i's positive is candidates[labels[i]]; the other candidates are its negatives. */
  infonce?: { weight?: number; temperature?: number; queries: number[]; candidates: number[]; labels: number[] };
  /** Triplet margin on cosine distance: relu(margin + cos(a, n) - cos(a, p)), mean over triplets. */
  triplet?: { weight?: number; margin?: number; anchors: number[]; positives: number[]; negatives: number[] };
  grpo?: GrpoLossOptions;
}

/** A batch in the addon's padded layout, plus the maps back to sequences. */
export interface PackedBatch {
  native: NativeTrainBatch;
  /** Index into embedRows of each sequence's embed token, or -1. */
  embedIndex: Int32Array;
  /** First target row of each sequence and how many it has. */
  targetStart: Int32Array;
  targetCount: Int32Array;
  /** Real (unpadded) tokens in the batch. */
  tokens: number;
}

/**
 * Pads sequences to a common length and lists the rows the losses read.
 *
 * @example
 * const packed = packBatch([{ tokens: ids, targets: mask }]);
 */
export function packBatch(sequences: readonly TrainSequence[]): PackedBatch {
  if (!Array.isArray(sequences) || sequences.length === 0) throw new RangeError(expected('a non-empty array of sequences', 'sequences', sequences));
  const nLen = Math.max(...sequences.map((s, i) => checkSequence(s, i)));
  const nSeq = sequences.length;
  const tokens = new Int32Array(nSeq * nLen);
  const embedRows: number[] = [];
  const targetRows: number[] = [];
  const targetTokens: number[] = [];
  const embedIndex = new Int32Array(nSeq).fill(-1);
  const targetStart = new Int32Array(nSeq);
  const targetCount = new Int32Array(nSeq);
  let real = 0;
  sequences.forEach((s, b) => {
    tokens.set(s.tokens, b * nLen);
    real += s.tokens.length;
    if (s.embedAt !== undefined) {
      embedIndex[b] = embedRows.length;
      embedRows.push(b * nLen + s.embedAt);
    }
    targetStart[b] = targetRows.length;
    if (s.targets) {
      for (let i = 1; i < s.tokens.length; i++) {
        if (!s.targets[i]) continue;
        targetRows.push(b * nLen + i - 1);
        targetTokens.push(s.tokens[i]);
      }
    }
    targetCount[b] = targetRows.length - targetStart[b];
  });
  return {
    native: {
      nSeq, nLen, tokens,
      embedRows: Int32Array.from(embedRows),
      targetRows: Int32Array.from(targetRows),
      targetTokens: Int32Array.from(targetTokens),
    },
    embedIndex, targetStart, targetCount, tokens: real,
  };
}

function checkSequence(s: TrainSequence, i: number): number {
  const name = `sequences[${i}]`;
  if (typeof s !== 'object' || s === null) throw new TypeError(expected('{ tokens, targets?, embedAt? }', name, s));
  checkKeys(s, ['tokens', 'targets', 'embedAt'], name);
  if (!(s.tokens instanceof Int32Array) || s.tokens.length === 0) throw new TypeError(expected('a non-empty Int32Array', `${name}.tokens`, s.tokens));
  if (s.targets !== undefined) {
    if (!(s.targets instanceof Uint8Array)) throw new TypeError(expected('Uint8Array', `${name}.targets`, s.targets));
    if (s.targets.length !== s.tokens.length) {
      throw new RangeError(`${name}.targets has ${s.targets.length} entries but the sequence has ${s.tokens.length} tokens`);
    }
  }
  if (s.embedAt !== undefined) assertInteger(s.embedAt, `${name}.embedAt`, 0, s.tokens.length - 1);
  return s.tokens.length;
}

const weightOf = (part: { weight?: number } | undefined, name: string): number => {
  const w = part?.weight ?? LOSS_DEFAULTS.weight;
  assertNumber(w, `${name}.weight`);
  if (!Number.isFinite(w)) throw new RangeError(expected('a finite number', `${name}.weight`, w));
  return w;
};

function embedIndices(packed: PackedBatch, seqs: number[], name: string): Int32Array {
  if (!Array.isArray(seqs) || seqs.length === 0) throw new RangeError(expected('a non-empty array of sequence indices', name, seqs));
  return Int32Array.from(seqs, (s, i) => {
    assertInteger(s, `${name}[${i}]`, 0, packed.embedIndex.length - 1);
    const e = packed.embedIndex[s];
    if (e < 0) throw new RangeError(`${name}[${i}] names sequence ${s}, which has no embedAt`);
    return e;
  });
}

/**
 * Turns loss options into the addon's per-row form: token-level losses get a weight per target
 * row that carries the mean, embedding losses get indices into the batch's embed rows.
 */
export function lossSpec(packed: PackedBatch, losses: LossOptions): NativeLossSpec {
  checkKeys(losses, ['sft', 'kl', 'infonce', 'triplet', 'grpo'], 'losses');
  const m = packed.native.targetRows!.length;
  const tokenMean = () => new Float32Array(m).fill(m > 0 ? 1 / m : 0);
  const spec: NativeLossSpec = {};
  if (losses.sft) {
    checkKeys(losses.sft, ['weight'], 'losses.sft');
    spec.sft = { weight: weightOf(losses.sft, 'sft'), rowWeights: tokenMean() };
  }
  if (losses.kl) {
    checkKeys(losses.kl, ['weight'], 'losses.kl');
    spec.kl = { weight: weightOf(losses.kl, 'kl'), rowWeights: tokenMean() };
  }
  if (losses.infonce) {
    const o = losses.infonce;
    checkKeys(o, ['weight', 'temperature', 'queries', 'candidates', 'labels'], 'losses.infonce');
    const temperature = o.temperature ?? LOSS_DEFAULTS.temperature;
    assertNumber(temperature, 'infonce.temperature', 1e-4, 100);
    const candidates = embedIndices(packed, o.candidates, 'infonce.candidates');
    const queries = embedIndices(packed, o.queries, 'infonce.queries');
    if (queries.length * candidates.length > 2 ** 31 - 1) {
      throw new RangeError(`Expected infonce.queries x infonce.candidates below 2^31 but received ${queries.length} x ${candidates.length}`);
    }
    if (!Array.isArray(o.labels) || o.labels.length !== queries.length) {
      throw new RangeError(expected(`an array of ${queries.length} labels (one per query)`, 'infonce.labels', o.labels));
    }
    o.labels.forEach((l, i) => assertInteger(l, `infonce.labels[${i}]`, 0, candidates.length - 1));
    spec.infonce = { weight: weightOf(o, 'infonce'), temperature, queries, candidates, labels: Int32Array.from(o.labels) };
  }
  if (losses.triplet) {
    const o = losses.triplet;
    checkKeys(o, ['weight', 'margin', 'anchors', 'positives', 'negatives'], 'losses.triplet');
    const margin = o.margin ?? LOSS_DEFAULTS.margin;
    assertNumber(margin, 'triplet.margin', 0, 2);
    const anchors = embedIndices(packed, o.anchors, 'triplet.anchors');
    const positives = embedIndices(packed, o.positives, 'triplet.positives');
    const negatives = embedIndices(packed, o.negatives, 'triplet.negatives');
    if (positives.length !== anchors.length || negatives.length !== anchors.length) {
      throw new RangeError(`triplet.anchors, positives and negatives must have the same length (${anchors.length}, ${positives.length}, ${negatives.length})`);
    }
    spec.triplet = { weight: weightOf(o, 'triplet'), margin, anchors, positives, negatives };
  }
  if (losses.grpo) spec.grpo = grpoSpec(packed, losses.grpo);
  if (m === 0 && (spec.sft || spec.kl || spec.grpo)) throw new RangeError('token-level losses (sft, kl, grpo) need at least one target token in the batch');
  return spec;
}

function grpoSpec(packed: PackedBatch, o: GrpoLossOptions): NonNullable<NativeLossSpec['grpo']> {
  checkKeys(o, ['weight', 'advantages', 'logpOld', 'epsLow', 'epsHigh', 'klCoef', 'normalize'], 'losses.grpo');
  const nSeq = packed.targetStart.length;
  const m = packed.native.targetRows!.length;
  if (!o.advantages || o.advantages.length !== nSeq) throw new RangeError(expected(`${nSeq} advantages (one per sequence)`, 'grpo.advantages', o.advantages));
  if (!Array.isArray(o.logpOld) || o.logpOld.length !== nSeq) throw new RangeError(expected(`${nSeq} Float32Arrays (one per sequence)`, 'grpo.logpOld', o.logpOld));
  const { epsLow = LOSS_DEFAULTS.epsLow, epsHigh = LOSS_DEFAULTS.epsHigh, klCoef = LOSS_DEFAULTS.klCoef } = o;
  assertNumber(epsLow, 'grpo.epsLow', 0, 0.999);
  assertNumber(epsHigh, 'grpo.epsHigh', 0, 100);
  assertNumber(klCoef, 'grpo.klCoef', 0, 1e6);
  const normalize = o.normalize ?? 'token';
  if (normalize !== 'token' && normalize !== 'sequence') throw new RangeError(expected("'token' or 'sequence'", 'grpo.normalize', normalize));
  const rowWeights = new Float32Array(m);
  const advantages = new Float32Array(m);
  const logpOld = new Float32Array(m);
  const withTargets = Array.from(packed.targetCount).filter((c) => c > 0).length;
  for (let b = 0; b < nSeq; b++) {
    const start = packed.targetStart[b];
    const count = packed.targetCount[b];
    const old = o.logpOld[b];
    if (!(old instanceof Float32Array) || old.length !== count) {
      throw new RangeError(expected(`a Float32Array of ${count} log-probs (the sequence's target tokens)`, `grpo.logpOld[${b}]`, old));
    }
    assertNumber(o.advantages[b], `grpo.advantages[${b}]`);
    for (let j = 0; j < count; j++) {
      rowWeights[start + j] = normalize === 'token' ? 1 / m : 1 / (count * withTargets);
      advantages[start + j] = o.advantages[b];
      logpOld[start + j] = old[j];
    }
  }
  return { weight: weightOf(o, 'grpo'), rowWeights, advantages, logpOld, epsLow, epsHigh, klCoef };
}

/** Splits per-target-row values back into one array per sequence. */
export function perSequence(packed: PackedBatch, values: Float32Array): Float32Array[] {
  return Array.from(packed.targetStart, (start, b) => values.slice(start, start + packed.targetCount[b]));
}

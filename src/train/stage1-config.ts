import { resolveEmbedTemplate, type EmbedTemplate, type LongTextPolicy } from '../engine/templates';
import { assertBoolean, assertInteger, assertNumber, assertOneOf, assertString, checkKeys, expected } from '../util/validate';
import type { PairRecord } from './data';
import type { RetrievalSplit } from './retrieval-eval';
import { resolveLrSchedule, type LrScheduleKind } from './schedule';
import { LORA_MODULES, type LoraConfig, type LoraModule } from './trainer';

/** Weights of stage 1's four losses (the paper's L = SFT + KL + InfoNCE + triplet). */
export interface Stage1LossWeights {
  /** Cross-entropy on the assistant turn "The embedding is <|embed_token|>", so the model keeps emitting the token in `reason` mode. Default 0: `direct` embeddings force the token, and on the sweep (README, Training) SFT lowered held-out nDCG@10 and cost 10-20x the step time. */
  sft?: number;
  /** KL to the base model on the same tokens (needs one extra forward pass per step). Default 0 (it guards the SFT turn, off by default). */
  kl?: number;
  /** InfoNCE over in-batch and hard negatives: the loss that makes the embedding retrieve. Default 1. */
  infonce?: number;
  /** Triplet margin on cosine distance against the hardest given negative. Default 0.5. */
  triplet?: number;
  /**
   * SFT on reasoning traces (records with `reasoning`: the trace and the `<|embed_token|>` after it),
   * so `reason` mode learns to write a trace and end it with the token. Default 1. While `sft` is 0
   * (the default) it is the weight of SFT on the traces alone; when `sft` > 0 one SFT term covers the
   * direct turns and the traces at weight `sft`, and `reasoning` 0 leaves the traces out of it
   * (the rule: `targetRule` in stage1-batch.ts).
   */
  reasoning?: number;
}

/**
 * Stage 1 (supervised contrastive fine-tuning) in one object. Every field has a default; the
 * resolve step checks cross-field constraints and quotes the numbers when they fail.
 */
export interface Stage1Options {
  /** Base model GGUF; it must contain `<|embed_token|>` (see `search-r3 add-embed-token`). */
  model: string;
  /** Training pairs: a JSONL file, a BEIR directory (train split), or records in memory. */
  train: string | PairRecord[];
  /** Adapter output path; the resumable state goes beside it as `<out>.state`, the step log as `<out>.log.jsonl`. */
  out: string;
  /** Held-out split scored (nDCG@10) before training, every `evalEvery` steps and at the end: a BEIR directory (test split) or a split in memory. */
  eval?: string | RetrievalSplit;
  /** Optimizer steps. Default 100. */
  steps?: number;
  /** Pairs per micro-batch; every pair's positive is an in-batch negative of the others. Default 8. */
  batch?: number;
  /** Micro-batches per optimizer step (gradient accumulation). Default 1. */
  accumulate?: number;
  /** Peak learning rate. Default: from the model's width, {@link stage1DefaultLr} (4.5e-4 on Qwen2.5-0.5B, 1e-4 from 3B up). */
  lr?: number;
  /** Linear warm-up steps. Default 5% of steps. */
  warmupSteps?: number;
  schedule?: LrScheduleKind;
  /** Final LR as a fraction of lr. Default 0.1. */
  minLrRatio?: number;
  weightDecay?: number;
  /** Global gradient-norm clip (0 = off). Default 1. */
  clipNorm?: number;
  lora?: LoraConfig;
  losses?: Stage1LossWeights;
  /** InfoNCE temperature τ. Default 0.05. */
  temperature?: number;
  /** Triplet margin. Default 0.2. */
  margin?: number;
  /** Hard negatives per pair taken from the data (0 = in-batch negatives only). Default 1. */
  hardNegatives?: number;
  /** Longest prompt in tokens; longer texts are shortened, never the template. Default 256. */
  maxTokens?: number;
  /**
   * A text over maxTokens (README "Long texts"): `truncate` (default) shortens it and counts it,
   * `error` stops before training naming the record's id and FILE:LINE, `skip` drops the record.
   */
  longText?: LongTextPolicy;
  /** Write adapter + state every this many steps (and at the end). Default 50. */
  checkpointEvery?: number;
  /** Score the eval split every this many steps (0 = only before and after). Default 0. */
  evalEvery?: number;
  /** Continue from `<out>.state` exactly where it stopped. Default false. */
  resume?: boolean;
  /** Replace an earlier run's adapter, state and log at `out` (without it, or `resume`, they are refused). Default false. */
  force?: boolean;
  /** Data order and LoRA initialisation seed. Default 0. */
  seed?: number;
  threads?: number;
  /** Skip the trainer's transposed weight copies: one copy of the model's matrices less in memory, slower steps (LoraTrainerOptions.transposedWeights). Default false. */
  leanMemory?: boolean;
  /**
   * Prompt wording, as the Embedder takes it: a name of EMBED_TEMPLATES (`default`, `search-r3.0`)
   * or fields over the default template's. Train with the template you will embed with; it is part
   * of the resume fingerprint (resolved to its texts). Default `default`.
   */
  template?: string | Partial<EmbedTemplate>;
  /** Show a progress bar on stderr. Default true. */
  progress?: boolean;
}

export type ResolvedStage1 = Required<Omit<Stage1Options, 'eval' | 'threads' | 'lora' | 'losses' | 'template'>> & {
  template: EmbedTemplate;
  eval: Stage1Options['eval'] | null;
  threads: number | undefined;
  lora: { rank: number; alpha: number; targets: LoraModule[]; seed: number };
  losses: Required<Stage1LossWeights>;
};

const KEYS = [
  'model', 'train', 'out', 'eval', 'steps', 'batch', 'accumulate', 'lr', 'warmupSteps', 'schedule', 'minLrRatio', 'weightDecay',
  'clipNorm', 'lora', 'losses', 'temperature', 'margin', 'hardNegatives', 'maxTokens', 'longText', 'checkpointEvery', 'evalEvery', 'resume',
  'force', 'seed', 'threads', 'leanMemory', 'template', 'progress',
];

/** The width-scaled learning-rate rule's constants (README, Training, for the sweep behind them). */
export const STAGE1_LR_RULE = { perWidth: 0.4, min: 1e-4, max: 4e-3 } as const;

/**
 * Stage 1's default peak learning rate for a model of hidden width `nEmbd`: 0.4 / nEmbd, kept within
 * [1e-4, 4e-3]. An update's effect on a layer's output grows with the number of inputs it sums over,
 * so AdamW's step size scales as 1 / width (as in µP); the floor keeps real models at the rate LoRA
 * recipes use (width 896, Qwen2.5-0.5B: 4.5e-4; 1.5B: 2.6e-4; 3584, 7B: 1.1e-4), and narrow test models get
 * the larger rate they need to learn in a few hundred steps (width 256: 1.6e-3; 64: the 4e-3 cap).
 *
 * @example stage1DefaultLr(896) // 0.000446
 */
export function stage1DefaultLr(nEmbd: number): number {
  assertInteger(nEmbd, 'nEmbd', 1);
  const { perWidth, min, max } = STAGE1_LR_RULE;
  return Math.min(max, Math.max(min, perWidth / nEmbd));
}

/**
 * Fills defaults and checks every field; errors name the field and quote the value. `model` gives
 * the defaults that follow the model (the learning rate); without it they are those of a width-896
 * model, enough to check the options before the model is read.
 */
export function resolveStage1(o: Stage1Options, model: { nEmbd: number } = { nEmbd: 896 }): ResolvedStage1 {
  if (typeof o !== 'object' || o === null) throw new TypeError(expected('an options object', 'options', o));
  checkKeys(o, KEYS, 'options');
  assertString(o.model, 'model', { nonEmpty: true });
  assertString(o.out, 'out', { nonEmpty: true });
  if (typeof o.train !== 'string' && !Array.isArray(o.train)) throw new TypeError(expected('a path or an array of pair records', 'train', o.train));
  const steps = o.steps ?? 100;
  assertInteger(steps, 'steps', 1, 1e9);
  const batch = o.batch ?? 8;
  assertInteger(batch, 'batch', 1, 4096);
  const accumulate = o.accumulate ?? 1;
  assertInteger(accumulate, 'accumulate', 1, 4096);
  const lr = o.lr ?? stage1DefaultLr(model.nEmbd);
  const warmupSteps = o.warmupSteps ?? Math.round(steps * 0.05);
  const schedule = o.schedule ?? 'cosine';
  const minLrRatio = o.minLrRatio ?? 0.1;
  resolveLrSchedule({ lr, totalSteps: steps, warmupSteps, schedule, minLrRatio });
  const weightDecay = o.weightDecay ?? 0;
  assertNumber(weightDecay, 'weightDecay', 0, 1);
  const clipNorm = o.clipNorm ?? 1;
  assertNumber(clipNorm, 'clipNorm', 0, 1e6);
  const lora = o.lora ?? {};
  checkKeys(lora, ['rank', 'alpha', 'targets', 'seed'], 'lora');
  const rank = lora.rank ?? 8;
  assertInteger(rank, 'lora.rank', 1, 4096);
  const targets = [...(lora.targets ?? LORA_MODULES)];
  const losses = { sft: 0, kl: 0, infonce: 1, triplet: 0.5, reasoning: 1, ...(o.losses ?? {}) };
  checkKeys(losses, ['sft', 'kl', 'infonce', 'triplet', 'reasoning'], 'losses');
  for (const [k, v] of Object.entries(losses)) assertNumber(v, `losses.${k}`, 0, 1e6);
  if (losses.infonce === 0 && losses.triplet === 0) {
    throw new RangeError('losses: infonce and triplet are both 0, so nothing trains the embedding; give one of them a positive weight');
  }
  const temperature = o.temperature ?? 0.05;
  assertNumber(temperature, 'temperature', 1e-4, 100);
  const margin = o.margin ?? 0.2;
  assertNumber(margin, 'margin', 0, 2);
  const hardNegatives = o.hardNegatives ?? 1;
  assertInteger(hardNegatives, 'hardNegatives', 0, 64);
  if (batch === 1 && hardNegatives === 0) {
    throw new RangeError('batch 1 with hardNegatives 0 leaves InfoNCE and triplet without a single negative; raise one of them');
  }
  const maxTokens = o.maxTokens ?? 256;
  assertInteger(maxTokens, 'maxTokens', 16, 1 << 20);
  const longText = o.longText ?? 'truncate';
  assertOneOf(longText, 'longText', ['truncate', 'error', 'skip'] as const);
  const checkpointEvery = o.checkpointEvery ?? 50;
  assertInteger(checkpointEvery, 'checkpointEvery', 1, 1e9);
  const evalEvery = o.evalEvery ?? 0;
  assertInteger(evalEvery, 'evalEvery', 0, 1e9);
  const resume = o.resume ?? false;
  assertBoolean(resume, 'resume');
  const force = o.force ?? false;
  assertBoolean(force, 'force');
  if (resume && force) throw new RangeError('resume and force both set: resume continues the run at out, force replaces it; choose one');
  const seed = o.seed ?? 0;
  assertInteger(seed, 'seed', 0, 0xffffffff);
  if (o.threads !== undefined) assertInteger(o.threads, 'threads', 1, 1024);
  const progress = o.progress ?? true;
  assertBoolean(progress, 'progress');
  const leanMemory = o.leanMemory ?? false;
  assertBoolean(leanMemory, 'leanMemory');
  const template = resolveEmbedTemplate(o.template);
  return {
    model: o.model, train: o.train, out: o.out, eval: o.eval ?? null, steps, batch, accumulate, lr, warmupSteps, schedule, minLrRatio,
    weightDecay, clipNorm, lora: { rank, alpha: lora.alpha ?? 2 * rank, targets, seed: lora.seed ?? seed }, losses, temperature, margin,
    hardNegatives, maxTokens, longText, checkpointEvery, evalEvery, resume, force, seed, threads: o.threads, leanMemory,
    template, progress,
  };
}

/**
 * What a resumed run must share with the run that wrote the state: the model and the training
 * records (`identity`, see trainStage1) and the settings; anything else (steps, eval, progress) may
 * change between the two.
 */
export function resumeFingerprint(c: ResolvedStage1, identity: { model: string; data: string; trainSize: number }): Record<string, unknown> {
  return {
    model: identity.model, data: identity.data, trainSize: identity.trainSize, template: c.template,
    batch: c.batch, accumulate: c.accumulate, lr: c.lr, warmupSteps: c.warmupSteps, schedule: c.schedule, minLrRatio: c.minLrRatio,
    weightDecay: c.weightDecay, clipNorm: c.clipNorm, lora: c.lora, losses: c.losses,
    temperature: c.temperature, margin: c.margin, hardNegatives: c.hardNegatives, maxTokens: c.maxTokens, longText: c.longText, seed: c.seed,
  };
}

import { resolveEmbedTemplate, type EmbedTemplate } from '../engine/templates';
import { assertBoolean, assertInteger, assertNumber, assertString, checkKeys, expected, defaultedNumbers } from '../util/validate';
import type { PairRecord } from './data';
import { LORA_DEFAULTS, LOSS_DEFAULTS } from './defaults';
import type { RetrievalSplit } from './retrieval-eval';
import { parseRewardSpec, REWARD_DEFAULTS, type RewardTerm } from './rewards';
import { parseRefresh, type RefreshPolicy } from './rl-env';
import { stage1DefaultLr } from './stage1-config';

/** Weights of stage 2's two losses. */
export interface Stage2LossWeights {
  /** The GRPO policy loss on the reasoning tokens (clipped ratio × group advantage, plus `kl` × k3 KL). Default 1. */
  grpo?: number;
  /** InfoNCE of the rollouts' embed-token states against their positives, in-batch and hard negatives. Default 1. */
  infonce?: number;
}

/**
 * Stage 2 (GRPO on reasoning embeddings, with the RL corpus environment) in one object; names are
 * the CLI's flags in camelCase. Every field but model, train, corpus and out has a default
 * ({@link STAGE2_DEFAULTS}).
 */
export interface Stage2Options {
  /** Base model GGUF with `<|embed_token|>`. */
  model: string;
  /** Stage-1 adapter to start from (its rank, alpha and targets are kept). Default: a fresh adapter (B = 0, the base model). */
  lora?: string;
  /** Rank of a fresh adapter (without `lora`). Default 8. */
  loraRank?: number;
  /** Training queries: JSONL `{query, positive, negatives?, positive_id?}`, a BEIR directory (train qrels), or records in memory. */
  train: string | PairRecord[];
  /** The corpus rewards rank against: a BEIR `corpus.jsonl`, a BEIR directory, or documents in memory. */
  corpus: string | readonly { id: string; title?: string; text: string }[];
  /** Adapter output; `<out>.state`, `<out>.log.jsonl` and `<out>.env/` go beside it. */
  out: string;
  /** Held-out split scored in `reason` mode (nDCG@10) before, every `evalEvery` steps and after: a BEIR directory (test qrels) or a split in memory. */
  eval?: string | RetrievalSplit;
  steps?: number;
  /** Training queries per step (Q). */
  queriesPerStep?: number;
  /** Reasoning samples per query (G), decoded from one shared prompt. */
  group?: number;
  maxReasoningTokens?: number;
  /** Rollout sampling temperature and nucleus mass. */
  temperature?: number;
  topP?: number;
  lr?: number;
  /** Coefficient of the k3 KL to the reference: the base model without any adapter (LoRA scale 0), also when starting from `lora`. */
  kl?: number;
  /** The ratio clip range [1 − clipLow, 1 + clipHigh]. */
  clipLow?: number;
  clipHigh?: number;
  lossWeights?: Stage2LossWeights;
  /** InfoNCE temperature. */
  infonceTemperature?: number;
  /** Hard negatives per query from the record's `negatives`, in InfoNCE and in the refreshed set. */
  hardNegatives?: number;
  /** Reward spec for parseRewardSpec: 'dcg', 'dcg=1,format=0.5', … */
  reward?: string;
  /** 'touched' | 'budget=F' | 'full' (parseRefresh); default 'budget=0.02', the policy the README's Stage 2 figures chose. */
  refresh?: string;
  /** Re-encode the whole corpus every K steps (0 = never). */
  fullRefreshEvery?: number;
  /** Retrieved documents per rollout that the rewards read (re-encoded first when stale). */
  topK?: number;
  /** Rollouts whose rewards are recomputed against a full re-encode at each eval (reward agreement). */
  agreementSample?: number;
  /** Longest query or document prompt in tokens (texts beyond are cut, as in stage 1). */
  maxTokens?: number;
  checkpointEvery?: number;
  /** Score `eval` and the reward agreement every N steps (0 = eval only before and after, no agreement). */
  evalEvery?: number;
  seed?: number;
  threads?: number;
  /** Prompt wording, as the Embedder takes it: a template name (`default`, `search-r3.0`) or fields over the default's. */
  template?: string | Partial<EmbedTemplate>;
  resume?: boolean;
  force?: boolean;
  progress?: boolean;
}

/** The defaults of {@link Stage2Options} (the learning rate follows the model's width, as stage 1's). */
export const STAGE2_DEFAULTS = Object.freeze({
  loraRank: LORA_DEFAULTS.rank, steps: 50, queriesPerStep: 8, group: 4, maxReasoningTokens: 32, temperature: 1, topP: 1,
  kl: 0.01, clipLow: LOSS_DEFAULTS.epsLow, clipHigh: LOSS_DEFAULTS.epsHigh, lossWeights: Object.freeze({ grpo: 1, infonce: 1 }),
  infonceTemperature: LOSS_DEFAULTS.temperature, hardNegatives: 1, reward: REWARD_DEFAULTS.spec, refresh: 'budget=0.02', fullRefreshEvery: 0,
  topK: REWARD_DEFAULTS.cutoff, agreementSample: 8, maxTokens: 256, checkpointEvery: 50, evalEvery: 0, seed: 0,
});

/** Stage-2 options with every default filled and the reward and refresh specs parsed. */
export type ResolvedStage2 = Omit<Required<Stage2Options>, 'lora' | 'eval' | 'threads' | 'lossWeights' | 'template'> & {
  lora: string | null;
  eval: Stage2Options['eval'] | null;
  threads: number | undefined;
  lossWeights: Required<Stage2LossWeights>;
  template: EmbedTemplate;
  rewardTerms: RewardTerm[];
  refreshPolicy: RefreshPolicy;
};

const KEYS = [
  'model', 'lora', 'loraRank', 'train', 'corpus', 'out', 'eval', 'steps', 'queriesPerStep', 'group', 'maxReasoningTokens', 'temperature',
  'topP', 'lr', 'kl', 'clipLow', 'clipHigh', 'lossWeights', 'infonceTemperature', 'hardNegatives', 'reward', 'refresh', 'fullRefreshEvery',
  'topK', 'agreementSample', 'maxTokens', 'checkpointEvery', 'evalEvery', 'seed', 'threads', 'template', 'resume', 'force', 'progress',
];

/**
 * Fills defaults and checks every field; errors name the option and quote the value. `model`
 * gives the width the default learning rate follows (without it, a width-896 model's).
 */
export function resolveStage2(o: Stage2Options, model: { nEmbd: number } = { nEmbd: 896 }): ResolvedStage2 {
  if (typeof o !== 'object' || o === null) throw new TypeError(expected('an options object', 'options', o));
  checkKeys(o, KEYS, 'options');
  const D = STAGE2_DEFAULTS;
  assertString(o.model, 'model', { nonEmpty: true });
  assertString(o.out, 'out', { nonEmpty: true });
  if (o.lora !== undefined) assertString(o.lora, 'lora', { nonEmpty: true });
  if (typeof o.train !== 'string' && !Array.isArray(o.train)) throw new TypeError(expected('a path or an array of pair records', 'train', o.train));
  if (typeof o.corpus !== 'string' && !Array.isArray(o.corpus)) throw new TypeError(expected('a path or an array of documents', 'corpus', o.corpus));
  const { int, num } = defaultedNumbers(o, D);
  const queriesPerStep = int('queriesPerStep', 1, 256);
  const group = int('group', 2, 256);
  // One session decodes the whole step; llama.cpp's sequence limit is 256.
  if (queriesPerStep * group > 256) {
    throw new RangeError(`queriesPerStep ${queriesPerStep} × group ${group} = ${queriesPerStep * group} rollouts per step; at most 256 fit one rollout session`);
  }
  const lossWeights = { ...D.lossWeights, ...(o.lossWeights ?? {}) };
  checkKeys(lossWeights, ['grpo', 'infonce'], 'lossWeights');
  for (const [k, v] of Object.entries(lossWeights)) assertNumber(v, `lossWeights.${k}`, 0, 1e6);
  if (lossWeights.grpo === 0 && lossWeights.infonce === 0) throw new RangeError('lossWeights: grpo and infonce are both 0, so nothing trains; give one a positive weight');
  const reward = o.reward ?? D.reward;
  assertString(reward, 'reward', { nonEmpty: true });
  const refresh = o.refresh ?? D.refresh;
  assertString(refresh, 'refresh', { nonEmpty: true });
  const template = resolveEmbedTemplate(o.template);
  if (o.threads !== undefined) assertInteger(o.threads, 'threads', 1, 1024);
  const flag = (name: 'resume' | 'force' | 'progress', dflt: boolean): boolean => {
    const v = o[name] ?? dflt;
    assertBoolean(v, name);
    return v;
  };
  const resume = flag('resume', false);
  const force = flag('force', false);
  if (resume && force) throw new RangeError('resume and force both set: resume continues the run at out, force replaces it; choose one');
  const lr = o.lr ?? stage1DefaultLr(model.nEmbd);
  assertNumber(lr, 'lr', 0, 10);
  return {
    model: o.model, lora: o.lora ?? null, loraRank: int('loraRank', 1, 4096), train: o.train, corpus: o.corpus, out: o.out, eval: o.eval ?? null,
    steps: int('steps', 1, 1e9), queriesPerStep, group, maxReasoningTokens: int('maxReasoningTokens', 1, 1 << 16),
    temperature: num('temperature', 0, 100), topP: num('topP', 0, 1), lr, kl: num('kl', 0, 1e6),
    clipLow: num('clipLow', 0, 0.999), clipHigh: num('clipHigh', 0, 100), lossWeights,
    infonceTemperature: num('infonceTemperature', 1e-4, 100), hardNegatives: int('hardNegatives', 0, 64),
    reward, rewardTerms: parseRewardSpec(reward), refresh, refreshPolicy: parseRefresh(refresh), fullRefreshEvery: int('fullRefreshEvery', 0, 1e9),
    topK: int('topK', 1, 1000), agreementSample: int('agreementSample', 1, 256), maxTokens: int('maxTokens', 16, 1 << 20),
    checkpointEvery: int('checkpointEvery', 1, 1e9), evalEvery: int('evalEvery', 0, 1e9), seed: int('seed', 0, 0xffffffff),
    threads: o.threads, template, resume, force, progress: flag('progress', true),
  };
}

/**
 * What a resumed run must share with the run that wrote the state: the model, the starting
 * adapter, the data and corpus (`identity`) and every setting that shapes a step; steps, eval,
 * evalEvery, agreementSample, threads and progress may change.
 */
export function stage2Fingerprint(c: ResolvedStage2, identity: { model: string; lora: string | null; data: string; corpus: string }): Record<string, unknown> {
  return {
    ...identity, loraRank: c.loraRank, template: c.template, queriesPerStep: c.queriesPerStep, group: c.group,
    maxReasoningTokens: c.maxReasoningTokens, temperature: c.temperature, topP: c.topP, lr: c.lr, kl: c.kl, clipLow: c.clipLow,
    clipHigh: c.clipHigh, lossWeights: c.lossWeights, infonceTemperature: c.infonceTemperature, hardNegatives: c.hardNegatives,
    reward: c.rewardTerms, refresh: c.refreshPolicy, fullRefreshEvery: c.fullRefreshEvery, topK: c.topK, maxTokens: c.maxTokens, seed: c.seed,
  };
}

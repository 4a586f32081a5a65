// Search-R1 training options in one place: defaults (Search-R1's where it has one), checks that name
// the option, and what a resumed run must share with the run that wrote its state.
import { QUESTION_SLOT, SEARCH_R1_TEMPLATE } from '../agent/prompt';
import { QA_REWARD_NAMES, type QaRewardName } from '../agent/rewards';
import type { QaItem } from '../eval/qa-data';
import type { TextRetriever } from '../retrieval/types';
import { assertBoolean, assertInteger, assertNumber, assertOneOf, assertString, checkKeys, expected, defaultedNumbers } from '../util/validate';
import { LORA_DEFAULTS, LOSS_DEFAULTS } from './defaults';
import { stage1DefaultLr } from './stage1-config';
import { LORA_MODULES, LORA_TARGETS, type LoraModule } from './trainer';

/**
 * The collapse rule (see {@link collapseCheck}): training stops when, for `patience` steps in a
 * row, the moving average of the reward over `window` steps is at most `rewardRatio` × its best
 * value so far, while the invalid-action rate is at least `invalidRate` or the mean response length
 * is at least `lengthRatio` × its value at the best average. Search-R1's GRPO collapses this way
 * (its issues #88, #89, #92): reward drops as the policy starts writing long, tagless text.
 */
export interface CollapseRule {
  window?: number;
  patience?: number;
  rewardRatio?: number;
  invalidRate?: number;
  lengthRatio?: number;
  /** The best moving average must reach this before a fall counts (a run that never learned cannot collapse). */
  minBest?: number;
}

/** Search-R1 training in one object; names are the CLI's flags in camelCase. */
export interface SearchR1Options {
  /** Base model GGUF. */
  model: string;
  /** Adapter to start from (its rank, alpha and targets are kept); default a fresh adapter (the base model). */
  lora?: string;
  loraRank?: number;
  /** Matrices a fresh adapter adapts (LORA_TARGETS); default every layer's projections. Add `'output'` to adapt the output head too (needs a model with its own output.weight). */
  loraTargets?: readonly LoraModule[];
  /** Training questions: QA JSONL `{id?, question, golden_answers}` or items in memory. */
  train: string | readonly QaItem[];
  /** The corpus searched (BEIR corpus.jsonl, FlashRAG JSONL or a folder), or documents in memory; needed without `retriever`, and read by the warm-up to follow multi-hop paths. */
  corpus?: string | readonly { id: string; contents: string }[];
  /** Where searches go; default BM25 over `corpus`. */
  retriever?: TextRetriever;
  /** Adapter output; `<out>.state` and `<out>.log.jsonl` go beside it. */
  out: string;
  /** The agent prompt the warm-up, the probe and the rollouts use, with a `{question}` slot (default Search-R1's); give the agent the same one. */
  template?: string;
  /** Documents per search, model turns and tokens per turn at most (Search-R1: 3, 4, 500). */
  topk?: number;
  maxTurns?: number;
  maxTurnTokens?: number;
  /** Tokens one trajectory may hold. */
  contextPerSequence?: number;
  /** GRPO steps (after the warm-up). */
  steps?: number;
  /** Questions per GRPO step (Q) and rollouts per question (G). */
  questionsPerStep?: number;
  group?: number;
  temperature?: number;
  topP?: number;
  reward?: QaRewardName;
  /** Supervised warm-up steps before GRPO, or 'auto': {@link SEARCH_R1_DEFAULTS}.autoWarmupSteps when the format probe fails, else 0. */
  warmupSft?: number | 'auto';
  /** Warm-up trajectories per supervised step. */
  warmupBatch?: number;
  /** Learning rate of the warm-up (default: `lr`). */
  warmupLr?: number;
  /** Warm-up steps `'auto'` runs when the probe fails. */
  autoWarmupSteps?: number;
  /** The probe: greedy rollouts on this many training questions; below `probeThreshold` valid-format share the warm-up runs. */
  probeQuestions?: number;
  probeThreshold?: number;
  lr?: number;
  kl?: number;
  clipLow?: number;
  clipHigh?: number;
  /** The collapse rule, or false to never stop for it. */
  collapse?: CollapseRule | false;
  checkpointEvery?: number;
  seed?: number;
  threads?: number;
  resume?: boolean;
  force?: boolean;
  progress?: boolean;
}

/** The defaults of {@link SearchR1Options}. */
export const SEARCH_R1_DEFAULTS = Object.freeze({
  loraRank: LORA_DEFAULTS.rank, template: SEARCH_R1_TEMPLATE, topk: 3, maxTurns: 4, maxTurnTokens: 500, contextPerSequence: 4096, steps: 50, questionsPerStep: 4, group: 4,
  temperature: 1, topP: 1, reward: 'em' as QaRewardName, warmupSft: 'auto' as const, warmupBatch: 8, autoWarmupSteps: 30, probeQuestions: 8,
  probeThreshold: 0.5, kl: 0.001, clipLow: LOSS_DEFAULTS.epsLow, clipHigh: LOSS_DEFAULTS.epsHigh, checkpointEvery: 25, seed: 0,
  collapse: Object.freeze({ window: 5, patience: 3, rewardRatio: 0.5, invalidRate: 0.5, lengthRatio: 2, minBest: 0.05 }),
});

/** {@link SearchR1Options} with every default filled in. */
export type ResolvedSearchR1 = Omit<Required<SearchR1Options>, 'lora' | 'loraTargets' | 'corpus' | 'retriever' | 'threads' | 'collapse' | 'warmupLr'> & {
  lora: string | null;
  loraTargets: LoraModule[];
  corpus: SearchR1Options['corpus'] | null;
  retriever: TextRetriever | null;
  threads: number | undefined;
  collapse: Required<CollapseRule> | null;
  warmupLr: number;
};

const KEYS = [
  'model', 'lora', 'loraRank', 'loraTargets', 'train', 'corpus', 'retriever', 'out', 'template', 'topk', 'maxTurns', 'maxTurnTokens', 'contextPerSequence', 'steps',
  'questionsPerStep', 'group', 'temperature', 'topP', 'reward', 'warmupSft', 'warmupBatch', 'warmupLr', 'autoWarmupSteps', 'probeQuestions',
  'probeThreshold', 'lr', 'kl', 'clipLow', 'clipHigh', 'collapse', 'checkpointEvery', 'seed', 'threads', 'resume', 'force', 'progress',
];

function resolveCollapse(v: SearchR1Options['collapse']): Required<CollapseRule> | null {
  if (v === false) return null;
  if (v !== undefined && (typeof v !== 'object' || v === null)) throw new TypeError(expected('a collapse rule object or false', 'collapse', v));
  const c = { ...SEARCH_R1_DEFAULTS.collapse, ...(v ?? {}) };
  checkKeys(c, Object.keys(SEARCH_R1_DEFAULTS.collapse), 'collapse');
  assertInteger(c.window, 'collapse.window', 1, 1000);
  assertInteger(c.patience, 'collapse.patience', 1, 1000);
  assertNumber(c.rewardRatio, 'collapse.rewardRatio', 0, 1);
  assertNumber(c.invalidRate, 'collapse.invalidRate', 0, 1);
  assertNumber(c.lengthRatio, 'collapse.lengthRatio', 1, 1e6);
  assertNumber(c.minBest, 'collapse.minBest', 0, 1e6);
  return c;
}

function resolveTargets(v: SearchR1Options['loraTargets']): LoraModule[] {
  if (v === undefined) return [...LORA_MODULES];
  if (!Array.isArray(v) || v.length === 0) throw new TypeError(expected('a non-empty array of LoRA targets', 'loraTargets', v));
  v.forEach((t, i) => assertOneOf(t, `loraTargets[${i}]`, LORA_TARGETS));
  return LORA_TARGETS.filter((t) => v.includes(t));
}

/**
 * Fills defaults and checks every field; errors name the option and quote the value. `model`
 * gives the width the default learning rate follows.
 */
export function resolveSearchR1(o: SearchR1Options, model: { nEmbd: number } = { nEmbd: 896 }): ResolvedSearchR1 {
  if (typeof o !== 'object' || o === null) throw new TypeError(expected('an options object', 'options', o));
  checkKeys(o, KEYS, 'options');
  const D = SEARCH_R1_DEFAULTS;
  assertString(o.model, 'model', { nonEmpty: true });
  assertString(o.out, 'out', { nonEmpty: true });
  if (o.lora !== undefined) assertString(o.lora, 'lora', { nonEmpty: true });
  if (typeof o.train !== 'string' && !Array.isArray(o.train)) throw new TypeError(expected('a QA JSONL path or an array of QA items', 'train', o.train));
  if (o.corpus !== undefined && typeof o.corpus !== 'string' && !Array.isArray(o.corpus)) throw new TypeError(expected('a path or an array of documents', 'corpus', o.corpus));
  if (o.retriever !== undefined && typeof o.retriever?.retrieve !== 'function') throw new TypeError(expected('TextRetriever', 'retriever', o.retriever));
  if (o.retriever === undefined && o.corpus === undefined) throw new TypeError('Expected corpus (searched by BM25) or retriever but received neither');
  const template = o.template ?? D.template;
  assertString(template, 'template', { nonEmpty: true });
  if (!template.includes(QUESTION_SLOT)) throw new RangeError(`Expected template to contain ${QUESTION_SLOT} but it does not`);
  const { int, num } = defaultedNumbers(o, D);
  const questionsPerStep = int('questionsPerStep', 1, 256);
  const group = int('group', 2, 256);
  if (questionsPerStep * group > 256) {
    throw new RangeError(`questionsPerStep ${questionsPerStep} × group ${group} = ${questionsPerStep * group} rollouts per step; at most 256 fit one agent session`);
  }
  const reward = o.reward ?? D.reward;
  assertOneOf(reward, 'reward', QA_REWARD_NAMES);
  const warmupSft = o.warmupSft ?? D.warmupSft;
  if (warmupSft !== 'auto') assertInteger(warmupSft, 'warmupSft', 0, 1e9);
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
  const warmupLr = o.warmupLr ?? lr;
  assertNumber(warmupLr, 'warmupLr', 0, 10);
  const loraTargets = resolveTargets(o.loraTargets);
  return {
    model: o.model, lora: o.lora ?? null, loraRank: int('loraRank', 1, 4096), loraTargets, train: o.train, corpus: o.corpus ?? null, retriever: o.retriever ?? null,
    out: o.out, template, topk: int('topk', 1, 100), maxTurns: int('maxTurns', 1, 64), maxTurnTokens: int('maxTurnTokens', 1, 1 << 20),
    contextPerSequence: int('contextPerSequence', 16, 1 << 24), steps: int('steps', 0, 1e9), questionsPerStep, group,
    temperature: num('temperature', 0, 100), topP: num('topP', 0, 1), reward, warmupSft, warmupBatch: int('warmupBatch', 1, 4096), warmupLr,
    autoWarmupSteps: int('autoWarmupSteps', 0, 1e9), probeQuestions: int('probeQuestions', 1, 256), probeThreshold: num('probeThreshold', 0, 1),
    lr, kl: num('kl', 0, 1e6), clipLow: num('clipLow', 0, 0.999), clipHigh: num('clipHigh', 0, 100), collapse: resolveCollapse(o.collapse),
    checkpointEvery: int('checkpointEvery', 1, 1e9), seed: int('seed', 0, 0xffffffff), threads: o.threads, resume, force, progress: flag('progress', true),
  };
}

function sameTargets(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

/**
 * What a resumed run must share with the run that wrote the state: the model, the starting
 * adapter, the data and every setting that shapes a step (the warm-up length as resolved, probe
 * included); steps, collapse, checkpointEvery, threads and progress may change.
 */
export function searchR1Fingerprint(c: ResolvedSearchR1, identity: { model: string; lora: string | null; data: string; warmupSteps: number }): Record<string, unknown> {
  return {
    ...identity, loraRank: c.loraRank, topk: c.topk, maxTurns: c.maxTurns, maxTurnTokens: c.maxTurnTokens, contextPerSequence: c.contextPerSequence,
    questionsPerStep: c.questionsPerStep, group: c.group, temperature: c.temperature, topP: c.topP, reward: c.reward, warmupBatch: c.warmupBatch,
    warmupLr: c.warmupLr, lr: c.lr, kl: c.kl, clipLow: c.clipLow, clipHigh: c.clipHigh, seed: c.seed,
    // undefined for the default (not written to the state), so runs started before the option
    // existed still resume, and a change either way is still seen.
    template: c.template === SEARCH_R1_TEMPLATE ? undefined : c.template,
    loraTargets: sameTargets(c.loraTargets, LORA_MODULES) ? undefined : c.loraTargets,
  };
}

// The agent's options, checked and resolved in one place, with Search-R1's defaults quoted.
import { LoraAdapter } from '../engine/lora';
import type { Model } from '../engine/model';
import type { TextRetriever } from '../retrieval/types';
import { assertBoolean, assertInteger, assertNumber, assertOneOf, assertString, checkKeys, expected } from '../util/validate';
import { QUESTION_SLOT, SEARCH_R1_TEMPLATE } from './prompt';

/** Options of {@link Agent.create}. */
export interface AgentOptions {
  /** Where `<search>` queries go; every turn's queries are sent in one `retrieve` call. */
  retriever: TextRetriever;
  /** Documents per search (default 3, Search-R1's `topk`). */
  topk?: number;
  /** Model turns per trajectory at most (default 4, Search-R1's `max_turns`). */
  maxTurns?: number;
  /** Tokens one turn may write at most (default 500, Search-R1's `max_response_length`). */
  maxTurnTokens?: number;
  /** Tokens one trajectory may hold: prompt, turns and observations (default 4096). */
  contextPerSequence?: number;
  /** Sequences decoded together (default 8); more rollouts than this run in waves. */
  sequences?: number;
  /** Prompt template with `{question}` (default Search-R1's, {@link SEARCH_R1_TEMPLATE}). */
  template?: string;
  /** Sampling temperature (default 0, greedy; Search-R1 samples its training rollouts at 1). */
  temperature?: number;
  /** Nucleus mass (default 1, off). */
  topP?: number;
  /** Base random seed (default 0); sample g of a question draws turn k from a seed derived from (seed, g, k). */
  seed?: number;
  /** CPU threads (default: all). */
  threads?: number;
  /** An adapter to generate with (scale 1). */
  lora?: LoraAdapter;
  /** Record the log-probability of every token the model wrote (default false). */
  logprobs?: boolean;
  /**
   * KV cache precision (default 'f16', the engine's). With `flashAttention: 'off'`, 'f32' computes
   * attention as the trainer's forward does, so training rollouts' log-probs agree with the
   * trainer's to float rounding and serve as GRPO's logp_old (on CPU, flash attention rounds K
   * and V to F16 whatever the cache type).
   */
  cacheType?: 'f16' | 'f32';
  /** llama.cpp's flash attention (default 'auto'); see `cacheType`. */
  flashAttention?: 'auto' | 'on' | 'off';
}

/** {@link AgentOptions} with every default filled in. */
export type ResolvedAgentOptions = Required<Omit<AgentOptions, 'lora' | 'threads'>> & Pick<AgentOptions, 'lora' | 'threads'>;

const KEYS = ['retriever', 'topk', 'maxTurns', 'maxTurnTokens', 'contextPerSequence', 'sequences', 'template', 'temperature', 'topP', 'seed', 'threads', 'lora', 'logprobs', 'cacheType', 'flashAttention'];

/**
 * Checks the options against the model and fills in the defaults; errors name the option.
 *
 * @example resolveAgentOptions(model, { retriever }).topk // 3
 */
export function resolveAgentOptions(model: Model, options: AgentOptions): ResolvedAgentOptions {
  if (!options || typeof options !== 'object') throw new TypeError(expected('{ retriever, … }', 'options', options));
  checkKeys(options, KEYS, 'options');
  const r = options.retriever;
  if (!r || typeof r.retrieve !== 'function') throw new TypeError(expected('TextRetriever', 'options.retriever', r));
  const o: ResolvedAgentOptions = {
    retriever: r,
    topk: options.topk ?? 3,
    maxTurns: options.maxTurns ?? 4,
    maxTurnTokens: options.maxTurnTokens ?? 500,
    contextPerSequence: options.contextPerSequence ?? Math.min(4096, model.info.contextLength),
    sequences: options.sequences ?? 8,
    template: options.template ?? SEARCH_R1_TEMPLATE,
    temperature: options.temperature ?? 0,
    topP: options.topP ?? 1,
    seed: options.seed ?? 0,
    threads: options.threads,
    lora: options.lora,
    logprobs: options.logprobs ?? false,
    cacheType: options.cacheType ?? 'f16',
    flashAttention: options.flashAttention ?? 'auto',
  };
  assertInteger(o.topk, 'options.topk', 1, 100);
  assertInteger(o.maxTurns, 'options.maxTurns', 1, 64);
  assertInteger(o.maxTurnTokens, 'options.maxTurnTokens', 1, 1 << 20);
  assertInteger(o.contextPerSequence, 'options.contextPerSequence', 16, 1 << 24);
  assertInteger(o.sequences, 'options.sequences', 1, 256);
  assertString(o.template, 'options.template');
  if (!o.template.includes(QUESTION_SLOT)) throw new RangeError(`Expected options.template to contain ${QUESTION_SLOT} but it does not`);
  assertNumber(o.temperature, 'options.temperature', 0, 100);
  assertNumber(o.topP, 'options.topP', 0, 1);
  assertInteger(o.seed, 'options.seed', 0, 0xffffffff);
  if (o.threads !== undefined) assertInteger(o.threads, 'options.threads', 1, 1024);
  if (o.lora !== undefined && !(o.lora instanceof LoraAdapter)) throw new TypeError(expected('LoraAdapter', 'options.lora', o.lora));
  assertBoolean(o.logprobs, 'options.logprobs');
  assertOneOf(o.cacheType, 'options.cacheType', ['f16', 'f32'] as const);
  assertOneOf(o.flashAttention, 'options.flashAttention', ['auto', 'on', 'off'] as const);
  return o;
}

/**
 * The seed of sample `g`'s turn `turn`: sequences restart their random state at every call, so each
 * turn needs its own seed, and it depends only on (seed, g, turn), never on which wave or batch
 * slot ran the sample — a question sampled alone draws what it draws in a batch.
 */
export function turnSeed(seed: number, sample: number, turn: number): number {
  return (seed + Math.imul(sample, 0x9e3779b1) + Math.imul(turn, 0x85ebca6b)) >>> 0;
}

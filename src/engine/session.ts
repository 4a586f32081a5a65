import { binding, type NativeFinish, type NativeRequest, type NativeResult, type NativeRunStats, type NativeSession } from '../native';
import { Sequence, stepSequences, type SequenceStep, type SequenceStepResult } from './sequence';
import { SearchR3Error } from '../util/errors';
import { assertBoolean, assertInteger, assertNumber, assertOneOf, assertString, checkKeys, expected } from '../util/validate';
import type { LoraAdapter } from './lora';
import type { Model } from './model';
import { callNative, callNativeAbortable, callNativeSync, InFlight } from './native-call';

export interface SessionOptions {
  /** Parallel sequences decoded in shared batches (default 1). */
  sequences?: number;
  /** Total KV-cache size in tokens, shared by the sequences (default 2048 per sequence, capped at the model's training context × sequences). */
  contextSize?: number;
  /** Tokens per decode call (default 512). */
  batchSize?: number;
  /** CPU threads for generation (default: all hardware threads). */
  threads?: number;
  /** CPU threads for prompt processing (default: `threads`). */
  threadsBatch?: number;
  /** One KV buffer for all sequences (better when they share long prefixes). Default false. */
  kvUnified?: boolean;
  /** Flash attention: 'auto' (default, llama.cpp decides per device), 'on' or 'off'. */
  flashAttention?: 'auto' | 'on' | 'off';
  /**
   * Element type of the KV cache: 'f16' (default, half the memory) or 'f32' (bit-for-bit closer to
   * an uncached forward pass, e.g. the trainer's; see test/train-parity.test.mjs).
   */
  cacheType?: 'f16' | 'f32';
}

export interface SamplingOptions {
  /** Tokens to generate at most (default 128). */
  maxTokens?: number;
  /** 0 = greedy (default); otherwise softmax temperature. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = off, default). */
  topK?: number;
  /** Nucleus sampling mass (1 = off, default). */
  topP?: number;
  /** Drop tokens below minP × the top probability (0 = off, default). */
  minP?: number;
  /** Random seed; copy i of a prompt uses seed + i (default 0). */
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** Strings that end generation; the text is cut before them. */
  stop?: string[];
  /** Token ids that end generation (besides the vocabulary's end-of-generation tokens). */
  stopTokens?: number[];
  /** Return the log-probability of each generated token (log-softmax of the raw logits). */
  logprobs?: boolean;
  /** Samples per prompt; the prompt is decoded once and shared (default 1). */
  copies?: number;
  signal?: AbortSignal;
}

export type FinishReason = NativeFinish;

export interface Generation {
  /** Index of the prompt this came from. */
  prompt: number;
  /** Which of the prompt's copies. */
  copy: number;
  text: string;
  tokens: Int32Array;
  logprobs: Float32Array | null;
  finish: FinishReason;
  promptTokens: number;
}

export interface LoraAttachment {
  adapter: LoraAdapter;
  /** Scale of the adapter's contribution (1 = as trained, 0 = off). */
  scale: number;
}

/** @internal checks shared by Session.generate and the embedder. */
export function checkSampling(o: SamplingOptions): void {
  if (o.maxTokens !== undefined) assertInteger(o.maxTokens, 'maxTokens', 0, 1 << 24);
  if (o.temperature !== undefined) assertNumber(o.temperature, 'temperature', 0, 100);
  if (o.topK !== undefined) assertInteger(o.topK, 'topK', 0);
  if (o.topP !== undefined) assertNumber(o.topP, 'topP', 0, 1);
  if (o.minP !== undefined) assertNumber(o.minP, 'minP', 0, 1);
  if (o.seed !== undefined) assertInteger(o.seed, 'seed', 0, 0xffffffff);
}

/** @internal checks of the stop and log-prob options shared by Session.generate and sequences. */
export function checkStops(o: { stop?: unknown; stopTokens?: unknown; logprobs?: unknown }, nVocab: number): void {
  if (o.logprobs !== undefined) assertBoolean(o.logprobs, 'logprobs');
  if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== 'string'))) {
    throw new TypeError(expected('array of strings', 'stop', o.stop));
  }
  if (o.stopTokens !== undefined) {
    if (!Array.isArray(o.stopTokens)) throw new TypeError(expected('array of token ids', 'stopTokens', o.stopTokens));
    o.stopTokens.forEach((t, i) => assertInteger(t, `stopTokens[${i}]`, 0, nVocab - 1));
  }
}

/**
 * A llama.cpp context with `sequences` parallel sequences. One operation runs at a time; a second
 * call while one runs is an ERR_BUSY error.
 *
 * @example
 * const session = await model.createSession({ sequences: 4 });
 * const [g] = await session.generate('Once upon a time', { maxTokens: 16 });
 */
export class Session implements AsyncDisposable {
  #native: NativeSession | null;
  readonly model: Model;
  #loras: LoraAttachment[] = [];
  #onDispose: (() => void)[] = [];
  readonly #ops = new InFlight('session');

  private constructor(native: NativeSession, model: Model) {
    this.#native = native;
    this.model = model;
  }

  /** @internal use `model.createSession()`. */
  static async create(model: Model, options: SessionOptions = {}): Promise<Session> {
    checkKeys(options, ['sequences', 'contextSize', 'batchSize', 'threads', 'threadsBatch', 'kvUnified', 'flashAttention', 'cacheType'], 'options');
    const sequences = options.sequences ?? 1;
    assertInteger(sequences, 'sequences', 1, 256);
    const contextSize = options.contextSize ?? Math.min(2048, Math.max(64, model.info.contextLength)) * sequences;
    assertInteger(contextSize, 'contextSize', 16);
    const batchSize = options.batchSize ?? 512;
    assertInteger(batchSize, 'batchSize', 2 * sequences);
    if (options.threads !== undefined) assertInteger(options.threads, 'threads', 1, 1024);
    if (options.threadsBatch !== undefined) assertInteger(options.threadsBatch, 'threadsBatch', 1, 1024);
    if (options.kvUnified !== undefined) assertBoolean(options.kvUnified, 'kvUnified');
    if (options.flashAttention !== undefined) assertOneOf(options.flashAttention, 'flashAttention', ['auto', 'on', 'off'] as const);
    const flashAttention = ({ auto: -1, off: 0, on: 1 } as const)[options.flashAttention ?? 'auto'];
    if (options.cacheType !== undefined) assertOneOf(options.cacheType, 'cacheType', ['f16', 'f32'] as const);
    const cacheType = ({ f32: 0, f16: 1 } as const)[options.cacheType ?? 'f16'];
    const native = await callNative(() => binding().createSession(model.native, { ...options, sequences, contextSize, batchSize, flashAttention, cacheType }));
    return new Session(native, model);
  }

  /** @internal */
  get native(): NativeSession {
    if (!this.#native) throw new SearchR3Error('ERR_DISPOSED', 'the session was disposed');
    return this.#native;
  }

  /** Context geometry as llama.cpp allocated it. */
  get info(): ReturnType<NativeSession['info']> {
    return this.native.info();
  }

  /** Adapters currently attached. */
  get loras(): readonly LoraAttachment[] {
    return this.#loras;
  }

  /** Tokenizes a prompt: strings get BOS as the vocabulary asks and special tokens parsed. */
  promptTokens(prompt: string | Int32Array): Int32Array {
    if (prompt instanceof Int32Array) return prompt;
    assertString(prompt, 'prompt');
    return this.model.tokenize(prompt, { addSpecial: true, parseSpecial: true });
  }

  /**
   * Generates continuations of one or many prompts, decoded as parallel sequences in shared
   * batches. Results come in prompt order, copies in order.
   */
  async generate(prompts: string | Int32Array | Array<string | Int32Array>, options: GenerateOptions = {}): Promise<Generation[]> {
    checkKeys(options, ['maxTokens', 'temperature', 'topK', 'topP', 'minP', 'seed', 'stop', 'stopTokens', 'logprobs', 'copies', 'signal'], 'options');
    checkSampling(options);
    if (options.copies !== undefined) assertInteger(options.copies, 'copies', 1, 256);
    checkStops(options, this.model.info.nVocab);
    const list = Array.isArray(prompts) ? prompts : [prompts];
    const requests: NativeRequest[] = list.map((p) => ({
      prompt: this.promptTokens(p),
      copies: options.copies ?? 1,
      maxTokens: options.maxTokens ?? 128,
      temperature: options.temperature ?? 0,
      topK: options.topK ?? 0,
      topP: options.topP ?? 1,
      minP: options.minP ?? 0,
      seed: options.seed ?? 0,
      stopStrings: options.stop ?? [],
      stopTokens: Int32Array.from(options.stopTokens ?? []),
      logprobs: options.logprobs ?? false,
    }));
    const { results } = await this.run(requests, { signal: options.signal });
    return results.map((r) => ({
      prompt: r.request, copy: r.copy, text: r.text, tokens: r.tokens, logprobs: r.logprobs, finish: r.finish, promptTokens: r.promptTokens,
    }));
  }

  /** Low-level: runs native requests as they are (see NativeRequest). */
  async run(requests: NativeRequest[], options: { signal?: AbortSignal } = {}): Promise<{ results: NativeResult[]; stats: NativeRunStats }> {
    if (!Array.isArray(requests)) throw new TypeError(expected('array of requests', 'requests', requests));
    return this.#withSignal(options.signal, () => this.native.run(requests));
  }

  /**
   * Decodes `tokens` as one sequence and returns, for every position, the final-norm hidden state
   * (n × n_embd) and, when asked, the logits (n × n_vocab).
   */
  async evaluate(tokens: Int32Array, options: { logits?: boolean; signal?: AbortSignal } = {}): Promise<{ logits: Float32Array | null; embeddings: Float32Array }> {
    if (!(tokens instanceof Int32Array)) throw new TypeError(expected('Int32Array', 'tokens', tokens));
    return this.#withSignal(options.signal, () => this.native.evaluate(tokens, options.logits ?? false));
  }

  /**
   * Opens an empty continuing sequence: its memory is kept between calls (see {@link Sequence}).
   * It holds one of the session's `sequences` slots until disposed; ERR_BUSY when none is free.
   */
  openSequence(): Sequence {
    return Sequence.open(this);
  }

  /**
   * Advances many sequences in shared decodes: each item appends its tokens (if any), then samples
   * up to its `maxTokens` (default 128; 0 appends only). Results come in item order.
   */
  step(items: SequenceStep[], options: { signal?: AbortSignal } = {}): Promise<SequenceStepResult> {
    return stepSequences(this, items, options.signal);
  }

  /** Replaces the attached LoRA adapters (an empty list detaches all). */
  setLoras(loras: LoraAttachment[]): void {
    if (!Array.isArray(loras)) throw new TypeError(expected('array of { adapter, scale }', 'loras', loras));
    for (const [i, l] of loras.entries()) {
      if (!l || typeof l !== 'object' || !l.adapter) throw new TypeError(expected('{ adapter, scale }', `loras[${i}]`, l));
      assertNumber(l.scale, `loras[${i}].scale`, -100, 100);
      if (l.adapter.model !== this.model) throw new SearchR3Error('ERR_MODEL', `loras[${i}] was loaded for another model`);
    }
    callNativeSync(() => this.native.setLoras(loras.map((l) => l.adapter.native), loras.map((l) => l.scale)));
    const before = this.#loras;
    this.#loras = loras.map((l) => ({ ...l }));
    for (const l of this.#loras) l.adapter.heldBy(this);
    for (const l of before) if (!loras.some((n) => n.adapter === l.adapter)) l.adapter.releasedBy(this);
  }

  /** @internal runs one cancellable native operation of this session (sequences use it). */
  operation<T>(signal: AbortSignal | undefined, start: () => Promise<T>): Promise<T> {
    return this.#withSignal(signal, start);
  }

  #withSignal<T>(signal: AbortSignal | undefined, start: () => Promise<T>): Promise<T> {
    const native = this.native;
    return this.#ops.run(() => callNativeAbortable(signal, () => native.abort(), start));
  }

  /** @internal true while an operation of this session runs. */
  get busy(): boolean {
    return this.#ops.busy;
  }

  /** @internal resolves once no operation of this session runs (its context is then freed). */
  idle(): Promise<void> {
    return this.#ops.idle();
  }

  /** @internal */
  onDispose(fn: () => void): void {
    this.#onDispose.push(fn);
  }

  get disposed(): boolean {
    return this.#native === null;
  }

  /**
   * Frees the context. Never throws and is idempotent: an operation in flight is stopped at its
   * next check and its promise rejects with ERR_DISPOSED; the context is freed once that native
   * work has stopped (never under a worker thread). Any later call is an ERR_DISPOSED error.
   */
  dispose(): void {
    if (!this.#native) return;
    this.#ops.dispose();
    this.#native.dispose();
    this.#native = null;
    // The native context holds its adapters until its last operation has stopped.
    const freed = this.#ops.idle();
    for (const l of this.#loras) l.adapter.releasedBy(this, freed);
    this.#loras = [];
    for (const fn of this.#onDispose.splice(0)) fn();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

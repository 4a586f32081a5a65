import type { NativeRunStats, NativeSeqItem } from '../native';
import { SearchR3Error } from '../util/errors';
import { assertBoolean, assertInteger, checkKeys, expected } from '../util/validate';
import { callNativeSync } from './native-call';
import { checkSampling, checkStops, type FinishReason, type SamplingOptions, type Session } from './session';

/** What to sample from a sequence: the options of `session.generate`, less `copies`. */
export interface SequenceGenerateOptions extends SamplingOptions {
  /**
   * Strings that end generation. Generation ends after the token that completes the string, so the
   * returned text ends with it (plus whatever else that token spells) and nothing is cut.
   */
  stop?: string[];
  /** Token ids that end generation (besides the vocabulary's end-of-generation tokens). */
  stopTokens?: number[];
  /** Return the log-probability of each generated token (log-softmax of the raw logits). */
  logprobs?: boolean;
  /** Keep going past end-of-generation tokens (fixed-length rollouts, benchmarks). */
  ignoreEog?: boolean;
  signal?: AbortSignal;
}

/** Tokens to append: text (tokenized with special tokens parsed; BOS only on an empty sequence) or token ids. */
export type SequenceInput = string | Int32Array | readonly number[];

/** One sequence's share of `session.step`. */
export interface SequenceStep extends Omit<SequenceGenerateOptions, 'signal'> {
  sequence: Sequence;
  /** Appended before sampling. */
  append?: SequenceInput;
}

/** What one call sampled from a sequence. `text` is exactly the text of `tokens`. */
export interface SequenceGeneration {
  text: string;
  /** Sampled tokens, including a sampled end-of-generation or stop token; the sequence now holds them. */
  tokens: Int32Array;
  logprobs: Float32Array | null;
  /** 'prompt' when nothing was sampled (maxTokens 0); 'context' when the sequence is full. */
  finish: FinishReason;
  /** The stop string that ended generation, or null. */
  stop: string | null;
  /** Tokens the sequence holds after the call. */
  length: number;
}

export interface SequenceStepResult {
  results: SequenceGeneration[];
  /** promptTokens counts the tokens prefilled by this call: only what was new. */
  stats: NativeRunStats;
}

const STEP_KEYS = ['sequence', 'append', 'maxTokens', 'temperature', 'topK', 'topP', 'minP', 'seed', 'stop', 'stopTokens', 'logprobs', 'ignoreEog'];

/**
 * A sequence whose KV memory persists between calls: `append` prefills only the new tokens,
 * `generate` samples on from where the sequence stands, `fork` copies it (sharing the decoded
 * prefix, llama_memory_seq_cp), `dispose` frees its memory and its slot. Everything a call
 * returns is what the sequence then holds; a call that fails or is aborted leaves the sequence as
 * it was. Sampling restarts its random state from `seed` at every call, so only greedy decoding is
 * independent of how a text is split into calls.
 *
 * @example
 * const seq = session.openSequence();
 * await seq.append('Question: …');
 * const g = await seq.generate({ maxTokens: 64, stop: ['</search>'] });
 * await seq.append('<information>…</information>');
 * const [a, b] = seq.fork(2);
 */
export class Sequence implements AsyncDisposable {
  readonly session: Session;
  #id: number;
  #chunks: Int32Array[];
  #length: number;
  #disposed = false;

  private constructor(session: Session, id: number, chunks: Int32Array[], length: number) {
    this.session = session;
    this.#id = id;
    this.#chunks = chunks;
    this.#length = length;
  }

  /** @internal use `session.openSequence()`. */
  static open(session: Session): Sequence {
    const native = session.native;
    return new Sequence(session, callNativeSync(() => native.seqOpen()), [], 0);
  }

  /** Tokens the sequence holds. */
  get length(): number {
    return this.#length;
  }

  /** The tokens the sequence holds, in order (a copy). */
  get tokens(): Int32Array {
    const out = new Int32Array(this.#length);
    let at = 0;
    for (const c of this.#chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  get disposed(): boolean {
    return this.#disposed || this.session.disposed;
  }

  /** @internal the native slot id; throws ERR_DISPOSED once the sequence or its session is. */
  get id(): number {
    if (this.#disposed) throw new SearchR3Error('ERR_DISPOSED', 'the sequence was disposed');
    if (this.session.disposed) throw new SearchR3Error('ERR_DISPOSED', 'the session of this sequence was disposed');
    return this.#id;
  }

  /** Appends tokens (prefilling only them). */
  async append(input: SequenceInput, options: { signal?: AbortSignal } = {}): Promise<void> {
    await stepSequences(this.session, [{ sequence: this, append: input, maxTokens: 0 }], options.signal);
  }

  /** Samples from where the sequence stands; what is sampled stays in the sequence. */
  async generate(options: SequenceGenerateOptions = {}): Promise<SequenceGeneration> {
    const { signal, ...rest } = options;
    const { results } = await stepSequences(this.session, [{ ...rest, sequence: this }], signal);
    return results[0];
  }

  /**
   * `count` new sequences (default 1) holding what this one holds, sharing its decoded memory.
   * ERR_BUSY when the session has too few free slots or an operation runs.
   */
  fork(count = 1): Sequence[] {
    assertInteger(count, 'count', 1, 256);
    const id = this.id;
    const ids = callNativeSync(() => this.session.native.seqFork(id, count));
    return ids.map((i) => new Sequence(this.session, i, this.#chunks.slice(), this.#length));
  }

  /** @internal records what a call appended and sampled. */
  grow(appended: Int32Array, sampled: Int32Array, length: number): void {
    if (this.#disposed) return;
    if (appended.length > 0) this.#chunks.push(appended);
    if (sampled.length > 0) this.#chunks.push(sampled);
    this.#length += appended.length + sampled.length;
    if (this.#length !== length) throw new SearchR3Error('ERR_NATIVE', `sequence length ${this.#length} != native ${length} (internal error)`);
  }

  /** Frees the sequence's memory and slot (once a running operation ends). Idempotent; never throws. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#chunks = [];
    if (!this.session.disposed) this.session.native.seqFree(this.#id);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

function inputTokens(seq: Sequence, input: SequenceInput | undefined, name: string): Int32Array {
  if (input === undefined) return new Int32Array(0);
  if (input instanceof Int32Array) return input.slice();
  if (typeof input === 'string') {
    return seq.session.model.tokenize(input, { addSpecial: seq.length === 0, parseSpecial: true });
  }
  if (!Array.isArray(input)) throw new TypeError(expected('string, Int32Array or array of token ids', name, input));
  input.forEach((t, i) => assertInteger(t, `${name}[${i}]`, 0, 0x7fffffff));
  return Int32Array.from(input);
}

function nativeItem(step: SequenceStep, i: number, session: Session): { item: NativeSeqItem; appended: Int32Array } {
  const name = `items[${i}]`;
  if (!step || typeof step !== 'object') throw new TypeError(expected('{ sequence, append?, …options }', name, step));
  checkKeys(step, STEP_KEYS, name);
  if (!(step.sequence instanceof Sequence)) throw new TypeError(expected('Sequence', `${name}.sequence`, step.sequence));
  if (step.sequence.session !== session) throw new RangeError(`${name}.sequence belongs to another session`);
  checkSampling(step);
  checkStops(step, session.model.info.nVocab);
  if (step.ignoreEog !== undefined) assertBoolean(step.ignoreEog, `${name}.ignoreEog`);
  const seq = step.sequence.id;
  const appended = inputTokens(step.sequence, step.append, `${name}.append`);
  return {
    appended,
    item: {
      seq,
      append: appended,
      maxTokens: step.maxTokens ?? 128,
      temperature: step.temperature ?? 0,
      topK: step.topK ?? 0,
      topP: step.topP ?? 1,
      minP: step.minP ?? 0,
      seed: step.seed ?? 0,
      stopStrings: step.stop ?? [],
      stopTokens: Int32Array.from(step.stopTokens ?? []),
      logprobs: step.logprobs ?? false,
      ignoreEog: step.ignoreEog ?? false,
    },
  };
}

/** @internal `session.step`: one native call that advances every item's sequence together. */
export async function stepSequences(session: Session, items: SequenceStep[], signal?: AbortSignal): Promise<SequenceStepResult> {
  if (!Array.isArray(items) || items.length === 0) throw new TypeError(expected('non-empty array of { sequence, … }', 'items', items));
  const parts = items.map((step, i) => nativeItem(step, i, session));
  const native = session.native;
  const { results, stats } = await session.operation(signal, () => native.seqRun(parts.map((p) => p.item)));
  return {
    stats,
    results: results.map((r, i) => {
      items[i].sequence.grow(parts[i].appended, r.tokens, r.length);
      return { text: r.text, tokens: r.tokens, logprobs: r.logprobs, finish: r.finish, stop: r.stop, length: r.length };
    }),
  };
}

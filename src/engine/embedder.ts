import type { NativeRequest, NativeResult } from '../native';
import { SearchR3Error } from '../util/errors';
import { assertBoolean, assertInteger, assertOneOf, assertString, checkKeys, expected } from '../util/validate';
import type { LoraAdapter } from './lora';
import type { Model } from './model';
import type { Session } from './session';
import { checkSampling } from './session';
import { buildEmbedPrompt, fitEmbedPrompt, resolveEmbedTemplate, type EmbedTemplate, type FittedPrompt, type LongTextPolicy, type PromptSide } from './templates';

export type EmbedMode = 'direct' | 'reason';

/**
 * Why an embedding ended where it did:
 * - `direct`: the prompt already ended in `<|embed_token|>`;
 * - `embed`: the model wrote its analysis and emitted `<|embed_token|>` itself;
 * - `budget`: the reasoning budget ran out and the engine appended `<|embed_token|>`;
 * - `stopped`: the model ended its turn without the token and the engine appended it.
 */
export type EmbedFinish = 'direct' | 'embed' | 'budget' | 'stopped';

export interface EmbedResult {
  vector: Float32Array;
  reasoning: string;
  reasoningTokens: number;
  promptTokens: number;
  finish: EmbedFinish;
  /** True when the text's tail was cut to fit the sequence (longText `truncate`). */
  truncated: boolean;
}

/** The defaults of {@link EmbedderOptions} that the CLI's help also shows. */
export const EMBEDDER_DEFAULTS = Object.freeze({ mode: 'direct' as EmbedMode, maxReasoningTokens: 128, sequences: 8, contextPerSequence: 512 });

export interface EmbedderOptions {
  /** `direct` (default) or `reason`. */
  mode?: EmbedMode;
  /** Reasoning tokens at most before the engine appends `<|embed_token|>` (default 128). */
  maxReasoningTokens?: number;
  /** L2-normalise vectors (default true). */
  normalize?: boolean;
  /** Sampling temperature of the reasoning (default 0: greedy, reproducible). */
  temperature?: number;
  /** Seed of the reasoning sampler (default 0). */
  seed?: number;
  /** Parallel sequences (default 8). */
  sequences?: number;
  /** Tokens per sequence (default 512). */
  contextPerSequence?: number;
  /** CPU threads (default: all). */
  threads?: number;
  /**
   * Prompt wording: a name of EMBED_TEMPLATES (`default`, `search-r3.0` for the released
   * checkpoint's prompts) or fields that override the default template's. Default `default`.
   */
  template?: string | Partial<EmbedTemplate>;
  /** A LoRA adapter to apply at scale 1. */
  lora?: LoraAdapter;
  /**
   * A text too long for `contextPerSequence`: `truncate` (default) keeps its head and marks the
   * result `truncated`; `error` throws ERR_CONTEXT naming `texts[i]`. (`skip` is not offered
   * here: an array call returns one result per text.)
   */
  longText?: Exclude<LongTextPolicy, 'skip'>;
}

export interface EmbedCallOptions {
  /** Overrides the embedder's mode for this call. */
  mode?: EmbedMode;
  /** Overrides the embedder's reasoning budget for this call (reason mode; 1 … 2^20). */
  maxReasoningTokens?: number;
  signal?: AbortSignal;
  /** Called after each chunk with the texts done so far. */
  onProgress?: (done: number, total: number) => void;
}

function normalizeInPlace(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i]! /= n;
  return v;
}

function finishOf(r: NativeResult): EmbedFinish {
  if (r.finish === 'prompt') return 'direct';
  if (!r.embedForced) return 'embed';
  return r.finish === 'length' || r.finish === 'context' ? 'budget' : 'stopped';
}

/**
 * Search-R3 embeddings: the final-layer hidden state (after the final norm) at `<|embed_token|>`.
 * Many texts are decoded as parallel sequences in shared batches.
 *
 * @example
 * const embedder = await Embedder.create(model, { mode: 'reason', maxReasoningTokens: 64 });
 * const [q] = await embedder.embed(['who painted the ceiling of the sistine chapel']);
 * console.log(q.reasoning, q.vector.length);
 */
export class Embedder implements AsyncDisposable {
  readonly model: Model;
  readonly session: Session;
  readonly template: EmbedTemplate;
  /** The adapter applied at scale 1, or null (a document index records which one encoded it). */
  readonly lora: LoraAdapter | null;
  readonly #options: Required<Pick<EmbedderOptions, 'mode' | 'maxReasoningTokens' | 'normalize' | 'temperature' | 'seed'>>;
  readonly #embedToken: number;
  readonly #longText: Exclude<LongTextPolicy, 'skip'>;

  private constructor(model: Model, session: Session, options: EmbedderOptions, template: EmbedTemplate, embedToken: number) {
    this.model = model;
    this.session = session;
    this.template = template;
    this.lora = options.lora ?? null;
    this.#options = {
      mode: options.mode ?? EMBEDDER_DEFAULTS.mode,
      maxReasoningTokens: options.maxReasoningTokens ?? EMBEDDER_DEFAULTS.maxReasoningTokens,
      normalize: options.normalize ?? true,
      temperature: options.temperature ?? 0,
      seed: options.seed ?? 0,
    };
    this.#embedToken = embedToken;
    this.#longText = options.longText ?? 'truncate';
  }

  /**
   * Whether `embed` and `embedDocuments` take overlapping calls: false here (a session runs one
   * operation at a time; a second call while one runs is ERR_BUSY). The view an
   * {@link EmbedQueue.asEmbedder} returns says true: it merges overlapping calls into shared batches.
   */
  get acceptsConcurrentCalls(): boolean {
    return false;
  }

  /** Opens a session on `model` for embedding. The model must have `<|embed_token|>`. */
  static async create(model: Model, options: EmbedderOptions = {}): Promise<Embedder> {
    checkKeys(options, ['mode', 'maxReasoningTokens', 'normalize', 'temperature', 'seed', 'sequences', 'contextPerSequence', 'threads', 'template', 'lora', 'longText'], 'options');
    if (options.longText !== undefined) assertOneOf(options.longText, 'longText', ['truncate', 'error'] as const);
    if (options.mode !== undefined) assertOneOf(options.mode, 'mode', ['direct', 'reason'] as const);
    if (options.maxReasoningTokens !== undefined) assertInteger(options.maxReasoningTokens, 'maxReasoningTokens', 1, 1 << 20);
    if (options.normalize !== undefined) assertBoolean(options.normalize, 'normalize');
    checkSampling({ temperature: options.temperature, seed: options.seed });
    const sequences = options.sequences ?? EMBEDDER_DEFAULTS.sequences;
    assertInteger(sequences, 'sequences', 1, 256);
    const perSeq = options.contextPerSequence ?? EMBEDDER_DEFAULTS.contextPerSequence;
    assertInteger(perSeq, 'contextPerSequence', 16);
    const template = resolveEmbedTemplate(options.template);
    const embedToken = model.info.embedTokenId;
    if (embedToken === null) {
      throw new SearchR3Error('ERR_MODEL', `model ${model.info.path} has no <|embed_token|> token; add one with "search-r3 add-embed-token IN OUT"`);
    }
    const session = await model.createSession({ sequences, contextSize: perSeq * sequences, threads: options.threads });
    try {
      if (options.lora) session.setLoras([{ adapter: options.lora, scale: 1 }]);
    } catch (err) {
      session.dispose();
      throw err;
    }
    return new Embedder(model, session, options, template, embedToken);
  }

  /** The token ids this embedder feeds for `text` on the given side. */
  promptFor(text: string, side: PromptSide): Int32Array {
    return buildEmbedPrompt(this.model, this.template, side, text);
  }

  /**
   * `text` fitted into one sequence exactly as an embed call would feed it (a reasoning prompt
   * leaves room for one reasoning token and `<|embed_token|>`). `truncated` is true when an embed
   * call would cut it (or, under longText `error`, refuse it); `budget` is the prompt's token cap.
   * Callers with records (the CLI) use it to apply `error`/`skip` with the record's name.
   */
  fit(text: string, side: PromptSide): FittedPrompt & { budget: number } {
    assertString(text, 'text');
    const budget = this.session.info.contextPerSequence - (side === 'reason' ? 2 : 0);
    return { ...fitEmbedPrompt(this.model, this.template, side, text, budget), budget };
  }

  /** Embeds queries (in the embedder's mode, or `options.mode`). */
  async embed(texts: string[], options: EmbedCallOptions = {}): Promise<EmbedResult[]> {
    checkKeys(options, ['mode', 'maxReasoningTokens', 'signal', 'onProgress'], 'options');
    const mode = options.mode ?? this.#options.mode;
    assertOneOf(mode, 'mode', ['direct', 'reason'] as const);
    if (options.maxReasoningTokens !== undefined) assertInteger(options.maxReasoningTokens, 'maxReasoningTokens', 1, 1 << 20);
    return this.#embedAll(texts, mode === 'reason' ? 'reason' : 'query', options);
  }

  /** Embeds documents (always the direct form, with the document instruction). */
  async embedDocuments(texts: string[], options: Omit<EmbedCallOptions, 'mode' | 'maxReasoningTokens'> = {}): Promise<EmbedResult[]> {
    checkKeys(options, ['signal', 'onProgress'], 'options');
    return this.#embedAll(texts, 'document', options);
  }

  async #embedAll(texts: string[], side: PromptSide, options: EmbedCallOptions): Promise<EmbedResult[]> {
    if (!Array.isArray(texts)) throw new TypeError(expected('array of strings', 'texts', texts));
    texts.forEach((t, i) => assertString(t, `texts[${i}]`));
    const perSeq = this.session.info.contextPerSequence;
    // A reasoning prompt needs two tokens more: one reasoning token and <|embed_token|>.
    const extra = side === 'reason' ? 2 : 0;
    const truncated: boolean[] = [];
    const requests = texts.map((text, i): NativeRequest => {
      const fitted = fitEmbedPrompt(this.model, this.template, side, text, this.#longText === 'truncate' ? perSeq - extra : Infinity);
      const prompt = fitted.ids;
      const room = prompt.length + extra;
      if (room > perSeq) {
        throw new SearchR3Error('ERR_CONTEXT', `texts[${i}] needs ${room} tokens but a sequence holds ${perSeq}; shorten it, raise contextPerSequence or use longText 'truncate'`);
      }
      truncated.push(fitted.truncated);
      return side === 'reason'
        ? {
            prompt,
            maxTokens: Math.min(options.maxReasoningTokens ?? this.#options.maxReasoningTokens, perSeq - prompt.length - 1),
            temperature: this.#options.temperature,
            seed: this.#options.seed,
            embedToken: this.#embedToken,
            embedOnStop: true,
          }
        : { prompt, maxTokens: 0, embedPromptLast: true };
    });
    // Chunks keep every sequence busy while letting progress be reported and aborts land quickly.
    const chunk = this.session.info.sequences * 4;
    const out: EmbedResult[] = [];
    for (let start = 0; start < requests.length; start += chunk) {
      const { results } = await this.session.run(requests.slice(start, start + chunk), { signal: options.signal });
      for (const r of results) {
        if (!r.embedding) throw new SearchR3Error('ERR_NATIVE', `no hidden state was captured for texts[${start + r.request}]`);
        const vector = this.#options.normalize ? normalizeInPlace(r.embedding) : r.embedding;
        const reasoningTokens = r.tokens.length - (r.finish === 'embed' && !r.embedForced ? 1 : 0);
        out.push({ vector, reasoning: r.text, reasoningTokens, promptTokens: r.promptTokens, finish: finishOf(r), truncated: truncated[start + r.request]! });
      }
      options.onProgress?.(out.length, requests.length);
    }
    return out;
  }

  /**
   * Frees the embedder's session. Never throws and is idempotent: an `embed` in flight rejects with
   * ERR_DISPOSED (the session stops at its next check and is freed once its native work ends);
   * later calls are ERR_DISPOSED errors.
   */
  dispose(): void {
    this.session.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

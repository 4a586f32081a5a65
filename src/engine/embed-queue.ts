// Many concurrent callers, one Embedder: a session runs one operation at a time (a second is
// ERR_BUSY), so callers' texts wait here and are merged into shared batches, which the embedder
// decodes as parallel sequences. The queue knows nothing of HTTP (llama.cpp's server-queue split):
// the server maps its errors to status codes.
import { SearchR3Error } from '../util/errors';
import { assertInteger, assertNumber, assertOneOf, checkKeys, expected, assertString } from '../util/validate';
import type { EmbedMode, EmbedResult, Embedder } from './embedder';

/** Which prompt a text is embedded with: the query side (in a mode) or the document side. */
export type EmbedSide = 'query' | 'document';

/** The defaults of {@link EmbedQueueOptions} (maxBatch: 4 × the embedder's parallel sequences). */
export const EMBED_QUEUE_DEFAULTS = Object.freeze({ maxPending: 1024, maxBatchDelayMs: 50 });

/** Options of {@link EmbedQueue.create}. */
export interface EmbedQueueOptions {
  /** Texts waiting at most (running ones not counted); more is an ERR_OVERLOADED error (default 1024). */
  maxPending?: number;
  /** Texts per embedder call at most (default: 4 × the embedder's parallel sequences). */
  maxBatch?: number;
  /**
   * How long after a batch ends the next may wait for that batch's callers to come back, in ms
   * (default 50; 0 = never wait). It waits only while fewer texts are pending than that batch served
   * plus what was already waiting, and at most a tenth of that batch's time, so a fast model never
   * pays more than 10%. Without it, callers who send their next texts a moment after their results
   * land (HTTP clients) split into alternating batches: one text, then all the others.
   */
  maxBatchDelayMs?: number;
}

/** Options of one {@link EmbedQueue.embed} call. */
export interface EmbedQueueCallOptions {
  /** `query` (default) or `document`. */
  side?: EmbedSide;
  /** Query side: `direct` or `reason` (default: the embedder's mode). */
  mode?: EmbedMode;
  /** Reason mode: the reasoning budget of these texts (default: the embedder's). */
  maxReasoningTokens?: number;
  /** Cancels this caller's texts only; the others in its batch are unaffected. */
  signal?: AbortSignal;
}

interface Job {
  texts: string[];
  /** Texts of one key share a batch: same side, mode and budget. */
  key: string;
  options: EmbedQueueCallOptions;
  resolve: (r: EmbedResult[]) => void;
  reject: (e: unknown) => void;
  settled: boolean;
  detach: () => void;
}

const aborted = (): SearchR3Error => new SearchR3Error('ERR_ABORTED', 'the embed request was aborted');

/**
 * A request queue feeding one {@link Embedder}: concurrent `embed` calls never get ERR_BUSY; the
 * texts waiting when a batch starts are merged into one embedder call (oldest first, grouped by
 * side, mode and budget), so they share decode batches. Each result equals what a call of the
 * embedder alone returns for the same texts. A caller's signal removes its waiting texts, or,
 * once its batch runs, releases the caller at once (the batch is stopped only when every caller
 * in it has gone).
 *
 * @example
 * const queue = EmbedQueue.create(embedder, { maxPending: 256 });
 * const [a, b] = await Promise.all([queue.embed(['first query']), queue.embed(['a passage'], { side: 'document' })]);
 */
export class EmbedQueue {
  readonly embedder: Embedder;
  readonly maxPending: number;
  readonly maxBatch: number;
  readonly maxBatchDelayMs: number;
  #jobs: Job[] = [];
  /** Texts expected back for the next batch (the last batch's and those waiting when it ended), and that batch's time. */
  #expect = 0;
  #lastBatchMs = 0;
  #lastBatchEnd = 0;
  /** Ends a batch's wait early, when enough texts are pending. */
  #wake: (() => void) | null = null;
  #pendingTexts = 0;
  #runningTexts = 0;
  #running: Promise<void> | null = null;
  #closed = false;

  private constructor(embedder: Embedder, maxPending: number, maxBatch: number, maxBatchDelayMs: number) {
    this.embedder = embedder;
    this.maxPending = maxPending;
    this.maxBatch = maxBatch;
    this.maxBatchDelayMs = maxBatchDelayMs;
  }

  /** A queue in front of `embedder` (which it does not own: dispose the embedder yourself). */
  static create(embedder: Embedder, options: EmbedQueueOptions = {}): EmbedQueue {
    checkKeys(options, ['maxPending', 'maxBatch', 'maxBatchDelayMs'], 'options');
    const maxPending = options.maxPending ?? EMBED_QUEUE_DEFAULTS.maxPending;
    assertInteger(maxPending, 'maxPending', 1, 1 << 24);
    const maxBatch = options.maxBatch ?? embedder.session.info.sequences * 4;
    assertInteger(maxBatch, 'maxBatch', 1, 1 << 20);
    const maxBatchDelayMs = options.maxBatchDelayMs ?? EMBED_QUEUE_DEFAULTS.maxBatchDelayMs;
    assertNumber(maxBatchDelayMs, 'maxBatchDelayMs', 0, 60_000);
    return new EmbedQueue(embedder, maxPending, maxBatch, maxBatchDelayMs);
  }

  /** Texts waiting for a batch. */
  get pending(): number {
    return this.#pendingTexts;
  }

  /** Tokens the embedder has read (prompts) and written (reasoning) for this queue's callers so far. */
  readonly tokens = { prompt: 0, reasoning: 0 };

  /** Texts in the batch now running. */
  get running(): number {
    return this.#runningTexts;
  }

  /**
   * Embeds `texts` in a shared batch; results in order. Rejects with ERR_OVERLOADED when they would
   * take the waiting texts past `maxPending`, ERR_ABORTED when `signal` fires, ERR_DISPOSED after
   * {@link close}.
   */
  embed(texts: string[], options: EmbedQueueCallOptions = {}): Promise<EmbedResult[]> {
    checkKeys(options, ['side', 'mode', 'maxReasoningTokens', 'signal'], 'options');
    if (!Array.isArray(texts)) throw new TypeError(expected('array of strings', 'texts', texts));
    texts.forEach((t, i) => assertString(t, `texts[${i}]`));
    const side = options.side ?? 'query';
    assertOneOf(side, 'side', ['query', 'document'] as const);
    if (options.mode !== undefined) assertOneOf(options.mode, 'mode', ['direct', 'reason'] as const);
    if (options.maxReasoningTokens !== undefined) assertInteger(options.maxReasoningTokens, 'maxReasoningTokens', 1, 1 << 20);
    if (side === 'document' && (options.mode !== undefined || options.maxReasoningTokens !== undefined)) {
      throw new TypeError('mode and maxReasoningTokens apply to the query side only: documents are always embedded directly');
    }
    if (this.#closed) return Promise.reject(new SearchR3Error('ERR_DISPOSED', 'the embed queue was closed'));
    if (options.signal?.aborted) return Promise.reject(aborted());
    if (texts.length === 0) return Promise.resolve([]);
    if (this.#pendingTexts + texts.length > this.maxPending) {
      return Promise.reject(new SearchR3Error('ERR_OVERLOADED', `the embed queue is full (${this.#pendingTexts} of ${this.maxPending} texts waiting, ${texts.length} more asked); try again later`));
    }
    return new Promise((resolve, reject) => {
      const key = side === 'document' ? 'document' : `query|${options.mode ?? ''}|${options.maxReasoningTokens ?? ''}`;
      const job: Job = { texts: [...texts], key, options, resolve, reject, settled: false, detach: () => {} };
      const signal = options.signal;
      if (signal) {
        const onAbort = (): void => this.#abandon(job);
        signal.addEventListener('abort', onAbort, { once: true });
        job.detach = () => signal.removeEventListener('abort', onAbort);
      }
      this.#jobs.push(job);
      this.#pendingTexts += job.texts.length;
      if (this.#pendingTexts >= this.#expect) this.#wake?.();
      this.#kick();
    });
  }

  /**
   * The embedder seen through this queue, for code that takes an `Embedder` (a `DenseRetriever`,
   * a `DocumentIndex`) and must share batches with the queue's other callers instead of meeting
   * ERR_BUSY: it has the embedder's fields and methods, but `embed` and `embedDocuments` go through
   * the queue (`onProgress` is told once, when the texts are done), `acceptsConcurrentCalls` is true
   * (so a `DenseRetriever` lets overlapping calls through to share batches) and `dispose` does
   * nothing (the embedder stays its owner's).
   */
  asEmbedder(): Embedder {
    const view = Object.create(this.embedder) as Embedder;
    const done = <T>(o: { onProgress?: (d: number, t: number) => void } | undefined, n: number, r: T): T => { o?.onProgress?.(n, n); return r; };
    const embed: Embedder['embed'] = async (texts, o = {}) =>
      done(o, texts.length, await this.embed(texts, { mode: o.mode, maxReasoningTokens: o.maxReasoningTokens, signal: o.signal }));
    const embedDocuments: Embedder['embedDocuments'] = async (texts, o = {}) =>
      done(o, texts.length, await this.embed(texts, { side: 'document', signal: o.signal }));
    Object.defineProperties(view, { embed: { value: embed }, embedDocuments: { value: embedDocuments }, dispose: { value: () => {} }, acceptsConcurrentCalls: { value: true } });
    return view;
  }

  /**
   * Refuses new calls (ERR_DISPOSED) and resolves once every accepted one has settled: the waiting
   * texts still run. A server's graceful shutdown awaits this before disposing the embedder.
   */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#running) await this.#running;
  }

  #settle(job: Job, ok: boolean, value: unknown): void {
    if (job.settled) return;
    job.settled = true;
    job.detach();
    if (ok) job.resolve(value as EmbedResult[]);
    else job.reject(value);
  }

  /** A caller's signal fired: drop its waiting texts, or release it from the running batch. */
  #abandon(job: Job): void {
    const at = this.#jobs.indexOf(job);
    if (at >= 0) {
      this.#jobs.splice(at, 1);
      this.#pendingTexts -= job.texts.length;
    }
    this.#settle(job, false, aborted());
    this.#batchAbort?.();
  }

  #batchAbort: (() => void) | null = null;

  #kick(): void {
    if (this.#running || this.#jobs.length === 0) return;
    this.#running = this.#loop().finally(() => {
      this.#running = null;
      this.#kick();
    });
  }

  async #loop(): Promise<void> {
    while (this.#jobs.length > 0) {
      // One turn of the event loop first, so callers arriving together (a batch's callers calling
      // again as their results land, requests parsed in the same I/O phase) share the batch.
      await new Promise((resolve) => setImmediate(resolve));
      await this.#gather();
      if (this.#jobs.length === 0) break;
      const batch = this.#take();
      await this.#run(batch);
    }
  }

  /**
   * Waits for the previous batch's callers to come back: until as many texts are pending as it
   * served plus those that were waiting then (at most maxBatch), and no later than
   * min(maxBatchDelayMs, a tenth of its time) after it ended. So a first batch does not wait, nor a
   * request arriving after the queue has been idle that long.
   */
  async #gather(): Promise<void> {
    const ms = this.#lastBatchEnd + Math.min(this.maxBatchDelayMs, this.#lastBatchMs / 10) - performance.now();
    if (ms <= 0 || this.#pendingTexts >= this.#expect || this.#jobs.length === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.#wake?.(), ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
    });
  }

  /** The oldest job and the later ones of its key, up to maxBatch texts (the oldest always fits). */
  #take(): Job[] {
    const key = this.#jobs[0]!.key;
    const batch: Job[] = [];
    let texts = 0;
    this.#jobs = this.#jobs.filter((job) => {
      if (job.key !== key || (batch.length > 0 && texts + job.texts.length > this.maxBatch)) return true;
      batch.push(job);
      texts += job.texts.length;
      return false;
    });
    this.#pendingTexts -= texts;
    return batch;
  }

  async #run(batch: Job[]): Promise<void> {
    const controller = new AbortController();
    // The shared decode stops only when no caller is left to receive it.
    this.#batchAbort = () => {
      if (batch.every((j) => j.settled)) controller.abort();
    };
    const texts = batch.flatMap((j) => j.texts);
    this.#runningTexts = texts.length;
    const started = performance.now();
    try {
      const results = await this.#call(texts, batch[0]!.options, controller.signal);
      for (const r of results) {
        this.tokens.prompt += r.promptTokens;
        this.tokens.reasoning += r.reasoningTokens;
      }
      let at = 0;
      for (const job of batch) {
        this.#settle(job, true, results.slice(at, at + job.texts.length));
        at += job.texts.length;
      }
    } catch (err) {
      if (batch.length === 1 || controller.signal.aborted) {
        for (const job of batch) this.#settle(job, false, err);
      } else {
        // One caller's failure stays its own: rerun each job of the failed batch alone.
        for (const job of batch) if (!job.settled) await this.#run([job]);
      }
    } finally {
      this.#runningTexts = 0;
      this.#batchAbort = null;
      this.#lastBatchEnd = performance.now();
      this.#lastBatchMs = this.#lastBatchEnd - started;
      this.#expect = Math.min(this.maxBatch, texts.length + this.#pendingTexts);
    }
  }

  #call(texts: string[], options: EmbedQueueCallOptions, signal: AbortSignal): Promise<EmbedResult[]> {
    if (options.side === 'document') return this.embedder.embedDocuments(texts, { signal });
    return this.embedder.embed(texts, { mode: options.mode, maxReasoningTokens: options.maxReasoningTokens, signal });
  }
}

import { SearchR3Error, type ErrorCode } from '../util/errors';
import { expected } from '../util/validate';

const CODES = new Set<ErrorCode>([
  'ERR_FILE', 'ERR_GGUF', 'ERR_MODEL', 'ERR_CONTEXT', 'ERR_DISPOSED', 'ERR_BUSY', 'ERR_ABORTED',
  'ERR_FORMAT', 'ERR_STORE', 'ERR_NATIVE', 'ERR_TRAIN',
]);

/**
 * Turns an error thrown by the addon (a plain Error with a string `code`) into a SearchR3Error,
 * keeping TypeError/RangeError (argument misuse) as they are.
 */
export function fromNative(err: unknown, callerStack?: string): unknown {
  if (err instanceof TypeError || err instanceof RangeError || err instanceof SearchR3Error) return err;
  if (err instanceof Error) {
    const code = (err as Error & { code?: string }).code as ErrorCode | 'ERR_INVALID' | undefined;
    // Argument checks that can only run in a worker (they need the model) reject with ERR_INVALID.
    if (code === 'ERR_INVALID') return new RangeError(err.message);
    const mapped = new SearchR3Error(code && CODES.has(code) ? code : 'ERR_NATIVE', err.message);
    // Show the user's own call site: native rejections carry no JS stack of interest.
    if (callerStack) mapped.stack = `${mapped.name}: ${mapped.message}\n${callerStack.split('\n').slice(2).join('\n')}`;
    return mapped;
  }
  return err;
}

/** Awaits a native Promise and re-throws its failure on the stack of the caller. */
export async function callNative<T>(start: () => Promise<T>): Promise<T> {
  const callerStack = new Error().stack;
  try {
    return await start();
  } catch (err) {
    throw fromNative(err, callerStack);
  }
}

/**
 * Runs a cancellable native operation: an already-fired `signal` rejects with ERR_ABORTED before
 * it starts, and one that fires meanwhile calls `abort` (the native object's abort flag), so the
 * operation rejects with ERR_ABORTED at its next check. Sessions and trainers share this.
 */
export async function callNativeAbortable<T>(signal: AbortSignal | undefined, abort: () => void, start: () => Promise<T>): Promise<T> {
  if (signal !== undefined && (typeof signal !== 'object' || signal === null || typeof (signal as AbortSignal).aborted !== 'boolean')) {
    throw new TypeError(expected('AbortSignal', 'signal', signal));
  }
  if (signal?.aborted) throw new SearchR3Error('ERR_ABORTED', 'the operation was aborted before it started');
  signal?.addEventListener('abort', abort, { once: true });
  try {
    return await callNative(start);
  } finally {
    signal?.removeEventListener('abort', abort);
  }
}

/** Runs a synchronous native call, mapping its error codes. */
export function callNativeSync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err);
  }
}

/**
 * Counts the native operations of one object that are in flight, so that dispose() can stop them
 * instead of throwing. The chosen behaviour (README, Library): dispose() never throws; an operation
 * still running rejects with ERR_DISPOSED (whatever the native work ended with, since its result
 * belongs to a disposed object), and whoever frees native memory waits for {@link idle} first,
 * because a worker thread may still be using it.
 */
export class InFlight {
  #count = 0;
  #disposed = false;
  #waiters: (() => void)[] = [];
  readonly #what: string;

  /** @param what the object's name in the ERR_DISPOSED message ("session", "trainer"). */
  constructor(what: string) {
    this.#what = what;
  }

  /** True while at least one operation runs. */
  get busy(): boolean {
    return this.#count > 0;
  }

  /** Marks the owner disposed: operations still running will reject with ERR_DISPOSED. */
  dispose(): void {
    this.#disposed = true;
  }

  /** Resolves once no operation runs (at once when none does). */
  idle(): Promise<void> {
    return this.#count === 0 ? Promise.resolve() : new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * Runs `start`; when the owner is disposed before it settles, rejects with ERR_DISPOSED and hands
   * a value it produced anyway to `discard` (so that, say, a session made meanwhile is freed).
   */
  async run<T>(start: () => Promise<T>, discard?: (value: T) => void): Promise<T> {
    this.#count++;
    try {
      let value: T;
      try {
        value = await start();
      } catch (err) {
        throw this.#disposed ? this.#disposedError() : err;
      }
      if (this.#disposed) {
        discard?.(value);
        throw this.#disposedError();
      }
      return value;
    } finally {
      if (--this.#count === 0) for (const fn of this.#waiters.splice(0)) fn();
    }
  }

  #disposedError(): SearchR3Error {
    return new SearchR3Error('ERR_DISPOSED', `the ${this.#what} was disposed while the operation ran`);
  }
}

/**
 * Error codes that search-r3 raises for engine and input failures. Misuse of an API argument is a
 * `TypeError` or `RangeError`; everything else is a {@link SearchR3Error} with one of these codes.
 */
export type ErrorCode =
  | 'ERR_FILE' // a file is missing, unreadable, or is a directory
  | 'ERR_GGUF' // a file is not a valid GGUF, or is truncated or corrupt
  | 'ERR_MODEL' // a model loads but cannot be used for what was asked (architecture, missing token)
  | 'ERR_CONTEXT' // text or batch does not fit the context
  | 'ERR_DISPOSED' // the object was disposed
  | 'ERR_BUSY' // the object is already running an operation
  | 'ERR_ABORTED' // an AbortSignal fired
  | 'ERR_FORMAT' // a data file (JSONL, TSV, qrels, run) has a malformed line
  | 'ERR_STORE' // a vector store on disk is missing, corrupt, of another version, or being saved by another writer
  | 'ERR_NATIVE' // llama.cpp or ggml reported a failure
  | 'ERR_TRAIN' // training diverged or cannot proceed
  | 'ERR_REMOTE'; // a remote service (an HTTP retriever) refused, timed out, or answered out of protocol

/**
 * An engine or input failure with a fixed string `code` for programs to switch on.
 *
 * @example
 * try { await Model.load('missing.gguf'); } catch (e) { if (e instanceof SearchR3Error && e.code === 'ERR_FILE') … }
 */
export class SearchR3Error extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SearchR3Error';
    this.code = code;
  }
}

import { SearchR3Error } from '../util/errors';
import { assertInteger, assertString, checkKeys, expected } from '../util/validate';
import { checkRetrieve } from './check';
import type { RetrievedDoc, RetrieveOptions, RetrieveResult, TextRetriever } from './types';

/** Options of {@link HttpRetriever}. */
export interface HttpRetrieverOptions {
  /** The endpoint, e.g. `http://127.0.0.1:8000/retrieve` (http or https). */
  url: string;
  /** Milliseconds a call may take, connection to last byte, before it fails with ERR_REMOTE. Default 30000. */
  timeoutMs?: number;
  /** Extra request headers, e.g. `{ authorization: 'Bearer …' }`. */
  headers?: Record<string, string>;
}

/** Bytes of a bad response body quoted in an error message. */
const QUOTE = 120;

function remoteError(url: string, what: string, cause?: unknown): SearchR3Error {
  return new SearchR3Error('ERR_REMOTE', `retriever ${url}: ${what}`, cause === undefined ? undefined : { cause });
}

/**
 * A client of Search-R1's retrieval service (`search_r1/search/retrieval_server.py`), so a
 * retriever running elsewhere — another machine, a GPU index, our own `search-r3 serve` — serves
 * the agent and the bench. One POST per call carries every query:
 * request `{"queries": [...], "topk": k, "return_scores": true}`, response
 * `{"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}` (one list per query).
 * A refused connection, a timeout, a non-2xx status or a response of another shape is ERR_REMOTE
 * naming the URL and what was wrong; the caller's signal aborts the request (ERR_ABORTED).
 *
 * @example
 * const remote = new HttpRetriever({ url: 'http://127.0.0.1:8000/retrieve' });
 * const [r] = await remote.retrieve(['who wrote hamlet'], { topk: 3 });
 */
export class HttpRetriever implements TextRetriever {
  readonly name: string;
  readonly url: string;
  readonly timeoutMs: number;
  readonly #headers: Record<string, string>;

  constructor(options: HttpRetrieverOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError(expected('object', 'options', options));
    checkKeys(options, ['url', 'timeoutMs', 'headers'], 'options');
    assertString(options.url, 'url', { nonEmpty: true });
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new TypeError(expected('http(s) URL', 'url', options.url));
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError(expected('http(s) URL', 'url', options.url));
    this.timeoutMs = options.timeoutMs ?? 30_000;
    assertInteger(this.timeoutMs, 'timeoutMs', 1, 2 ** 31 - 1);
    if (options.headers !== undefined) {
      if (typeof options.headers !== 'object' || options.headers === null) throw new TypeError(expected('object', 'headers', options.headers));
      for (const [k, v] of Object.entries(options.headers)) assertString(v, `headers.${k}`);
    }
    this.url = parsed.href;
    this.name = parsed.href;
    this.#headers = { ...options.headers };
  }

  async retrieve(queries: readonly string[], options: RetrieveOptions): Promise<RetrieveResult[]> {
    checkRetrieve(queries, options);
    if (queries.length === 0) return [];
    const body = await this.#post({ queries, topk: options.topk, return_scores: true }, options.signal);
    const results = parseResponse(this.url, body, queries.length, options.topk);
    options.onProgress?.(queries.length, queries.length);
    return results;
  }

  async #post(request: unknown, signal: AbortSignal | undefined): Promise<string> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      const response = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...this.#headers },
        body: JSON.stringify(request),
        signal: both,
      });
      const text = await response.text();
      if (!response.ok) throw remoteError(this.url, `answered HTTP ${response.status} ${response.statusText}: ${quote(text)}`);
      return text;
    } catch (err) {
      if (err instanceof SearchR3Error) throw err;
      if (signal?.aborted) throw new SearchR3Error('ERR_ABORTED', `the retrieval from ${this.url} was aborted`, { cause: err });
      if (timeout.aborted) throw remoteError(this.url, `no complete answer within ${this.timeoutMs} ms`, err);
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw remoteError(this.url, `request failed (${cause?.code ?? cause?.message ?? (err as Error).message})`, err);
    }
  }
}

function quote(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > QUOTE ? `${JSON.stringify(one.slice(0, QUOTE))}…` : JSON.stringify(one);
}

/** Checks a `/retrieve` response and turns it into results; every failure names the element that was wrong. */
export function parseResponse(url: string, text: string, queries: number, topk: number): RetrieveResult[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw remoteError(url, `answered with a body that is not JSON: ${quote(text)}`);
  }
  const result = (body as { result?: unknown } | null)?.result;
  if (!Array.isArray(result)) throw remoteError(url, 'answered without a "result" array (expected {"result": [[{"document": {"id", "contents"}, "score"}, …], …]})');
  if (result.length !== queries) throw remoteError(url, `answered ${result.length} result lists for ${queries} queries`);
  return result.map((list: unknown, q) => {
    if (!Array.isArray(list)) throw remoteError(url, `result[${q}] is not a list of documents`);
    if (list.length > topk) throw remoteError(url, `result[${q}] holds ${list.length} documents, more than the topk ${topk} asked for`);
    return { docs: list.map((item: unknown, i) => parseItem(url, item, `result[${q}][${i}]`)) };
  });
}

function parseItem(url: string, item: unknown, at: string): RetrievedDoc {
  const { document, score } = (item ?? {}) as { document?: { id?: unknown; contents?: unknown }; score?: unknown };
  if (typeof document !== 'object' || document === null) throw remoteError(url, `${at} has no "document" object`);
  const id = typeof document.id === 'number' && Number.isFinite(document.id) ? String(document.id) : document.id;
  if (typeof id !== 'string' || id.length === 0) throw remoteError(url, `${at}.document.id is not a non-empty string`);
  if (typeof document.contents !== 'string') throw remoteError(url, `${at}.document.contents is not a string`);
  if (typeof score !== 'number' || !Number.isFinite(score)) throw remoteError(url, `${at}.score is not a finite number`);
  return { id, contents: document.contents, score };
}

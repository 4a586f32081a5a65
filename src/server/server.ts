// `createServer`: the HTTP face of an Embedder (and, optionally, retrievers over a document
// index). fastify parses, validates against the schemas, limits bodies and closes gracefully.
import Fastify, { type FastifyInstance } from 'fastify';
import { basename } from 'node:path';
import { EMBED_QUEUE_DEFAULTS, EmbedQueue, type EmbedQueueOptions } from '../engine/embed-queue';
import type { Embedder } from '../engine/embedder';
import type { TextRetriever } from '../retrieval/types';
import { assertInteger, assertString, checkKeys, expected } from '../util/validate';
import { bearerChecker, isLoopbackHost } from './auth';
import { HttpError, toErrorResponse } from './errors';
import { ServerMetrics } from './metrics';
import { registerRoutes } from './routes';

/** The defaults of {@link ServerOptions} that `search-r3 serve --help` also shows. */
export const SERVER_DEFAULTS = Object.freeze({ host: '127.0.0.1', port: 8080, bodyLimit: 1 << 20, timeoutMs: 120_000, maxPending: EMBED_QUEUE_DEFAULTS.maxPending });

/** Options of {@link createServer}. */
export interface ServerOptions {
  /** The embedder behind /v1/embeddings; give it, or `queue`. */
  embedder?: Embedder;
  /** A queue already in front of the embedder (share it with a dense retriever so both batch together). */
  queue?: EmbedQueue;
  /** Queue bounds when the server makes the queue from `embedder` (default maxPending 1024). */
  queueOptions?: EmbedQueueOptions;
  /** Serves /retrieve and /search (absent: those answer 404). */
  retriever?: TextRetriever;
  /** Serves /search with `"hybrid": true`. */
  hybrid?: TextRetriever;
  /** The model id in /v1/models and in responses that name none (default: the GGUF's file name without `.gguf`). */
  modelName?: string;
  /** Address to bind (default 127.0.0.1). A non-loopback address needs `apiKey`. */
  host?: string;
  /** TCP port (default 8080; 0 = any free port). */
  port?: number;
  /** Requests must send `Authorization: Bearer <apiKey>` (all routes but /health). */
  apiKey?: string;
  /** Largest request body in bytes (default 1 MiB); larger is a 413. */
  bodyLimit?: number;
  /** Per-request time limit in milliseconds (default 120 000); past it the work is cancelled and the answer is 504. */
  timeoutMs?: number;
  /** Where failures that are the server's own fault (500s) are reported (default: stderr). */
  log?: (line: string) => void;
}

/** A running (or ready) server. */
export interface SearchR3Server {
  /** The embed queue the server feeds (its depth is in /metrics). */
  readonly queue: EmbedQueue;
  /** The fastify instance, for tests (`inject`) and for adding routes before `listen`. */
  readonly app: FastifyInstance;
  /** Binds host:port; resolves with the URL it listens on. */
  listen(): Promise<string>;
  /**
   * Stops accepting connections, answers the requests in flight, then lets the queue finish.
   * Idempotent. The embedder stays open: dispose it (and the model) afterwards.
   */
  close(): Promise<void>;
}

function resolveOptions(options: ServerOptions): Required<Pick<ServerOptions, 'host' | 'port' | 'bodyLimit' | 'timeoutMs'>> & { queue: EmbedQueue } {
  checkKeys(options, ['embedder', 'queue', 'queueOptions', 'retriever', 'hybrid', 'modelName', 'host', 'port', 'apiKey', 'bodyLimit', 'timeoutMs', 'log'], 'options');
  const host = options.host ?? SERVER_DEFAULTS.host;
  assertString(host, 'host', { nonEmpty: true });
  const port = options.port ?? SERVER_DEFAULTS.port;
  assertInteger(port, 'port', 0, 65535);
  if (options.apiKey !== undefined) assertString(options.apiKey, 'apiKey', { nonEmpty: true });
  if (!isLoopbackHost(host) && options.apiKey === undefined) {
    throw new RangeError(`host ${host} is not a loopback address: anyone who can reach it could use the server, so give an apiKey (--api-key) or bind 127.0.0.1`);
  }
  const bodyLimit = options.bodyLimit ?? SERVER_DEFAULTS.bodyLimit;
  assertInteger(bodyLimit, 'bodyLimit', 1024, 1 << 30);
  const timeoutMs = options.timeoutMs ?? SERVER_DEFAULTS.timeoutMs;
  assertInteger(timeoutMs, 'timeoutMs', 1, 24 * 3600 * 1000);
  for (const k of ['retriever', 'hybrid'] as const) {
    const r = options[k];
    if (r !== undefined && (typeof r !== 'object' || r === null || typeof r.retrieve !== 'function')) throw new TypeError(expected('TextRetriever', k, r));
  }
  if (options.queue !== undefined && !(options.queue instanceof EmbedQueue)) throw new TypeError(expected('EmbedQueue', 'queue', options.queue));
  if (options.queue === undefined && options.embedder === undefined) throw new TypeError('createServer needs an embedder (or a queue in front of one)');
  if (options.queue !== undefined && (options.embedder !== undefined || options.queueOptions !== undefined)) {
    throw new TypeError('give createServer either a queue, or an embedder (with queueOptions), not both');
  }
  const queue = options.queue ?? EmbedQueue.create(options.embedder!, { maxPending: SERVER_DEFAULTS.maxPending, ...options.queueOptions });
  return { host, port, bodyLimit, timeoutMs, queue };
}

/**
 * An HTTP server speaking OpenAI's embeddings API (`POST /v1/embeddings`), Search-R1's
 * `POST /retrieve`, our `POST /search`, and `GET /health`, `/v1/models`, `/metrics`.
 * Concurrent requests share the embedder's batches through an {@link EmbedQueue}.
 *
 * @example
 * const server = createServer({ embedder, port: 8080 });
 * console.log(await server.listen()); // http://127.0.0.1:8080
 * // … later: await server.close(); embedder.dispose();
 */
export function createServer(options: ServerOptions): SearchR3Server {
  const { host, port, bodyLimit, timeoutMs, queue } = resolveOptions(options);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const metrics = new ServerMetrics();
  const app = Fastify({
    logger: false,
    bodyLimit,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // Wrong types are errors, not coerced; unknown fields are reported, not silently dropped.
    ajv: { customOptions: { allowUnionTypes: true, coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });
  if (options.apiKey !== undefined) {
    const allowed = bearerChecker(options.apiKey);
    app.addHook('onRequest', async (request, reply) => {
      if (request.url === '/health' || allowed(request.headers.authorization)) return;
      reply.header('www-authenticate', 'Bearer');
      throw new HttpError(401, 'missing or wrong API key: send "Authorization: Bearer <key>"', { code: 'invalid_api_key' });
    });
  }
  let draining = false;
  // While draining, answers close their connection: a keep-alive socket would otherwise hold the
  // close open until the client's idle timeout, long after the last request was answered.
  app.addHook('onSend', async (_request, reply) => {
    if (draining) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.observe(request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
  });
  app.setErrorHandler((err, request, reply) => {
    const { status, body, headers } = toErrorResponse(err);
    if (status === 500) log(`search-r3 serve: ${request.method} ${request.url} failed: ${(err as Error)?.stack ?? String(err)}`);
    reply.code(status).headers(headers).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: { message: `no route ${request.method} ${request.url.split('?')[0]}`, type: 'invalid_request_error', param: null, code: 'not_found' } });
  });
  const embedder = queue.embedder;
  registerRoutes(app, {
    queue,
    retriever: options.retriever ?? null,
    hybrid: options.hybrid ?? null,
    modelName: options.modelName ?? basename(embedder.model.info.path).replace(/\.gguf$/i, ''),
    dimensions: embedder.model.info.nEmbd,
    timeoutMs,
    metrics,
  });
  let closing: Promise<void> | null = null;
  return {
    queue,
    app,
    async listen() {
      return app.listen({ host, port });
    },
    close() {
      draining = true;
      closing ??= app.close().then(() => queue.close());
      return closing;
    },
  };
}

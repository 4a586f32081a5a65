// The request handlers. Each turns a checked body into library calls (the embed queue, a
// TextRetriever) under a signal that fires when the client goes away or the request times out.
import { endianness } from 'node:os';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { EmbedQueue } from '../engine/embed-queue';
import type { EmbedResult } from '../engine/embedder';
import type { RetrieveResult, TextRetriever } from '../retrieval/types';
import { SearchR3Error } from '../util/errors';
import { HttpError } from './errors';
import type { ServerMetrics } from './metrics';
import { EMBEDDINGS_BODY, RETRIEVE_BODY, SEARCH_BODY, type EmbeddingsBody, type RetrieveBody, type SearchBody } from './schemas';

/** Documents per query when a /retrieve request names none (Search-R1's `retrieval_topk` default). */
export const RETRIEVE_DEFAULT_TOPK = 3;
/** Documents per query when a /search request names none (the `search` command's default). */
export const SEARCH_DEFAULT_TOPK = 10;

/** What the handlers share. */
export interface RouteContext {
  queue: EmbedQueue;
  retriever: TextRetriever | null;
  hybrid: TextRetriever | null;
  modelName: string;
  dimensions: number;
  timeoutMs: number;
  metrics: ServerMetrics;
}

/**
 * Runs `work` under a signal that fires when the client disconnects (its work is then cancelled)
 * or after `timeoutMs`; maps the resulting abort to 504 (timeout) or 499 (client gone).
 */
async function underSignal<T>(reply: FastifyReply, timeoutMs: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timedOut = false;
  const onClose = (): void => { if (!reply.raw.writableFinished) controller.abort(); };
  reply.raw.on('close', onClose);
  const timer = setTimeout(() => { timedOut = true; controller.abort(); }, timeoutMs);
  try {
    return await work(controller.signal);
  } catch (err) {
    if (err instanceof SearchR3Error && err.code === 'ERR_ABORTED') {
      if (timedOut) throw new HttpError(504, `the request took longer than the server's ${timeoutMs / 1000} s timeout`, { type: 'server_error', code: 'timeout' });
      throw new HttpError(499, 'the client closed the request', { code: 'client_closed' });
    }
    throw err;
  } finally {
    clearTimeout(timer);
    reply.raw.off('close', onClose);
  }
}

/** A vector as OpenAI's base64 encoding: the little-endian float32 bytes. */
export function vectorToBase64(v: Float32Array): string {
  if (endianness() === 'LE') return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  const b = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => b.writeFloatLE(x, i * 4));
  return b.toString('base64');
}

function embeddingsOptions(body: EmbeddingsBody, dimensions: number): { side: 'query' | 'document'; mode?: 'direct' | 'reason'; maxReasoningTokens?: number } {
  if (body.dimensions !== undefined && body.dimensions !== dimensions) {
    throw new HttpError(400, `dimensions must be ${dimensions}, this model's embedding size (shortened embeddings are not offered)`, { param: 'dimensions', code: 'invalid_value' });
  }
  if (body.input_type === 'document') {
    if (body.mode !== undefined || body.max_reasoning_tokens !== undefined) {
      throw new HttpError(400, 'mode and max_reasoning_tokens apply to input_type "query" only: documents are embedded directly', { param: body.mode !== undefined ? 'mode' : 'max_reasoning_tokens', code: 'invalid_value' });
    }
    return { side: 'document' };
  }
  const mode = body.mode ?? 'direct';
  if (body.max_reasoning_tokens !== undefined && mode !== 'reason') {
    throw new HttpError(400, 'max_reasoning_tokens applies to mode "reason" only', { param: 'max_reasoning_tokens', code: 'invalid_value' });
  }
  return { side: 'query', mode, maxReasoningTokens: body.max_reasoning_tokens };
}

function embeddingsResponse(results: EmbedResult[], body: EmbeddingsBody, ctx: RouteContext, reason: boolean): object {
  const base64 = body.encoding_format === 'base64';
  let prompt = 0;
  let reasoning = 0;
  const data = results.map((r, index) => {
    prompt += r.promptTokens;
    reasoning += r.reasoningTokens;
    return { object: 'embedding', index, embedding: base64 ? vectorToBase64(r.vector) : Array.from(r.vector), ...(reason ? { reasoning: r.reasoning } : {}) };
  });
  return { object: 'list', data, model: body.model ?? ctx.modelName, usage: { prompt_tokens: prompt, total_tokens: prompt + reasoning } };
}

function needRetriever(r: TextRetriever | null, what: string): TextRetriever {
  if (!r) throw new HttpError(404, `this server has no ${what}: start it on a document index (search-r3 serve DIR --model M.gguf)`, { code: 'no_index' });
  return r;
}

/** Search-R1's response: documents per query, each `{document, score}` when scores are asked for. */
export function retrieveResponse(results: RetrieveResult[], withScores: boolean): { result: object[][] } {
  return {
    result: results.map((r) => r.docs.map((d) => {
      const document = { id: d.id, contents: d.contents };
      return withScores ? { document, score: d.score } : document;
    })),
  };
}

/** Registers every route on `app`. */
export function registerRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/health', async () => ({ status: 'ok', model: ctx.modelName, index: ctx.retriever !== null, queue: { pending: ctx.queue.pending, running: ctx.queue.running } }));

  app.get('/v1/models', async () => ({ object: 'list', data: [{ id: ctx.modelName, object: 'model', created: 0, owned_by: 'search-r3' }] }));

  app.get('/metrics', async (_request, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return ctx.metrics.render(ctx.queue);
  });

  app.post('/v1/embeddings', { schema: { body: EMBEDDINGS_BODY } }, async (request, reply) => {
    const body = request.body as EmbeddingsBody;
    const options = embeddingsOptions(body, ctx.dimensions);
    const texts = typeof body.input === 'string' ? [body.input] : body.input;
    const results = await underSignal(reply, ctx.timeoutMs, (signal) => ctx.queue.embed(texts, { ...options, signal }));
    return embeddingsResponse(results, body, ctx, options.mode === 'reason');
  });

  app.post('/retrieve', { schema: { body: RETRIEVE_BODY } }, async (request, reply) => {
    const body = request.body as RetrieveBody;
    const retriever = needRetriever(ctx.retriever, 'document index');
    const topk = body.topk ?? RETRIEVE_DEFAULT_TOPK;
    const results = await underSignal(reply, ctx.timeoutMs, (signal) => retriever.retrieve(body.queries, { topk, signal }));
    return retrieveResponse(results, body.return_scores === true);
  });

  app.post('/search', { schema: { body: SEARCH_BODY } }, async (request, reply) => {
    const body = request.body as SearchBody;
    const retriever = body.hybrid ? needRetriever(ctx.hybrid, 'hybrid retriever') : needRetriever(ctx.retriever, 'document index');
    const topk = body.topk ?? SEARCH_DEFAULT_TOPK;
    const results = await underSignal(reply, ctx.timeoutMs, (signal) => retriever.retrieve(body.queries, { topk, mode: body.mode, signal }));
    return { results: results.map((r) => ({ docs: r.docs, reasoning: r.reasoning ?? null })) };
  });
}

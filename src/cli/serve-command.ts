import { DocumentIndex, type IndexInfo } from '../docindex/index';
import { EMBED_QUEUE_DEFAULTS, EmbedQueue } from '../engine/embed-queue';
import { Embedder, EMBEDDER_DEFAULTS, type EmbedderOptions } from '../engine/embedder';
import { Model } from '../engine/model';
import type { TextRetriever } from '../retrieval/types';
import { isLoopbackHost } from '../server/auth';
import { createServer, SERVER_DEFAULTS } from '../server/server';
import { checkInputs } from '../util/output';
import { intFlag, numFlag, UsageError } from './args';
import { defineCommand } from './flags';
import { onShutdownSignal } from './process';

/** The environment variable read for the API key when --api-key is not given (keeps it out of `ps`). */
export const API_KEY_ENV = 'SEARCH_R3_API_KEY';

/** `search-r3 serve`. */
export const SERVE = defineCommand({
  name: 'serve', usage: '[DIR] --model M.gguf',
  summary: 'Serves the model over HTTP: OpenAI-compatible POST /v1/embeddings, and Search-R1 /retrieve and /search over the document index DIR.',
  flags: {
    model: { type: 'string', value: 'M.gguf', help: 'the embedding model (required without DIR; with DIR, default: the one that encoded it)' },
    lora: { type: 'string', value: 'A.gguf', help: 'LoRA adapter GGUF applied at scale 1 (with DIR, default: the one that encoded it)' },
    host: { type: 'string', value: 'ADDR', default: SERVER_DEFAULTS.host, help: 'address to bind; a non-loopback one needs --api-key' },
    port: { type: 'string', value: 'N', default: SERVER_DEFAULTS.port, help: 'TCP port (0 = any free port)' },
    'api-key': { type: 'string', value: 'KEY', help: `require "Authorization: Bearer KEY" (default: $${API_KEY_ENV} if set)` },
    timeout: { type: 'string', value: 'S', default: SERVER_DEFAULTS.timeoutMs / 1000, help: 'seconds a request may take; past it its work is cancelled (504)' },
    'body-limit': { type: 'string', value: 'BYTES', default: SERVER_DEFAULTS.bodyLimit, help: 'largest request body (413 beyond)' },
    'max-queue': { type: 'string', value: 'N', default: SERVER_DEFAULTS.maxPending, help: 'texts waiting at most; beyond, 503 with Retry-After' },
    'batch-delay': { type: 'string', value: 'MS', default: EMBED_QUEUE_DEFAULTS.maxBatchDelayMs, help: 'ms a batch may wait for the previous batch\'s clients to send again (at most a tenth of its time; 0 = never)' },
    sequences: { type: 'string', value: 'N', default: EMBEDDER_DEFAULTS.sequences, help: 'texts decoded in parallel (concurrent requests share them)' },
    'max-tokens': { type: 'string', value: 'N', default: EMBEDDER_DEFAULTS.contextPerSequence, help: 'token budget per text; longer texts are shortened (with DIR: the index\'s)' },
    threads: { type: 'string', value: 'N', default: 'all hardware threads', help: 'CPU threads' },
  },
});

function apiKeyOf(value: unknown): string | undefined {
  const key = typeof value === 'string' ? value : process.env[API_KEY_ENV];
  if (key === undefined) return undefined;
  if (key.trim() === '') throw new UsageError(`Expected a non-empty key for --api-key (or $${API_KEY_ENV})`);
  return key;
}

/** Waits for SIGINT/SIGTERM (through the CLI's process handlers) and says which came. */
function nextShutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => onShutdownSignal(resolve));
}

/** What serving DIR needs: the index's record, read before any model loads. */
interface Served { dir: string; info: IndexInfo }

/** The embedder options: the index's settings and template when serving one, so queries match its vectors. */
function embedderOptions(served: Served | null, values: Record<string, unknown>): EmbedderOptions {
  const sequences = intFlag(values.sequences, 'sequences', 1, 256);
  const threads = intFlag(values.threads, 'threads', 1, 1024);
  if (!served) return { sequences, threads, contextPerSequence: intFlag(values['max-tokens'], 'max-tokens', 16, 1 << 20) };
  if (values['max-tokens'] !== undefined) throw new UsageError(`--max-tokens cannot be given with DIR: the index ${served.dir} fixes it (${served.info.settings.contextPerSequence})`);
  const { settings, identity } = served.info;
  return { sequences, threads, mode: settings.mode, maxReasoningTokens: settings.maxReasoningTokens, contextPerSequence: settings.contextPerSequence, template: identity.template };
}

/** The index in DIR opened over the queue's view of the embedder (ERR_MODEL if another model or adapter encoded it). */
async function indexRetrievers(served: Served, queue: EmbedQueue): Promise<{ retriever: TextRetriever; hybrid: TextRetriever }> {
  const index = await DocumentIndex.open(served.dir, { embedder: queue.asEmbedder() });
  return { retriever: index.retriever(), hybrid: index.retriever({ hybrid: true }) };
}

export async function serveCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const args = SERVE.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  if (positionals.length > 1) throw new UsageError(`one DIR at most, got ${positionals.length}; usage: ${SERVE.usageLine}`);
  if (typeof values.model !== 'string' && positionals.length === 0) throw new UsageError(`missing --model; usage: ${SERVE.usageLine}`);
  const host = typeof values.host === 'string' ? values.host : SERVER_DEFAULTS.host;
  const apiKey = apiKeyOf(values['api-key']);
  // Refused before the weights load, so the mistake costs nothing.
  if (!isLoopbackHost(host) && apiKey === undefined) {
    throw new UsageError(`--host ${host} is not a loopback address: give --api-key KEY (or $${API_KEY_ENV}) so strangers cannot use the server, or bind 127.0.0.1`);
  }
  const port = intFlag(values.port, 'port', 0, 65535) ?? SERVER_DEFAULTS.port;
  const timeoutS = numFlag(values.timeout, 'timeout', 0.001, 86400) ?? SERVER_DEFAULTS.timeoutMs / 1000;
  const bodyLimit = intFlag(values['body-limit'], 'body-limit', 1024, 1 << 30);
  const maxPending = intFlag(values['max-queue'], 'max-queue', 1, 1 << 24) ?? SERVER_DEFAULTS.maxPending;
  const maxBatchDelayMs = numFlag(values['batch-delay'], 'batch-delay', 0, 60_000) ?? EMBED_QUEUE_DEFAULTS.maxBatchDelayMs;
  const served = positionals[0] === undefined ? null : { dir: positionals[0], info: await DocumentIndex.info(positionals[0]) };
  const options = embedderOptions(served, values);
  const modelPath = typeof values.model === 'string' ? values.model : served!.info.identity.model.path;
  const loraPath = typeof values.lora === 'string' ? values.lora : served?.info.identity.lora?.path;
  const inputs = [{ path: modelPath, name: '--model' }];
  if (loraPath !== undefined) inputs.push({ path: loraPath, name: '--lora' });
  await checkInputs(inputs);
  const model = await Model.load(modelPath);
  try {
    const lora = loraPath === undefined ? undefined : await model.loadLora(loraPath);
    const embedder = await Embedder.create(model, { ...options, lora });
    const queue = EmbedQueue.create(embedder, { maxPending, maxBatchDelayMs });
    const retrievers = served ? await indexRetrievers(served, queue) : {};
    const server = createServer({ queue, ...retrievers, host, port, apiKey, timeoutMs: Math.round(timeoutS * 1000), bodyLimit });
    let url: string;
    try {
      url = await server.listen();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new UsageError(`port ${port} on ${host} is in use; pick another with --port`);
      if ((e as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL') throw new UsageError(`--host ${host} is not an address of this machine`);
      throw e;
    }
    const signal = nextShutdownSignal();
    out.write(`search-r3 serve: listening on ${url}${served ? ` (document index ${served.dir}, ${served.info.documents} documents)` : ''}\n`);
    const got = await signal;
    process.stderr.write(`search-r3 serve: ${got}: answering the requests in flight, then exiting (send it again to stop at once)\n`);
    await server.close();
    embedder.dispose();
  } finally {
    onShutdownSignal(null);
    model.dispose();
  }
  return 0;
}

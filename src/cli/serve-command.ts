import { Embedder, EMBEDDER_DEFAULTS } from '../engine/embedder';
import { Model } from '../engine/model';
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
    model: { type: 'string', value: 'M.gguf', help: 'the embedding model (required)' },
    lora: { type: 'string', value: 'A.gguf', help: 'LoRA adapter GGUF applied at scale 1' },
    host: { type: 'string', value: 'ADDR', default: SERVER_DEFAULTS.host, help: 'address to bind; a non-loopback one needs --api-key' },
    port: { type: 'string', value: 'N', default: SERVER_DEFAULTS.port, help: 'TCP port (0 = any free port)' },
    'api-key': { type: 'string', value: 'KEY', help: `require "Authorization: Bearer KEY" (default: $${API_KEY_ENV} if set)` },
    timeout: { type: 'string', value: 'S', default: SERVER_DEFAULTS.timeoutMs / 1000, help: 'seconds a request may take; past it its work is cancelled (504)' },
    'body-limit': { type: 'string', value: 'BYTES', default: SERVER_DEFAULTS.bodyLimit, help: 'largest request body (413 beyond)' },
    'max-queue': { type: 'string', value: 'N', default: SERVER_DEFAULTS.maxPending, help: 'texts waiting at most; beyond, 503 with Retry-After' },
    sequences: { type: 'string', value: 'N', default: EMBEDDER_DEFAULTS.sequences, help: 'texts decoded in parallel (concurrent requests share them)' },
    'max-tokens': { type: 'string', value: 'N', default: EMBEDDER_DEFAULTS.contextPerSequence, help: 'token budget per text; longer texts are shortened' },
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

export async function serveCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const args = SERVE.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  if (typeof values.model !== 'string') throw new UsageError(`missing --model; usage: ${SERVE.usageLine}`);
  if (positionals.length > 1) throw new UsageError(`one DIR at most, got ${positionals.length}; usage: ${SERVE.usageLine}`);
  if (positionals.length === 1) throw new UsageError('serving a document index DIR is not in this build yet; serve the model alone (no DIR) for /v1/embeddings');
  const host = typeof values.host === 'string' ? values.host : SERVER_DEFAULTS.host;
  const apiKey = apiKeyOf(values['api-key']);
  // Refused before the weights load, so the mistake costs nothing.
  if (!isLoopbackHost(host) && apiKey === undefined) {
    throw new UsageError(`--host ${host} is not a loopback address: give --api-key KEY (or $${API_KEY_ENV}) so strangers cannot use the server, or bind 127.0.0.1`);
  }
  const port = intFlag(values.port, 'port', 0, 65535) ?? SERVER_DEFAULTS.port;
  const timeoutS = numFlag(values.timeout, 'timeout', 0.001, 86400) ?? SERVER_DEFAULTS.timeoutMs / 1000;
  const bodyLimit = intFlag(values['body-limit'], 'body-limit', 1024, 1 << 30);
  const maxPending = intFlag(values['max-queue'], 'max-queue', 1, 1 << 24);
  const sequences = intFlag(values.sequences, 'sequences', 1, 256);
  const contextPerSequence = intFlag(values['max-tokens'], 'max-tokens', 16, 1 << 20);
  const threads = intFlag(values.threads, 'threads', 1, 1024);
  const inputs = [{ path: values.model, name: '--model' }];
  if (typeof values.lora === 'string') inputs.push({ path: values.lora, name: '--lora' });
  await checkInputs(inputs);
  const model = await Model.load(values.model);
  try {
    const lora = typeof values.lora === 'string' ? await model.loadLora(values.lora) : undefined;
    const embedder = await Embedder.create(model, { sequences, threads, contextPerSequence, lora });
    const server = createServer({ embedder, host, port, apiKey, timeoutMs: Math.round(timeoutS * 1000), bodyLimit, queueOptions: { maxPending } });
    let url: string;
    try {
      url = await server.listen();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new UsageError(`port ${port} on ${host} is in use; pick another with --port`);
      if ((e as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL') throw new UsageError(`--host ${host} is not an address of this machine`);
      throw e;
    }
    const signal = nextShutdownSignal();
    out.write(`search-r3 serve: listening on ${url}\n`);
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

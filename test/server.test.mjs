// createServer: the official openai client against /v1/embeddings, Search-R1's /retrieve and our
// /search against the library's retriever, shared batches under 64 concurrent requests, and the
// 400/401/404/413/503/504 answers. Loopback only; every load is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { lib, maxAbsDiff, tempDir, tinyModel } from './helpers/models.mjs';

const require = createRequire(import.meta.url);
const OpenAI = require('openai').default;
const { Model, Embedder, EmbedQueue, createServer, DocumentIndex } = lib;

const corpus = [
  { id: 'd1', contents: '"Rivers"\nA river carries water from the hills to the sea.' },
  { id: 'd2', contents: '"Stones"\nGranite is a hard stone used in old buildings.' },
  { id: 'd3', contents: '"Lamps"\nAn oil lamp burns slowly through the night.' },
  { id: 'd4', contents: '"Orbits"\nThe moon keeps a steady orbit around the earth.' },
  { id: 'd5', contents: '"Maples"\nMaple leaves turn red before the winter.' },
];

/** A dense TextRetriever built here (exact cosine search) over the server's own queue. */
function denseRetriever(queue, vectors, name = 'dense') {
  return {
    name,
    async retrieve(queries, { topk, mode, signal }) {
      const qs = await queue.embed(queries, { mode, signal });
      return qs.map((q) => {
        const scored = corpus.map((d, i) => ({ ...d, score: vectors[i].reduce((s, x, j) => s + x * q.vector[j], 0) }));
        scored.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1));
        return { docs: scored.slice(0, topk), ...(mode === 'reason' ? { reasoning: q.reasoning } : {}) };
      });
    },
  };
}

let model;
let embedder;
let vectors;
const servers = [];

before(async () => {
  model = await Model.load(await tinyModel());
  embedder = await Embedder.create(model, { sequences: 4, threads: 1 });
  vectors = (await embedder.embedDocuments(corpus.map((d) => d.contents))).map((r) => r.vector);
});
after(async () => {
  for (const s of servers) await s.close();
  embedder.dispose();
  model.dispose();
});

async function start(options = {}) {
  const server = createServer({ ...(options.queue ? {} : { embedder }), port: 0, ...options });
  servers.push(server);
  return { server, url: await server.listen() };
}

const post = (url, path, body, headers = {}) => fetch(`${url}${path}`, {
  method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body),
});

test('the openai client: float and base64 embeddings equal the Embedder\'s, with usage and the model echoed', async () => {
  const { url } = await start({ modelName: 'tiny-embed' });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const texts = ['who painted the sistine chapel', 'vitamin d deficiency'];
  const want = await embedder.embed(texts);
  const float = await client.embeddings.create({ model: 'my-name', input: texts, encoding_format: 'float' });
  assert.equal(float.object, 'list');
  assert.equal(float.model, 'my-name');
  assert.deepEqual(float.data.map((d) => [d.object, d.index]), [['embedding', 0], ['embedding', 1]]);
  for (const [i, d] of float.data.entries()) assert.ok(maxAbsDiff(d.embedding, want[i].vector) <= 1e-5, `input ${i}`);
  const promptTokens = want.reduce((s, r) => s + r.promptTokens, 0);
  assert.deepEqual(float.usage, { prompt_tokens: promptTokens, total_tokens: promptTokens });
  // Without encoding_format the client asks for base64 and decodes it itself.
  const decoded = await client.embeddings.create({ model: 'm', input: texts[0] });
  assert.ok(maxAbsDiff(decoded.data[0].embedding, want[0].vector) <= 1e-5);
  const b64 = await client.embeddings.create({ model: 'm', input: texts[0], encoding_format: 'base64' });
  const bytes = Buffer.from(b64.data[0].embedding, 'base64');
  assert.equal(bytes.length, 4 * model.info.nEmbd);
  const back = Float32Array.from({ length: model.info.nEmbd }, (_, i) => bytes.readFloatLE(4 * i));
  const oneFloat = await client.embeddings.create({ model: 'm', input: texts[0], encoding_format: 'float' });
  assert.deepEqual(back, Float32Array.from(oneFloat.data[0].embedding), 'base64 is the exact little-endian float32 bytes of the float answer');
  assert.ok(maxAbsDiff(back, want[0].vector) <= 1e-5);
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['tiny-embed']);
});

test('/v1/embeddings extension fields: input_type "document", and mode "reason" with its budget', async () => {
  const { url } = await start();
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const [doc] = await embedder.embedDocuments(['a passage about rivers']);
  const d = await client.embeddings.create({ model: 'm', input: ['a passage about rivers'], encoding_format: 'float', input_type: 'document' });
  assert.ok(maxAbsDiff(d.data[0].embedding, doc.vector) <= 1e-5);
  const [r] = await embedder.embed(['why is the sky blue'], { mode: 'reason', maxReasoningTokens: 5 });
  const res = await (await post(url, '/v1/embeddings', { input: 'why is the sky blue', mode: 'reason', max_reasoning_tokens: 5 })).json();
  assert.equal(res.data[0].reasoning, r.reasoning);
  assert.ok(maxAbsDiff(res.data[0].embedding, r.vector) <= 1e-5);
  assert.deepEqual(res.usage, { prompt_tokens: r.promptTokens, total_tokens: r.promptTokens + r.reasoningTokens });
  const bad = await post(url, '/v1/embeddings', { input: 'x', input_type: 'document', mode: 'reason' });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.param, 'mode');
});

test('/retrieve speaks Search-R1 (documents alone, or {document, score}) and /search returns the library\'s results with reasoning', async () => {
  const queue = EmbedQueue.create(embedder);
  const dense = denseRetriever(queue, vectors);
  const hybrid = denseRetriever(queue, vectors, 'hybrid');
  const { url } = await start({ queue, retriever: dense, hybrid });
  const queries = ['water flowing to the sea', 'night light'];
  const lib3 = await dense.retrieve(queries, { topk: 3 });
  const plain = await (await post(url, '/retrieve', { queries, topk: 3 })).json();
  assert.deepEqual(plain, { result: lib3.map((r) => r.docs.map((d) => ({ id: d.id, contents: d.contents }))) });
  const scored = await (await post(url, '/retrieve', { queries, topk: 2, return_scores: true })).json();
  const lib2 = await dense.retrieve(queries, { topk: 2 });
  assert.equal(scored.result.length, 2);
  for (const [q, list] of scored.result.entries()) {
    assert.deepEqual(list.map((x) => x.document), lib2[q].docs.map((d) => ({ id: d.id, contents: d.contents })));
    list.forEach((x, i) => assert.ok(Math.abs(x.score - lib2[q].docs[i].score) <= 1e-5));
  }
  // Search-R1's default topk is 3; null means the default too.
  assert.equal((await (await post(url, '/retrieve', { queries: ['a'], topk: null })).json()).result[0].length, 3);
  const libReason = await dense.retrieve(['moon'], { topk: 2, mode: 'reason' });
  const search = await (await post(url, '/search', { queries: ['moon'], topk: 2, mode: 'reason', hybrid: true })).json();
  assert.equal(search.results[0].reasoning, libReason[0].reasoning);
  assert.deepEqual(search.results[0].docs.map((d) => d.id), libReason[0].docs.map((d) => d.id));
  assert.equal((await (await post(url, '/search', { queries: ['moon'] })).json()).results[0].docs.length, 5, 'topk 10 caps at the corpus');
  const none = await start();
  const r = await post(none.url, '/retrieve', { queries: ['a'] });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.code, 'no_index');
});

test('64 concurrent requests all succeed, share batches, and equal sequential embeddings', async () => {
  const calls = [];
  const wrapped = Object.create(embedder);
  wrapped.embed = (texts, o) => { calls.push(texts.length); return embedder.embed(texts, o); };
  // The queue only calls embed/embedDocuments and reads session/model: a counting view of the embedder.
  const counting = EmbedQueue.create(wrapped);
  const { url } = await start({ queue: counting });
  const texts = Array.from({ length: 64 }, (_, i) => `concurrent query number ${i} about ${['rivers', 'stones', 'lamps', 'orbits'][i % 4]}`);
  const sequential = [];
  for (const t of texts) sequential.push((await embedder.embed([t]))[0].vector);
  const answers = await Promise.all(texts.map((t) => post(url, '/v1/embeddings', { input: t, encoding_format: 'float' })));
  assert.deepEqual(answers.map((a) => a.status), texts.map(() => 200));
  const bodies = await Promise.all(answers.map((a) => a.json()));
  // 1e-4: the engine's bound for batched against one-by-one decoding (engine-embedder.test.mjs).
  bodies.forEach((b, i) => assert.ok(maxAbsDiff(b.data[0].embedding, sequential[i]) <= 1e-4, `request ${i}`));
  assert.ok(calls.length < 64 / 4, `64 requests in ${calls.length} embedder calls`);
  assert.equal(calls.reduce((a, b) => a + b, 0), 64);
});

test('bad requests get 400 naming the field in OpenAI\'s error shape; the server keeps answering', async () => {
  const { url } = await start();
  const cases = [
    ['{"input": "x"', null, /not valid JSON/],
    [{ input: 42 }, 'input', /input must be string,array/],
    [{ input: [] }, 'input', /input must NOT have fewer than 1 items/],
    [{ input: ['ok', ''] }, 'input[1]', /input\[1\] must NOT have fewer than 1 characters/],
    [{ input: [[1, 2, 3]] }, 'input[0]', /token-id arrays are not accepted/],
    [{ input: 'x', encoding_format: 'hex' }, 'encoding_format', /"float", "base64"/],
    [{ input: 'x', mode: 'reason', max_reasoning_tokens: 0 }, 'max_reasoning_tokens', /must be >= 1/],
    [{ input: 'x', max_reasoning_tokens: 4 }, 'max_reasoning_tokens', /applies to mode "reason" only/],
    [{ input: 'x', dimensions: 3 }, 'dimensions', /dimensions must be 64/],
    [{ input: 'x', modle: 'm' }, 'modle', /unknown field "modle"/],
    [{ model: 'm' }, 'input', /missing required field "input"/],
  ];
  for (const [body, param, message] of cases) {
    const r = await post(url, '/v1/embeddings', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    const { error } = await r.json();
    assert.equal(error.type, 'invalid_request_error');
    assert.equal(error.param, param, JSON.stringify(body));
    assert.match(error.message, message);
  }
  const q = await post(url, '/retrieve', { queries: ['a'], topk: 0 });
  assert.equal(q.status, 400);
  assert.equal((await q.json()).error.param, 'topk');
  const s = await post(url, '/search', { queries: ['a'], mode: 'think' });
  assert.equal((await s.json()).error.param, 'mode');
  const missing = await fetch(`${url}/v2/nothing`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, 'not_found');
  assert.equal((await fetch(`${url}/health`)).status, 200, 'still serving');
});

test('an API key is checked on every route but /health (401 otherwise); a non-loopback host needs one', async () => {
  const { url } = await start({ apiKey: 'sesame' });
  const denied = await post(url, '/v1/embeddings', { input: 'x' });
  assert.equal(denied.status, 401);
  assert.equal(denied.headers.get('www-authenticate'), 'Bearer');
  assert.equal((await denied.json()).error.code, 'invalid_api_key');
  assert.equal((await post(url, '/v1/embeddings', { input: 'x' }, { authorization: 'Bearer sesam' })).status, 401);
  assert.equal((await fetch(`${url}/metrics`)).status, 401);
  assert.equal((await fetch(`${url}/health`)).status, 200);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sesame', maxRetries: 0 });
  assert.equal((await client.embeddings.create({ model: 'm', input: 'x' })).data.length, 1);
  await assert.rejects(new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 }).embeddings.create({ model: 'm', input: 'x' }), (e) => e.status === 401);
  assert.throws(() => createServer({ embedder, host: '0.0.0.0' }), /host 0\.0\.0\.0 is not a loopback address.*apiKey/);
  assert.doesNotThrow(() => createServer({ embedder, host: '::1' }));
  assert.throws(() => createServer({ embedder, queue: EmbedQueue.create(embedder) }), /either a queue, or an embedder/);
  assert.throws(() => createServer({ embedder, prot: 1 }), /Unknown option "prot" in options; did you mean "port"\?/);
});

test('a body over the limit is a 413; a full queue is a 503 with Retry-After while accepted requests succeed', async () => {
  const small = await start({ bodyLimit: 2048 });
  const big = await post(small.url, '/v1/embeddings', { input: 'x'.repeat(4096) });
  assert.equal(big.status, 413);
  assert.equal((await big.json()).error.code, 'body_too_large');
  const { url, server } = await start({ queueOptions: { maxPending: 2 } });
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => post(url, '/v1/embeddings', { input: [`burst ${i}`] })));
  const statuses = answers.map((a) => a.status);
  assert.ok(statuses.includes(503) && statuses.includes(200), statuses.join(','));
  assert.ok(statuses.every((s) => s === 200 || s === 503));
  const refused = answers.find((a) => a.status === 503);
  assert.equal(refused.headers.get('retry-after'), '1');
  assert.equal((await refused.json()).error.code, 'overloaded');
  assert.equal(server.queue.pending, 0);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  assert.match(metrics, new RegExp(`search_r3_http_requests_total\\{route="/v1/embeddings",status="503"\\} ${statuses.filter((s) => s === 503).length}\\n`));
  assert.match(metrics, /search_r3_http_request_duration_seconds_bucket\{route="\/v1\/embeddings",le="\+Inf"\} 12\n/);
  assert.match(metrics, /search_r3_queue_texts\{state="pending"\} 0\n/);
  assert.match(metrics, /search_r3_tokens_total\{kind="prompt"\} [1-9]\d*\n/);
});

test('a client that disconnects takes its texts out of the queue; a request past the timeout is a 504', async () => {
  const { url, server } = await start({ timeoutMs: 30_000 });
  // A long reasoning request holds the embedder while a second one waits behind it.
  const slow = post(url, '/v1/embeddings', { input: ['think a while'], mode: 'reason', max_reasoning_tokens: 400 });
  const gone = new AbortController();
  const waiting = fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: ['a', 'b', 'c'] }), signal: gone.signal });
  while (server.queue.pending < 3) await new Promise((r) => setTimeout(r, 5));
  gone.abort();
  await assert.rejects(waiting);
  while (server.queue.pending > 0) await new Promise((r) => setTimeout(r, 5));
  assert.equal(server.queue.running, 1, 'the waiting texts left while the long request still ran');
  assert.equal((await slow).status, 200);
  const timed = await start({ timeoutMs: 20 });
  const late = await post(timed.url, '/v1/embeddings', { input: ['think a while'], mode: 'reason', max_reasoning_tokens: 400 });
  assert.equal(late.status, 504);
  assert.equal((await late.json()).error.code, 'timeout');
});

test('over a DocumentIndex: /retrieve and /search equal the index\'s own retrievers, and share the embedder with /v1/embeddings', async () => {
  const dir = join(mkdtempSync(join(tempDir(), 'serve-index-')), 'idx');
  const built = await DocumentIndex.build(dir, corpus, { embedder });
  const queue = EmbedQueue.create(embedder);
  // The served index embeds its queries through the queue, as search-r3 serve DIR opens it.
  const served = await DocumentIndex.open(dir, { embedder: queue.asEmbedder() });
  const { url } = await start({ queue, retriever: served.retriever(), hybrid: served.retriever({ hybrid: true }) });
  const queries = ['water to the sea', 'hard stone', 'red leaves'];
  const dense = await built.retriever().retrieve(queries, { topk: 3 });
  const hybrid = await built.retriever({ hybrid: true }).retrieve(queries, { topk: 3 });
  const [retrieved, searched, embedded] = await Promise.all([
    post(url, '/retrieve', { queries, topk: 3, return_scores: true }).then((r) => r.json()),
    post(url, '/search', { queries, topk: 3, hybrid: true }).then((r) => r.json()),
    post(url, '/v1/embeddings', { input: queries }).then((r) => r.json()),
  ]);
  retrieved.result.forEach((list, q) => {
    assert.deepEqual(list.map((x) => x.document), dense[q].docs.map((d) => ({ id: d.id, contents: d.contents })), `query ${q}`);
    list.forEach((x, i) => assert.ok(Math.abs(x.score - dense[q].docs[i].score) <= 1e-4));
  });
  searched.results.forEach((r, q) => {
    assert.deepEqual(r.docs.map((d) => d.id), hybrid[q].docs.map((d) => d.id), `hybrid query ${q}`);
    assert.deepEqual(Object.keys(r.docs[0].scores ?? {}).sort(), Object.keys(hybrid[q].docs[0].scores ?? {}).sort());
  });
  assert.equal(embedded.data.length, 3, 'the concurrent embeddings request was served too (no ERR_BUSY)');
});

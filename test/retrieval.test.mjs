// Library retrievers: BM25, dense (direct and reason), hybrid (reciprocal rank fusion checked by
// hand) and the Search-R1 /retrieve client against a local node:http server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { lib, tinyModel, track } from './helpers/models.mjs';

const { Model, Embedder, VectorStore, Bm25Index, Bm25Retriever, DenseRetriever, HybridRetriever, HttpRetriever, fuseRankings, RRF_K, SearchR3Error } = lib;

const corpus = new Map([
  ['d1', 'The moon pulls the oceans and makes the tides rise and fall'],
  ['d2', 'Volcanoes erupt when magma reaches the surface of the earth'],
  ['d3', 'Tides are highest at new moon and full moon, the spring tides'],
  ['d4', 'A recipe for bread: flour, water, salt and yeast'],
  ['d5', 'Earthquakes and volcanoes happen along tectonic plate boundaries'],
]);

function bm25Index() {
  const index = new Bm25Index();
  for (const [id, text] of corpus) index.add(id, text);
  return index;
}

async function denseSetup() {
  const model = track(await Model.load(await tinyModel()));
  const embedder = track(await Embedder.create(model, { sequences: 4, threads: 1, maxReasoningTokens: 8 }));
  const ids = [...corpus.keys()];
  const docs = await embedder.embedDocuments([...corpus.values()]);
  const store = new VectorStore({ dim: model.info.nEmbd });
  docs.forEach((d, i) => store.add(ids[i], d.vector, 0));
  return { embedder, store };
}

test('Bm25Retriever: the index\'s own ranking with each document\'s text, one list per query', async () => {
  const index = bm25Index();
  const bm25 = new Bm25Retriever({ index, contents: corpus });
  const queries = ['tides moon', 'volcanoes', 'nothing matches zzz'];
  const results = await bm25.retrieve(queries, { topk: 2 });
  assert.equal(results.length, 3);
  queries.forEach((q, i) => {
    assert.deepEqual(results[i].docs, index.search(q, 2).map((h) => ({ id: h.id, contents: corpus.get(h.id), score: h.score })));
  });
  assert.deepEqual(results[0].docs.map((d) => d.id).sort(), ['d1', 'd3']);
  assert.deepEqual(results[2].docs, []);
  assert.equal(bm25.name, 'bm25');
  // A function works as the contents lookup too; a missing text is named.
  const partial = new Bm25Retriever({ index, contents: (id) => (id === 'd1' ? corpus.get(id) : undefined) });
  await assert.rejects(partial.retrieve(['volcanoes'], { topk: 1 }), (e) => e instanceof SearchR3Error && e.code === 'ERR_STORE' && /document "d[25]" is indexed but has no stored text/.test(e.message));
});

test('retrievers reject misuse with one message naming the argument', async () => {
  const bm25 = new Bm25Retriever({ index: bm25Index(), contents: corpus });
  await assert.rejects(bm25.retrieve(['q'], { topk: 0 }), { name: 'RangeError', message: /for topk but received 0/ });
  await assert.rejects(bm25.retrieve(['q'], { topk: 1.5 }), { name: 'TypeError', message: /positive integer for topk/ });
  await assert.rejects(bm25.retrieve('q', { topk: 1 }), { name: 'TypeError', message: /array of strings for queries/ });
  await assert.rejects(bm25.retrieve([3], { topk: 1 }), { name: 'TypeError', message: /string for queries\[0\]/ });
  await assert.rejects(bm25.retrieve(['q'], { topk: 1, mode: 'think' }), { name: 'TypeError', message: /for mode but received "think"/ });
  await assert.rejects(bm25.retrieve(['q'], { topk: 1, topK: 2 }), { name: 'TypeError', message: /Unknown option "topK".*did you mean "topk"/ });
  await assert.rejects(bm25.retrieve(['q'], { topk: 1, signal: AbortSignal.abort() }), (e) => e.code === 'ERR_ABORTED');
  assert.throws(() => new HybridRetriever({ bm25 }), { name: 'TypeError', message: /TextRetriever for dense/ });
  assert.throws(() => new HttpRetriever({ url: 'ftp://x/retrieve' }), { name: 'TypeError', message: /http\(s\) URL for url/ });
  assert.deepEqual(await bm25.retrieve([], { topk: 3 }), []);
});

test('fuseRankings: reciprocal rank fusion with k = 60, checked by hand', () => {
  const doc = (id, score) => ({ id, contents: id.toUpperCase(), score });
  const bm25 = [doc('a', 9), doc('b', 7), doc('c', 5)];
  const dense = [doc('c', 0.9), doc('a', 0.8), doc('d', 0.7)];
  const fused = fuseRankings(bm25, dense, 10);
  assert.equal(RRF_K, 60);
  // a: 1/61 + 1/62 = 0.0325224; c: 1/63 + 1/61 = 0.0322662; b: 1/62; d: 1/63.
  assert.deepEqual(fused.map((d) => d.id), ['a', 'c', 'b', 'd']);
  assert.equal(fused[0].score, 1 / 61 + 1 / 62);
  assert.equal(fused[1].score, 1 / 63 + 1 / 61);
  assert.equal(fused[2].score, 1 / 62);
  assert.equal(fused[3].score, 1 / 63);
  assert.deepEqual(fused[0].scores, { bm25: 9, dense: 0.8 });
  assert.deepEqual(fused[2].scores, { bm25: 7 });
  assert.deepEqual(fused[3].scores, { dense: 0.7 });
  assert.equal(fused[1].contents, 'C');
  // Equal fused scores fall back to the id; topk cuts; another k changes the sums.
  assert.deepEqual(fuseRankings([doc('z', 1)], [doc('y', 1)], 1).map((d) => d.id), ['y']);
  assert.equal(fuseRankings(bm25, dense, 1, 0)[0].score, 1 / 1 + 1 / 2);
});

test('HybridRetriever fuses the two retrievers\' own rankings at depth 100 and passes the reasoning on', async () => {
  const scripted = (name, docs, extra = {}) => {
    const calls = [];
    return {
      name, calls,
      async retrieve(queries, options) {
        calls.push({ queries, options });
        return queries.map(() => ({ docs, ...extra }));
      },
    };
  };
  const bm25 = scripted('bm25', [{ id: 'a', contents: 'A', score: 3 }, { id: 'b', contents: 'B', score: 2 }]);
  const dense = scripted('dense', [{ id: 'b', contents: 'B', score: 0.5 }, { id: 'c', contents: 'C', score: 0.4 }], { reasoning: 'think', reasoningTokens: 5, finish: 'embed' });
  const hybrid = new HybridRetriever({ bm25, dense });
  const [r] = await hybrid.retrieve(['q'], { topk: 2, mode: 'reason' });
  assert.equal(bm25.calls[0].options.topk, 100);
  assert.equal(dense.calls[0].options.topk, 100);
  assert.equal(dense.calls[0].options.mode, 'reason');
  assert.deepEqual(r.docs, [
    { id: 'b', contents: 'B', score: 1 / 62 + 1 / 61, scores: { bm25: 2, dense: 0.5 } },
    { id: 'a', contents: 'A', score: 1 / 61, scores: { bm25: 3 } },
  ]);
  assert.equal(r.reasoning, 'think');
  assert.equal(r.reasoningTokens, 5);
  assert.equal(hybrid.name, 'hybrid');
});

test('DenseRetriever: cosine top-k of the embedded queries; reason mode returns the reasoning; hybrid over real parts', async () => {
  const { embedder, store } = await denseSetup();
  const dense = new DenseRetriever({ embedder, store, contents: corpus });
  const queries = ['tides and the moon', 'volcano eruption'];
  const results = await dense.retrieve(queries, { topk: 3 });
  const vectors = await embedder.embed(queries, { mode: 'direct' });
  for (const [i, r] of results.entries()) {
    const expected = await store.search(vectors[i].vector, 3);
    assert.deepEqual(r.docs, expected.map((h) => ({ id: h.id, contents: corpus.get(h.id), score: h.score })));
    assert.equal(r.reasoning, undefined);
    assert.equal(r.finish, 'direct');
    assert.equal(r.reasoningTokens, 0);
  }
  const [reasoned] = await dense.retrieve(['tides and the moon'], { topk: 2, mode: 'reason' });
  const [alone] = await embedder.embed(['tides and the moon'], { mode: 'reason' });
  assert.equal(typeof reasoned.reasoning, 'string');
  assert.equal(reasoned.reasoning, alone.reasoning);
  assert.ok(reasoned.reasoningTokens > 0);
  assert.deepEqual(reasoned.docs.map((d) => d.id), (await store.search(alone.vector, 2)).map((h) => h.id));

  // Concurrent calls queue on the one embedder instead of failing with ERR_BUSY.
  const concurrent = await Promise.all(queries.map((q) => dense.retrieve([q], { topk: 3 })));
  assert.deepEqual(concurrent.map(([r]) => r.docs.map((d) => d.id)), results.map((r) => r.docs.map((d) => d.id)));

  const bm25 = new Bm25Retriever({ index: bm25Index(), contents: corpus });
  const hybrid = new HybridRetriever({ bm25, dense });
  const [h] = await hybrid.retrieve(['tides and the moon'], { topk: 4 });
  const [l] = await bm25.retrieve(['tides and the moon'], { topk: 100 });
  const [d] = await dense.retrieve(['tides and the moon'], { topk: 100 });
  assert.deepEqual(h.docs, fuseRankings(l.docs, d.docs, 4));
  assert.ok(h.docs.some((x) => x.scores.bm25 !== undefined && x.scores.dense !== undefined));
});

/** A local Search-R1 style /retrieve server whose answer the test scripts. */
async function retrieveServer(answer) {
  const requests = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const parsed = JSON.parse(body);
      requests.push({ method: req.method, url: req.url, type: req.headers['content-type'], auth: req.headers.authorization, body: parsed });
      answer(parsed, res);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/retrieve`;
  return { url, requests, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }) };
}

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

test('HttpRetriever speaks Search-R1\'s /retrieve: one POST for the batch, documents and scores back', async () => {
  const srv = await retrieveServer((body, res) => json(res, 200, {
    result: body.queries.map((q, i) => [
      { document: { id: `doc-${i}`, contents: `"Title ${q}"\ntext` }, score: 2.5 },
      { document: { id: 7, contents: 'numeric id' }, score: 1 },
    ].slice(0, body.topk)),
  }));
  try {
    const remote = new HttpRetriever({ url: srv.url, headers: { authorization: 'Bearer k' } });
    assert.equal(remote.name, srv.url);
    let progress = null;
    const results = await remote.retrieve(['first', 'second'], { topk: 2, onProgress: (done, total) => { progress = [done, total]; } });
    assert.deepEqual(srv.requests, [{ method: 'POST', url: '/retrieve', type: 'application/json', auth: 'Bearer k', body: { queries: ['first', 'second'], topk: 2, return_scores: true } }]);
    assert.deepEqual(results, [
      { docs: [{ id: 'doc-0', contents: '"Title first"\ntext', score: 2.5 }, { id: '7', contents: 'numeric id', score: 1 }] },
      { docs: [{ id: 'doc-1', contents: '"Title second"\ntext', score: 2.5 }, { id: '7', contents: 'numeric id', score: 1 }] },
    ]);
    assert.deepEqual(progress, [2, 2]);
    assert.deepEqual(await remote.retrieve([], { topk: 2 }), []);
    assert.equal(srv.requests.length, 1, 'an empty batch sends nothing');
  } finally {
    await srv.close();
  }
});

test('HttpRetriever: bad answers, HTTP errors, timeouts, refused connections and aborts are clear ERR_REMOTE/ERR_ABORTED errors', async () => {
  let reply;
  const srv = await retrieveServer((body, res) => reply(body, res));
  const remote = new HttpRetriever({ url: srv.url, timeoutMs: 10_000 });
  // A server that never answers meets a short timeout (the others a generous one: a loaded machine is slow).
  const impatient = new HttpRetriever({ url: srv.url, timeoutMs: 300 });
  const remoteError = (pattern) => (e) => e instanceof SearchR3Error && e.code === 'ERR_REMOTE' && e.message.startsWith(`retriever ${srv.url}: `) && pattern.test(e.message);
  const doc = { document: { id: 'a', contents: 'A' }, score: 1 };
  const cases = [
    [(b, res) => json(res, 200, 'not json <html>'), /a body that is not JSON: "not json <html>"/],
    [(b, res) => json(res, 200, { results: [] }), /without a "result" array/],
    [(b, res) => json(res, 200, { result: [[doc]] }), /answered 1 result lists for 2 queries/],
    [(b, res) => json(res, 200, { result: [[doc], 'x'] }), /result\[1\] is not a list of documents/],
    [(b, res) => json(res, 200, { result: [[doc], [doc, doc, doc]] }), /result\[1\] holds 3 documents, more than the topk 2/],
    [(b, res) => json(res, 200, { result: [[doc], [{ document: { id: 'b' }, score: 1 }]] }), /result\[1\]\[0\]\.document\.contents is not a string/],
    [(b, res) => json(res, 200, { result: [[doc], [{ document: { id: '', contents: '' }, score: 1 }]] }), /result\[1\]\[0\]\.document\.id is not a non-empty string/],
    [(b, res) => json(res, 200, { result: [[doc], [{ document: { id: 'b', contents: 'B' } }]] }), /result\[1\]\[0\]\.score is not a finite number/],
    [(b, res) => json(res, 200, { result: [[doc], [{ id: 'b', contents: 'B' }]] }), /result\[1\]\[0\] has no "document" object/],
    [(b, res) => json(res, 500, { detail: 'index not loaded' }), /answered HTTP 500 Internal Server Error: "\{\\"detail\\":\\"index not loaded\\"\}"/],
  ];
  try {
    for (const [answer, pattern] of cases) {
      reply = answer;
      await assert.rejects(remote.retrieve(['x', 'y'], { topk: 2 }), remoteError(pattern), String(pattern));
    }
    reply = () => { /* never answers */ };
    await assert.rejects(impatient.retrieve(['x', 'y'], { topk: 2 }), remoteError(/no complete answer within 300 ms/));
    const controller = new AbortController();
    const pending = remote.retrieve(['x'], { topk: 1, signal: controller.signal });
    setImmediate(() => controller.abort());
    await assert.rejects(pending, (e) => e instanceof SearchR3Error && e.code === 'ERR_ABORTED');
  } finally {
    await srv.close();
  }
  // Nothing listens there any more.
  await assert.rejects(remote.retrieve(['x'], { topk: 1 }), remoteError(/request failed \(ECONNREFUSED\)/));
});

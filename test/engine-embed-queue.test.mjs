// EmbedQueue: concurrent callers share batches of one Embedder, results equal sequential calls,
// the queue is bounded, and a caller's signal cancels its own texts only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib, maxAbsDiff, tinyModel, track } from './helpers/models.mjs';

const { Model, Embedder, EmbedQueue } = lib;

const words = ['river', 'stone', 'quiet', 'lamp', 'orbit', 'maple', 'copper', 'winter'];
const textOf = (i) => `${words[i % 8]} ${words[(i * 3) % 8]} question ${i}`;

/** Counts the embedder calls the queue makes (and the texts in each). */
function countCalls(embedder) {
  const calls = [];
  for (const name of ['embed', 'embedDocuments']) {
    const orig = embedder[name].bind(embedder);
    embedder[name] = (texts, o) => {
      calls.push(texts.length);
      return orig(texts, o);
    };
  }
  return calls;
}

/** Resolves once `cond()` holds (the queue forms a batch one event-loop turn after callers arrive). */
async function until(cond) {
  while (!cond()) await new Promise((r) => setTimeout(r, 1));
}

async function setup(options = {}) {
  const model = track(await Model.load(await tinyModel()));
  const embedder = track(await Embedder.create(model, { sequences: 4, threads: 1, ...options }));
  return { model, embedder };
}

test('EmbedQueue: 64 concurrent callers get the vectors of sequential calls, in shared batches', async () => {
  const { embedder } = await setup();
  const texts = Array.from({ length: 64 }, (_, i) => textOf(i));
  const sequential = [];
  for (const t of texts) sequential.push((await embedder.embed([t]))[0]);
  const calls = countCalls(embedder);
  const queue = EmbedQueue.create(embedder);
  const results = await Promise.all(texts.map((t) => queue.embed([t])));
  for (const [i, r] of results.entries()) {
    assert.equal(r.length, 1);
    // 1e-4: the engine's own bound for batched against one-by-one decoding (engine-embedder.test.mjs);
    // a different batch composition changes the matmul accumulation order, never the result beyond it.
    assert.ok(maxAbsDiff(r[0].vector, sequential[i].vector) <= 1e-4, `caller ${i}: ${maxAbsDiff(r[0].vector, sequential[i].vector)}`);
    assert.equal(r[0].promptTokens, sequential[i].promptTokens);
  }
  // Callers arriving together share batches of maxBatch (4 sequences × 4 = 16).
  assert.deepEqual(calls, [16, 16, 16, 16]);
  assert.equal(queue.pending, 0);
});

test('EmbedQueue: sides, modes and budgets are batched apart and equal the embedder\'s own calls', async () => {
  const { embedder } = await setup();
  const q = await embedder.embed(['alpha query']);
  const d = await embedder.embedDocuments(['alpha passage', 'beta passage']);
  const r = await embedder.embed(['gamma'], { mode: 'reason', maxReasoningTokens: 3 });
  const calls = countCalls(embedder);
  const queue = EmbedQueue.create(embedder);
  const [q2, d2, r2] = await Promise.all([
    queue.embed(['alpha query']),
    queue.embed(['alpha passage', 'beta passage'], { side: 'document' }),
    queue.embed(['gamma'], { mode: 'reason', maxReasoningTokens: 3 }),
  ]);
  assert.ok(maxAbsDiff(q2[0].vector, q[0].vector) <= 1e-5);
  assert.ok(maxAbsDiff(d2[1].vector, d[1].vector) <= 1e-5);
  assert.equal(r2[0].reasoning, r[0].reasoning);
  assert.ok(r2[0].reasoningTokens <= 3);
  assert.ok(maxAbsDiff(r2[0].vector, r[0].vector) <= 1e-5);
  assert.deepEqual(calls, [1, 2, 1]);
  assert.throws(() => queue.embed(['x'], { side: 'document', mode: 'reason' }), /query side only/);
  assert.throws(() => queue.embed(['x'], { side: 'passage' }), /Expected one of "query", "document" for side/);
  assert.throws(() => queue.embed([1]), /Expected string for texts\[0\]/);
});

test('EmbedQueue: a full queue rejects with ERR_OVERLOADED and the accepted callers still succeed', async () => {
  const { embedder } = await setup();
  const queue = EmbedQueue.create(embedder, { maxPending: 3 });
  const first = queue.embed(['runs at once']);
  await until(() => queue.running === 1); // taken into a batch: no longer waiting
  const waiting = [queue.embed(['a', 'b']), queue.embed(['c'])];
  assert.equal(queue.pending, 3);
  await assert.rejects(queue.embed(['one too many']), (e) => e.code === 'ERR_OVERLOADED' && /3 of 3 texts waiting/.test(e.message));
  const done = await Promise.all([first, ...waiting]);
  assert.deepEqual(done.map((r) => r.length), [1, 2, 1]);
});

test('EmbedQueue: an aborted caller is released and the other callers of its batch are not', async () => {
  const { embedder } = await setup();
  const [alone] = await embedder.embed(['keep me']);
  const queue = EmbedQueue.create(embedder);
  const running = new AbortController();
  const waiting = new AbortController();
  const first = queue.embed(['cancel me while running'], { signal: running.signal });
  await until(() => queue.running === 1);
  const second = queue.embed(['cancel me while waiting'], { signal: waiting.signal });
  const kept = queue.embed(['keep me']);
  assert.equal(queue.pending, 2);
  waiting.abort();
  assert.equal(queue.pending, 1, 'the waiting texts left the queue');
  running.abort();
  await assert.rejects(first, { code: 'ERR_ABORTED' });
  await assert.rejects(second, { code: 'ERR_ABORTED' });
  const [k] = await kept;
  assert.ok(maxAbsDiff(k.vector, alone.vector) <= 1e-4);
  await assert.rejects(queue.embed(['x'], { signal: AbortSignal.abort() }), { code: 'ERR_ABORTED' });
});

test('EmbedQueue: one caller\'s failing text fails that caller alone', async () => {
  const { embedder } = await setup({ longText: 'error', contextPerSequence: 64 });
  const queue = EmbedQueue.create(embedder);
  const first = queue.embed(['short']);
  const bad = queue.embed([Array.from({ length: 3000 }, (_, i) => words[i % 8]).join(' ')]);
  const good = queue.embed(['also short']);
  await first;
  await assert.rejects(bad, { code: 'ERR_CONTEXT' });
  assert.equal((await good).length, 1);
});

test('EmbedQueue: close() lets accepted callers finish and refuses new ones', async () => {
  const { embedder } = await setup();
  const queue = EmbedQueue.create(embedder);
  const accepted = [queue.embed(['one']), queue.embed(['two'])];
  const closed = queue.close();
  await assert.rejects(queue.embed(['late']), { code: 'ERR_DISPOSED' });
  await closed;
  assert.deepEqual((await Promise.all(accepted)).map((r) => r.length), [1, 1]);
  assert.throws(() => EmbedQueue.create(embedder, { maxPending: 0 }), /Expected integer between 1 and 16777216 for maxPending/);
});

test('EmbedQueue: concurrent DenseRetriever calls over the queue\'s view share one batch; over the bare embedder they take turns', async () => {
  const { DenseRetriever, VectorStore } = lib;
  const { embedder } = await setup();
  const docs = Array.from({ length: 12 }, (_, i) => ({ id: `d${i}`, text: `${textOf(i + 40)} passage` }));
  const store = new VectorStore({ dim: embedder.model.info.nEmbd });
  (await embedder.embedDocuments(docs.map((d) => d.text))).forEach((r, i) => store.add(docs[i].id, r.vector, 0));
  const contents = new Map(docs.map((d) => [d.id, d.text]));
  const queries = Array.from({ length: 8 }, (_, i) => textOf(i));
  const calls = countCalls(embedder);
  const alone = new DenseRetriever({ embedder, store, contents });
  assert.equal(embedder.acceptsConcurrentCalls, false);
  const turns = await Promise.all(queries.map((q) => alone.retrieve([q], { topk: 3 })));
  assert.deepEqual(calls.splice(0), [1, 1, 1, 1, 1, 1, 1, 1], 'a bare embedder: one call per retrieve, in turn (never ERR_BUSY)');
  const view = EmbedQueue.create(embedder).asEmbedder();
  assert.equal(view.acceptsConcurrentCalls, true);
  const viaQueue = new DenseRetriever({ embedder: view, store, contents });
  const shared = await Promise.all(queries.map((q) => viaQueue.retrieve([q], { topk: 3 })));
  assert.deepEqual(calls, [8], 'through the queue: the eight calls\' queries in one embedder batch');
  shared.forEach(([r], i) => {
    assert.deepEqual(r.docs.map((d) => d.id), turns[i][0].docs.map((d) => d.id), `query ${i}`);
    r.docs.forEach((d, j) => assert.ok(Math.abs(d.score - turns[i][0].docs[j].score) <= 1e-4));
  });
});

test('EmbedQueue: callers who come back a moment after their results keep sharing one batch (maxBatchDelayMs)', async () => {
  const { embedder } = await setup({ sequences: 8, mode: 'reason', maxReasoningTokens: 16 });
  const calls = countCalls(embedder);
  // 8 closed-loop callers, 6 texts each, sending their next text as HTTP clients do: caller 0 at
  // once, the others 2 ms after their results land. 50 ms is capped at a tenth of a batch's time.
  const loop = async (queue) => {
    await Promise.all(Array.from({ length: 8 }, async (_, c) => {
      for (let n = 0; n < 6; n++) {
        await queue.embed([textOf(c * 6 + n)]);
        if (c > 0) await new Promise((r) => setTimeout(r, 2));
      }
    }));
    return calls.splice(0);
  };
  const windowed = await loop(EmbedQueue.create(embedder, { maxBatchDelayMs: 50 }));
  assert.deepEqual(windowed, [8, 8, 8, 8, 8, 8], 'every batch holds all 8 callers');
  // Without the window caller 0 goes alone while the other 7 are on their way.
  const bare = await loop(EmbedQueue.create(embedder, { maxBatchDelayMs: 0 }));
  assert.equal(bare.reduce((a, b) => a + b, 0), 48);
  assert.ok(bare.includes(1) && bare.length > 6, `without the window batches split: ${JSON.stringify(bare)}`);
  assert.throws(() => EmbedQueue.create(embedder, { maxBatchDelayMs: -1 }), /maxBatchDelayMs/);
});

// Session: batched decode, sampling, log-probs, prefix sharing, hidden-state capture, LoRA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lib, maxAbsDiff, tempDir, tinyModel, writeRandomLora } from './helpers/models.mjs';
import { track } from './helpers/models.mjs';

const { Model } = lib;

function logSoftmax(row, token) {
  let mx = -Infinity;
  for (const x of row) mx = Math.max(mx, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - mx);
  return row[token] - mx - Math.log(s);
}

test('log-probs are the log-softmax of the raw logits and form a distribution', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ threads: 1 }));
  const prompt = model.tokenize('The quick brown fox');
  const [g] = await session.generate(prompt, { maxTokens: 4, logprobs: true, temperature: 0.9, seed: 3 });
  assert.equal(g.logprobs.length, 4);
  // Recompute from a full forward pass over prompt + generated tokens.
  const all = Int32Array.from([...prompt, ...g.tokens]);
  const { logits } = await session.evaluate(all, { logits: true });
  const nVocab = model.info.nVocab;
  for (let i = 0; i < g.tokens.length; i++) {
    const row = logits.subarray((prompt.length - 1 + i) * nVocab, (prompt.length + i) * nVocab);
    let total = 0;
    let mx = -Infinity;
    for (const x of row) mx = Math.max(mx, x);
    for (const x of row) total += Math.exp(x - mx);
    const probSum = row.reduce((acc, x) => acc + Math.exp(x - mx) / total, 0);
    assert.ok(Math.abs(probSum - 1) < 1e-6);
    assert.ok(g.logprobs[i] <= 0);
    assert.ok(Math.abs(g.logprobs[i] - logSoftmax(row, g.tokens[i])) < 1e-4, `token ${i}`);
  }
});

test('batched generation equals sequential generation', async () => {
  const model = track(await Model.load(await tinyModel()));
  const prompts = ['alpha beta', 'the cat sat on the mat', 'x', 'four score and seven years ago'];
  const batched = track(await model.createSession({ sequences: 4, threads: 1 }));
  const together = await batched.generate(prompts, { maxTokens: 6, logprobs: true });
  const single = track(await model.createSession({ threads: 1 }));
  for (const [i, p] of prompts.entries()) {
    const [alone] = await single.generate(p, { maxTokens: 6, logprobs: true });
    assert.equal(together[i].prompt, i);
    assert.deepEqual(together[i].tokens, alone.tokens);
    assert.ok(maxAbsDiff(together[i].logprobs, alone.logprobs) < 1e-4);
  }
});

test('copies share one decoded prompt (prefix sharing) and sample independently', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ sequences: 4, threads: 1 }));
  const prompt = model.tokenize('Sharing a prompt between four samples');
  const { results, stats } = await session.run([{ prompt, copies: 4, maxTokens: 5, temperature: 1.5, seed: 11 }]);
  assert.equal(results.length, 4);
  assert.deepEqual(results.map((r) => r.copy), [0, 1, 2, 3]);
  assert.equal(stats.promptTokens, prompt.length, 'the prompt is decoded once, not once per copy');
  const distinct = new Set(results.map((r) => Array.from(r.tokens).join(',')));
  assert.ok(distinct.size > 1, 'different seeds give different samples');
  // Copy 2 equals a lone run with seed + 2.
  const { results: [lone] } = await session.run([{ prompt, maxTokens: 5, temperature: 1.5, seed: 13 }]);
  assert.deepEqual(results[2].tokens, lone.tokens);
});

test('more requests than sequences are scheduled as slots free up', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ sequences: 2, threads: 1 }));
  const prompts = Array.from({ length: 5 }, (_, i) => `prompt number ${i}`);
  const out = await session.generate(prompts, { maxTokens: 3 });
  assert.deepEqual(out.map((g) => g.prompt), [0, 1, 2, 3, 4]);
  const single = track(await model.createSession({ threads: 1 }));
  const [third] = await single.generate(prompts[3], { maxTokens: 3 });
  assert.deepEqual(out[3].tokens, third.tokens);
});

test('stop strings cut the text and end generation', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ threads: 1 }));
  const [free] = await session.generate('abc', { maxTokens: 10 });
  const cut = free.text.slice(2, 4);
  const [stopped] = await session.generate('abc', { maxTokens: 10, stop: [cut] });
  assert.equal(stopped.finish, 'stop');
  assert.equal(stopped.text, free.text.slice(0, free.text.indexOf(cut)));
});

test('hidden state captured at the embed token equals a full-prompt forward pass', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ threads: 1 }));
  const embed = model.info.embedTokenId;
  const prompt = Int32Array.from([...model.tokenize('some query text'), embed]);
  const { results: [r] } = await session.run([{ prompt, maxTokens: 0, embedPromptLast: true }]);
  const { embeddings } = await session.evaluate(prompt);
  const n = model.info.nEmbd;
  const last = embeddings.subarray((prompt.length - 1) * n, prompt.length * n);
  assert.equal(r.embedding.length, n);
  assert.ok(maxAbsDiff(r.embedding, last) < 1e-5);
});

test('a sampled or forced embed token is captured at its own position', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ threads: 1 }));
  const embed = model.info.embedTokenId;
  const prompt = model.tokenize('reason about this');
  const { results: [r] } = await session.run([{ prompt, maxTokens: 5, embedToken: embed, embedOnStop: true }]);
  assert.equal(r.embedForced, true);
  assert.equal(r.finish, 'length');
  // The five reasoning tokens are decoded, then the embed token after them.
  const seq = Int32Array.from([...prompt, ...r.tokens, embed]);
  const { embeddings } = await session.evaluate(seq);
  const n = model.info.nEmbd;
  assert.ok(maxAbsDiff(r.embedding, embeddings.subarray((seq.length - 1) * n)) < 1e-4);
});

test('LoRA adapters attach, change outputs, re-scale and detach', async () => {
  const path = await tinyModel();
  const loraPath = await writeRandomLora(path, join(tempDir(), 'rand.lora.gguf'), { scale: 0.2 });
  const model = track(await Model.load(path));
  const adapter = await model.loadLora(loraPath);
  assert.equal(adapter.metadata['adapter.type'], 'lora');
  const session = track(await model.createSession({ threads: 1 }));
  const tokens = model.tokenize('adapters change outputs');
  const base = (await session.evaluate(tokens)).embeddings;
  session.setLoras([{ adapter, scale: 1 }]);
  const withLora = (await session.evaluate(tokens)).embeddings;
  assert.ok(maxAbsDiff(base, withLora) > 1e-3, 'the adapter changes the hidden states');
  session.setLoras([{ adapter, scale: 0.5 }]);
  const half = (await session.evaluate(tokens)).embeddings;
  assert.ok(maxAbsDiff(half, withLora) > 1e-4 && maxAbsDiff(half, base) > 1e-4);
  session.setLoras([]);
  const again = (await session.evaluate(tokens)).embeddings;
  assert.ok(maxAbsDiff(base, again) < 1e-6, 'detaching restores the base model');
  adapter.dispose();
  assert.throws(() => adapter.metadata, { code: 'ERR_DISPOSED' });
});

test('a one-token prompt and prompts longer than a batch capture the same hidden state as a forward pass', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ sequences: 2, threads: 1, batchSize: 16 }));
  const embed = model.info.embedTokenId;
  const long = Int32Array.from([...model.tokenize('a prompt that is longer than one sixteen-token batch of the session, so it is chunked'), embed]);
  const { results } = await session.run([{ prompt: Int32Array.of(embed), embedPromptLast: true }, { prompt: long, embedPromptLast: true }]);
  const n = model.info.nEmbd;
  for (const [i, prompt] of [Int32Array.of(embed), long].entries()) {
    const { embeddings } = await session.evaluate(prompt);
    assert.ok(maxAbsDiff(results[i].embedding, embeddings.subarray((prompt.length - 1) * n)) < 1e-4, `prompt ${i}`);
  }
});

test('groups that reuse a finished leader slot do not disturb copies still generating (GRPO pattern)', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ sequences: 3, threads: 1 }));
  const p1 = model.tokenize('first group prompt');
  const p2 = model.tokenize('second group prompt, a little longer');
  // Copy 0 of p1 stops at once (maxTokens differs per request only, so give p1 a stop token that
  // its greedy copy 0 samples first); copies sample with a temperature so they differ.
  const { results: [probe] } = await session.run([{ prompt: p1, maxTokens: 1, temperature: 1, seed: 5 }]);
  const reqs = [
    { prompt: p1, copies: 2, maxTokens: 6, temperature: 1, seed: 5, stopTokens: Int32Array.of(probe.tokens[0]), logprobs: true },
    { prompt: p2, copies: 2, maxTokens: 6, temperature: 1, seed: 9, logprobs: true },
  ];
  const { results } = await session.run(reqs);
  assert.deepEqual(results.map((r) => [r.request, r.copy]), [[0, 0], [0, 1], [1, 0], [1, 1]]);
  assert.equal(results[0].tokens.length, 1, 'copy 0 of the first group stops on its first token');
  // Every sequence equals the same request run alone with the copy's seed.
  const solo = track(await model.createSession({ threads: 1 }));
  for (const r of results) {
    const req = reqs[r.request];
    const { results: [alone] } = await solo.run([{ ...req, copies: 1, seed: req.seed + r.copy }]);
    assert.deepEqual(r.tokens, alone.tokens, `request ${r.request} copy ${r.copy}`);
    assert.ok(maxAbsDiff(r.logprobs, alone.logprobs) < 1e-4);
  }
});

test('copies of a prompt-only request all get the captured hidden state', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ sequences: 2, threads: 1 }));
  const prompt = Int32Array.from([...model.tokenize('shared'), model.info.embedTokenId]);
  const { results } = await session.run([{ prompt, copies: 2, maxTokens: 0, embedPromptLast: true }]);
  assert.equal(results.length, 2);
  assert.ok(results[1].embedding instanceof Float32Array);
  assert.deepEqual(results[1].embedding, results[0].embedding);
});

test('a context too small for two tokens per sequence, and a vocab-only model, cannot make sessions', async () => {
  const model = track(await Model.load(await tinyModel()));
  await assert.rejects(model.createSession({ sequences: 32, contextSize: 16 }), { code: 'ERR_CONTEXT', message: /contextSize 16 is too small for 32 sequences; use at least 64/ });
  const vocab = track(await Model.load(await tinyModel(), { vocabOnly: true }));
  await assert.rejects(vocab.createSession(), { code: 'ERR_MODEL', message: /vocabOnly/ });
});

test('sessions compute on their own thread pools: separate prompt and generation pools agree, disposal frees them', async () => {
  const model = track(await Model.load(await tinyModel()));
  const prompt = 'four score and seven years ago our fathers';
  const one = track(await model.createSession({ threads: 1 }));
  const [ref] = await one.generate(prompt, { maxTokens: 8, logprobs: true });
  // threads != threadsBatch: prompt chunks run on a 2-thread pool, single tokens on a 1-thread pool.
  const split = track(await model.createSession({ threads: 1, threadsBatch: 2 }));
  assert.equal(split.info.threads, 1);
  assert.equal(split.info.threadsBatch, 2);
  for (let round = 0; round < 2; round++) {
    const [g] = await split.generate(prompt, { maxTokens: 8, logprobs: true });
    assert.deepEqual(g.tokens, ref.tokens);
    assert.ok(maxAbsDiff(g.logprobs, ref.logprobs) < 1e-4);
  }
  // Many sessions created and disposed in turn: each one's pools are joined on dispose.
  const threadCount = () => (existsSync('/proc/self/status') ? Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]) : 0);
  const before = threadCount();
  for (let i = 0; i < 20; i++) {
    const s = await model.createSession({ threads: 2, threadsBatch: 1 });
    const [g] = await s.generate(prompt, { maxTokens: 2 });
    assert.deepEqual(g.tokens, ref.tokens.slice(0, 2));
    s.dispose();
  }
  // A leak would add a thread per session (20 here). What may stay is OpenMP's team of each libuv
  // worker that ran a 2-thread graph: one extra thread per worker, and Node has 4 workers by default.
  const workers = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  assert.ok(threadCount() <= before + workers + 2, `threads ${before} -> ${threadCount()} after 20 sessions`);
});

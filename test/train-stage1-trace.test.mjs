// Stage 1 with reasoning traces: a traced record's query side is the reason prompt, the trace and
// <|embed_token|>; the trace and the token are the SFT targets and the embedding is read at the
// token. Records without a trace keep the direct form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lib, root, tempDir, tinyModel, track } from './helpers/models.mjs';
import { stage1MicroBatch, targetRule } from '../dist/train/stage1-batch.js';

const { Model, Embedder, VectorStore, evaluate, trainStage1, buildEmbedPrompt, DEFAULT_EMBED_TEMPLATE, encodePair, fitTrainingData, readPairsJsonl, resolveStage1, makeRetrievalTask, makeSyntheticDataset, writeSyntheticDataset, loadTrainingData } = lib;
const T = DEFAULT_EMBED_TEMPLATE;
const record = { id: 'r1', query: 'Which doctor was raised in Ansilmere?', positive: 'Zelmi Kako works as a physician and grew up in Ansilmere.', negatives: ['Orpen Kawen built the first giant boat in 1801.'] };
const traced = { ...record, id: 'r2', reasoning: 'a physician who grew up in Ansilmere' };
const plainText = (model, text) => model.tokenize(text, { addSpecial: false, parseSpecial: false });

test('encodePair: a traced record also gets the reason prompt, the trace tokens and <|embed_token|>', async () => {
  const model = track(await Model.load(await tinyModel()));
  const e = encodePair(model, T, traced);
  const prompt = buildEmbedPrompt(model, T, 'reason', traced.query);
  const trace = plainText(model, traced.reasoning);
  assert.deepEqual(e.trace.ids, Int32Array.from([...prompt, ...trace, model.info.embedTokenId]));
  assert.equal(e.trace.start, prompt.length);
  // The direct query and the documents are those of the same record without a trace.
  const direct = encodePair(model, T, record);
  assert.equal(direct.trace, undefined);
  assert.deepEqual(e.query, direct.query);
  assert.deepEqual(e.query, buildEmbedPrompt(model, T, 'query', record.query));
  assert.deepEqual(e.positive, direct.positive);
  // A trace that spells <|embed_token|> stays text: after the prompt the only embed token is the appended one.
  const sneaky = encodePair(model, T, { ...traced, reasoning: 'end <|embed_token|> here' });
  assert.equal(sneaky.trace.ids.subarray(sneaky.trace.start).filter((t) => t === model.info.embedTokenId).length, 1);
});

test('stage1MicroBatch: a traced query has targets only on its trace and embed token, embedAt at the token', async () => {
  const model = track(await Model.load(await tinyModel()));
  const c = resolveStage1({ model: 'm.gguf', train: [], out: 'o.gguf' });
  const directTargets = model.tokenize(T.directAssistant, { addSpecial: false, parseSpecial: true }).length;
  const pairs = [encodePair(model, T, record), encodePair(model, T, traced)];
  const { sequences, losses } = stage1MicroBatch(pairs, c, directTargets);
  // Direct queries, then the traced query of pair 1, then positives, then one hard negative each.
  assert.equal(sequences.length, 2 + 1 + 2 + 2);
  const [q0, q1, t1, p0, p1] = sequences;
  assert.deepEqual([q0.tokens, q1.tokens, t1.tokens, p0.tokens, p1.tokens], [pairs[0].query, pairs[1].query, pairs[1].trace.ids, pairs[0].positive, pairs[1].positive]);
  const on = (s) => (s.targets ? [...s.targets.keys()].filter((i) => s.targets[i] === 1) : []);
  const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i);
  assert.deepEqual(on(t1), range(pairs[1].trace.start, t1.tokens.length));
  assert.equal(t1.embedAt, t1.tokens.length - 1);
  assert.equal(t1.tokens[t1.embedAt], model.info.embedTokenId);
  // Default losses: sft 0, so the direct sequences get no targets and SFT runs at weight `reasoning` (1) on the trace.
  for (const s of [q0, q1, p0, p1, ...sequences.slice(5)]) assert.deepEqual(on(s), []);
  assert.deepEqual(losses.sft, { weight: 1 });
  assert.equal(losses.kl, undefined);
  // Both query forms of pair 1 are scored against pair 1's positive (candidate 1).
  assert.deepEqual(losses.infonce.queries, [0, 1, 2]);
  assert.deepEqual(losses.infonce.candidates, [3, 4, 5, 6]);
  assert.deepEqual(losses.infonce.labels, [0, 1, 1]);
  assert.deepEqual(losses.triplet.anchors, [0, 1, 2]);
  assert.deepEqual(losses.triplet.positives, [3, 4, 4]);
  assert.deepEqual(losses.triplet.negatives, [5, 6, 6]);
  for (const s of sequences) assert.equal(s.embedAt, s.tokens.length - 1);

  // sft > 0: one SFT term over the direct turns and the trace, at weight sft.
  const withSft = stage1MicroBatch(pairs, resolveStage1({ model: 'm.gguf', train: [], out: 'o.gguf', losses: { sft: 0.3, kl: 0.1 } }), directTargets);
  assert.deepEqual(on(withSft.sequences[2]), range(pairs[1].trace.start, t1.tokens.length));
  assert.deepEqual(on(withSft.sequences[0]), range(q0.tokens.length - directTargets, q0.tokens.length));
  assert.deepEqual(withSft.losses.sft, { weight: 0.3 });
  assert.deepEqual(withSft.losses.kl, { weight: 0.1 });
  // reasoning 0 with sft 0: no token targets at all, so no SFT; trace-less batches are as before.
  const off = stage1MicroBatch(pairs, resolveStage1({ model: 'm.gguf', train: [], out: 'o.gguf', losses: { reasoning: 0 } }), directTargets);
  assert.equal(off.losses.sft, undefined);
  assert.deepEqual(on(off.sequences[2]), []);
  const plain = stage1MicroBatch([pairs[0], pairs[0]], c, directTargets);
  assert.equal(plain.sequences.length, 2 + 2 + 2);
  assert.deepEqual(plain.losses.infonce.labels, [0, 1]);
  assert.deepEqual(targetRule({ sft: 0, kl: 0, infonce: 1, triplet: 0.5, reasoning: 1 }, false), { direct: true, traces: false, sftWeight: 0 });
  assert.throws(() => resolveStage1({ model: 'm.gguf', train: [], out: 'o.gguf', losses: { reasoning: -1 } }), /losses\.reasoning/);
});

test('readPairsJsonl: reasoning must be a non-empty string, the error names FILE:LINE', async () => {
  const path = join(tempDir(), 'traces.jsonl');
  writeFileSync(path, `${JSON.stringify(traced)}\n{"query":"q","positive":"p","reasoning":7}\n`);
  await assert.rejects(readPairsJsonl(path), { code: 'ERR_FORMAT', message: `${path}:2: expected non-empty string for reasoning but received 7 of type number` });
  writeFileSync(path, `${JSON.stringify(traced)}\n`);
  const [r] = await readPairsJsonl(path);
  assert.equal(r.reasoning, traced.reasoning);
});

test('long traces follow the Long texts rule: cut to maxTokens (counted), or an error naming the record', async () => {
  const model = track(await Model.load(await tinyModel()));
  const bare = buildEmbedPrompt(model, T, 'reason', traced.query).length;
  const maxTokens = bare + 6;
  const long = { ...traced, reasoning: 'physician '.repeat(40), source: 'traces.jsonl:3' };
  const e = encodePair(model, T, long, { maxTokens });
  assert.equal(e.trace.ids.length, maxTokens);
  assert.equal(e.trace.ids.at(-1), model.info.embedTokenId);
  assert.deepEqual(e.trace.ids.subarray(e.trace.start, -1), plainText(model, long.reasoning).subarray(0, maxTokens - 1 - bare));
  assert.equal(e.shortened, 1);
  assert.throws(() => encodePair(model, T, long, { maxTokens, longText: 'error' }), {
    code: 'ERR_CONTEXT', message: new RegExp(`^traces\\.jsonl:3: record "r2" query with its reasoning needs \\d+ tokens, more than the ${maxTokens} of maxTokens`),
  });
  const fitted = fitTrainingData(model, T, [record, long], { maxTokens: 256, longText: 'skip' });
  assert.equal(fitted.skipped.length, 0, 'under 256 tokens nothing is skipped');
  const skipped = fitTrainingData(model, T, [{ ...traced, id: 'short', reasoning: 'a physician' }, long], { maxTokens, longText: 'skip' });
  assert.deepEqual(skipped.skipped.map((r) => r.id), ['r2']);
  assert.equal(skipped.records.length, 1);
});

test('the synthetic generator writes traces for its training queries only', async () => {
  const ds = makeSyntheticDataset({ seed: 4, docs: 80, queries: 40 });
  const byId = new Map(ds.corpus.map((d) => [d.id, d]));
  for (const q of ds.queries) {
    if (q.split !== 'train') { assert.equal(q.reasoning, undefined, q.id); continue; }
    assert.equal(typeof q.reasoning, 'string', q.id);
    // One-hop traces use the target document's own words; multi-hop traces name the bridge facts.
    const words = q.reasoning.toLowerCase().match(/[a-z]{5,}/g).filter((w) => !['devised', 'known', 'where'].includes(w));
    const source = [q.target, ...q.bridges].map((id) => `${byId.get(id).title} ${byId.get(id).text}`).join(' ').toLowerCase();
    for (const w of words) assert.ok(source.includes(w), `${q.id} (${q.kind}): "${w}" of "${q.reasoning}" is not in its documents`);
  }
  const task = makeRetrievalTask({ seed: 4, traces: true });
  assert.ok(task.train.every((r) => typeof r.reasoning === 'string'));
  assert.ok(makeRetrievalTask({ seed: 4 }).train.every((r) => r.reasoning === undefined));

  // Written as BEIR, the traces travel as queries' metadata.reasoning and come back as training records' traces.
  const dir = join(tempDir(), 'synthetic-traces');
  await writeSyntheticDataset(dir, ds);
  const pairs = await loadTrainingData(dir);
  const textOf = new Map(ds.queries.map((q) => [q.text, q.reasoning]));
  assert.ok(pairs.length > 0);
  for (const p of pairs) assert.equal(p.reasoning, textOf.get(p.query), p.id);
  const queries = join(dir, 'queries.jsonl');
  const lines = readFileSync(queries, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const first = lines.findIndex((q) => q.metadata.reasoning !== undefined);
  lines[first].metadata.reasoning = 3;
  writeFileSync(queries, lines.map((l) => JSON.stringify(l)).join('\n'));
  await assert.rejects(loadTrainingData(dir), { code: 'ERR_FORMAT', message: `${queries}: query "${lines[first]._id}": expected non-empty string for metadata.reasoning but received 3 of type number` });
});

// `reason`-mode held-out nDCG@10: the model writes its own analysis (greedy, at most 16 tokens,
// room for a trace), then the hidden state at <|embed_token|> is the query vector.
async function reasonNdcg10(modelPath, adapter, heldOut) {
  const model = track(await Model.load(modelPath));
  const embedder = track(await Embedder.create(model, { mode: 'reason', maxReasoningTokens: 16, threads: 2, lora: await model.loadLora(adapter) }));
  const docs = await embedder.embedDocuments(heldOut.corpus.map((d) => `${d.title}\n${d.text}`));
  const queries = await embedder.embed(heldOut.queries.map((q) => q.text));
  const store = new VectorStore({ dim: model.info.nEmbd, capacity: docs.length });
  docs.forEach((d, i) => store.upsert(heldOut.corpus[i].id, d.vector, 0));
  const hits = await store.searchBatch(queries.map((q) => q.vector), 100);
  const run = { runid: 'reason', queries: new Map(heldOut.queries.map((q, i) => [q.id, hits[i].map((h) => ({ docno: h.id, score: h.score }))])) };
  const ndcg10 = Number(evaluate(heldOut.qrels, run, { measures: ['ndcg_cut.10'] }).summary.ndcg_cut_10);
  return { ndcg10, selfEmbedded: queries.filter((q) => q.finish === 'embed').length };
}

// 150 steps is where the traced run has learned to write trace-like text and end it with
// <|embed_token|> itself (at 100 steps it has not yet; both runs are deterministic for fixed threads).
test('trainStage1 with reasoning traces: held-out reason-mode nDCG@10 beats the same stage 1 without traces', async () => {
  const modelPath = await tinyModel();
  const task = makeRetrievalTask({ seed: 1, traces: true });
  const withoutTraces = task.train.map(({ reasoning, ...r }) => r);
  const scores = {};
  for (const [name, train] of [['traces', task.train], ['plain', withoutTraces]]) {
    const out = join(tempDir(), `trace-${name}.lora.gguf`);
    await trainStage1({ model: modelPath, train, out, steps: 150, threads: 2, progress: false });
    scores[name] = await reasonNdcg10(modelPath, out, task.heldOut);
  }
  console.log(`reason-mode held-out nDCG@10 after 150 steps: with traces ${scores.traces.ndcg10.toFixed(4)} (${scores.traces.selfEmbedded}/30 queries ended by the model's own <|embed_token|>), without ${scores.plain.ndcg10.toFixed(4)} (${scores.plain.selfEmbedded}/30)`);
  assert.ok(scores.traces.ndcg10 > scores.plain.ndcg10 + 0.02, `reason-mode nDCG@10 with traces ${scores.traces.ndcg10}, without ${scores.plain.ndcg10}`);
  assert.ok(scores.traces.selfEmbedded > scores.plain.selfEmbedded, 'the traced run learned to end its reasoning with <|embed_token|>');
});

test('search-r3 train sft: traced JSONL records train with SFT on the traces at --loss-weights reasoning=W', async () => {
  const { execFile } = await import('node:child_process');
  const run = (args) => new Promise((resolve) => execFile(process.execPath, [join(root, 'bin', 'search-r3.js'), ...args], (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr })));
  const dir = tempDir();
  const file = join(dir, 'traced.jsonl');
  writeFileSync(file, makeRetrievalTask({ seed: 3, traces: true }).train.slice(0, 8).map((r) => JSON.stringify({ query: r.query, positive: r.positive, reasoning: r.reasoning })).join('\n'));
  const common = ['train', 'sft', '--model', await tinyModel(), '--train', file, '--steps', '2', '--batch', '4', '--threads', '2', '--json'];
  const r = await run([...common, '--out', join(dir, 'traced-cli.gguf'), '--loss-weights', 'infonce=1,reasoning=0.5']);
  assert.equal(r.code, 0, r.stderr);
  const steps = r.stdout.trim().split('\n').slice(0, -1).map((l) => JSON.parse(l));
  assert.equal(steps.length, 2);
  for (const s of steps) assert.ok(s.parts.sft > 1, `step ${s.step}: SFT on the traces ${s.parts.sft}`);
  const off = await run([...common, '--out', join(dir, 'traced-off.gguf'), '--loss-weights', 'infonce=1,reasoning=0']);
  assert.equal(off.code, 0, off.stderr);
  assert.equal(JSON.parse(off.stdout.split('\n')[0]).parts.sft, undefined);
  const bad = await run([...common, '--out', join(dir, 'x.gguf'), '--loss-weights', 'reason=1']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /NAME one of sft, kl, infonce, triplet, reasoning/);
});

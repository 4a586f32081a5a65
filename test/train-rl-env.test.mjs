// The stage-2 RL environment: which rows a refresh re-encodes, versions and staleness, the fresh
// reference search, checkpoints, errors, and one run on a real tiny model with a LoRA adapter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { lib, maxAbsDiff, tempDir, tinyModel, track, writeRandomLora } from './helpers/models.mjs';

const { CorpusEnvironment, parseRefresh, Model, Embedder } = lib;

const DIM = 8;
const docs = Array.from({ length: 12 }, (_, i) => ({ id: `d${String(i).padStart(2, '0')}`, text: `document number ${i}` }));
const textOf = new Map(docs.map((d) => [d.text, d.id]));

/** A deterministic fake encoder: vector = f(text, adapter), where the test bumps `adapter` as training would. */
function fakeEncoder() {
  const fake = { adapter: 0, calls: [] };
  fake.vector = (text, adapter = fake.adapter) => {
    let h = 0;
    for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 9973;
    const v = Float32Array.from({ length: DIM }, (_, j) => Math.sin(h * (j + 1) * 0.37 + adapter * (j + 2) * 0.91) + 0.01);
    let n = 0;
    for (const x of v) n += x * x;
    return v.map((x) => x / Math.sqrt(n));
  };
  fake.encode = async (texts) => {
    fake.calls.push(texts.map((t) => textOf.get(t) ?? t));
    return texts.map((t) => fake.vector(t));
  };
  fake.encoded = () => fake.calls.splice(0).flat();
  return fake;
}

async function makeEnv(policy, extra = {}) {
  const fake = fakeEncoder();
  const env = await CorpusEnvironment.create({ docs, dim: DIM, encode: fake.encode, policy: parseRefresh(policy), ...extra });
  fake.encoded();
  return { env, fake };
}

const versions = (env) => Object.fromEntries(docs.map((d) => [d.id, env.row(d.id).version]));
const allAt = (v, over = {}) => ({ ...Object.fromEntries(docs.map((d) => [d.id, v])), ...over });

/** Brute-force cosine top-k, ties by id: the oracle for search. */
function bruteTopK(vectorOf, query, k) {
  const scored = docs.map((d) => {
    const v = vectorOf(d);
    let s = 0;
    for (let j = 0; j < DIM; j++) s += v[j] * query[j];
    return { id: d.id, s };
  });
  return scored.sort((a, b) => b.s - a.s || (a.id < b.id ? -1 : 1)).slice(0, k).map((x) => x.id);
}

test('create encodes every document at version 0 with progress, and search ranks the store exactly', async () => {
  const fake = fakeEncoder();
  const progress = [];
  const env = await CorpusEnvironment.create({ docs, dim: DIM, encode: fake.encode, policy: { kind: 'touched' }, onProgress: (d, t) => progress.push([d, t]) });
  assert.equal(env.size, 12);
  assert.equal(env.step, 0);
  assert.deepEqual(fake.encoded(), docs.map((d) => d.id));
  assert.deepEqual(progress, [[12, 12]]);
  assert.deepEqual(versions(env), allAt(0));
  assert.ok(env.has('d03') && !env.has('nope'));
  assert.equal(env.text('d03'), 'document number 3');
  assert.ok(maxAbsDiff(env.row('d03').vector, fake.vector('document number 3')) < 1e-6);
  const queries = [fake.vector('document number 5'), fake.vector('a query', 3)];
  const got = await env.search(queries, 4);
  assert.deepEqual(got, queries.map((q) => bruteTopK((d) => fake.vector(d.text, 0), q, 4)));
  assert.equal(got[0][0], 'd05');
  assert.deepEqual(env.staleness(0), { max: 0, mean: 0 });
  // A large corpus is encoded in chunks, with progress after each.
  const many = Array.from({ length: 600 }, (_, i) => ({ id: `m${i}`, text: `text ${i}` }));
  const sizes = [];
  const big = [];
  await CorpusEnvironment.create({ docs: many, dim: DIM, policy: { kind: 'full' }, onProgress: (d, t) => big.push([d, t]),
    encode: async (texts) => (sizes.push(texts.length), texts.map((t) => fake.vector(t))) });
  assert.deepEqual(sizes, [256, 256, 88]);
  assert.deepEqual(big, [[256, 600], [512, 600], [600, 600]]);
});

test('touched: a refresh re-encodes exactly the touched set with the new adapter and records the step', async () => {
  const { env, fake } = await makeEnv('touched');
  fake.adapter = 1;
  const stats = await env.refresh(1, new Set(['d07', 'd03']));
  assert.deepEqual(fake.encoded(), ['d03', 'd07'], 'touched rows only, in corpus order');
  assert.equal(stats.reencoded, 2);
  assert.equal(stats.share, 2 / 12);
  assert.equal(stats.staleMax, 1);
  assert.equal(stats.staleMean, 10 / 12);
  assert.ok(stats.seconds >= 0);
  assert.deepEqual(versions(env), allAt(0, { d03: 1, d07: 1 }));
  assert.ok(maxAbsDiff(env.row('d03').vector, fake.vector('document number 3', 1)) < 1e-6, 'refreshed with adapter 1');
  assert.ok(maxAbsDiff(env.row('d04').vector, fake.vector('document number 4', 0)) < 1e-6, 'untouched keeps adapter 0');
  // Repeats are encoded once; rows already at this step are current and skipped.
  assert.equal((await env.refresh(1, ['d03', 'd03', 'd05', 'd05'])).reencoded, 1);
  assert.deepEqual(fake.encoded(), ['d05']);
  fake.adapter = 2;
  const s2 = await env.refresh(2, ['d05']);
  assert.deepEqual([s2.reencoded, s2.staleMax, s2.staleMean], [1, 2, (2 * 9 + 1 * 2) / 12]);
  assert.deepEqual(env.staleness(4), { max: 4, mean: (4 * 9 + 3 * 2 + 2) / 12 });
});

test('budget: touched plus the stalest fraction, oldest first and ties by id, so the choice is reproducible', async () => {
  const { env, fake } = await makeEnv('budget=0.25'); // ceil(0.25 · 12) = 3 extra rows per step
  fake.adapter = 1;
  // d01 is among the three stalest, but the budget is on top of the touched rows.
  assert.equal((await env.refresh(1, ['d01'])).reencoded, 4);
  assert.deepEqual(fake.encoded(), ['d00', 'd01', 'd02', 'd03']);
  fake.adapter = 2;
  await env.refresh(2, ['d00']);
  assert.deepEqual(fake.encoded(), ['d00', 'd04', 'd05', 'd06'], 'the version-0 rows come before the version-1 ones');
  fake.adapter = 3;
  const s3 = await env.refresh(3, []);
  assert.deepEqual(fake.encoded(), ['d07', 'd08', 'd09']);
  assert.deepEqual(versions(env), { d00: 2, d01: 1, d02: 1, d03: 1, d04: 2, d05: 2, d06: 2, d07: 3, d08: 3, d09: 3, d10: 0, d11: 0 });
  assert.deepEqual([s3.staleMax, s3.staleMean], [3, (3 * 2 + 2 * 3 + 1 * 4) / 12]);
  // A fraction that needs more rows than are stale takes what there is.
  const { env: all, fake: f2 } = await makeEnv('budget=1');
  f2.adapter = 1;
  assert.equal((await all.refresh(1, ['d01'])).reencoded, 12);
});

test('refreshStale re-encodes exactly the named stale rows, whatever the policy adds', async () => {
  const { env, fake } = await makeEnv('budget=0.25');
  fake.adapter = 1;
  await env.refresh(1, []); // the policy's three stalest: d00, d01, d02
  fake.encoded();
  // At step 1, d01 is already current: only d05 and d09 are stale among the named rows; no budget rows join.
  const s = await env.refreshStale(1, new Set(['d09', 'd01', 'd05']));
  assert.deepEqual(fake.encoded(), ['d05', 'd09'], 'the stale named rows only, in corpus order');
  assert.deepEqual([s.reencoded, s.share], [2, 2 / 12]);
  assert.deepEqual(versions(env), allAt(0, { d00: 1, d01: 1, d02: 1, d05: 1, d09: 1 }));
  assert.ok(maxAbsDiff(env.row('d09').vector, fake.vector('document number 9', 1)) < 1e-6, 're-encoded with the current adapter');
  assert.equal((await env.refreshStale(1, ['d05', 'd09'])).reencoded, 0, 'current rows are not re-encoded again');
  assert.deepEqual(fake.encoded(), []);
  // Under full too it names what it re-encodes; a later step makes every row stale again.
  const { env: full, fake: f2 } = await makeEnv('full');
  f2.adapter = 3;
  assert.equal((await full.refreshStale(3, ['d02'])).reencoded, 1);
  assert.deepEqual(f2.encoded(), ['d02']);
  assert.equal(full.step, 3);
  await assert.rejects(full.refreshStale(2, ['d03']), /step/, 'step may not go back');
  await assert.rejects(full.refreshStale(3, 'd03'), /not a string/);
  await assert.rejects(full.refreshStale(3, ['nope']), /ids.*"nope"|"nope".*ids/);
  assert.deepEqual(f2.encoded(), [], 'a refused call encodes nothing');
});

test('full and fullRefreshEvery re-encode the whole corpus', async () => {
  const { env, fake } = await makeEnv('full');
  fake.adapter = 1;
  const s = await env.refresh(1, ['d01']);
  assert.deepEqual([s.reencoded, s.share, s.staleMax, s.staleMean], [12, 1, 0, 0]);
  assert.deepEqual(fake.encoded(), docs.map((d) => d.id));
  const every = await makeEnv('touched', { fullRefreshEvery: 3 });
  for (const step of [1, 2, 3, 4]) {
    every.fake.adapter = step;
    await every.env.refresh(step, ['d02']);
    assert.deepEqual(every.fake.encoded(), step === 3 ? docs.map((d) => d.id) : ['d02'], `step ${step}`);
  }
  assert.deepEqual(versions(every.env), allAt(3, { d02: 4 }));
});

test('searchFresh ranks a full re-encode with the current adapter and leaves the store as it was', async () => {
  const { env, fake } = await makeEnv('touched');
  fake.adapter = 5;
  const queries = [fake.vector('document number 9'), fake.vector('document number 2')];
  const fresh = await env.searchFresh(queries, 3);
  assert.deepEqual(fresh, queries.map((q) => bruteTopK((d) => fake.vector(d.text, 5), q, 3)));
  assert.equal(fresh[0][0], 'd09');
  assert.deepEqual(fake.encoded(), docs.map((d) => d.id));
  assert.deepEqual(versions(env), allAt(0));
  assert.deepEqual(await env.search(queries, 3), queries.map((q) => bruteTopK((d) => fake.vector(d.text, 0), q, 3)));
});

test('save and load round-trip rows and versions, and a resumed run refreshes exactly as an uninterrupted one', async () => {
  const dir = join(tempDir(), 'rl-env-ckpt');
  const a = await makeEnv('budget=0.2', { threads: 1 });
  for (const step of [1, 2]) {
    a.fake.adapter = step;
    await a.env.refresh(step, [`d0${step + 4}`]);
  }
  await a.env.save(dir);
  const b = fakeEncoder();
  const loaded = await CorpusEnvironment.load(dir, { docs, dim: DIM, encode: b.encode, policy: parseRefresh('budget=0.2') });
  assert.deepEqual(b.calls, [], 'load encodes nothing');
  assert.equal(loaded.step, 2);
  assert.deepEqual(versions(loaded), versions(a.env));
  for (const d of docs) assert.deepEqual(loaded.row(d.id).vector, a.env.row(d.id).vector);
  a.fake.encoded();
  a.fake.adapter = b.adapter = 3;
  const [sa, sb] = [await a.env.refresh(3, ['d11']), await loaded.refresh(3, ['d11'])];
  assert.deepEqual(b.encoded(), a.fake.encoded());
  assert.deepEqual([sb.reencoded, sb.staleMax, sb.staleMean], [sa.reencoded, sa.staleMax, sa.staleMean]);
  for (const d of docs) assert.deepEqual(loaded.row(d.id).vector, a.env.row(d.id).vector);

  const base = { dim: DIM, encode: b.encode, policy: { kind: 'touched' } };
  await assert.rejects(CorpusEnvironment.load(dir, { ...base, docs: docs.slice(1) }), { code: 'ERR_FORMAT', message: /is for another corpus: it holds document "d00" that the corpus does not \(12 rows, corpus has 11 documents\)/ });
  await assert.rejects(CorpusEnvironment.load(dir, { ...base, docs: [...docs, { id: 'new', text: 'x' }] }), { code: 'ERR_FORMAT', message: /lacks corpus document "new"/ });
  await assert.rejects(CorpusEnvironment.load(dir, { ...base, docs, dim: 4 }), { code: 'ERR_FORMAT', message: /dimension 8, but dim is 4/ });
  await assert.rejects(CorpusEnvironment.load(join(tempDir(), 'no-such-ckpt'), { ...base, docs }), { code: 'ERR_STORE' });
});

test('bad corpora, ids, steps, encoders and aborts give clear errors and leave the store unchanged', async () => {
  const fake = fakeEncoder();
  const o = { docs, dim: DIM, encode: fake.encode, policy: { kind: 'touched' } };
  await assert.rejects(CorpusEnvironment.create({ ...o, docs: [] }), { name: 'SearchR3Error', code: 'ERR_FORMAT', message: /corpus is empty/ });
  await assert.rejects(CorpusEnvironment.create({ ...o, docs: [...docs, { id: 'd04', text: 'again' }] }), { code: 'ERR_FORMAT', message: 'The corpus has document id "d04" twice (docs[4] and docs[12]); ids must be distinct' });
  await assert.rejects(CorpusEnvironment.create({ ...o, docs: [{ id: '', text: 'x' }] }), { name: 'TypeError', message: /docs\[0\]\.id/ });
  await assert.rejects(CorpusEnvironment.create({ ...o, polcy: 1 }), { name: 'TypeError', message: /did you mean "policy"/ });
  await assert.rejects(CorpusEnvironment.create({ ...o, threads: -1 }), { name: 'RangeError', message: /for threads but received -1/ });
  await assert.rejects(CorpusEnvironment.create({ ...o, policy: { kind: 'budget', fraction: 0 } }), { name: 'RangeError', message: /policy\.fraction/ });
  await assert.rejects(CorpusEnvironment.create({ ...o, encode: async (t) => t.slice(1).map(() => new Float32Array(DIM)) }), { name: 'TypeError', message: /array of 12 vectors/ });
  await assert.rejects(CorpusEnvironment.create({ ...o, encode: async (t) => t.map(() => new Float32Array(3)) }), { name: 'TypeError', message: /Float32Array of length 8 for encode\(texts\)\[0\]/ });

  const { env, fake: f } = await makeEnv('touched');
  await env.refresh(2, ['d01']);
  f.encoded();
  const before = versions(env);
  await assert.rejects(env.refresh(3, ['d01', 'missing']), { name: 'RangeError', message: /document id of the corpus for touched but received "missing"/ });
  await assert.rejects(env.refresh(1, ['d01']), { name: 'RangeError', message: /integer between 2 and Infinity for step/ });
  await assert.rejects(env.refresh(3, 'd01'), { name: 'TypeError', message: /iterable of doc ids \(an array or Set, not a string\) for touched but received "d01"/ });
  await assert.rejects(env.refresh(3, null), { name: 'TypeError', message: /iterable of doc ids .* for touched but received null/ });
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(env.refresh(3, ['d02'], ac.signal), { code: 'ERR_ABORTED' });
  assert.deepEqual(f.encoded(), [], 'an aborted signal stops before encoding');
  // An abort while the encoder runs, and an encoder that fails: nothing is written.
  let mode = 'ok';
  const late = new AbortController();
  const flaky = await CorpusEnvironment.create({ ...o, encode: async (texts) => {
    if (mode === 'abort') late.abort();
    if (mode === 'fail') throw new Error('encoder failed');
    return texts.map((t) => fake.vector(t, 9));
  } });
  mode = 'abort';
  await assert.rejects(flaky.refresh(1, ['d02', 'd03'], late.signal), { code: 'ERR_ABORTED' });
  mode = 'fail';
  await assert.rejects(flaky.refresh(1, ['d02', 'd03']), { message: 'encoder failed' });
  assert.deepEqual(versions(flaky), allAt(0));
  assert.equal(flaky.step, 0);
  assert.deepEqual(versions(env), before);
  assert.equal(env.step, 2);
  assert.throws(() => env.text('nope'), { name: 'RangeError', message: /for id but received "nope"/ });

  assert.deepEqual(parseRefresh('touched'), { kind: 'touched' });
  assert.deepEqual(parseRefresh('full'), { kind: 'full' });
  assert.deepEqual(parseRefresh('budget=0.02'), { kind: 'budget', fraction: 0.02 });
  for (const bad of ['budget=0', 'budget=1.5', 'budget=', 'budget', 'Touched', '']) {
    assert.throws(() => parseRefresh(bad), { name: 'RangeError', message: `Expected touched, budget=F (0 < F ≤ 1) or full for refresh but received ${JSON.stringify(bad)} of type string` });
  }
});

test('on a real tiny model, a row refreshed under a LoRA adapter equals a full re-encode with that adapter', async () => {
  const path = await tinyModel();
  const model = track(await Model.load(path));
  const adapter = track(await model.loadLora(await writeRandomLora(path, join(tempDir(), 'rl-env.lora.gguf'), { scale: 0.2 })));
  const embedder = track(await Embedder.create(model, { sequences: 4, threads: 1 }));
  const corpus = docs.slice(0, 6);
  const encode = async (texts, signal) => (await embedder.embedDocuments(texts, { signal })).map((r) => r.vector);
  const env = await CorpusEnvironment.create({ docs: corpus, dim: model.info.nEmbd, encode, policy: { kind: 'touched' } });
  const base = corpus.map((d) => env.row(d.id).vector);
  embedder.session.setLoras([{ adapter, scale: 1 }]); // the update of step 1
  const stats = await env.refresh(1, ['d01', 'd04']);
  assert.equal(stats.reencoded, 2);
  const reference = track(await Embedder.create(model, { sequences: 4, threads: 1, lora: adapter }));
  const full = (await reference.embedDocuments(corpus.map((d) => d.text))).map((r) => r.vector);
  corpus.forEach((d, i) => {
    const row = env.row(d.id).vector;
    if (d.id === 'd01' || d.id === 'd04') {
      assert.ok(maxAbsDiff(row, full[i]) <= 1e-4, `${d.id} equals the full re-encode: ${maxAbsDiff(row, full[i])}`);
    } else {
      assert.ok(maxAbsDiff(row, base[i]) === 0, `${d.id} untouched`);
      assert.ok(maxAbsDiff(row, full[i]) > 1e-3, `${d.id} is stale: the adapter changed it`);
    }
  });
  // The fresh reference search ranks the adapter's re-encode.
  const [fresh] = await env.searchFresh([full[2]], 1);
  assert.deepEqual(fresh, ['d02']);
  embedder.session.setLoras([]);
});

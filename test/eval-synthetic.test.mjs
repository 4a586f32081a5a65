import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluate, makeSyntheticDataset, readBeirCorpus, readBeirQrels, readBeirQueries, writeSyntheticDataset } from '../dist/eval/index.js';

const tokens = (s) => new Set(s.toLowerCase().match(/[a-z0-9]+/g));
function jaccard(a, b) {
  const A = tokens(a);
  const B = tokens(b);
  let shared = 0;
  for (const t of A) if (B.has(t)) shared++;
  return shared / (A.size + B.size - shared);
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

test('makeSyntheticDataset: deterministic from the seed, default sizes, fast', () => {
  const t0 = performance.now();
  const a = makeSyntheticDataset({ seed: 42 });
  assert.ok(performance.now() - t0 < 2000);
  assert.deepEqual(makeSyntheticDataset({ seed: 42 }), a);
  assert.notDeepEqual(makeSyntheticDataset({ seed: 43 }).queries, a.queries);
  assert.equal(a.corpus.length, 300);
  assert.equal(a.queries.length, 200);
  assert.equal(new Set(a.corpus.map((d) => d.id)).size, 300);
  const small = makeSyntheticDataset({ seed: 1, docs: 40, queries: 20, multiHopFraction: 0.5 });
  assert.equal(small.corpus.length, 40);
  assert.equal(small.queries.filter((q) => q.bridges.length > 0).length, 10);
  assert.throws(() => makeSyntheticDataset({ docs: 20, queries: 500 }), { name: 'RangeError', message: /^Expected at most \d+ "\S+" queries for 20 documents/ });
  assert.throws(() => makeSyntheticDataset({ seed: -1 }), { name: 'RangeError' });
  assert.throws(() => makeSyntheticDataset({ sed: 1 }), { message: 'Unknown option "sed" in options; did you mean "seed"?' });
});

test('makeSyntheticDataset: splits do not leak and every split has every kind', () => {
  const ds = makeSyntheticDataset();
  const ids = new Set(ds.corpus.map((d) => d.id));
  const seen = new Map();
  for (const split of ['train', 'dev', 'test']) {
    for (const [qid, judged] of ds.qrels[split]) {
      assert.ok(!seen.has(qid), `${qid} in ${seen.get(qid)} and ${split}`);
      seen.set(qid, split);
      for (const d of judged.keys()) assert.ok(ids.has(d));
    }
  }
  assert.equal(seen.size, ds.queries.length);
  assert.equal(new Set(ds.queries.map((q) => q.text)).size, ds.queries.length, 'query texts are unique');
  for (const q of ds.queries) assert.equal(seen.get(q.id), q.split);
  for (const split of ['train', 'dev', 'test']) {
    const kinds = new Set(ds.queries.filter((q) => q.split === split).map((q) => q.kind));
    assert.deepEqual([...kinds].sort(), ['invention', 'inventor-hometown', 'inventor-hometown-product', 'person', 'town']);
  }
  const counts = { train: 0, dev: 0, test: 0 };
  for (const q of ds.queries) counts[q.split]++;
  assert.deepEqual(counts, { train: 121, dev: 40, test: 39 });
});

test('makeSyntheticDataset: multi-hop queries reach their answer through the bridging documents', () => {
  const ds = makeSyntheticDataset({ seed: 3 });
  const doc = new Map(ds.corpus.map((d) => [d.id, d]));
  const multi = ds.queries.filter((q) => q.bridges.length > 0);
  assert.equal(multi.length, 60);
  for (const q of multi) {
    const target = doc.get(q.target);
    const chain = [...q.bridges.map((b) => doc.get(b)), target];
    assert.ok(target.text.includes(q.answer), `${q.id}: the target holds the answer`);
    for (const b of q.bridges) assert.ok(!doc.get(b).text.includes(q.answer), `${q.id}: a bridge does not`);
    // Each hop names the entity that the next document is about (its title).
    for (let i = 0; i + 1 < chain.length; i++) assert.ok(chain[i].text.includes(chain[i + 1].title), `${q.id}: hop ${i}`);
    // The query names what the first bridge is about, in other words than the bridge uses.
    assert.ok(!q.text.toLowerCase().includes(chain[0].title.toLowerCase()));
    assert.deepEqual(ds.qrels[q.split].get(q.id), new Map([[q.target, 2], ...q.bridges.map((b) => [b, 1])]));
  }
});

test('makeSyntheticDataset: paraphrased queries share few words with their positives, unlike naive ones', () => {
  const ds = makeSyntheticDataset();
  const doc = new Map(ds.corpus.map((d) => [d.id, d]));
  const single = ds.queries.filter((q) => q.bridges.length === 0);
  const paraphrased = single.map((q) => {
    const d = doc.get(q.target);
    return jaccard(q.text, `${d.title} ${d.text}`);
  });
  // A naive generator words the question like the document: its text minus the answer.
  const naive = single.map((q) => {
    const d = doc.get(q.target);
    return jaccard(d.text.split(q.answer).join(' '), `${d.title} ${d.text}`);
  });
  assert.ok(mean(paraphrased) < 0.15, `mean Jaccard ${mean(paraphrased)}`);
  assert.ok(mean(paraphrased) < mean(naive) / 3, `paraphrased ${mean(paraphrased)} vs naive ${mean(naive)}`);
  // The attribute words themselves never appear in the query: "physician" in the doc, "doctor" in
  // the query. Only names (capitalised) may be shared, as "Which doctor was raised in Dunmore?" must.
  for (const q of single) {
    const attributes = (doc.get(q.target).text.match(/\b[a-z][a-z-]{4,}\b/g) ?? []).flatMap((w) => w.split('-'));
    for (const t of tokens(q.text)) assert.ok(!attributes.includes(t), `${q.id} shares "${t}"`);
  }
});

test('writeSyntheticDataset: BEIR layout that reads back and scores 1.0 for an oracle run', async () => {
  const ds = makeSyntheticDataset({ seed: 9, docs: 60, queries: 30 });
  const dir = mkdtempSync(join(tmpdir(), 'eval-syn-'));
  await writeSyntheticDataset(dir, ds);
  const corpus = [];
  for await (const d of readBeirCorpus(dir)) corpus.push(d);
  assert.deepEqual(corpus, ds.corpus);
  const queries = [];
  for await (const q of readBeirQueries(dir)) queries.push(q);
  queries.forEach((q, i) => {
    const { kind, split, answer, target, bridges, reasoning } = ds.queries[i];
    // Training queries carry their reasoning trace; the others have none.
    assert.deepEqual(q.metadata, { kind, split, answer, target, bridges, ...(split === 'train' ? { reasoning } : {}) });
  });
  const { qrels } = await readBeirQrels(dir, 'test');
  assert.deepEqual(qrels, ds.qrels.test);
  const oracle = { runid: 'oracle', queries: new Map() };
  for (const [qid, judged] of qrels) oracle.queries.set(qid, [...judged].map(([docno, g]) => ({ docno, score: g })));
  const e = evaluate(qrels, oracle, { measures: ['ndcg', 'map', 'num_q'] });
  assert.equal(e.summary.num_q, qrels.size);
  assert.equal(e.summary.ndcg, 1);
  assert.equal(e.summary.map, 1);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { evaluate, formatFixed, formatTrecEval, readQrels, readRun, selectMeasures } from '../dist/eval/index.js';

const FIXTURES = fileURLToPath(new URL('../../shared/fixtures/trec_eval/', import.meta.url));
const expected = (name) => readFileSync(FIXTURES + name, 'utf8');

/** Parses trec_eval output into "measure|qid" → value text. */
function table(text) {
  const rows = new Map();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [measure, qid, value] = line.split('\t');
    rows.set(`${measure.trim()}|${qid}`, value);
  }
  return rows;
}

async function fixtureInputs(qrelsName = 'qrels.test') {
  const { qrels } = await readQrels(FIXTURES + qrelsName);
  const { run } = await readRun(FIXTURES + 'results.test');
  return { qrels, run };
}

test('evaluate: every measure, every query, equals NIST out.test.aq to 4 decimals', async () => {
  const { qrels, run } = await fixtureInputs();
  const e = evaluate(qrels, run, { measures: ['all_trec'] });
  const want = table(expected('out.test.aq'));
  const got = table(formatTrecEval(e, { perQuery: true }));
  assert.equal(got.size, want.size);
  for (const [key, value] of want) {
    assert.ok(got.has(key), `missing ${key}`);
    const w = Number(value);
    if (Number.isNaN(w)) assert.equal(got.get(key), value, key); // runid, relstring
    else assert.ok(Math.abs(Number(got.get(key)) - w) < 0.00005 + 1e-12, `${key}: got ${got.get(key)}, want ${value}`);
  }
  // And the whole text byte for byte: same order, padding and rounding as trec_eval -q -m all_trec.
  assert.equal(formatTrecEval(e, { perQuery: true }), expected('out.test.aq'));
});

test('evaluate: summary equals out.test.a (all measures) and out.test (official set)', async () => {
  const { qrels, run } = await fixtureInputs();
  assert.equal(formatTrecEval(evaluate(qrels, run, { measures: ['all_trec'] })), expected('out.test.a'));
  const official = evaluate(qrels, run);
  assert.equal(formatTrecEval(official), expected('out.test'));
  assert.equal(official.summary.num_q, 3);
  assert.equal(official.summary.runid, 'STANDARD');
  assert.equal(official.queries.map((q) => q.qid).join(','), '301,302,303');
});

test('evaluate: ndcg on graded qrels.rel_level equals a textbook nDCG computed independently', async () => {
  const { qrels, run } = await fixtureInputs('qrels.rel_level');
  const e = evaluate(qrels, run, { measures: ['ndcg', 'ndcg_cut.10'] });
  for (const { qid, values } of e.queries) {
    const judged = qrels.get(qid);
    const ranked = [...run.queries.get(qid)].sort((a, b) => b.score - a.score || (a.docno < b.docno ? 1 : a.docno > b.docno ? -1 : 0));
    const gain = (d) => Math.max(0, judged.get(d.docno) ?? 0);
    const ideal = [...judged.values()].filter((g) => g > 0).sort((a, b) => b - a);
    const dcg = (gains, k) => gains.slice(0, k).reduce((s, g, i) => s + g / Math.log2(i + 2), 0);
    const ranks = ranked.map(gain);
    assert.ok(ideal.some((g) => g > 1), 'fixture has graded judgements');
    assert.ok(Math.abs(values.ndcg - dcg(ranks, Infinity) / dcg(ideal, Infinity)) < 1e-12, `ndcg ${qid}`);
    assert.ok(Math.abs(values.ndcg_cut_10 - dcg(ranks, 10) / dcg(ideal, 10)) < 1e-12, `ndcg_cut_10 ${qid}`);
  }
});

// A tiny graded case computed by hand. Grades: a=3 b=2 c=1 d=0 e=-1 (pooled, unjudged).
// Ranking by score: d(0) a(3) e(unjudged) c(1) x(not in qrels).
const tinyQrels = new Map([['q1', new Map([['a', 3], ['b', 2], ['c', 1], ['d', 0], ['e', -1]])], ['q2', new Map([['z', 1]])]]);
const tinyRun = {
  runid: 'tiny',
  queries: new Map([['q1', [{ docno: 'a', score: 4 }, { docno: 'c', score: 2 }, { docno: 'd', score: 5 }, { docno: 'e', score: 3 }, { docno: 'x', score: 1 }]]]),
};

test('evaluate: graded example matches hand-computed values (linear gain, log2 discount)', () => {
  const e = evaluate(tinyQrels, tinyRun, { measures: ['all_trec', 'ndcg_cut.2,4'] });
  const v = e.queries[0].values;
  const dcg = 3 / Math.log2(3) + 1 / Math.log2(5);
  assert.ok(Math.abs(v.ndcg - dcg / (3 + 2 / Math.log2(3) + 1 / 2)) < 1e-15);
  assert.ok(Math.abs(v.ndcg - 0.487933) < 1e-6);
  assert.ok(Math.abs(v.ndcg_cut_2 - (3 / Math.log2(3)) / (3 + 2 / Math.log2(3))) < 1e-15);
  assert.equal(v.relstring, '03.1-');
  assert.equal(v.num_ret, 5);
  assert.equal(v.num_rel, 3); // the -1 grade is unjudged, not relevant
  assert.equal(v.num_rel_ret, 2);
  assert.ok(Math.abs(v.map - (1 / 2 + 2 / 4) / 3) < 1e-15);
  assert.equal(v.recip_rank, 0.5);
  assert.equal(v.P_5, 0.4);
  assert.equal(v.bpref, 0); // the one judged non-relevant doc precedes both relevant ones
  assert.equal(v.num_nonrel_judged_ret, 1);
  assert.equal(v.unj_5, 0.4); // e and x
  // R-level measures: the ideal gain drops 3→2→1→0 after ranks 1, 2 and 3.
  const [i1, i2, i3] = [3, 3 + 2 / Math.log2(3), 3 + 2 / Math.log2(3) + 0.5];
  const [d2, d5] = [3 / Math.log2(3), dcg];
  assert.ok(Math.abs(v.Rndcg - (0 / i1 + d2 / i2 + d2 / i3 + d5 / i3) / 4) < 1e-15);
  assert.ok(Math.abs(v.ndcg_rel - (d2 / i2 + d5 / i3 + d5 / i3) / 3) < 1e-15);
  assert.ok(Math.abs(v.G - (3 / Math.log2(2 + 5 - 3) + 1 / Math.log2(2 + 7 - 4)) / 6) < 1e-15);
  assert.ok(Math.abs(v.rbp - 0.1 * (0.9 + (1 / 3) * 0.9 ** 3)) < 1e-15); // grades scaled by the top grade
});

test('evaluate: relevanceLevel, judgedDocsOnly and maxDocsPerTopic behave like -l, -J, -M', () => {
  const l2 = evaluate(tinyQrels, tinyRun, { measures: ['map', 'num_rel', 'ndcg'], relevanceLevel: 2 }).queries[0].values;
  assert.equal(l2.num_rel, 2);
  assert.equal(l2.map, 0.25);
  assert.ok(Math.abs(l2.ndcg - 0.487933) < 1e-6); // gains do not depend on the relevance level
  const j = evaluate(tinyQrels, tinyRun, { measures: ['relstring', 'num_ret'], judgedDocsOnly: true }).queries[0].values;
  assert.deepEqual(j, { num_ret: 3, relstring: '031' });
  const m = evaluate(tinyQrels, tinyRun, { measures: ['num_ret', 'num_rel_ret'], maxDocsPerTopic: 2 }).queries[0].values;
  assert.deepEqual(m, { num_ret: 2, num_rel_ret: 1 });
});

test('evaluate: ties are broken by docno descending and file ranks are ignored', () => {
  const qrels = new Map([['q', new Map([['d2', 1]])]]);
  const run = { runid: 'r', queries: new Map([['q', [{ docno: 'd1', score: 1 }, { docno: 'd2', score: 1 }, { docno: 'd3', score: 1 }]]]) };
  const v = evaluate(qrels, run, { measures: ['recip_rank', 'relstring'] }).queries[0].values;
  assert.equal(v.relstring, '-1-'); // d3, d2, d1
  assert.equal(v.recip_rank, 0.5);
});

test('evaluate: averages over queries with results; averageComplete (-c) counts the missing ones as 0', () => {
  const base = evaluate(tinyQrels, tinyRun, { measures: ['num_q', 'map', 'gm_map', 'num_rel'] });
  assert.equal(base.summary.num_q, 1);
  assert.ok(Math.abs(base.summary.map - 1 / 3) < 1e-15);
  const c = evaluate(tinyQrels, tinyRun, { measures: ['num_q', 'map', 'gm_map', 'num_rel'], averageComplete: true });
  assert.equal(c.summary.num_q, 2);
  assert.ok(Math.abs(c.summary.map - 1 / 6) < 1e-15);
  assert.ok(Math.abs(c.summary.gm_map - Math.exp((Math.log(1 / 3) + Math.log(0.00001)) / 2)) < 1e-15);
  assert.equal(c.summary.num_rel, 4); // trec_eval counts grades > 0 over all qrels under -c
  assert.equal(c.queries.length, 1);
});

test('evaluate: a document retrieved twice is an ERR_FORMAT error, as trec_eval refuses it', () => {
  const run = { runid: 'r', queries: new Map([['q1', [{ docno: 'a', score: 1 }, { docno: 'a', score: 2 }]]]) };
  assert.throws(() => evaluate(tinyQrels, run), { name: 'SearchR3Error', code: 'ERR_FORMAT', message: 'Run "r": document "a" is retrieved twice for query "q1"' });
});

test('selectMeasures: parameters, names, print order and errors', () => {
  const s = selectMeasures(['P.10,5', 'map', 'iprec_at_recall.0.5', 'utility.2,-1,0,0']);
  assert.deepEqual(s.map((m) => m.names), [['map'], ['iprec_at_recall_0.50'], ['P_5', 'P_10'], ['utility_2,-1,0,0']]);
  assert.throws(() => selectMeasures(['mapp']), { name: 'RangeError', message: /^Measure "mapp" is not a trec_eval measure; known: runid, num_q/ });
  assert.throws(() => selectMeasures(['dcg']), /is a trec_eval measure that search-r3 does not implement/);
  assert.throws(() => selectMeasures(['P.0']), { message: 'Expected positive integer cutoffs in measure "P.0" but found 0' });
  assert.throws(() => selectMeasures(['P.5,5']), { message: 'Duplicate cutoff 5 in measure "P.5,5"' });
  assert.throws(() => selectMeasures(['map.3']), { message: 'Measure "map" takes no parameters but received "3" in "map.3"' });
  assert.throws(() => evaluate(tinyQrels, tinyRun, { measure: ['map'] }), { message: 'Unknown option "measure" in options; did you mean "measures"?' });
});

test('formatFixed: rounds exact halves to even like printf, everything else like toFixed', () => {
  assert.equal(formatFixed(0.03125, 4), '0.0312');
  assert.equal(formatFixed(0.09375, 4), '0.0938');
  assert.equal(formatFixed(0.125, 2), '0.12');
  assert.equal(formatFixed(0.375, 2), '0.38');
  assert.equal(formatFixed(2 / 3, 4), '0.6667');
  assert.equal(formatFixed(-412.66666666666663, 4), '-412.6667');
  assert.equal(formatFixed(0.1, 2), '0.10');
});

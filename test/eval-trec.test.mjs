import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatRun, readQrels, readRun, writeRun } from '../dist/eval/index.js';

const FIXTURES = fileURLToPath(new URL('../../shared/fixtures/trec_eval/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'eval-trec-'));
const file = (name, text) => { const p = join(dir, name); writeFileSync(p, text); return p; };

test('readQrels: reads NIST qrels, keeping grades per query and document', async () => {
  const { qrels, report } = await readQrels(FIXTURES + 'qrels.test');
  assert.equal(report.records, 3681);
  assert.equal(report.skipped, 0);
  assert.deepEqual([...qrels.keys()], ['301', '302', '303']);
  assert.equal(qrels.get('301').get('CR93E-1282'), 1);
  assert.equal(qrels.get('301').get('CR93E-10279'), 0);
});

test('readQrels: a malformed line is an ERR_FORMAT error naming file and line', async () => {
  const p = file('bad.qrels', '1 0 d1 1\n1 0 d2\n');
  await assert.rejects(readQrels(p), { name: 'SearchR3Error', code: 'ERR_FORMAT', message: `${p}:2: expected 4 fields "qid iter docno rel" but found 3` });
  const g = file('grade.qrels', '1 0 d1 1\r\n# comment\n\n1 0 d2 high\n');
  await assert.rejects(readQrels(g), { message: `${g}:4: expected an integer relevance grade but found "high"` });
  const d = file('dup.qrels', '1 0 d1 1\n1 0 d1 0\n');
  await assert.rejects(readQrels(d), { message: `${d}:2: duplicate judgement for query "1" and document "d1"` });
});

test('readQrels: skipMalformed skips and counts, never silently', async () => {
  const p = file('mixed.qrels', '1 0 d1 1\nbroken\n1 0 d2 2\n1 0 d3 x\n');
  const { qrels, report } = await readQrels(p, { skipMalformed: true });
  assert.deepEqual([...qrels.get('1')], [['d1', 1], ['d2', 2]]);
  assert.equal(report.records, 2);
  assert.equal(report.skipped, 2);
  assert.deepEqual(report.skippedLines.map((s) => s.line), [2, 4]);
  assert.equal(report.lines, 4);
});

test('readQrels: a missing file is ERR_FILE; bad options are TypeErrors', async () => {
  await assert.rejects(readQrels(join(dir, 'none')), { code: 'ERR_FILE', message: `Cannot read qrels file "${join(dir, 'none')}" (ENOENT)` });
  await assert.rejects(readQrels(dir), { code: 'ERR_FILE' });
  await assert.rejects(readQrels(FIXTURES + 'qrels.test', { skipMalformd: true }), { name: 'TypeError', message: /did you mean "skipMalformed"/ });
});

test('readRun: reads NIST results; runid is the last line\'s tag; duplicates and bad scores are errors', async () => {
  const { run, report } = await readRun(FIXTURES + 'results.test');
  assert.equal(run.runid, 'STANDARD');
  assert.equal(report.records, 1500);
  assert.equal(run.queries.get('301').length, 500);
  assert.deepEqual(run.queries.get('301')[0], { docno: 'FR940202-2-00150', score: 2.129133 });
  const dup = file('dup.run', 'q Q0 a 1 2.0 r\nq Q0 a 2 1.0 r\n');
  await assert.rejects(readRun(dup), { code: 'ERR_FORMAT', message: `${dup}:2: document "a" retrieved twice for query "q"` });
  const bad = file('bad.run', 'q Q0 a 1 high r\n');
  await assert.rejects(readRun(bad), { message: `${bad}:1: expected a numeric score but found "high"` });
  const short = file('short.run', 'q Q0 a 1 2\n');
  await assert.rejects(readRun(short), { message: `${short}:1: expected 6 fields "qid Q0 docno rank score tag" but found 5` });
  const { run: kept, report: r2 } = await readRun(dup, { skipMalformed: true });
  assert.equal(kept.queries.get('q').length, 1);
  assert.equal(r2.skipped, 1);
});

test('writeRun: writes trec_eval order with ranks from 1 and reads back identically', async () => {
  const run = { runid: 'sys', queries: new Map([['q2', [{ docno: 'a', score: 0.1 }, { docno: 'c', score: 0.30000000000000004 }, { docno: 'b', score: 0.1 }]], ['q1', [{ docno: 'x', score: -1e-7 }]]]) };
  assert.equal(formatRun(run), 'q2 Q0 c 1 0.30000000000000004 sys\nq2 Q0 b 2 0.1 sys\nq2 Q0 a 3 0.1 sys\nq1 Q0 x 1 -1e-7 sys\n');
  const p = join(dir, 'out.run');
  await writeRun(p, run);
  assert.equal(readFileSync(p, 'utf8'), formatRun(run));
  const { run: back } = await readRun(p);
  assert.equal(back.runid, 'sys');
  assert.deepEqual(back.queries.get('q2').map((d) => d.score), [0.30000000000000004, 0.1, 0.1]);
  assert.throws(() => formatRun({ runid: 'has space', queries: new Map() }), { name: 'TypeError', message: 'Expected non-empty string without whitespace for run.runid but received "has space" of type string' });
});

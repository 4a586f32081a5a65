import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { runEvalCli } from '../dist/eval/index.js';

const F = fileURLToPath(new URL('../../shared/fixtures/trec_eval/', import.meta.url));
const QRELS = F + 'qrels.test';
const RUN = F + 'results.test';

async function cli(args) {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = [];
  const errs = [];
  out.on('data', (c) => chunks.push(c));
  err.on('data', (c) => errs.push(c));
  const code = await runEvalCli(args, out, err);
  return { code, out: Buffer.concat(chunks).toString(), err: Buffer.concat(errs).toString() };
}

test('runEvalCli: default measures print byte for byte as trec_eval\'s out.test', async () => {
  const r = await cli([QRELS, RUN]);
  assert.equal(r.code, 0);
  assert.equal(r.out, readFileSync(F + 'out.test', 'utf8'));
  assert.equal(r.err, '');
});

test('runEvalCli: -m all_trec and -q -m all_trec print out.test.a and out.test.aq', async () => {
  assert.equal((await cli(['-m', 'all_trec', QRELS, RUN])).out, readFileSync(F + 'out.test.a', 'utf8'));
  assert.equal((await cli(['-q', '-mall_trec', QRELS, RUN])).out, readFileSync(F + 'out.test.aq', 'utf8'));
});

test('runEvalCli: chosen measures, -n and --json', async () => {
  const r = await cli(['-q', '-n', '-m', 'P.5', '-m', 'map', QRELS, RUN]);
  assert.equal(r.out.split('\n')[0], 'map                   \t301\t0.0324');
  assert.ok(!r.out.includes('\tall\t'));
  const j = await cli(['--json', '-q', '-m', 'ndcg_cut.10', QRELS, RUN]);
  const body = JSON.parse(j.out);
  assert.equal(body.runid, 'STANDARD');
  assert.equal(body.summary.ndcg_cut_10.toFixed(4), '0.3016');
  assert.equal(body.queries[1].qid, '302');
});

test('runEvalCli: usage errors exit 2 and input errors exit 1, with a message', async () => {
  const usage = await cli([QRELS]);
  assert.equal(usage.code, 2);
  assert.match(usage.err, /^search-r3 eval: Expected QRELS and RUN files but received 1 file argument\(s\)\nUsage:/);
  assert.equal((await cli(['-x', QRELS, RUN])).code, 2);
  const badMeasure = await cli(['-m', 'nope', QRELS, RUN]);
  assert.equal(badMeasure.code, 2);
  assert.match(badMeasure.err, /Measure "nope" is not a trec_eval measure/);
  const dir = mkdtempSync(join(tmpdir(), 'eval-cli-'));
  const bad = join(dir, 'bad.run');
  writeFileSync(bad, '301 Q0 a 1 1.0 r\n301 Q0 b 2\n');
  const fmt = await cli([QRELS, bad]);
  assert.equal(fmt.code, 1);
  assert.equal(fmt.err, `search-r3 eval: ${bad}:2: expected 6 fields "qid Q0 docno rank score tag" but found 4\n`);
  const skipped = await cli(['--skip-malformed', '-m', 'num_ret', QRELS, bad]);
  assert.equal(skipped.code, 0);
  assert.match(skipped.err, /skipped 1 malformed line\(s\) in .*bad\.run \(first: line 2:/);
  const none = join(dir, 'none.run');
  writeFileSync(none, '999 Q0 a 1 1.0 r\n');
  const empty = await cli([QRELS, none]);
  assert.equal(empty.code, 1);
  assert.equal(empty.err, 'search-r3 eval: No queries with both results and relevance info\n');
  assert.equal((await cli(['--help'])).code, 0);
});

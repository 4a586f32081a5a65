// search-r3-bench: the CLI's errors, a full run on a small synthetic BEIR directory checked against
// src/eval, the embedded default (demo model from the cache), and the HTML report in Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { root, tempDir, tinyModel } from './helpers/models.mjs';

const require = createRequire(import.meta.url);
const { main } = require('../dist/cli/bench.js');
const { quantile, summarizeLatency } = require('../dist/bench/stats.js');
const { formatSig } = require('../dist/bench/table.js');
const { escapeXml } = require('../dist/bench/svg.js');
const { makeSyntheticDataset, writeSyntheticDataset, readBeirQrels, readRun, evaluate } = require('../dist/eval/index.js');
const run = promisify(execFile);
const bin = join(root, 'bin', 'search-r3-bench.js');

/** Runs main() in-process with captured output. */
async function bench(argv) {
  let stdout = '';
  let stderr = '';
  const out = { write: (s) => { stdout += s; return true; } };
  const err = { write: (s) => { stderr += s; return true; } };
  const code = await main(argv, out, err);
  return { code, stdout, stderr };
}

test('quantile interpolates between closest ranks; latency summary keeps every value', () => {
  assert.equal(quantile([4, 1, 3, 2], 0.5), 2.5);
  assert.equal(quantile([10], 0.95), 10);
  assert.equal(quantile([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 0.95), 95);
  assert.ok(Number.isNaN(quantile([], 0.5)));
  assert.deepEqual(summarizeLatency([3, 1, 2]), { samples: 3, p50Ms: 2, p95Ms: 2.9, meanMs: 2, valuesMs: [3, 1, 2] });
  assert.equal(formatSig(0.041234), '0.0412');
  assert.equal(formatSig(1868.4), '1868');
  assert.equal(formatSig(3.14159), '3.14');
  assert.equal(escapeXml(`<a href="x">&'</a>`), '&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;');
});

test('main: usage errors exit 2 and name the flag', async () => {
  const cases = [
    [['--retrievers', 'bm25,dense'], /--retrievers but received "dense"/],
    [['--limit-queries', 'abc'], /Expected an integer between 1 and \d+ for --limit-queries but received "abc"/],
    [['--max-reasoning-tokens', '0'], /for --max-reasoning-tokens but received "0"/],
    [['--retreivers', 'bm25'], /Unknown option "--retreivers".*did you mean "--retrievers"/],
    [['--retrievers', 'bm25,bm25'], /--retrievers names "bm25" twice/],
    [['--retrievers', 'bm25', '--model', 'm.gguf'], /--model needs a dense retriever/],
    [['extra'], /unexpected argument "extra"/],
  ];
  for (const [argv, message] of cases) {
    const r = await bench(argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line per error');
  }
  const help = await bench(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--max-reasoning-tokens N/);
});

test('main: a missing dataset, model or output directory exits 1 naming the file', async () => {
  const missing = join(tempDir(), 'no-such-dataset');
  let r = await bench(['--dataset', missing, '--retrievers', 'bm25']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `search-r3-bench: dataset directory ${missing} does not exist\n`);
  r = await bench(['--retrievers', 'bm25', '--json', join(missing, 'out.json')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`cannot write --json .*out\\.json: directory .*no-such-dataset does not exist`));
  const empty = mkdtempSync(join(tempDir(), 'empty-'));
  r = await bench(['--dataset', empty, '--retrievers', 'bm25']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /qrels\/test\.tsv/);
  r = await bench(['--retrievers', 'direct', '--model', join(missing, 'x.gguf'), '--limit-queries', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /model file .*x\.gguf does not exist/);
  // A --runs path with a file in the way fails before any retrieval, with one line naming it.
  const file = join(tempDir(), 'a-file');
  writeFileSync(file, 'x');
  r = await bench(['--retrievers', 'bm25', '--runs', join(file, 'runs')]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `search-r3-bench: cannot create the runs directory ${join(file, 'runs')}: a file is in the way\n`);
});

test('fitText cuts a document to the token budget and leaves short texts alone', async () => {
  const { fitText } = require('../dist/bench/dense.js');
  const { Model } = require('../dist/index.js');
  const model = await Model.load(await tinyModel());
  try {
    const short = 'Torkahaven is a growing town on the Torcor River.';
    assert.deepEqual(fitText(model, short, 100), { text: short, truncated: false });
    const long = 'The quick brown fox jumps over the lazy dog. '.repeat(200);
    const cut = fitText(model, long, 100);
    assert.equal(cut.truncated, true);
    const n = model.tokenize(cut.text, { addSpecial: false }).length;
    assert.ok(n <= 100 && n >= 90, `${n} tokens`);
    assert.ok(long.startsWith(cut.text.trimEnd()));
  } finally {
    model.dispose();
  }
});

const RUN_QUERIES = 12;
let smallRun; // the report of the full run below, reused by the HTML test

test('main: every retriever on a synthetic BEIR directory, quality equal to src/eval on the written runs', async () => {
  const dir = mkdtempSync(join(tempDir(), 'beir-'));
  await writeSyntheticDataset(dir, makeSyntheticDataset({ seed: 5, docs: 80, queries: 80 }));
  const out = mkdtempSync(join(tempDir(), 'out-'));
  const json = join(out, 'bench.json');
  const report = join(out, 'bench.html');
  const runs = join(out, 'runs');
  const r = await bench([
    '--dataset', dir, '--model', await tinyModel(), '--limit-queries', String(RUN_QUERIES), '--max-reasoning-tokens', '6',
    '--latency-queries', '5', '--threads', '1', '--json', json, '--report', report, '--runs', runs, '--quiet',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const res0 = JSON.parse(readFileSync(json, 'utf8'));
  assert.equal(res0.host.threads, 1, 'the threads the session reports, not the hardware count');
  assert.match(r.stdout, new RegExp(`; model on 1 of ${res0.host.cpus} CPU threads`));
  assert.equal(r.stderr, '', '--quiet prints nothing on stderr');
  assert.match(r.stdout, /nDCG@10\s+MAP\s+Recall@100\s+MRR@10/);
  const res = JSON.parse(readFileSync(json, 'utf8'));
  assert.equal(res.dataset.queries, RUN_QUERIES);
  assert.equal(res.dataset.queryIds.length, RUN_QUERIES);
  assert.equal(res.dataset.docs, 80);
  assert.equal(res.model.origin, 'file');
  assert.equal(res.model.trained, null);
  assert.deepEqual(res.retrievers.map((x) => x.name), ['bm25', 'direct', 'reason']);
  assert.ok(!res.notes.some((n) => /untrained/.test(n)), 'a user model is not called untrained');

  const { qrels: allQrels } = await readBeirQrels(dir, 'test');
  const qrels = new Map(res.dataset.queryIds.map((id) => [id, allQrels.get(id)]));
  for (const x of res.retrievers) {
    for (const k of ['ndcg10', 'map', 'recall100', 'mrr10']) assert.ok(x.quality[k] >= 0 && x.quality[k] <= 1, `${x.name} ${k}`);
    const s = x.speed;
    assert.ok(s.docsPerSecond > 0 && s.indexSeconds > 0 && s.queriesPerSecond > 0, x.name);
    assert.ok(s.peakRssMiB > 10, x.name);
    assert.equal(s.latency.samples, 5);
    assert.equal(s.latency.valuesMs.length, 5);
    assert.ok(s.latency.valuesMs.every((v) => v > 0));
    assert.ok(s.latency.p50Ms > 0 && s.latency.p50Ms <= s.latency.p95Ms);
    // The bench's figures are src/eval's on the run file it wrote (trec_eval -c; MRR@10 is -M 10).
    const { run: written } = await readRun(join(runs, `${x.name}.run`));
    assert.equal(written.queries.size, x.queriesWithResults);
    const e = evaluate(qrels, written, { measures: ['ndcg_cut.10', 'map', 'recall.100'], averageComplete: true }).summary;
    const mrr = evaluate(qrels, written, { measures: ['recip_rank'], averageComplete: true, maxDocsPerTopic: 10 }).summary.recip_rank;
    assert.deepEqual(x.quality, { ndcg10: e.ndcg_cut_10, map: e.map, recall100: e.recall_100, mrr10: mrr }, x.name);
    for (const docs of written.queries.values()) assert.ok(docs.length <= 100);
  }
  const [bm25, direct, reason] = res.retrievers;
  assert.ok(bm25.quality.ndcg10 > 0, 'BM25 finds the lexical matches of the synthetic set');
  assert.equal(bm25.speed.reasoningTokensPerQuery, 0);
  assert.equal(direct.speed.reasoningTokensPerQuery, 0);
  assert.equal(direct.queriesWithResults, RUN_QUERIES, 'dense retrieval always returns 100 documents');
  assert.equal(direct.speed.docsPerSecond, reason.speed.docsPerSecond, 'direct and reason share one corpus encoding');
  assert.ok(reason.speed.reasoningTokensPerQuery > 0 && reason.speed.reasoningTokensPerQuery <= 6);
  assert.equal(Object.values(reason.finishes).reduce((a, b) => a + b, 0), RUN_QUERIES);
  assert.ok(existsSync(report));
  smallRun = { res, report };
});

test('search-r3-bench defaults: the synthetic dataset, and the untrained demo model generated once into the cache', async () => {
  // A literal no-argument run encodes 300 documents (minutes on two cores); its two halves are
  // checked separately: the default dataset with BM25, the default model on a small directory.
  const lexical = await run(process.execPath, [bin, '--retrievers', 'bm25', '--quiet']);
  assert.match(lexical.stdout, /^dataset  synthetic \(seed 1\): 300 documents, 39 test queries$/m);
  assert.match(lexical.stdout, /^bm25\s+0\.\d{4}\s/m);

  const dir = mkdtempSync(join(tempDir(), 'beir-demo-'));
  await writeSyntheticDataset(dir, makeSyntheticDataset({ seed: 9, docs: 20, queries: 20 }));
  const cache = mkdtempSync(join(tempDir(), 'cache-'));
  const env = { ...process.env, SEARCH_R3_CACHE_DIR: cache };
  const args = [bin, '--dataset', dir, '--limit-queries', '3', '--latency-queries', '2', '--max-reasoning-tokens', '4', '--threads', '2'];
  const first = await run(process.execPath, [...args, '--retrievers', 'direct,reason'], { env });
  assert.match(first.stderr, /generated demo model .*demo-tiny-[0-9a-f]{12}\.gguf \(4 layers, n_embd 128, random weights\)/);
  assert.match(first.stdout, /demo model, untrained; qwen2, 4 layers, n_embd 128/);
  assert.match(first.stdout, /^note: untrained demo model: dense rows are a floor, not a result$/m);
  for (const name of ['direct', 'reason']) assert.match(first.stdout, new RegExp(`^${name}\\s+0\\.\\d{4}\\s`, 'm'));
  const files = readdirSync(cache).filter((f) => f.endsWith('.gguf'));
  assert.equal(files.length, 1);
  const second = await run(process.execPath, [...args, '--retrievers', 'direct'], { env });
  assert.match(second.stderr, new RegExp(`using cached demo model .*${files[0]}`));
});

function chromium() {
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']) if (existsSync(p)) return p;
  return null;
}

const browser = chromium();
test('the HTML report renders its charts in headless Chromium', { skip: browser ? false : 'no chromium binary (apt-get install chromium)' }, () => {
  assert.ok(smallRun, 'needs the full run above');
  const { res, report } = smallRun;
  const html = readFileSync(report, 'utf8');
  assert.doesNotMatch(html, /<script|<link|@import|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'self-contained: no script, link or remote URL');
  const profile = mkdtempSync(join(tmpdir(), 'search-r3-chromium-'));
  const flags = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`,
  ];
  const dom = spawnSync(browser, [...flags, '--dump-dom', `file://${report}`], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(dom.status, 0, dom.stderr);
  const svgs = dom.stdout.match(/<svg[^>]*class="chart /g) ?? [];
  assert.equal(svgs.length, 2, 'a quality chart and a latency chart');
  const bars = [...dom.stdout.matchAll(/<rect class="bar" data-series="([a-z0-9]+)" data-group="([a-z0-9]+)" data-value="([^"]+)"/g)];
  assert.equal(bars.length, res.retrievers.length * 4, 'one bar per retriever and measure');
  for (const x of res.retrievers) {
    for (const key of ['ndcg10', 'map', 'recall100', 'mrr10']) {
      const bar = bars.find((b) => b[1] === x.name && b[2] === key);
      assert.ok(bar, `${x.name} ${key}`);
      assert.equal(Number(bar[3]), x.quality[key]);
    }
  }
  const points = dom.stdout.match(/<circle class="latency-point"/g) ?? [];
  assert.equal(points.length, res.retrievers.reduce((a, x) => a + x.speed.latency.samples, 0), 'one dot per timed query');

  const png = join(profile, 'report.png');
  const shot = spawnSync(browser, [...flags, '--hide-scrollbars', '--window-size=900,1600', `--screenshot=${png}`, `file://${report}`], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(shot.status, 0, shot.stderr);
  const bytes = readFileSync(png);
  assert.equal(bytes.subarray(1, 4).toString('latin1'), 'PNG');
  assert.deepEqual([bytes.readUInt32BE(16), bytes.readUInt32BE(20)], [900, 1600]);
  assert.ok(statSync(png).size > 30_000, `a rendered page, not a blank one (${statSync(png).size} bytes)`);
});

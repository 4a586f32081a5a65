// search-r3-bench --task qa: scoring checked by hand, the baselines' methods, and the CLI end to end
// on a tiny generated model and synthetic multi-hop QA (the figures are whatever a random model
// gets; the test checks shapes and that every score follows from the answers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { lib, tempDir, tinyModel, track } from './helpers/models.mjs';

const require = createRequire(import.meta.url);
const { main } = require('../dist/cli/bench.js');
const { takeTask } = require('../dist/cli/bench-qa.js');
const { scoreQa, exactMatch, f1Score, substringMatch, syntheticQa, writeSyntheticQa, makeSyntheticDataset, directMethod, ragMethod, Model } = lib;

async function bench(argv) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { write: (s) => { stdout += s; return true; } }, { write: (s) => { stderr += s; return true; } });
  return { code, stdout, stderr };
}

const out = (answer) => ({ response: '', answer, generatedTokens: 1, promptTokens: 1, searches: 0 });

test('scoreQa: EM, F1 and substring EM per question, overall and per hop', () => {
  const items = [
    { id: 'a', question: 'q', goldenAnswers: ['Paris'], hops: 1 },
    { id: 'b', question: 'q', goldenAnswers: ['the Eiffel Tower'], hops: 2 },
    { id: 'c', question: 'q', goldenAnswers: ['wool'], hops: 2 },
    { id: 'd', question: 'q', goldenAnswers: ['x'], hops: 1 },
  ];
  // a: exact; b: F1 2/3, substring yes; c: no answer; d: wrong.
  const { scores, perHop } = scoreQa(items, [out('paris'), out('Eiffel tower in Paris'), out(null), out('y')]);
  const f1b = 2 * (2 / 4) * (2 / 2) / ((2 / 4) + (2 / 2));
  assert.deepEqual(scores, { em: 1 / 4, f1: (1 + f1b) / 4, subem: 2 / 4, answered: 3 / 4 });
  assert.deepEqual(perHop, [
    { hops: 1, questions: 2, em: 0.5, f1: 0.5, subem: 0.5, answered: 1 },
    { hops: 2, questions: 2, em: 0, f1: f1b / 2, subem: 0.5, answered: 0.5 },
  ]);
  assert.deepEqual(scoreQa([{ id: 'a', question: 'q', goldenAnswers: ['x'] }], [out('x')]).perHop, []);
  assert.throws(() => scoreQa(items, []), /Expected one output per question but received 0 outputs for 4 questions/);
});

test('takeTask splits --task off the command line', () => {
  assert.deepEqual(takeTask(['--task', 'qa', '--qa', 'q.jsonl']), { task: 'qa', argv: ['--qa', 'q.jsonl'] });
  assert.deepEqual(takeTask(['--task=retrieval']), { task: 'retrieval', argv: [] });
  assert.deepEqual(takeTask(['--dataset', 'd']), { task: 'retrieval', argv: ['--dataset', 'd'] });
  assert.throws(() => takeTask(['--task', 'chat']), { name: 'UsageError', message: 'Expected retrieval or qa for --task but received "chat"' });
});

test('direct and rag methods answer with the prompts they promise', async () => {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ sequences: 2, contextSize: 2048, threads: 2 }));
  const seen = [];
  const retriever = { name: 'script', async retrieve(queries, o) { seen.push([queries, o.topk]); return queries.map((q) => ({ docs: [{ id: 'd', contents: `"T"\nabout ${q}`, score: 1 }] })); } };
  const items = [{ id: 'a', question: 'who', goldenAnswers: ['x'] }, { id: 'b', question: 'what', goldenAnswers: ['y'] }];
  const rag = await ragMethod({ session, retriever, topk: 2, maxTokens: 4 }).answer(items);
  assert.deepEqual(seen, [[['who', 'what'], 2]]);
  const direct = await directMethod({ session, maxTokens: 4 }).answer(items);
  for (const o of [...rag, ...direct]) {
    assert.equal(o.generatedTokens, 4);
    assert.equal(o.answer, null);
  }
  assert.deepEqual(rag.map((o) => o.searches), [1, 1]);
  assert.deepEqual(direct.map((o) => o.searches), [0, 0]);
  // The RAG prompt holds the formatted document, so it is longer than the direct one.
  assert.ok(rag[0].promptTokens > direct[0].promptTokens + 5);
  const expectedPrompt = lib.buildRagPrompt('who', [{ contents: '"T"\nabout who' }]);
  assert.equal(rag[0].promptTokens, model.tokenize(expectedPrompt, { addSpecial: true, parseSpecial: true }).length);
});

test('search-r3-bench --task qa on synthetic QA writes a table, JSON and an HTML report whose scores follow from the answers', async () => {
  const dir = join(tempDir(), 'bench-qa');
  const qa = syntheticQa(makeSyntheticDataset({ seed: 2, docs: 40, queries: 30, multiHopFraction: 0.5 }));
  await writeSyntheticQa(dir, qa);
  const json = join(dir, 'qa.json');
  const html = join(dir, 'qa.html');
  const argv = ['--task', 'qa', '--qa', join(dir, 'test.jsonl'), '--corpus', join(dir, 'corpus.jsonl'), '--model', await tinyModel(),
    '--max-tokens', '8', '--latency-questions', '2', '--sequences', '4', '--threads', '2', '--json', json, '--report', html, '--quiet'];
  const r = await bench(argv);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^qa {7}.*test\.jsonl: \d+ questions \(/);
  assert.match(r.stdout, /\nmethod {6}EM {6}F1 {2}substring EM {2}answered\n/);
  const report = JSON.parse(readFileSync(json, 'utf8'));
  const items = qa.questions.test;
  assert.equal(report.task, 'qa');
  assert.equal(report.dataset.questions, items.length);
  assert.equal(report.dataset.docs, 40);
  assert.deepEqual(report.dataset.questionIds, items.map((i) => i.id));
  assert.equal(report.retriever, 'bm25');
  assert.deepEqual(report.methods.map((m) => m.name), ['direct', 'rag', 'agent']);
  for (const m of report.methods) {
    assert.equal(m.answers.length, items.length);
    const em = items.map((item, i) => (m.answers[i] === null ? 0 : exactMatch(m.answers[i], item.goldenAnswers)));
    const f1 = items.map((item, i) => (m.answers[i] === null ? 0 : f1Score(m.answers[i], item.goldenAnswers)));
    const sub = items.map((item, i) => (m.answers[i] === null ? 0 : substringMatch(m.answers[i], item.goldenAnswers)));
    const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.equal(m.scores.em, avg(em));
    assert.equal(m.scores.f1, avg(f1));
    assert.equal(m.scores.subem, avg(sub));
    assert.deepEqual(m.perHop.map((h) => h.hops), [...new Set(items.map((i) => i.hops))].sort());
    assert.equal(m.perHop.reduce((n, h) => n + h.questions, 0), items.length);
    assert.equal(m.latency.samples, 2);
    // The agent writes up to --max-tokens per turn, over its turns (4 by default).
    assert.ok(m.generatedTokensPerQuestion > 0 && m.generatedTokensPerQuestion <= (m.name === 'agent' ? 4 * 8 : 8));
    if (m.name !== 'agent') assert.equal(m.searchesPerQuestion, m.name === 'rag' ? 1 : 0);
  }
  assert.ok(report.methods[1].promptTokensPerQuestion > report.methods[0].promptTokensPerQuestion);
  const page = readFileSync(html, 'utf8');
  assert.match(page, /<svg[^>]*class="chart/);
  assert.match(page, /Exact match per number of hops/);
  assert.equal((page.match(/class="bar"/g) ?? []).length, 3 * 3 + 3 * report.methods[0].perHop.length);
  // Existing outputs are refused without --force, before any work.
  const again = await bench(argv.filter((a) => a !== '--force'));
  assert.equal(again.code, 1);
  assert.match(again.stderr, /--json/);
});

test('search-r3-bench --task qa: usage errors exit 2 with one line', async () => {
  const qa = join(tempDir(), 'one.jsonl');
  writeFileSync(qa, '{"question":"q","golden_answers":["a"]}\n');
  for (const [argv, message] of [
    [['--task', 'qa', '--qa', qa], /--qa needs --corpus/],
    [['--task', 'qa', '--methods', 'ircot'], /Expected a comma-separated list of direct, rag, agent for --methods but received "ircot"/],
    [['--task', 'qa', '--retriever', 'sparse'], /Expected bm25, dense, hybrid or an http\(s\) URL for --retriever but received "sparse"/],
    [['--task', 'qa', '--topk', '0'], /--topk/],
    [['--task', 'qa', '--dataset', 'x'], /--dataset/],
  ]) {
    const r = await bench(argv);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const help = await bench(['--task', 'qa', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: search-r3-bench --task qa/);
  assert.equal(existsSync(join(tempDir(), 'never.json')), false);
});

async function qaDir(name) {
  const dir = join(tempDir(), name);
  const qa = syntheticQa(makeSyntheticDataset({ seed: 4, docs: 30, queries: 12, multiHopFraction: 0.5 }));
  await writeSyntheticQa(dir, qa);
  return { dir, qa, base: ['--task', 'qa', '--qa', join(dir, 'test.jsonl'), '--corpus', join(dir, 'corpus.jsonl'), '--model', await tinyModel(),
    '--max-tokens', '4', '--latency-questions', '1', '--sequences', '2', '--threads', '2', '--methods', 'rag', '--quiet'] };
}

test('--task qa --retriever URL sends each question to a Search-R1 /retrieve server', async () => {
  const { dir, qa, base } = await qaDir('bench-qa-url');
  const seen = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const { queries, topk } = JSON.parse(body);
      seen.push(...queries.map((q) => [q, topk]));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ result: queries.map(() => [{ document: { id: qa.corpus[0].id, contents: qa.corpus[0].contents }, score: 1 }]) }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${server.address().port}/retrieve`;
    const json = join(dir, 'url.json');
    const r = await bench([...base, '--retriever', url, '--topk', '2', '--json', json]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(readFileSync(json, 'utf8'));
    assert.equal(report.retriever, url);
    // Every question once in the batched pass, then the first one again for latency.
    const questions = qa.questions.test.map((q) => q.question);
    assert.deepEqual(seen, [...questions, questions[0]].map((q) => [q, 2]));
  } finally {
    server.close();
  }
});

test('--task qa --retriever hybrid embeds the corpus with the model and fuses it with BM25', async () => {
  const { dir, base } = await qaDir('bench-qa-hybrid');
  const json = join(dir, 'hybrid.json');
  const r = await bench([...base, '--retriever', 'hybrid', '--json', json]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(readFileSync(json, 'utf8'));
  assert.equal(report.retriever, 'hybrid');
  assert.equal(report.methods[0].searchesPerQuestion, 1);
});

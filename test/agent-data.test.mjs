// QA data (FlashRAG / Search-R1 JSONL), multi-hop QA from the synthetic dataset, and the rule-written
// warm-up trajectories with their masked training sequences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lib, tempDir, tinyModel, track } from './helpers/models.mjs';

const {
  readQaJsonl, writeQaJsonl, syntheticQa, writeSyntheticQa, makeSyntheticDataset, readCorpus, Bm25Index, Bm25Retriever,
  warmupTrajectories, warmupSequences, emFormatReward, responseText, SearchR3Error, Model,
} = lib;

function file(name, text) {
  const p = join(tempDir(), name);
  writeFileSync(p, text);
  return p;
}

test('readQaJsonl reads questions, keeps extra fields, numbers missing ids, and round-trips', async () => {
  const p = file('qa.jsonl', '{"id":"a","question":"who?","golden_answers":["X","x2"],"hops":2,"split":"test"}\n\n{"question":"what?","golden_answers":["Y"]}\n');
  const { items, report } = await readQaJsonl(p);
  assert.deepEqual(items, [
    { id: 'a', question: 'who?', goldenAnswers: ['X', 'x2'], hops: 2, metadata: { split: 'test' } },
    { id: '1', question: 'what?', goldenAnswers: ['Y'] },
  ]);
  assert.equal(report.records, 2);
  const out = join(tempDir(), 'qa-out.jsonl');
  await writeQaJsonl(out, items);
  assert.deepEqual((await readQaJsonl(out)).items, items);
});

test('readQaJsonl names FILE:LINE for bad records', async () => {
  const cases = [
    // A record without an id is named by its position among the questions (the second here: "1").
    ['{"question":"q","golden_answers":[]}', 'expected "golden_answers" to be a non-empty array of strings in question "1"'],
    ['{"question":"q","golden_answers":"x"}', 'expected "golden_answers" to be a non-empty array of strings in question "1"'],
    ['{"golden_answers":["x"]}', 'expected "question" to be a non-empty string in question "1"'],
    ['{"id":"a","question":"q","golden_answers":["x"],"hops":0}', 'expected "hops" to be a positive integer in question "a"'],
    ['[1]', 'expected a JSON object {"question", "golden_answers"}'],
  ];
  for (const [line, reason] of cases) {
    const p = file('bad.jsonl', `{"id":"ok","question":"q","golden_answers":["a"]}\n${line}\n`);
    await assert.rejects(readQaJsonl(p), (e) => e instanceof SearchR3Error && e.code === 'ERR_FORMAT' && e.message === `${p}:2: ${reason}`, line);
  }
  const dup = file('dup.jsonl', '{"id":"a","question":"q","golden_answers":["x"]}\n{"id":"a","question":"r","golden_answers":["y"]}\n');
  await assert.rejects(readQaJsonl(dup), { message: `${dup}:2: question id "a" appears again (first at line 1)` });
  const skipped = await readQaJsonl(dup, { skipMalformed: true });
  assert.equal(skipped.items.length, 1);
  assert.equal(skipped.report.skipped, 1);
  await assert.rejects(readQaJsonl(file('empty.jsonl', '\n')), { code: 'ERR_FORMAT', message: /expected at least one question/ });
  await assert.rejects(readQaJsonl(join(tempDir(), 'missing.jsonl')), { code: 'ERR_FILE' });
});

test('syntheticQa makes multi-hop questions with golden answers, hops and a FlashRAG corpus', async () => {
  const ds = makeSyntheticDataset({ seed: 3, docs: 60, queries: 40, multiHopFraction: 0.5 });
  const qa = syntheticQa(ds);
  assert.equal(qa.corpus.length, 60);
  const d0 = ds.corpus[0];
  assert.deepEqual(qa.corpus[0], { id: d0.id, contents: `"${d0.title}"\n${d0.text}` });
  const all = [...qa.questions.train, ...qa.questions.dev, ...qa.questions.test];
  assert.equal(all.length, 40);
  for (const item of all) {
    const q = ds.queries.find((x) => x.id === item.id);
    assert.equal(item.question, q.text);
    assert.deepEqual(item.goldenAnswers, [q.answer]);
    assert.equal(item.hops, 1 + q.bridges.length);
    assert.equal(qa.questions[q.split].includes(item), true);
  }
  assert.ok(all.some((i) => i.hops === 2) && all.some((i) => i.hops === 3));
  const dir = join(tempDir(), 'synthetic-qa');
  await writeSyntheticQa(dir, qa);
  assert.deepEqual((await readQaJsonl(join(dir, 'test.jsonl'))).items, qa.questions.test);
  const corpus = await readCorpus(join(dir, 'corpus.jsonl'));
  assert.equal(corpus.kind, 'flashrag');
  assert.deepEqual(corpus.docs, qa.corpus);
  assert.match(readFileSync(join(dir, 'train.jsonl'), 'utf8').split('\n')[0], /"golden_answers":\[/);
});

function bm25Over(corpus) {
  const index = new Bm25Index();
  const contents = new Map();
  for (const d of corpus) {
    index.add(d.id, d.contents);
    contents.set(d.id, d.contents);
  }
  return { retriever: new Bm25Retriever({ index, contents }), contents };
}

// A retriever that answers from a script, so the rule's turns can be checked exactly.
function scripted(script) {
  const calls = [];
  return { calls, retriever: { name: 'script', async retrieve(queries) { calls.push([...queries]); return queries.map((q) => ({ docs: script[q] ?? [] })); } } };
}

test('warmupTrajectories: search with the question, follow the bridge, answer with the gold', async () => {
  const docs = {
    inv: { id: 'inv', contents: '"Underwater printer"\nIn 1769, Tamvel Penwen designed an underwater printer.', score: 2 },
    person: { id: 'person', contents: '"Tamvel Penwen"\nTamvel Penwen grew up in Martamholm.', score: 1 },
  };
  const { retriever, calls } = scripted({ 'Where did the maker of the submersible printer grow up?': [docs.inv], 'Tamvel Penwen': [docs.person] });
  const contents = new Map(Object.values(docs).map((d) => [d.id, d.contents]));
  const items = [
    { id: 'q1', question: 'Where did the maker of the submersible printer grow up?', goldenAnswers: ['Martamholm'], hops: 2, metadata: { target: 'person', bridges: ['inv'] } },
    { id: 'q2', question: 'Unanswerable?', goldenAnswers: ['nowhere'] },
  ];
  const { trajectories, skipped } = await warmupTrajectories(items, { retriever, contents });
  assert.deepEqual(skipped, ['q2']);
  assert.deepEqual(calls, [['Where did the maker of the submersible printer grow up?', 'Unanswerable?'], ['Tamvel Penwen']]);
  const [t] = trajectories;
  assert.deepEqual(t.searches, ['Where did the maker of the submersible printer grow up?', 'Tamvel Penwen']);
  assert.equal(t.answer, 'Martamholm');
  assert.equal(t.stop, 'answer');
  assert.deepEqual(t.segments.map((s) => s.origin), ['prompt', 'model', 'information', 'model', 'information', 'model']);
  assert.equal(t.segments[5].text, '<think>The retrieved documents contain the answer.</think>\n<answer> Martamholm </answer>');
  assert.equal(emFormatReward(responseText(t), items[0].goldenAnswers), 1);
});

test('warmup trajectories on synthetic QA become sequences whose targets are the model turns only', async () => {
  const qa = syntheticQa(makeSyntheticDataset({ seed: 5, docs: 80, queries: 40, multiHopFraction: 0.5 }));
  const { retriever, contents } = bm25Over(qa.corpus);
  const { trajectories, skipped } = await warmupTrajectories(qa.questions.train, { retriever, contents, topk: 3 });
  assert.equal(trajectories.length + skipped.length, qa.questions.train.length);
  assert.ok(trajectories.length > 0);
  assert.ok(trajectories.some((t) => t.searches.length > 1), 'some question needed a second search');
  for (const t of trajectories) assert.equal(emFormatReward(responseText(t), qa.questions.train.find((q) => q.question === t.question).goldenAnswers), 1);
  const tokenize = (s, first) => Int32Array.from([...(first ? '^' : '') + s].map((c) => c.codePointAt(0)));
  const seqs = warmupSequences(trajectories, tokenize);
  seqs.forEach((seq, i) => {
    const model = trajectories[i].segments.filter((s) => s.origin === 'model').reduce((n, s) => n + s.tokens.length, 0);
    assert.equal(seq.targets.reduce((a, b) => a + b, 0), model);
    assert.equal(seq.tokens[0], '^'.codePointAt(0));
  });
});

test('with the model tokenizer, other retrieved text changes no target token, only where the targets sit', async () => {
  const model = track(await Model.load(await tinyModel()));
  const tokenize = (s, first) => model.tokenize(s, { addSpecial: first, parseSpecial: false });
  const item = { id: 'q', question: 'Where did the maker grow up?', goldenAnswers: ['Martamholm'] };
  const make = async (text) => {
    const doc = { id: 'd', contents: `"Title"\n${text} Martamholm.`, score: 1 };
    const retriever = { name: 'script', async retrieve(queries) { return queries.map(() => ({ docs: [doc] })); } };
    const { trajectories } = await warmupTrajectories([item], { retriever });
    return warmupSequences(trajectories, tokenize)[0];
  };
  const a = await make('A short note about');
  const b = await make('An entirely different and much longer passage of retrieved text, about');
  assert.notEqual(a.tokens.length, b.tokens.length);
  const targetTokens = (seq) => [...seq.tokens].filter((_, i) => seq.targets[i] === 1);
  assert.deepEqual(targetTokens(a), targetTokens(b));
  assert.ok(targetTokens(a).length > 10);
  // The targets are exactly the model turns' tokens, each tokenized on its own.
  const turns = ['<think>I need to search for information to answer this question.</think>\n<search> Where did the maker grow up? </search>',
    '<think>The retrieved documents contain the answer.</think>\n<answer> Martamholm </answer>'];
  assert.deepEqual(targetTokens(a), turns.flatMap((t) => [...tokenize(t, false)]));
});

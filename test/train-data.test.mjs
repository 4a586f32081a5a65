// Stage-1 training data: JSONL and BEIR readers with exact errors, prompt encoding with
// truncation that keeps <|embed_token|>, and the synthetic retrieval task.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lib, tempDir, tinyModel, track } from './helpers/models.mjs';
import { encodeEmbedText, encodePair, loadTrainingData, makeRetrievalTask, readBeirPairs, readPairsJsonl } from '../dist/train/data.js';
import { writeBeir } from '../dist/eval/index.js';
import { Bm25Index } from '../dist/store/index.js';

const { Model, buildEmbedPrompt, DEFAULT_EMBED_TEMPLATE } = lib;
const dir = () => mkdtempSync(join(tempDir(), 'data-'));

function jsonl(lines) {
  const path = join(dir(), 'train.jsonl');
  writeFileSync(path, lines.join('\n'));
  return path;
}

test('readPairsJsonl: records with default ids and negatives; blank lines, CRLF and a BOM are fine', async () => {
  const path = jsonl([
    '\uFEFF{"query":"q one","positive":"p one","negatives":["n1","n2"]}\r',
    '',
    '   ',
    '{"id":"x7","query":"q two","positive":"p two","positive_id":"doc-2"}',
    '{"query":"q three","positive":"p three","negatives":[]}',
  ]);
  assert.deepEqual(await readPairsJsonl(path), [
    { id: 'line-1', query: 'q one', positive: 'p one', negatives: ['n1', 'n2'], source: `${path}:1` },
    { id: 'x7', query: 'q two', positive: 'p two', negatives: [], positiveId: 'doc-2', source: `${path}:4` },
    { id: 'line-5', query: 'q three', positive: 'p three', negatives: [], source: `${path}:5` },
  ]);
});

test('readPairsJsonl: a bad record names the file, the line and what was expected', async () => {
  const ok = '{"query":"q","positive":"p"}';
  const cases = [
    ['{"query":42,"positive":"p"}', 'expected non-empty string for query but received 42 of type number'],
    ['{"positive":"p"}', 'expected non-empty string for query but received undefined of type undefined'],
    ['{"query":"q","positive":"  "}', 'expected non-empty string for positive but received "  " of type string'],
    ['{"query":"q","positive":"p","negatives":"n"}', 'expected array of non-empty strings for negatives but received "n" of type string'],
    ['{"query":"q","positive":"p","negatives":["n",""]}', 'expected non-empty string for negatives[1] but received "" of type string'],
    ['{"query":"q","positive":"p","negative":["n"]}', 'unknown key "negative" in the record; did you mean "negatives"?'],
    ['{"query":"q","positive":"p","id":3}', 'expected non-empty string for id but received 3 of type number'],
    ['["q","p"]', 'expected JSON object { query, positive, negatives? } for the record but received array(2) of type array'],
    ['{"id":"line-1","query":"q","positive":"p"}', 'duplicate id "line-1" (first on line 1)'],
  ];
  for (const [bad, why] of cases) {
    const path = jsonl([ok, '', bad]);
    await assert.rejects(readPairsJsonl(path), { name: 'SearchR3Error', code: 'ERR_FORMAT', message: `${path}:3: ${why}` }, bad);
  }
  const path = jsonl([ok, '{"query": "q",']);
  await assert.rejects(readPairsJsonl(path), { code: 'ERR_FORMAT', message: new RegExp(`^${path}:2: invalid JSON \\(.+\\)$`) });
});

test('readPairsJsonl: empty and missing files', async () => {
  const empty = jsonl([]);
  await assert.rejects(readPairsJsonl(empty), { code: 'ERR_FORMAT', message: `${empty}: no training pairs (the file is empty or has only blank lines)` });
  const blank = jsonl(['', '  ', '']);
  await assert.rejects(readPairsJsonl(blank), { code: 'ERR_FORMAT', message: `${blank}: no training pairs (the file is empty or has only blank lines)` });
  const missing = join(dir(), 'nope.jsonl');
  await assert.rejects(readPairsJsonl(missing), { code: 'ERR_FILE', message: `Cannot read training pairs "${missing}" (ENOENT)` });
});

async function beirDir({ corpus, queries, qrels }) {
  const d = dir();
  await writeBeir(d, {
    corpus: corpus ?? [
      { id: 'd1', title: 'Hamlet', text: 'A tragedy by Shakespeare.' },
      { id: 'd2', title: '', text: 'Macbeth is short.' },
      { id: 'd3', title: 'Faust', text: 'By Goethe.' },
      { id: 'd4', title: 'Unjudged', text: 'Never read into memory.' },
    ],
    queries: queries ?? [{ id: 'q1', text: 'who wrote hamlet' }, { id: 'q2', text: 'scottish play' }, { id: 'q3', text: 'only negatives' }],
    qrels,
  });
  return d;
}

test('readBeirPairs: one record per relevant document, score-0 documents as hard negatives, title + newline + text', async () => {
  const train = new Map([
    ['q1', new Map([['d1', 1], ['d2', 0], ['d3', 0]])],
    ['q2', new Map([['d2', 2], ['d1', 1], ['d3', 0]])],
    ['q3', new Map([['d3', 0]])],
  ]);
  const d = await beirDir({ qrels: { train, test: new Map([['q1', new Map([['d3', 1]])]]) } });
  const pairs = await readBeirPairs(d);
  assert.deepEqual(pairs, [
    { id: 'q1/d1', query: 'who wrote hamlet', positive: 'Hamlet\nA tragedy by Shakespeare.', negatives: ['Macbeth is short.', 'Faust\nBy Goethe.'], positiveId: 'd1' },
    { id: 'q2/d2', query: 'scottish play', positive: 'Macbeth is short.', negatives: ['Faust\nBy Goethe.'], positiveId: 'd2' },
    { id: 'q2/d1', query: 'scottish play', positive: 'Hamlet\nA tragedy by Shakespeare.', negatives: ['Faust\nBy Goethe.'], positiveId: 'd1' },
  ]);
  pairs[1].negatives.push('x');
  assert.deepEqual(pairs[2].negatives, ['Faust\nBy Goethe.'], 'records of one query do not share their negatives array');
  assert.deepEqual(await readBeirPairs(d, { split: 'test' }), [{ id: 'q1/d3', query: 'who wrote hamlet', positive: 'Faust\nBy Goethe.', negatives: [], positiveId: 'd3' }]);
  assert.deepEqual(await loadTrainingData(d, { split: 'test' }), await readBeirPairs(d, { split: 'test' }));
});

test('readBeirPairs: a missing split, query or document is a clear error', async () => {
  const d = await beirDir({ qrels: { test: new Map([['q1', new Map([['d1', 1]])]]) } });
  await assert.rejects(readBeirPairs(d), { code: 'ERR_FILE', message: `BEIR dataset ${d} has no train split: ${join(d, 'qrels', 'train.tsv')} does not exist (splits present: test)` });
  await assert.rejects(readBeirPairs(d, { split: 'dev' }), { code: 'ERR_FILE', message: /has no dev split: .*dev\.tsv does not exist \(splits present: test\)$/ });
  await assert.rejects(readBeirPairs(d, { split: 'valid' }), { name: 'TypeError', message: 'Expected one of "train", "dev", "test" for options.split but received "valid" of type string' });
  const noDoc = await beirDir({ qrels: { train: new Map([['q1', new Map([['d1', 1], ['d9', 0]])]]) } });
  await assert.rejects(readBeirPairs(noDoc), { code: 'ERR_FORMAT', message: `${join(noDoc, 'qrels', 'train.tsv')}: document "d9" is judged for query "q1" but ${join(noDoc, 'corpus.jsonl')} has no such document` });
  const noQuery = await beirDir({ qrels: { train: new Map([['q7', new Map([['d1', 1]])]]) } });
  await assert.rejects(readBeirPairs(noQuery), { code: 'ERR_FORMAT', message: `${join(noQuery, 'qrels', 'train.tsv')}: query "q7" is judged but ${join(noQuery, 'queries.jsonl')} has no such query` });
  const noPositive = await beirDir({ qrels: { train: new Map([['q3', new Map([['d3', 0]])]]) } });
  await assert.rejects(readBeirPairs(noPositive), { code: 'ERR_FORMAT', message: `${join(noPositive, 'qrels', 'train.tsv')}: no query has a relevant document (score > 0)` });
});

test('loadTrainingData: a file is JSONL, a directory BEIR; a missing path is ERR_FILE', async () => {
  const path = jsonl(['{"query":"q","positive":"p"}']);
  assert.deepEqual(await loadTrainingData(path), [{ id: 'line-1', query: 'q', positive: 'p', negatives: [], source: `${path}:1` }]);
  const d = await beirDir({ qrels: { train: new Map([['q2', new Map([['d2', 1]])]]) } });
  assert.deepEqual(await loadTrainingData(d), [{ id: 'q2/d2', query: 'scottish play', positive: 'Macbeth is short.', negatives: [], positiveId: 'd2' }]);
  const missing = join(dir(), 'none');
  await assert.rejects(loadTrainingData(missing), { code: 'ERR_FILE', message: `Cannot read training data "${missing}" (ENOENT)` });
  await assert.rejects(loadTrainingData(path, { splt: 'train' }), { name: 'TypeError', message: 'Unknown option "splt" in options; did you mean "split"?' });
});

test('encodePair: the prompts buildEmbedPrompt builds, each ending in <|embed_token|>', async () => {
  const model = track(await Model.load(await tinyModel()));
  const t = DEFAULT_EMBED_TEMPLATE;
  const record = { id: 'a', query: 'who wrote Hamlet', positive: 'Hamlet\nA tragedy by Shakespeare.', negatives: ['Faust\nBy Goethe.', 'Macbeth'] };
  const ids = encodePair(model, t, record);
  assert.deepEqual(ids.query, buildEmbedPrompt(model, t, 'query', record.query));
  assert.deepEqual(ids.positive, buildEmbedPrompt(model, t, 'document', record.positive));
  assert.deepEqual(ids.negatives, record.negatives.map((n) => buildEmbedPrompt(model, t, 'document', n)));
  for (const x of [ids.query, ids.positive, ...ids.negatives]) assert.equal(x.at(-1), model.info.embedTokenId);
  assert.notDeepEqual(ids.query.subarray(0, 8), ids.positive.subarray(0, 8), 'query and document sides use different system turns');
});

test('encodePair: a long text is cut, not the template; the result is the prompt of the longest prefix that fits', async () => {
  const model = track(await Model.load(await tinyModel()));
  const t = DEFAULT_EMBED_TEMPLATE;
  const text = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
  const bare = buildEmbedPrompt(model, t, 'document', '');
  const maxTokens = bare.length + 40;
  const ids = encodeEmbedText(model, t, 'document', text, maxTokens);
  assert.ok(ids.length <= maxTokens && ids.length > maxTokens - 5, `${ids.length} tokens for a budget of ${maxTokens}`);
  // Same head and tail as the template alone, so the tail still ends in <|embed_token|>.
  const withX = buildEmbedPrompt(model, t, 'document', 'x');
  let head = 0;
  while (withX[head] === bare[head]) head++;
  const tail = bare.length - head;
  assert.deepEqual(ids.subarray(0, head), bare.subarray(0, head));
  assert.deepEqual(ids.subarray(ids.length - tail), bare.subarray(head));
  assert.equal(ids.at(-1), model.info.embedTokenId);
  // It is exactly what inference builds for a prefix of the text, and one more character would not fit.
  const body = model.detokenize(ids.subarray(head, ids.length - tail));
  assert.ok(text.startsWith(body) && body.length > 50, JSON.stringify(body));
  assert.deepEqual(ids, buildEmbedPrompt(model, t, 'document', body));
  assert.ok(buildEmbedPrompt(model, t, 'document', text.slice(0, body.length + 1)).length > maxTokens);

  const pair = encodePair(model, t, { id: 'a', query: text, positive: text, negatives: [text] }, { maxTokens });
  assert.ok([pair.query, pair.positive, ...pair.negatives].every((x) => x.length <= maxTokens && x.at(-1) === model.info.embedTokenId));
  const short = encodePair(model, t, { id: 'b', query: 'short', positive: 'short', negatives: [] }, { maxTokens });
  assert.deepEqual(short.query, buildEmbedPrompt(model, t, 'query', 'short'), 'a text that fits is untouched');
});

test('encodePair: a surrogate pair is never split when cutting', async () => {
  const model = track(await Model.load(await tinyModel()));
  const t = DEFAULT_EMBED_TEMPLATE;
  // "x 🦩" is 4 tokens (byte pieces) but "x " + half of it is 2 (" �"), so a prefix ending inside
  // the emoji often fits where the whole emoji does not: only the cut rule keeps it out.
  const text = Array.from({ length: 60 }, () => 'x 🦩').join(' ');
  const bare = buildEmbedPrompt(model, t, 'document', '');
  for (let extra = 1; extra <= 12; extra++) {
    const ids = encodeEmbedText(model, t, 'document', text, bare.length + extra);
    assert.ok(ids.length <= bare.length + extra);
    const prompt = model.detokenize(ids);
    assert.ok(!prompt.includes('\uFFFD'), `extra ${extra}: ${JSON.stringify(prompt)}`);
  }
});

test('encodePair: errors for a template too long, a template without <|embed_token|>, a model without it', async () => {
  const model = track(await Model.load(await tinyModel()));
  const t = DEFAULT_EMBED_TEMPLATE;
  const record = { id: 'a', query: 'q', positive: 'p', negatives: [] };
  const bare = buildEmbedPrompt(model, t, 'query', '').length;
  assert.throws(() => encodePair(model, t, { ...record, query: 'a much longer query' }, { maxTokens: bare - 1 }), {
    code: 'ERR_CONTEXT', message: `the query prompt template alone takes ${bare} tokens, more than maxTokens ${bare - 1}`,
  });
  assert.throws(() => encodePair(model, { ...t, directAssistant: 'The embedding is' }, record), {
    code: 'ERR_MODEL', message: "the query prompt does not end in <|embed_token|>; the template's directAssistant must end with it",
  });
  assert.throws(() => encodePair(model, t, record, { maxTokens: 0 }), { name: 'RangeError', message: 'Expected integer between 1 and Infinity for options.maxTokens but received 0 of type number' });
  assert.throws(() => encodePair(model, t, record, { maxToken: 8 }), { name: 'TypeError', message: 'Unknown option "maxToken" in options; did you mean "maxTokens"?' });
  assert.throws(() => encodePair(model, t, { query: 'q', positive: 'p' }), { name: 'TypeError', message: 'Expected PairRecord { id, query, positive, negatives } for record but received object of type object' });
  const plainPath = await tinyModel({ embedToken: false });
  const plain = track(await Model.load(plainPath));
  assert.throws(() => encodePair(plain, t, record), { code: 'ERR_MODEL', message: `${plainPath} has no <|embed_token|>; add it with \`search-r3 add-embed-token\`` });
});

test('makeRetrievalTask: deterministic, held-out split disjoint from training, not solvable by word overlap', () => {
  const task = makeRetrievalTask({ seed: 1 });
  assert.deepEqual(makeRetrievalTask({ seed: 1 }), task);
  assert.notDeepEqual(makeRetrievalTask({ seed: 2 }).train, task.train);
  const { train, heldOut } = task;
  assert.equal(train.length, 30);
  assert.equal(heldOut.queries.length, 30);
  assert.equal(heldOut.qrels.size, 30);
  for (const r of train) {
    assert.equal(r.negatives.length, 3);
    assert.ok(!r.negatives.includes(r.positive));
    assert.equal(new Set(r.negatives).size, 3);
  }
  const trainDocs = new Set(train.flatMap((r) => [r.positive, ...r.negatives]));
  const trainQueries = new Set(train.map((r) => r.query));
  const heldDocs = new Map(heldOut.corpus.map((d) => [d.id, d.title ? `${d.title}\n${d.text}` : d.text]));
  assert.equal(trainDocs.size + heldDocs.size, 100, 'every generated document is on exactly one side');
  for (const text of heldDocs.values()) assert.ok(!trainDocs.has(text), `held-out document seen in training: ${text}`);
  for (const q of heldOut.queries) {
    assert.ok(!trainQueries.has(q.text), `held-out query seen in training: ${q.text}`);
    const judged = [...heldOut.qrels.get(q.id).keys()];
    assert.equal(judged.length, 1);
    assert.ok(heldDocs.has(judged[0]), `the answer of ${q.id} is in the held-out corpus`);
  }
  // BM25 over the held-out corpus gets few answers first: queries use other words than documents.
  const bm25 = new Bm25Index();
  for (const [id, text] of heldDocs) bm25.add(id, text);
  const top1 = heldOut.queries.filter((q) => heldOut.qrels.get(q.id).has(bm25.search(q.text, 1)[0]?.id)).length;
  assert.ok(top1 <= 10, `BM25 answered ${top1} of 30 held-out queries first`);

  assert.equal(makeRetrievalTask({ seed: 5, docs: 200, queries: 100, trainFraction: 0.8, negatives: 1 }).train.length, 80);
  assert.throws(() => makeRetrievalTask({ negatives: 30 }), { name: 'RangeError', message: /^Expected at most \d+ negatives for 60 queries over 100 documents but received 30; use more queries or fewer negatives$/ });
  assert.throws(() => makeRetrievalTask({ seeds: 1 }), { name: 'TypeError', message: 'Unknown option "seeds" in options; did you mean "seed"?' });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBeirCorpus, readBeirQrels, readBeirQueries, writeBeir } from '../dist/eval/index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'eval-beir-'));

async function collect(stream) {
  const out = [];
  for await (const r of stream) out.push(r);
  return out;
}

test('writeBeir + readers: round trip in BEIR layout, corpus from an async stream', async () => {
  const dir = tmp();
  async function* corpus() {
    for (let i = 0; i < 1000; i++) yield { id: `d${i}`, title: i % 2 ? `T${i}` : '', text: `text "${i}"\twith tab` };
  }
  const qrels = new Map([['q1', new Map([['d1', 2], ['d7', 0]])]]);
  await writeBeir(dir, { corpus: corpus(), queries: [{ id: 'q1', text: 'what?' }, { id: 'q2', text: 'why', metadata: { answer: 'x' } }], qrels: { test: qrels } });
  assert.deepEqual(readdirSync(dir).sort(), ['corpus.jsonl', 'qrels', 'queries.jsonl']);
  assert.deepEqual(readdirSync(join(dir, 'qrels')), ['test.tsv']);
  assert.equal(readFileSync(join(dir, 'qrels', 'test.tsv'), 'utf8'), 'query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td7\t0\n');
  assert.equal(readFileSync(join(dir, 'corpus.jsonl'), 'utf8').split('\n')[1], '{"_id":"d1","title":"T1","text":"text \\"1\\"\\twith tab"}');
  const stream = readBeirCorpus(dir);
  const docs = await collect(stream);
  assert.equal(docs.length, 1000);
  assert.deepEqual(docs[3], { id: 'd3', title: 'T3', text: 'text "3"\twith tab' });
  assert.equal(stream.report.records, 1000);
  assert.deepEqual(await collect(readBeirQueries(dir)), [{ id: 'q1', text: 'what?' }, { id: 'q2', text: 'why', metadata: { answer: 'x' } }]);
  const { qrels: back, report } = await readBeirQrels(dir, 'test');
  assert.deepEqual(back, qrels);
  assert.equal(report.records, 2);
});

test('readBeirCorpus: streams lazily, stopping early reads no further', async () => {
  const dir = tmp();
  const lines = [];
  for (let i = 0; i < 50000; i++) lines.push(JSON.stringify({ _id: `d${i}`, title: '', text: 'x'.repeat(100) }));
  lines.push('not json');
  writeFileSync(join(dir, 'corpus.jsonl'), lines.join('\n'));
  let n = 0;
  for await (const _ of readBeirCorpus(dir)) if (++n === 10) break; // the bad last line is never reached
  assert.equal(n, 10);
});

test('BEIR readers: malformed lines name file and line, or are skipped and counted', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'corpus.jsonl'), '{"_id":"a","text":"ok"}\n{"_id":"b"}\n{"_id":7,"title":null,"text":"num id"}\n[1]\n');
  const corpus = join(dir, 'corpus.jsonl');
  await assert.rejects(collect(readBeirCorpus(dir)), { name: 'SearchR3Error', code: 'ERR_FORMAT', message: `${corpus}:2: expected "text" to be a string in document "b"` });
  const s = readBeirCorpus(dir, { skipMalformed: true });
  assert.deepEqual(await collect(s), [{ id: 'a', title: '', text: 'ok' }, { id: '7', title: '', text: 'num id' }]);
  assert.equal(s.report.skipped, 2);
  assert.deepEqual(s.report.skippedLines, [{ line: 2, reason: 'expected "text" to be a string in document "b"' }, { line: 4, reason: 'expected a JSON object' }]);

  writeFileSync(join(dir, 'queries.jsonl'), '{"_id":"q","text":"t"}\n{bad\n');
  await assert.rejects(collect(readBeirQueries(dir)), { message: new RegExp(`^${join(dir, 'queries.jsonl')}:2: invalid JSON`) });

  mkdirSync(join(dir, 'qrels'));
  writeFileSync(join(dir, 'qrels', 'dev.tsv'), 'query-id\tcorpus-id\tscore\nq\ta\t1\nq\tb\nq\tc\t1.5\n');
  const tsv = join(dir, 'qrels', 'dev.tsv');
  await assert.rejects(readBeirQrels(dir, 'dev'), { message: `${tsv}:3: expected 3 tab-separated fields "query-id corpus-id score" but found 2` });
  const { qrels, report } = await readBeirQrels(dir, 'dev', { skipMalformed: true });
  assert.deepEqual(qrels, new Map([['q', new Map([['a', 1]])]]));
  assert.equal(report.skipped, 2);
  await assert.rejects(readBeirQrels(dir, 'train'), { code: 'ERR_FILE' });
  await assert.rejects(readBeirQrels(dir, 'validation'), { name: 'TypeError', message: /Expected one of "train", "dev", "test" for split/ });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readQrels } from '../dist/eval/index.js';

const F = fileURLToPath(new URL('../../shared/fixtures/trec_eval/', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/search-r3.js', import.meta.url));

/** The fixture's TREC qrels rewritten as a BEIR qrels TSV (header line, 3 tab-separated columns). */
function beirCopy(header) {
  const rows = readFileSync(F + 'qrels.test', 'utf8').trim().split('\n').map((l) => l.trim().split(/\s+/)).map(([q, , d, r]) => `${q}\t${d}\t${r}`);
  const file = join(mkdtempSync(join(tmpdir(), 'beirq-')), 'test.tsv');
  writeFileSync(file, (header ? 'query-id\tcorpus-id\tscore\n' : '') + rows.join('\n') + '\n');
  return file;
}

test('readQrels reads a BEIR qrels TSV, with or without its header, equal to the TREC qrels', async () => {
  const trec = (await readQrels(F + 'qrels.test')).qrels;
  assert.ok(trec.size > 0);
  for (const header of [true, false]) {
    const { qrels, report } = await readQrels(beirCopy(header));
    assert.deepEqual(qrels, trec);
    assert.equal(report.skipped, 0);
  }
});

test('readQrels: a 4-field line in a 3-field BEIR file is malformed, naming the format', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'beirq-')), 'bad.tsv');
  writeFileSync(file, 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq1 0 d2 1\n');
  await assert.rejects(readQrels(file), /bad.tsv:3: expected 3 fields "query-id corpus-id score" but found 4/);
});

test('search-r3 eval: "-" reads the qrels from stdin, output equal to reading the file', () => {
  const fromFile = execFileSync(process.execPath, [BIN, 'eval', F + 'qrels.test', F + 'results.test'], { encoding: 'utf8' });
  const fromStdin = execFileSync(process.execPath, [BIN, 'eval', '-', F + 'results.test'], { encoding: 'utf8', input: readFileSync(F + 'qrels.test') });
  assert.ok(fromFile.length > 0);
  assert.equal(fromStdin, fromFile);
});

test('search-r3 embed --input -: JSON lines from stdin give the same vectors as the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embin-'));
  const model = join(dir, 'm.gguf');
  execFileSync(process.execPath, [BIN, 'make-model', '--out', model, '--preset', 'tiny'], { encoding: 'utf8' });
  const input = '{"id":"a","text":"hello"}\n{"id":"b","text":"world"}\n';
  writeFileSync(join(dir, 'in.jsonl'), input);
  const fromFile = execFileSync(process.execPath, [BIN, 'embed', model, '--input', join(dir, 'in.jsonl'), '--json'], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] });
  const fromStdin = execFileSync(process.execPath, [BIN, 'embed', model, '--input', '-', '--json'], { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'ignore'] });
  assert.deepEqual(fromStdin.trim().split('\n').map((l) => JSON.parse(l).id), ['a', 'b']);
  assert.equal(fromStdin, fromFile);
});

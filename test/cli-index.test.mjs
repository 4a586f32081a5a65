// search-r3 index build|update|info and search: a folder of notes indexed, updated, re-encoded
// with an adapter and searched from the command line; results equal the library's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { lib, tempDir, tinyModel, writeRandomLora } from './helpers/models.mjs';

const require = createRequire(import.meta.url);
const { main } = require('../dist/cli/main.js');
const { DocumentIndex } = lib;

async function cli(...argv) {
  let stdout = '';
  let stderr = '';
  const out = { write: (s) => { stdout += s; return true; } };
  const err = { write: (s) => { stderr += s; return true; } };
  const code = await main(argv, out, err);
  return { code, stdout, stderr };
}

function notesFolder() {
  const dir = mkdtempSync(join(tempDir(), 'notes-'));
  mkdirSync(join(dir, 'kitchen'));
  writeFileSync(join(dir, 'tides.txt'), 'The moon pulls the oceans: tides rise and fall twice a day.');
  writeFileSync(join(dir, 'volcano.md'), '# Volcanoes\nMagma reaches the surface and erupts.');
  writeFileSync(join(dir, 'kitchen', 'bread.md'), 'Bread: flour, water, salt and yeast.');
  writeFileSync(join(dir, 'kitchen', 'soup.txt'), 'Soup: onions, stock and time.');
  writeFileSync(join(dir, 'photo.jpg'), 'not a note');
  return dir;
}

test('index build, info, search and update on a folder of notes', async () => {
  const model = await tinyModel();
  const notes = notesFolder();
  const dir = join(mkdtempSync(join(tempDir(), 'cli-')), 'notes.index');
  const built = await cli('index', 'build', '--model', model, '--corpus', notes, '--out', dir, '--threads', '1', '--sequences', '2');
  assert.equal(built.code, 0, built.stderr);
  assert.match(built.stdout, /notes\.index: added 4, changed 0, removed 0, re-encoded 0, unchanged 0 \(4 encoded in [\d.]+ s, \d+ tokens\/s\)\n$/);
  assert.match(built.stderr, /encode .*4\/4 docs/);

  const info = await cli('index', 'info', dir, '--json');
  assert.equal(info.code, 0, info.stderr);
  const parsed = JSON.parse(info.stdout);
  assert.equal(parsed.documents, 4);
  assert.equal(parsed.identity.model.path, model);
  assert.equal(parsed.identity.lora, null);
  assert.equal(parsed.settings.mode, 'direct');
  const text = await cli('index', 'info', dir);
  assert.match(text.stdout, /^documents\s+4$/m);
  assert.match(text.stdout, /^vectors\s+exact$/m);

  // search --json prints exactly what the library's retriever returns.
  const searched = await cli('search', dir, '--json', '--topk', '3', '--threads', '1', 'moon tides', 'bread yeast');
  assert.equal(searched.code, 0, searched.stderr);
  const lines = searched.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const index = await DocumentIndex.openWithModel(dir, { threads: 1 });
  try {
    const expected = await index.retriever().retrieve(['moon tides', 'bread yeast'], { topk: 3 });
    assert.deepEqual(lines, expected.map((r, i) => ({ query: ['moon tides', 'bread yeast'][i], ...r })));
    assert.deepEqual(lines[0].docs.map((d) => d.id).sort(), [...new Set(lines[0].docs.map((d) => d.id))].sort());
    assert.ok(lines[1].docs.every((d) => ['tides.txt', 'volcano.md', 'kitchen/bread.md', 'kitchen/soup.txt'].includes(d.id)));
  } finally {
    index.dispose();
  }
  const hybrid = await cli('search', dir, '--hybrid', '--topk', '2', '--threads', '1', 'moon tides');
  assert.equal(hybrid.code, 0, hybrid.stderr);
  assert.match(hybrid.stdout, /^query: moon tides\n {2}1\. 0\.\d{4} \(bm25 [\d.-]+, dense [\d.-]+\) {2}tides\.txt {2}The moon pulls the oceans/);
  const reasoned = await cli('search', dir, '--mode', 'reason', '--topk', '1', '--threads', '1', 'moon tides');
  assert.equal(reasoned.code, 0, reasoned.stderr);
  assert.match(reasoned.stdout, /^query: moon tides\nreasoning: .*\n {2}1\. /);

  writeFileSync(join(notes, 'tides.txt'), 'Tides: the moon and the sun pull the oceans.');
  writeFileSync(join(notes, 'kitchen', 'tea.md'), 'Tea: boil water, steep leaves.');
  rmSync(join(notes, 'volcano.md'));
  const updated = await cli('index', 'update', dir, '--corpus', notes, '--threads', '1', '--json');
  assert.equal(updated.code, 0, updated.stderr);
  const report = JSON.parse(updated.stdout);
  assert.deepEqual([report.corpus, report.added, report.changed, report.removed, report.reencoded, report.unchanged], ['folder', 1, 1, 1, 0, 2]);
  assert.equal(updated.stderr, '', 'no progress bar with --json');

  const lora = await writeRandomLora(model, join(tempDir(), 'cli-adapter.gguf'));
  const reencoded = await cli('index', 'update', dir, '--corpus', notes, '--lora', lora, '--threads', '1');
  assert.equal(reencoded.code, 0, reencoded.stderr);
  assert.match(reencoded.stdout, /added 0, changed 0, removed 0, re-encoded 4, unchanged 0/);
  assert.match((await cli('index', 'info', dir)).stdout, /^lora\s+.*cli-adapter\.gguf \(\d+ bytes/m);
});

test('index and search usage and input errors are one line with exit 2 or 1', async () => {
  const model = await tinyModel();
  const notes = notesFolder();
  const busy = mkdtempSync(join(tempDir(), 'busy-'));
  writeFileSync(join(busy, 'mine.txt'), 'keep me');
  const bad = join(tempDir(), 'bad-corpus.jsonl');
  writeFileSync(bad, '{"id": "a", "contents": "x"}\n{"id": "a", "contents": "y"}\n');
  const cases = [
    [['index'], 2, /unknown or missing index command ""; expected build, update or info/],
    [['index', 'rebuild'], 2, /unknown or missing index command "rebuild"/],
    [['index', 'build', '--corpus', notes, '--out', 'x'], 2, /missing --model; usage: search-r3 index build/],
    [['index', 'build', '--model', model, '--corpus', notes, '--out', join(busy, 'x'), '--mode', 'think'], 2, /Expected one of direct, reason for --mode but received "think"/],
    [['index', 'build', '--model', model, '--corpus', notes, '--out', busy], 1, /the folder is not empty and holds no index; choose a new or empty folder/],
    [['index', 'build', '--model', model, '--corpus', bad, '--out', join(busy, 'y')], 1, /bad-corpus\.jsonl:2: document id "a" appears again \(first at line 1\)/],
    [['index', 'update', '--corpus', notes], 2, /missing DIR; usage: search-r3 index update/],
    [['index', 'info', busy], 1, /is not a search-r3 document index \(no catalog\/manifest\.json\); build one with "search-r3 index build/],
    [['search', busy, 'q'], 1, /is not a search-r3 document index/],
    [['search', busy], 2, /missing QUERY/],
    [['search', busy, 'q', '--topk', '0'], 2, /for --topk but received "0"/],
    [['search', busy, 'q', '--hybird'], 2, /Unknown option "--hybird".*did you mean "--hybrid"/],
  ];
  for (const [argv, code, message] of cases) {
    const r = await cli(...argv);
    assert.equal(r.code, code, `${argv.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, argv.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  assert.equal((await cli('index', 'build', '--help')).code, 0);
});

// The document index: corpus readers, build/update with exact re-encoding counts and results equal
// to a fresh build, model/adapter identity, SIGKILL during an update, HNSW.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lib, root, tempDir, tinyModel, track, writeRandomLora } from './helpers/models.mjs';

const { Model, Embedder, DocumentIndex, readCorpus, SearchR3Error } = lib;
const child = join(root, 'test', 'helpers', 'docindex-child.mjs');

const fresh = (name) => mkdtempSync(join(tempDir(), `${name}-`));
const topics = ['tides and the moon', 'volcanoes and magma', 'bread and yeast', 'rivers and deltas', 'stars and galaxies'];
/** 20 documents, four per topic. */
const corpusV1 = Array.from({ length: 20 }, (_, i) => ({ id: `doc-${String(i).padStart(2, '0')}`, contents: `"Note ${i}"\n${topics[i % 5]}: observation number ${i} about ${topics[(i * 3) % 5]}` }));
/** Three changed, two removed, two added. */
const corpusV2 = [
  ...corpusV1.filter((d) => !['doc-04', 'doc-09'].includes(d.id)).map((d) => (['doc-01', 'doc-07', 'doc-15'].includes(d.id) ? { ...d, contents: `${d.contents}, revised` } : d)),
  { id: 'doc-new-a', contents: 'a new note on tides and the moon' },
  { id: 'doc-new-b', contents: 'a new note on bread' },
];
const queries = ['moon tides', 'magma volcano', 'yeast bread', 'galaxies'];

async function embedderFor(modelPath, { lora } = {}) {
  const model = track(await Model.load(modelPath));
  const adapter = lora ? await model.loadLora(lora) : undefined;
  const embedder = track(await Embedder.create(model, { sequences: 1, threads: 1, contextPerSequence: 256, lora: adapter, maxReasoningTokens: 8 }));
  // Records every text the index hands to the encoder.
  const encoded = [];
  const original = embedder.embedDocuments.bind(embedder);
  embedder.embedDocuments = (texts, options) => {
    encoded.push(...texts);
    return original(texts, options);
  };
  return { embedder, encoded };
}

async function searchAll(index) {
  const out = {};
  for (const kind of ['bm25', 'dense', 'hybrid']) out[kind] = await index.retriever({ kind }).retrieve(queries, { topk: 5 });
  return out;
}

function assertSameResults(actual, expected) {
  for (const kind of Object.keys(expected)) {
    expected[kind].forEach((e, q) => {
      const a = actual[kind][q];
      assert.deepEqual(a.docs.map((d) => [d.id, d.contents]), e.docs.map((d) => [d.id, d.contents]), `${kind} "${queries[q]}"`);
      a.docs.forEach((d, i) => assert.ok(Math.abs(d.score - e.docs[i].score) < 1e-5, `${kind} score of ${d.id}`));
    });
  }
}

test('readCorpus: BEIR, FlashRAG and folder corpora; errors name file:line', async () => {
  const dir = fresh('corpora');
  const beir = join(dir, 'beir');
  mkdirSync(beir);
  writeFileSync(join(beir, 'corpus.jsonl'), '{"_id": "a", "title": "Moon", "text": "pulls tides"}\n\n{"_id": 7, "text": "untitled"}\n');
  assert.deepEqual(await readCorpus(beir), { kind: 'beir', path: beir, warnings: [], docs: [{ id: 'a', contents: '"Moon"\npulls tides' }, { id: '7', contents: 'untitled' }] });
  assert.equal((await readCorpus(join(beir, 'corpus.jsonl'))).kind, 'beir');
  const flash = join(dir, 'wiki.jsonl');
  writeFileSync(flash, '{"id": "0", "contents": "\\"Hamlet\\"\\nA tragedy"}\n{"id": "1", "contents": "x"}\n');
  assert.deepEqual((await readCorpus(flash)).docs, [{ id: '0', contents: '"Hamlet"\nA tragedy' }, { id: '1', contents: 'x' }]);

  const bad = (name, text) => { writeFileSync(join(dir, name), text); return join(dir, name); };
  const formatError = (pattern) => (e) => e instanceof SearchR3Error && e.code === 'ERR_FORMAT' && pattern.test(e.message);
  await assert.rejects(readCorpus(bad('b1.jsonl', '{"id": "0", "contents": "x"}\n{"id": "0", "contents": "y"}\n')), formatError(/b1\.jsonl:2: document id "0" appears again \(first at line 1\)/));
  await assert.rejects(readCorpus(bad('b2.jsonl', '{"id": "0", "contents": "x"}\n{"id": "1", "text": "y"}\n')), formatError(/b2\.jsonl:2: expected "contents" to be a string in document "1"/));
  await assert.rejects(readCorpus(bad('b3.jsonl', '{"title": "t"}\n')), formatError(/b3\.jsonl:1: expected a BEIR record .* or a FlashRAG record/));
  await assert.rejects(readCorpus(bad('b4.jsonl', '{"_id": "a", "text": "x"}\nnot json\n')), formatError(/b4\.jsonl:2: invalid JSON/));
  await assert.rejects(readCorpus(bad('b5.jsonl', '\n\n')), formatError(/holds no documents/));
  await assert.rejects(readCorpus(join(dir, 'missing.jsonl')), (e) => e.code === 'ERR_FILE' && /missing\.jsonl.*ENOENT/.test(e.message));

  const notes = join(dir, 'notes');
  mkdirSync(join(notes, 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(notes, 'b.txt'), '\ufeffsecond');
  writeFileSync(join(notes, 'A.md'), '# first');
  writeFileSync(join(notes, 'sub', 'deeper', 'c.TXT'), 'third');
  writeFileSync(join(notes, 'image.png'), 'not text');
  // Sorted by id, not walked depth-first: "sub-note.txt" < "sub/…" because "-" < "/".
  writeFileSync(join(notes, 'sub-note.txt'), 'beside');
  for (const name of ['zeta.txt', 'm.md', 'a2.txt', 'Q.txt', 'k.md']) writeFileSync(join(notes, 'sub', name), name);
  symlinkSync('..', join(notes, 'sub', 'loop'));
  symlinkSync('nowhere.txt', join(notes, 'dangling.txt'));
  const folder = await readCorpus(notes);
  assert.equal(folder.kind, 'folder');
  assert.deepEqual(folder.docs, [
    { id: 'A.md', contents: '# first' }, { id: 'b.txt', contents: 'second' }, { id: 'sub-note.txt', contents: 'beside' },
    ...['Q.txt', 'a2.txt'].map((n) => ({ id: `sub/${n}`, contents: n })), { id: 'sub/deeper/c.TXT', contents: 'third' },
    ...['k.md', 'm.md', 'zeta.txt'].map((n) => ({ id: `sub/${n}`, contents: n })),
  ]);
  assert.equal(folder.warnings.length, 2);
  assert.match(folder.warnings.join('\n'), /sub\/loop: a symlink loop \(it leads back to /);
  assert.match(folder.warnings.join('\n'), /dangling\.txt: a dangling symlink \(ENOENT\)/);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  await assert.rejects(readCorpus(empty), formatError(/holds no documents \(no \.txt or \.md files\)/));
});

test('update encodes exactly the added and changed documents, removes the deleted, and then searches like a fresh build', async () => {
  const modelPath = await tinyModel();
  const { embedder, encoded } = await embedderFor(modelPath);
  const dir = join(fresh('idx'), 'index');
  const index = await DocumentIndex.build(dir, corpusV1, { embedder, checkpointSeconds: 0 });
  assert.equal(index.size, 20);
  assert.equal(encoded.length, 20);
  await assert.rejects(DocumentIndex.build(dir, corpusV1, { embedder }), (e) => e.code === 'ERR_FILE' && /already holds a document index; update it .* or pass --force/.test(e.message));

  encoded.length = 0;
  const reopened = await DocumentIndex.open(dir, { embedder });
  const report = await reopened.update(corpusV2);
  assert.deepEqual({ ...report, encodedTokens: 0, encodeSeconds: 0, seconds: 0 },
    { added: 2, changed: 3, removed: 2, reencoded: 0, unchanged: 15, truncated: 0, encodedTokens: 0, encodeSeconds: 0, seconds: 0 });
  const expectedTexts = corpusV2.filter((d) => ['doc-01', 'doc-07', 'doc-15', 'doc-new-a', 'doc-new-b'].includes(d.id)).map((d) => d.contents);
  assert.deepEqual(encoded.sort(), expectedTexts.sort());
  assert.ok(report.encodedTokens > 0);

  // Nothing changed: nothing encoded, nothing written.
  encoded.length = 0;
  const again = await reopened.update(corpusV2);
  assert.equal(encoded.length, 0);
  assert.equal(again.unchanged, 20);
  assert.equal((await DocumentIndex.info(dir)).generation, reopened.info().generation);

  const rebuilt = await DocumentIndex.build(join(fresh('idx'), 'index'), corpusV2, { embedder });
  const loaded = await DocumentIndex.open(dir, { embedder });
  assert.equal(loaded.size, 20);
  assert.equal(loaded.contents('doc-01'), corpusV2.find((d) => d.id === 'doc-01').contents);
  assert.equal(loaded.contents('doc-04'), undefined);
  assertSameResults(await searchAll(loaded), await searchAll(rebuilt));
  const [hybrid] = await loaded.retriever({ hybrid: true }).retrieve(['moon tides'], { topk: 3 });
  assert.ok(hybrid.docs.every((d) => d.scores && (d.scores.bm25 !== undefined || d.scores.dense !== undefined)));
  const [reasoned] = await loaded.retriever({ mode: 'reason' }).retrieve(['moon tides'], { topk: 3 });
  assert.equal(typeof reasoned.reasoning, 'string');
});

test('an index refuses another model or adapter by name, unless asked to re-encode, which re-encodes every row', async () => {
  const modelPath = await tinyModel();
  const lora = await writeRandomLora(modelPath, join(fresh('lora'), 'a.gguf'));
  const { embedder } = await embedderFor(modelPath);
  const dir = join(fresh('idx'), 'index');
  (await DocumentIndex.build(dir, corpusV1, { embedder }));
  const other = await embedderFor(await tinyModel({ seed: 8 }));
  await assert.rejects(DocumentIndex.open(dir, { embedder: other.embedder }),
    (e) => e instanceof SearchR3Error && e.code === 'ERR_MODEL' && /does not match this embedder: it was encoded with model .*tiny-0\.gguf \(\d+ bytes, sha256 of ends [0-9a-f]{16}\), this one is .*tiny-1\.gguf/.test(e.message));
  const adapted = await embedderFor(modelPath, { lora });
  await assert.rejects(DocumentIndex.open(dir, { embedder: adapted.embedder }),
    (e) => e.code === 'ERR_MODEL' && /it was encoded with no adapter, this one has adapter .*a\.gguf/.test(e.message) && /reencode: true/.test(e.message));

  const index = await DocumentIndex.open(dir, { embedder: adapted.embedder, reencode: true });
  assert.equal(index.info().staleDocuments, 20);
  const report = await index.update(corpusV1);
  assert.equal(report.reencoded, 20);
  assert.equal(adapted.encoded.length, 20);
  const info = await DocumentIndex.info(dir);
  assert.equal(info.staleDocuments, 0);
  assert.equal(info.encoderVersion, 1);
  assert.match(info.identity.lora.path, /a\.gguf$/);
  // The old embedder is now the mismatch.
  await assert.rejects(DocumentIndex.open(dir, { embedder }), (e) => e.code === 'ERR_MODEL' && /encoded with adapter .*a\.gguf.*this one has none/.test(e.message));
});

test('SIGKILL during a re-encoding update leaves an index that loads; running it again completes it', async () => {
  const modelPath = await tinyModel();
  const lora = await writeRandomLora(modelPath, join(fresh('lora'), 'b.gguf'), { seed: 3 });
  const { embedder } = await embedderFor(modelPath);
  const adapted = await embedderFor(modelPath, { lora });
  const expected = await searchAll(await DocumentIndex.build(join(fresh('idx'), 'index'), corpusV2, { embedder: adapted.embedder }));
  for (const killAt of [{ phase: 'parts', checkpoint: 2 }, { phase: 'committed', checkpoint: 1 }]) {
    const dir = join(fresh('idx'), 'index');
    await DocumentIndex.build(dir, corpusV1, { embedder });
    const run = (k) => spawnSync(process.execPath, [child, JSON.stringify({ dir, corpus: corpusV2, lora, killAt: k })], { encoding: 'utf8' });
    const killed = run(killAt);
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    const half = await DocumentIndex.open(dir);
    const info = half.info();
    // Chunks hold 8 documents (1 sequence): the kill leaves the first commit's 8 re-encoded with the
    // new identity, the 2 removed gone, and the other 10 of the old corpus stale.
    assert.equal(info.encoderVersion, 1, JSON.stringify(killAt));
    assert.equal(half.size, 18);
    assert.equal(info.staleDocuments, 10);
    const [bm25] = await half.retriever({ kind: 'bm25' }).retrieve(['moon'], { topk: 3 });
    assert.ok(bm25.docs.length > 0);
    const rest = run(undefined);
    assert.equal(rest.status, 0, rest.stderr);
    const report = JSON.parse(rest.stdout.trim().split('\n').pop());
    // Run again with the same adapter: no new re-encode, only what is left: doc-10…doc-19 (doc-15
    // changed, 9 stale) and the 2 added; the 8 committed before the kill are unchanged.
    assert.deepEqual([report.added, report.changed, report.reencoded, report.unchanged], [2, 1, 9, 8], JSON.stringify(report));
    assert.equal(report.removed, 0);
    const done = await DocumentIndex.open(dir, { embedder: adapted.embedder });
    assert.equal(done.info().staleDocuments, 0);
    assertSameResults(await searchAll(done), expected);
  }
});

test('an HNSW index builds, updates and finds what the exact one finds on a small corpus', async () => {
  const { embedder } = await embedderFor(await tinyModel());
  const dir = join(fresh('idx'), 'index');
  await DocumentIndex.build(dir, corpusV1, { embedder, hnsw: true });
  const index = await DocumentIndex.open(dir, { embedder });
  assert.equal(index.info().settings.hnsw, true);
  const report = await index.update(corpusV2);
  assert.equal(report.added + report.changed + report.removed, 7);
  const exact = await DocumentIndex.build(join(fresh('idx'), 'index'), corpusV2, { embedder });
  const [a] = await (await DocumentIndex.open(dir, { embedder })).retriever().retrieve(['moon tides'], { topk: 3 });
  const [b] = await exact.retriever().retrieve(['moon tides'], { topk: 3 });
  assert.deepEqual(a.docs.map((d) => d.id), b.docs.map((d) => d.id));
});

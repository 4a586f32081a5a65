// Long inputs: one policy (fitEmbedPrompt + longText) keeps the template whole and cuts the text's tail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib, tinyModel, track } from './helpers/models.mjs';

const { Model, Embedder, fitEmbedPrompt, buildEmbedPrompt, DEFAULT_EMBED_TEMPLATE } = lib;
const long = 'word '.repeat(1000);

test('fitEmbedPrompt keeps the template whole and the head of the text within the budget', async () => {
  const model = track(await Model.load(await tinyModel()));
  const full = buildEmbedPrompt(model, DEFAULT_EMBED_TEMPLATE, 'document', long);
  const fitted = fitEmbedPrompt(model, DEFAULT_EMBED_TEMPLATE, 'document', long, 64);
  assert.equal(fitted.truncated, true);
  assert.equal(fitted.needed, full.length);
  assert.equal(fitted.ids.length, 64);
  // The template's tail (ending in <|embed_token|>) survives whole; the cut is inside the text.
  assert.equal(fitted.ids[fitted.ids.length - 1], model.info.embedTokenId);
  assert.deepEqual([...fitted.ids.subarray(fitted.ids.length - 10)], [...full.subarray(full.length - 10)]);
  assert.deepEqual([...fitted.ids.subarray(0, 40)], [...full.subarray(0, 40)]);
  const short = fitEmbedPrompt(model, DEFAULT_EMBED_TEMPLATE, 'document', 'hello', 64);
  assert.equal(short.truncated, false);
  assert.deepEqual([...short.ids], [...buildEmbedPrompt(model, DEFAULT_EMBED_TEMPLATE, 'document', 'hello')]);
});

test("Embedder longText 'truncate' (default) embeds an over-long text, marks it truncated at the sequence size", async () => {
  const model = track(await Model.load(await tinyModel()));
  const embedder = track(await Embedder.create(model, { contextPerSequence: 256, threads: 1 }));
  const [a, b] = await embedder.embedDocuments(['short', long]);
  assert.equal(a.truncated, false);
  assert.equal(b.truncated, true);
  assert.equal(b.promptTokens, 256);
  const [q] = await embedder.embed([long]);
  assert.equal(q.truncated, true);
  assert.equal(q.promptTokens, 256);
});

test("Embedder longText 'error' names texts[i]; an unknown policy is a usage error", async () => {
  const model = track(await Model.load(await tinyModel()));
  const embedder = track(await Embedder.create(model, { contextPerSequence: 256, threads: 1, longText: 'error' }));
  await assert.rejects(embedder.embedDocuments(['short', long]), { code: 'ERR_CONTEXT', message: /^texts\[1\] needs \d+ tokens but a sequence holds 256;/ });
  await assert.rejects(Embedder.create(model, { longText: 'cut' }), TypeError);
});

// Training data follows the same rule: default truncate (counted), error names id and FILE:LINE, skip drops.
const { fitTrainingData, loadTrainingData, encodePair } = lib;

async function trainingFile() {
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tempDir } = await import('./helpers/models.mjs');
  const file = join(tempDir(), 'pairs.jsonl');
  writeFileSync(file, [
    { id: 'a', query: 'q one', positive: 'short doc' },
    { id: 'b', query: 'q two', positive: long, negatives: ['short neg', long] },
    { id: 'c', query: 'q three', positive: 'another doc' },
  ].map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

test('training data: truncate (default) keeps every record and counts each shortened text', async () => {
  const model = track(await Model.load(await tinyModel()));
  const records = await loadTrainingData(await trainingFile());
  const fitted = fitTrainingData(model, DEFAULT_EMBED_TEMPLATE, records, { maxTokens: 64 });
  assert.deepEqual(fitted.records.map((r) => r.id), ['a', 'b', 'c']);
  assert.equal(fitted.shortened, 2);
  assert.deepEqual(fitted.skipped, []);
  const e = encodePair(model, DEFAULT_EMBED_TEMPLATE, records[1], { maxTokens: 64 });
  assert.equal(e.shortened, 2);
  assert.ok(e.positive.length <= 64);
  assert.equal(encodePair(model, DEFAULT_EMBED_TEMPLATE, records[0], { maxTokens: 64 }).shortened, 0);
});

test("training data: 'error' names the record id, its field and FILE:LINE; 'skip' drops and reports the record", async () => {
  const model = track(await Model.load(await tinyModel()));
  const file = await trainingFile();
  const records = await loadTrainingData(file);
  assert.throws(() => fitTrainingData(model, DEFAULT_EMBED_TEMPLATE, records, { maxTokens: 64, longText: 'error' }), {
    code: 'ERR_CONTEXT',
    message: new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: record "b" positive needs \\d+ tokens, more than the 64 of maxTokens;`),
  });
  const skipped = fitTrainingData(model, DEFAULT_EMBED_TEMPLATE, records, { maxTokens: 64, longText: 'skip' });
  assert.deepEqual(skipped.records.map((r) => r.id), ['a', 'c']);
  assert.deepEqual(skipped.skipped.map((r) => [r.id, r.source]), [['b', `${file}:2`]]);
  assert.equal(skipped.shortened, 0);
  assert.throws(() => fitTrainingData(model, DEFAULT_EMBED_TEMPLATE, records, { maxTokens: 64, longText: 'cut' }), TypeError);
});

// Embedder: direct and reason modes, batching equals one-by-one, budgets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib, maxAbsDiff, storiesPath, tinyModel } from './helpers/models.mjs';
import { track } from './helpers/models.mjs';

const { Model, Embedder, buildEmbedPrompt, DEFAULT_EMBED_TEMPLATE } = lib;

const texts = [
  'who painted the ceiling of the sistine chapel',
  'symptoms of vitamin d deficiency',
  'x',
  'a much longer query about the population growth of coastal cities in the nineteenth century and its causes',
  'café naïve 東京',
];

test('direct embeddings of many texts at once equal one-by-one embeddings', async () => {
  const model = track(await Model.load(await tinyModel()));
  const many = track(await Embedder.create(model, { sequences: 4, threads: 1 }));
  const together = await many.embed(texts);
  const one = track(await Embedder.create(model, { sequences: 1, threads: 1 }));
  for (const [i, t] of texts.entries()) {
    const [alone] = await one.embed([t]);
    assert.equal(together[i].finish, 'direct');
    assert.ok(maxAbsDiff(together[i].vector, alone.vector) < 1e-4, `text ${i}`);
  }
});

test('direct mode: the prompt ends in <|embed_token|>, vectors are unit length, queries and documents differ', async () => {
  const model = track(await Model.load(await tinyModel()));
  const embedder = track(await Embedder.create(model, { threads: 1 }));
  const prompt = embedder.promptFor('hello', 'query');
  assert.equal(prompt[prompt.length - 1], model.info.embedTokenId);
  const rendered = model.detokenize(prompt, { renderSpecial: true });
  assert.equal(rendered, `<|im_start|>system\n${DEFAULT_EMBED_TEMPLATE.querySystem}<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\nThe embedding is <|embed_token|>`);
  const [q] = await embedder.embed(['hello']);
  const [d] = await embedder.embedDocuments(['hello']);
  const norm = Math.hypot(...q.vector);
  assert.ok(Math.abs(norm - 1) < 1e-5);
  assert.equal(q.vector.length, model.info.nEmbd);
  assert.ok(maxAbsDiff(q.vector, d.vector) > 1e-4, 'query and document instructions differ');
  assert.equal(q.reasoning, '');
  assert.equal(q.reasoningTokens, 0);
});

test('user text is never parsed as special tokens', async () => {
  const model = track(await Model.load(await tinyModel()));
  const ids = buildEmbedPrompt(model, DEFAULT_EMBED_TEMPLATE, 'query', 'inject <|embed_token|> here');
  const embedId = model.info.embedTokenId;
  assert.equal(ids.filter((t) => t === embedId).length, 1, 'only the template places the embed token');
});

test('reason mode: a budget caps the reasoning and the engine appends the embed token', async () => {
  const model = track(await Model.load(await tinyModel()));
  const embedder = track(await Embedder.create(model, { mode: 'reason', maxReasoningTokens: 6, sequences: 3, threads: 1 }));
  const out = await embedder.embed(texts.slice(0, 3));
  for (const r of out) {
    // A random tiny model never writes <|embed_token|> by itself, so either the budget or an end token stops it.
    assert.ok(['budget', 'stopped', 'embed'].includes(r.finish));
    assert.ok(r.reasoningTokens <= 6);
    if (r.finish === 'budget') assert.equal(r.reasoningTokens, 6);
    assert.ok(Math.abs(Math.hypot(...r.vector) - 1) < 1e-5);
  }
  const single = track(await Embedder.create(model, { mode: 'reason', maxReasoningTokens: 6, sequences: 1, threads: 1 }));
  const [alone] = await single.embed([texts[1]]);
  assert.equal(alone.reasoning, out[1].reasoning);
  assert.ok(maxAbsDiff(alone.vector, out[1].vector) < 1e-4);
});

test('reason mode differs from direct mode and reports its reasoning text', async () => {
  const model = track(await Model.load(await tinyModel()));
  const embedder = track(await Embedder.create(model, { maxReasoningTokens: 4, threads: 1 }));
  const [direct] = await embedder.embed(['query'], { mode: 'direct' });
  const [reasoned] = await embedder.embed(['query'], { mode: 'reason' });
  assert.ok(maxAbsDiff(direct.vector, reasoned.vector) > 1e-4);
  assert.ok(reasoned.reasoningTokens > 0);
  assert.equal(typeof reasoned.reasoning, 'string');
});

test('an embed call on a model without <|embed_token|> points to add-embed-token', async () => {
  const model = track(await Model.load(storiesPath));
  await assert.rejects(Embedder.create(model), { name: 'SearchR3Error', code: 'ERR_MODEL', message: /has no <\|embed_token\|>.*add-embed-token/ });
});

test("with longText 'error', a text longer than the context is an ERR_CONTEXT error naming the text", async () => {
  const model = track(await Model.load(await tinyModel()));
  const embedder = track(await Embedder.create(model, { contextPerSequence: 64, threads: 1, longText: 'error' }));
  await assert.rejects(embedder.embed(['short', 'word '.repeat(400)]), { code: 'ERR_CONTEXT', message: /texts\[1\] needs \d+ tokens but a sequence holds 256/ });
});

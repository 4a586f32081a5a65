// Model loading, metadata, tokenizer, generation on the real trained TinyStories model and on
// generated Qwen2-tokenizer models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib, storiesPath, tinyModel } from './helpers/models.mjs';
import { track } from './helpers/models.mjs';

const { Model } = lib;

test('Model.load reads the real stories260K model and its metadata', async () => {
  const model = track(await Model.load(storiesPath));
  assert.equal(model.info.architecture, 'llama');
  assert.equal(model.info.nVocab, 512);
  assert.equal(model.info.nEmbd, 64);
  assert.equal(model.info.embedTokenId, null);
  assert.equal(model.info.chatTemplate, null);
});

test('a vocabulary-only load tokenizes and reports metadata without weights', async () => {
  const model = track(await Model.load(storiesPath, { vocabOnly: true }));
  assert.equal(model.info.nVocab, 512);
  assert.equal(model.info.nHead, 0);
  assert.equal(model.detokenize(model.tokenize('Once upon a time', { addSpecial: false })), 'Once upon a time');
});

test('stories260K greedily continues "Once upon a time" as llama.cpp does', async () => {
  const model = track(await Model.load(storiesPath));
  const session = track(await model.createSession({ threads: 1 }));
  const [g] = await session.generate('Once upon a time', { maxTokens: 12 });
  assert.ok(g.text.startsWith(', there was a little girl named Lily.'), `got ${JSON.stringify(g.text)}`);
  assert.equal(g.finish, 'length');
  assert.equal(g.tokens.length, 12);
});

test('tokenize/detokenize round-trip on SentencePiece and Qwen2 BPE vocabularies', async () => {
  const texts = ['Once upon a time, Lily saw a big dog.', 'naïve café — 東京 🚀 x=1+2', '  leading and trailing  '];
  const stories = track(await Model.load(storiesPath));
  const ids = stories.tokenize('Once upon a time', { addSpecial: false });
  assert.equal(stories.detokenize(ids), 'Once upon a time');
  const qwen = track(await Model.load(await tinyModel()));
  for (const t of texts) {
    const toks = qwen.tokenize(t, { addSpecial: false });
    assert.equal(qwen.detokenize(toks), t);
  }
  // Special tokens are text unless parsing is asked for.
  const embedId = qwen.info.embedTokenId;
  assert.equal(typeof embedId, 'number');
  assert.deepEqual(Array.from(qwen.tokenize('<|embed_token|>', { addSpecial: false, parseSpecial: true })), [embedId]);
  assert.ok(qwen.tokenize('<|embed_token|>', { addSpecial: false }).length > 1);
  assert.equal(qwen.detokenize([embedId], { renderSpecial: true }), '<|embed_token|>');
  assert.equal(qwen.detokenize([embedId]), '');
});

test('chat template renders ChatML for the generated Qwen2 model', async () => {
  const model = track(await Model.load(await tinyModel()));
  const s = model.applyChatTemplate([{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }], true);
  assert.equal(s, '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n');
});

test('generated llama-architecture model loads and generates deterministically', async () => {
  const model = track(await Model.load(await tinyModel({ arch: 'llama' })));
  assert.equal(model.info.architecture, 'llama');
  const session = track(await model.createSession({ threads: 1 }));
  const [a] = await session.generate('hello world', { maxTokens: 8 });
  const [b] = await session.generate('hello world', { maxTokens: 8 });
  assert.deepEqual(a.tokens, b.tokens);
  assert.equal(a.tokens.length, 8);
});

test('Q8_0 and F16 generated models load and produce finite embeddings', async () => {
  for (const type of ['f16', 'q8_0']) {
    const model = track(await Model.load(await tinyModel({ type })));
    const session = track(await model.createSession({ threads: 1 }));
    const { embeddings } = await session.evaluate(model.tokenize('a test'), {});
    assert.ok(embeddings.every(Number.isFinite), type);
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exactMatch, extractAnswer, f1Score, normalizeAnswer, substringMatch } from '../dist/eval/index.js';

test('normalizeAnswer: lower-case, no punctuation, no articles, single spaces', () => {
  assert.equal(normalizeAnswer('The  Eiffel-Tower!'), 'eiffeltower');
  assert.equal(normalizeAnswer('  A tale of An apple, THE end. '), 'tale of apple end');
  assert.equal(normalizeAnswer('theater anthem'), 'theater anthem'); // articles only as whole words
  assert.equal(normalizeAnswer('Éa the ßa'), 'éa ßa');
  assert.throws(() => normalizeAnswer(3), { name: 'TypeError', message: 'Expected string for text but received 3 of type number' });
});

test('exactMatch / substringMatch: against any gold answer', () => {
  assert.equal(exactMatch('the Beatles', ['Beatles', 'The Fab Four']), 1);
  assert.equal(exactMatch('Beatles band', ['Beatles']), 0);
  assert.equal(exactMatch('Paris', 'paris.'), 1);
  assert.equal(substringMatch('it was Paris, France', ['paris']), 1);
  assert.equal(substringMatch('London', ['paris']), 0);
  assert.throws(() => exactMatch('x', [1]), { name: 'TypeError' });
});

test('f1Score: SQuAD token F1, best gold wins', () => {
  assert.ok(Math.abs(f1Score('Eiffel tower in Paris', ['the Eiffel Tower']) - 2 / 3) < 1e-15);
  assert.equal(f1Score('nothing shared', ['Paris']), 0);
  assert.equal(f1Score('Paris', ['London', 'paris']), 1);
  assert.ok(Math.abs(f1Score('a a b', ['a b b']) - 2 / 3) < 1e-15); // multiset overlap: a, b
});

test('extractAnswer: last <answer> span, trimmed; minSpans for transcripts with an example', () => {
  assert.equal(extractAnswer('<think>x</think><answer> Paris </answer>'), 'Paris');
  assert.equal(extractAnswer('<answer>one</answer> then <answer>\ntwo\n</answer>'), 'two');
  assert.equal(extractAnswer('no answer here'), null);
  assert.equal(extractAnswer('<answer>example</answer>', { minSpans: 2 }), null);
  assert.equal(extractAnswer('<answer>example</answer><answer>real</answer>', { minSpans: 2 }), 'real');
  assert.equal(extractAnswer('<answer>unclosed'), null);
});

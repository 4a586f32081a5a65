// Search-R1's outcome rewards on hand-written transcripts: exact match, the v0.3 format check
// (is_valid_sequence) and the format-aware em-format scores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib } from './helpers/models.mjs';

const { emReward, emFormatReward, isValidFormat, qaReward, QA_REWARDS, INVALID_ACTION_MESSAGE } = lib;

const INFO = '\n\n<information>Doc 1(Title: "Paris") Paris is the capital of France.</information>\n\n';
const valid = (answer) => `<think>I should search.</think>\n<search> capital of France </search>${INFO}<think>Found it.</think>\n<answer> ${answer} </answer>`;
const invalid = (answer) => `<think>I should search.</think>\n<search> capital of France </search>${INFO}Paris, I guess.\n<answer> ${answer} </answer>`;

test('isValidFormat follows Search-R1 is_valid_sequence', () => {
  assert.deepEqual(isValidFormat(valid('Paris')), { valid: true, reason: 'Valid sequence format' });
  assert.deepEqual(isValidFormat('<think>a</think> <answer>b</answer>\n'), { valid: true, reason: 'Valid sequence format' });
  assert.deepEqual(isValidFormat(invalid('Paris')), { valid: false, reason: "Unexpected content 'Paris, I guess.' between tags (state: information)" });
  assert.deepEqual(isValidFormat('<answer>b</answer>'), { valid: false, reason: 'Unexpected tag <answer> in state start' });
  assert.deepEqual(isValidFormat('<think>a</think><answer>b'), { valid: false, reason: 'Mismatch in answer tags: 1 opening vs 0 closing tags' });
  assert.deepEqual(isValidFormat('<think>a</think><search>q</search>'), { valid: false, reason: 'Incomplete sequence, ended in state after_search' });
  // After information a new <think> must come before the answer.
  assert.equal(isValidFormat(`<think>a</think><search>q</search>${INFO}<answer>b</answer>`).valid, false);
  // A corrective message is text between tags.
  assert.equal(isValidFormat(`<think>a</think>${INVALID_ACTION_MESSAGE}<think>b</think><answer>c</answer>`).valid, false);
});

test('emReward: 1 for an exact (normalised) match of the last answer, 0 otherwise', () => {
  assert.equal(emReward(valid('the Paris!'), ['paris']), 1);
  assert.equal(emReward(valid('Paris, France'), ['paris']), 0);
  assert.equal(emReward('<think>x</think>', ['paris']), 0);
  assert.equal(emReward('<answer>Rome</answer> <answer>Paris</answer>', ['Paris']), 1);
});

test('emFormatReward gives Search-R1 v0.3 scores: 1, 0.8, 0.2, 0.1, 0', () => {
  assert.equal(emFormatReward(valid('Paris'), ['Paris']), 1);
  assert.ok(Math.abs(emFormatReward(invalid('Paris'), ['Paris']) - 0.8) < 1e-12);
  assert.equal(emFormatReward(valid('Rome'), ['Paris']), 0.2);
  assert.equal(emFormatReward(invalid('Rome'), ['Paris']), 0.1);
  assert.equal(emFormatReward('<think>I do not know</think>', ['Paris']), 0);
  assert.equal(emFormatReward('<think>a</think><answer>b', ['b']), 0);
  assert.equal(emFormatReward(valid('Rome'), ['Paris'], { structure: 0.3 }), 0.3);
  assert.throws(() => emFormatReward(valid('Rome'), ['Paris'], { structur: 0.3 }), /did you mean "structure"/);
});

test('QA rewards by name score a batch', () => {
  const rollouts = [{ response: valid('Paris'), goldenAnswers: ['Paris'] }, { response: invalid('Rome'), goldenAnswers: ['Paris'] }];
  assert.deepEqual(qaReward('em')(rollouts), [1, 0]);
  assert.deepEqual(QA_REWARDS['em-format'](rollouts), [1, 0.1]);
  assert.throws(() => qaReward('f1'), { name: 'TypeError', message: 'Expected one of em, em-format for reward but received "f1" of type string' });
});

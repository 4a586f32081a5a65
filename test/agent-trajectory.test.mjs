// Search-R1's prompt texts, turns read as actions (postprocess_predictions), trajectories, and the
// loss mask of their training sequences (only model-written tokens are targets).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib } from './helpers/models.mjs';

const {
  SEARCH_R1_TEMPLATE, INVALID_ACTION_MESSAGE, buildAgentPrompt, buildRagPrompt, buildDirectPrompt, formatPassages, informationBlock,
  cutTurn, parseAction, newTrajectory, addSegment, finishTrajectory, responseText, tokenizeTrajectory, trajectorySequence,
} = lib;

test('buildAgentPrompt quotes Search-R1 make_prefix and ends the question with ?', () => {
  const p = buildAgentPrompt('  who wrote hamlet ');
  assert.ok(p.startsWith('Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get new information. '));
  assert.ok(p.includes('between <information> and </information>. You can search as many times as your want. '));
  assert.ok(p.endsWith('For example, <answer> Beijing </answer>. Question: who wrote hamlet?\n'));
  assert.equal(buildAgentPrompt('x $& y?'), SEARCH_R1_TEMPLATE.replace('{question}', () => 'x $& y?'));
  assert.equal(buildAgentPrompt('q', 'Q: {question} A:'), 'Q: q? A:');
  // A question that holds a slot's name stays as written.
  assert.ok(buildRagPrompt('what is {context}', [{ contents: '"T"\nx' }]).includes('Question: what is {context}? Context: Doc 1(Title: "T") x\n'));
  assert.throws(() => buildAgentPrompt('q', 'no slot'), { name: 'RangeError', message: 'Expected template to contain {question} but it does not' });
  assert.throws(() => buildAgentPrompt('   '), RangeError);
  assert.ok(buildDirectPrompt('q').endsWith('Question: q?\n'));
});

test('formatPassages and informationBlock format documents as Search-R1 _passages2string', () => {
  const docs = [{ contents: '"Paris"\nCapital of France.\nOn the Seine.' }, { contents: 'untitled' }];
  assert.equal(formatPassages(docs), 'Doc 1(Title: "Paris") Capital of France.\nOn the Seine.\nDoc 2(Title: untitled) \n');
  assert.equal(informationBlock(docs), '\n\n<information>Doc 1(Title: "Paris") Capital of France.\nOn the Seine.\nDoc 2(Title: untitled)</information>\n\n');
  assert.ok(buildRagPrompt('q', docs.slice(0, 1)).endsWith('Question: q? Context: Doc 1(Title: "Paris") Capital of France.\nOn the Seine.\n \n'));
  assert.ok(INVALID_ACTION_MESSAGE.startsWith('\nMy previous action is invalid. If I want to search, I should put the query between <search> and </search>.'));
  assert.throws(() => formatPassages([{ contents: 3 }]), { name: 'TypeError', message: /docs\[0\]\.contents/ });
});

test('parseAction reads the first complete search or answer span', () => {
  assert.deepEqual(parseAction('<think>hm</think>\n<search> capital of France </search>'), { kind: 'search', content: 'capital of France' });
  assert.deepEqual(parseAction('<answer>\n Paris\n</answer>'), { kind: 'answer', content: 'Paris' });
  // An unclosed answer does not hide the complete search after it (the regex moves on).
  assert.deepEqual(parseAction('<answer> x <search>q</search>'), { kind: 'search', content: 'q' });
  assert.deepEqual(parseAction('<search>a</answer>'), { kind: 'invalid', content: '' });
  assert.deepEqual(parseAction('<think>only thinking</think>'), { kind: 'invalid', content: '' });
  assert.deepEqual(parseAction('<search></search>'), { kind: 'search', content: '' });
  assert.deepEqual(parseAction('<answer>a</answer><search>b</search>'), { kind: 'answer', content: 'a' });
});

test('cutTurn keeps the text up to the first closing action tag', () => {
  assert.equal(cutTurn('<search>a</search> tail <answer>b</answer>'), '<search>a</search>');
  assert.equal(cutTurn('<answer>b</answer> then <search>a</search>'), '<answer>b</answer>');
  assert.equal(cutTurn('no action'), 'no action');
});

function sampleTrajectory(info) {
  const t = newTrajectory('who wrote hamlet', buildAgentPrompt('who wrote hamlet'));
  assert.deepEqual(addSegment(t, 'model', '<think>a</think><search> hamlet author </search>'), { kind: 'search', content: 'hamlet author' });
  addSegment(t, 'information', informationBlock([{ contents: info }]));
  assert.deepEqual(addSegment(t, 'model', 'I think'), { kind: 'invalid', content: '' });
  addSegment(t, 'correction', INVALID_ACTION_MESSAGE);
  addSegment(t, 'model', '<think>b</think><answer> Shakespeare </answer>');
  return finishTrajectory(t, 'answer');
}

test('a trajectory records its searches, answer, turns, invalid actions and stop reason', () => {
  const t = sampleTrajectory('"Hamlet"\nA play by Shakespeare.');
  assert.deepEqual(t.searches, ['hamlet author']);
  assert.equal(t.answer, 'Shakespeare');
  assert.equal(t.turns, 3);
  assert.equal(t.invalidActions, 1);
  assert.equal(t.stop, 'answer');
  assert.deepEqual(t.segments.map((s) => s.origin), ['prompt', 'model', 'information', 'model', 'correction', 'model']);
  assert.ok(responseText(t).startsWith('<think>a</think><search> hamlet author </search>\n\n<information>Doc 1(Title: "Hamlet")'));
  assert.throws(() => addSegment(t, 'model', 'more'), { name: 'RangeError', message: 'Expected a running trajectory but it already ended (answer)' });
  const u = newTrajectory('q', 'p');
  assert.throws(() => finishTrajectory(u, 'answer'), /Expected an answer turn/);
  assert.throws(() => addSegment(u, 'tool', 'x'), { name: 'TypeError' });
  assert.throws(() => addSegment(u, 'prompt', 'again'), /only as the first segment/);
  assert.equal(finishTrajectory(u, 'turn-limit').stop, 'turn-limit');
});

// A toy tokenizer: one id per character, so the mask can be checked position by position.
const charTokens = (s) => Int32Array.from([...s].map((c) => c.codePointAt(0)));

test('trajectorySequence puts only model-written tokens in the loss', () => {
  const t = tokenizeTrajectory(sampleTrajectory('"Hamlet"\nA play by Shakespeare.'), (s) => charTokens(s));
  const seq = trajectorySequence(t);
  let at = 0;
  for (const s of t.segments) {
    for (let i = 0; i < s.tokens.length; i++) assert.equal(seq.targets[at + i], s.origin === 'model' ? 1 : 0, `${s.origin} token ${i}`);
    at += s.tokens.length;
  }
  assert.equal(at, seq.tokens.length);
  const modelChars = t.segments.filter((s) => s.origin === 'model').reduce((n, s) => n + [...s.text].length, 0);
  assert.equal(seq.targets.reduce((a, b) => a + b, 0), modelChars);
  assert.throws(() => trajectorySequence(newTrajectory('q', 'p')), /Expected tokens on segment 0 \(prompt\)/);
});

test('changing only the information text changes no target position nor any target token', () => {
  // Same length, different retrieved text: every position keeps its mask, and every target token is the same.
  const a = trajectorySequence(tokenizeTrajectory(sampleTrajectory('"Hamlet"\nA play by Shakespeare.'), charTokens));
  const b = trajectorySequence(tokenizeTrajectory(sampleTrajectory('"Zzzzzz"\nQ xxxx yy Zzzzzzzzzzz.'), charTokens));
  assert.equal(a.tokens.length, b.tokens.length);
  assert.deepEqual(a.targets, b.targets);
  let differ = 0;
  for (let i = 0; i < a.tokens.length; i++) {
    if (a.tokens[i] !== b.tokens[i]) {
      differ++;
      assert.equal(a.targets[i], 0, `position ${i} differs and is a target`);
    }
  }
  assert.ok(differ > 10, 'the information text did change');
});

test('rewards read the model and information segments, not our corrective message (no answer stays 0)', () => {
  const { emFormatReward, emReward } = lib;
  const t = newTrajectory('who wrote hamlet', buildAgentPrompt('who wrote hamlet'));
  addSegment(t, 'model', 'I am not sure');
  addSegment(t, 'correction', INVALID_ACTION_MESSAGE);
  addSegment(t, 'model', 'still no tags');
  finishTrajectory(t, 'turn-limit');
  assert.equal(responseText(t), 'I am not surestill no tags');
  // The message's literal "<answer> and </answer>" would otherwise read as a wrong answer (0.1).
  assert.equal(emFormatReward(responseText(t), ['William Shakespeare']), 0);
  assert.equal(emReward(responseText(t), ['and']), 0);
});

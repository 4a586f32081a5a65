// A rollout as the agent will run it, with a scripted model and a scripted retriever: the loop below
// is all an agent adds (generation on continuing sequences replaces `model.next`). Checks the
// transcripts, the stop reasons, the masks and the rewards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib } from './helpers/models.mjs';

const {
  buildAgentPrompt, newTrajectory, takeTurn, appendObservation, nextStep, addSegment, transcriptText, responseText, tokenizeTrajectory,
  trajectorySequence, emFormatReward, emReward, INVALID_ACTION_MESSAGE,
} = lib;

/** Turns as a model would return them: text (stop string cut off), how generation ended, the stop string. */
function scriptedModel(turns) {
  let i = 0;
  return { next: () => turns[i++] };
}

async function rollout(question, model, retriever, maxTurns = 4) {
  const t = newTrajectory(question, buildAgentPrompt(question));
  for (;;) {
    const [text, finish, stoppedAt] = model.next();
    const { step } = takeTurn(t, text, finish, { maxTurns }, stoppedAt);
    if (step.kind === 'stop') return t;
    const docs = step.kind === 'search' ? (await retriever.retrieve([step.query], { topk: 3 }))[0].docs : undefined;
    appendObservation(t, step, docs);
  }
}

const retriever = {
  queries: [],
  async retrieve(queries) {
    this.queries.push(...queries);
    return queries.map((q) => ({ docs: [{ id: 'd1', contents: '"Hamlet"\nHamlet was written by William Shakespeare.', score: 1 }] }));
  },
};

test('search, invalid turn, answer: the transcript, the mask and the rewards are what Search-R1 would have', async () => {
  const model = scriptedModel([
    ['<think>I need the author.</think>\n<search> author of hamlet ', 'stop', '</search>'],
    ['The author is', 'length'],
    ['<think>The document says Shakespeare.</think>\n<answer> William Shakespeare ', 'stop', '</answer>'],
  ]);
  retriever.queries = [];
  const t = await rollout('who wrote hamlet', model, retriever);
  assert.deepEqual(retriever.queries, ['author of hamlet']);
  assert.equal(t.stop, 'answer');
  assert.equal(t.answer, 'William Shakespeare');
  assert.equal(t.invalidActions, 1);
  assert.equal(transcriptText(t), `${buildAgentPrompt('who wrote hamlet')}<think>I need the author.</think>\n<search> author of hamlet </search>`
    + '\n\n<information>Doc 1(Title: "Hamlet") Hamlet was written by William Shakespeare.</information>\n\n'
    + `The author is${INVALID_ACTION_MESSAGE}<think>The document says Shakespeare.</think>\n<answer> William Shakespeare </answer>`);
  // Correct, but the corrective message breaks the format: 0.8, as Search-R1 v0.3 scores it.
  assert.ok(Math.abs(emFormatReward(responseText(t), ['William Shakespeare']) - 0.8) < 1e-12);
  assert.equal(emReward(responseText(t), ['william shakespeare']), 1);
  const chars = (s) => Int32Array.from([...s].map((c) => c.codePointAt(0)));
  const seq = trajectorySequence(tokenizeTrajectory(t, chars));
  const expected = t.segments.flatMap((s) => [...s.text].map(() => (s.origin === 'model' ? 1 : 0)));
  assert.deepEqual([...seq.targets], expected);
});

test('a turn that keeps writing after its action is cut after the closing tag', async () => {
  const model = scriptedModel([['<think>x</think><answer> Paris </answer> and more text', 'eog']]);
  const t = await rollout('capital of france', model, retriever);
  assert.equal(t.segments[1].text, '<think>x</think><answer> Paris </answer>');
  assert.equal(emFormatReward(responseText(t), ['Paris']), 1);
});

test('stop reasons: turn limit, no action, context budget', async () => {
  const searchForever = { next: () => ['<think>more</think><search> q ', 'stop', '</search>'] };
  retriever.queries = [];
  const limited = await rollout('q', searchForever, retriever, 3);
  assert.equal(limited.stop, 'turn-limit');
  assert.equal(limited.turns, 3);
  // The third search is not run: the trajectory ends at its turn limit.
  assert.equal(retriever.queries.length, 2);
  assert.equal((await rollout('q', scriptedModel([['I give up.', 'eog']]), retriever)).stop, 'no-action');
  assert.equal((await rollout('q', scriptedModel([['<think>long', 'context']]), retriever)).stop, 'context-budget');
  const t = newTrajectory('q', 'p');
  const action = addSegment(t, 'model', '<answer>a</answer>');
  assert.deepEqual(nextStep(t, action, 'stop', { maxTurns: 4 }), { kind: 'stop', reason: 'answer' });
  assert.throws(() => appendObservation(t, { kind: 'stop', reason: 'answer' }), /Expected a search or correct step/);
});

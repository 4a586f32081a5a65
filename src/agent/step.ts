// What follows a model turn in a Search-R1 rollout, as pure decisions, so that the agent over
// continuing sequences is a thin loop: generate until an action's closing tag, call nextStep, then
// retrieve and append the information, append the correction, or stop.
import { assertInteger, expected } from '../util/validate';
import { INVALID_ACTION_MESSAGE, informationBlock, type PassageLike } from './prompt';
import { addSegment, cutTurn, finishTrajectory, type AgentAction, type StopReason, type Trajectory } from './trajectory';

/** How a turn's generation ended, as the engine reports it (Session `Generation.finish`). */
export type TurnFinish = 'eog' | 'stop' | 'length' | 'context' | 'embed' | 'prompt';

/** What the rollout does next. */
export type NextStep =
  | { kind: 'search'; query: string }
  | { kind: 'correct'; text: string }
  | { kind: 'stop'; reason: StopReason };

/**
 * Decides what follows a model turn already added to `t` (its action is `action`), in this order:
 * an answer ends the trajectory (`answer`); a turn cut by a full context ends it (`context-budget`);
 * the `maxTurns`-th turn ends it (`turn-limit`); a search goes to the retriever; an invalid turn that
 * the model ended itself (end-of-generation) ends it (`no-action`: there is nothing to continue);
 * any other invalid turn gets Search-R1's corrective message. A `stop` step also finishes `t`.
 *
 * @example const step = nextStep(t, addSegment(t, 'model', cutTurn(text))!, gen.finish, { maxTurns: 4 });
 */
export function nextStep(t: Trajectory, action: AgentAction, finish: TurnFinish, limits: { maxTurns: number }): NextStep {
  if (!action || !['search', 'answer', 'invalid'].includes(action.kind)) throw new TypeError(expected('an AgentAction', 'action', action));
  assertInteger(limits?.maxTurns, 'limits.maxTurns', 1, 1024);
  const stop = (reason: StopReason): NextStep => {
    finishTrajectory(t, reason);
    return { kind: 'stop', reason };
  };
  if (action.kind === 'answer') return stop('answer');
  if (finish === 'context') return stop('context-budget');
  if (t.turns >= limits.maxTurns) return stop('turn-limit');
  if (action.kind === 'search') return { kind: 'search', query: action.content };
  if (finish === 'eog') return stop('no-action');
  return { kind: 'correct', text: INVALID_ACTION_MESSAGE };
}

/**
 * Adds one generated turn to `t` as Search-R1 keeps it (cut after its first closing action tag; the
 * closing tag put back when generation stopped on it, since stop strings are cut from the text) and
 * decides the next step. Returns the kept text too, so the caller can drop the cut tokens.
 *
 * @example const { step } = takeTurn(t, gen.text, gen.finish, { maxTurns: 4 }, '</search>');
 */
export function takeTurn(t: Trajectory, text: string, finish: TurnFinish, limits: { maxTurns: number }, stoppedAt?: string, tokens?: Int32Array): { kept: string; step: NextStep } {
  const kept = cutTurn(finish === 'stop' && stoppedAt !== undefined ? `${text}${stoppedAt}` : text);
  const action = addSegment(t, 'model', kept, tokens)!;
  return { kept, step: nextStep(t, action, finish, limits) };
}

/**
 * Appends what a step brings back: the retrieved documents as `<information>` for a search, the
 * corrective message for an invalid turn. Returns the appended text (for the caller to tokenize
 * and feed to the sequence).
 *
 * @example appendObservation(t, step, hits.docs)
 */
export function appendObservation(t: Trajectory, step: NextStep, docs?: readonly PassageLike[], tokens?: Int32Array): string {
  if (step.kind === 'search') {
    if (!Array.isArray(docs)) throw new TypeError(expected('array of retrieved documents', 'docs', docs));
    const text = informationBlock(docs);
    addSegment(t, 'information', text, tokens);
    return text;
  }
  if (step.kind === 'correct') {
    addSegment(t, 'correction', step.text, tokens);
    return step.text;
  }
  throw new RangeError(`Expected a search or correct step but received a stop step (${step.reason})`);
}

// A Search-R1 rollout as data: what the model wrote in each turn, read as an action the way
// Search-R1 reads it, and the whole transcript as segments that remember who wrote them, so that a
// training sequence can put only the model's own tokens in the loss.
import type { TrainSequence } from '../train/batch';
import { assertString, expected } from '../util/validate';

/** What a turn asked for. `invalid`: neither a complete `<search>` nor a complete `<answer>` span. */
export type ActionKind = 'search' | 'answer' | 'invalid';

/** One parsed turn: the action and the text inside its tags, trimmed (empty for `invalid`). */
export interface AgentAction {
  kind: ActionKind;
  content: string;
}

/** The closing tags generation stops at (Search-R1 samples with these as stop strings). */
export const ACTION_STOPS: readonly string[] = Object.freeze(['</search>', '</answer>']);

const ACTION = /<(search|answer)>([\s\S]*?)<\/\1>/;

/**
 * Cuts a turn right after its first `</search>` or `</answer>`, as Search-R1's
 * `_postprocess_responses` does so that nothing the model wrote past its action is kept. One
 * difference, on purpose: Search-R1 cuts at `</search>` whenever the text has one, even after an
 * earlier `</answer>` (an artefact of its chained conditional); we cut at whichever comes first,
 * which is where the model's action ended.
 *
 * @example cutTurn('<search>a</search> more') // '<search>a</search>'
 */
export function cutTurn(text: string): string {
  assertString(text, 'text');
  let end = -1;
  for (const tag of ACTION_STOPS) {
    const i = text.indexOf(tag);
    if (i >= 0 && (end < 0 || i + tag.length < end)) end = i + tag.length;
  }
  return end < 0 ? text : text.slice(0, end);
}

/**
 * Reads a turn as Search-R1's `postprocess_predictions` does: the first `<search>…</search>` or
 * `<answer>…</answer>` pair (regex `<(search|answer)>(.*?)</\1>` with DOTALL) decides the action
 * and its trimmed content; without one the turn is `invalid`. An empty query or answer still counts
 * as that action, as in Search-R1.
 *
 * @example parseAction('<think>x</think><search> capital of France </search>') // { kind: 'search', content: 'capital of France' }
 */
export function parseAction(text: string): AgentAction {
  assertString(text, 'text');
  const m = ACTION.exec(text);
  if (!m) return { kind: 'invalid', content: '' };
  return { kind: m[1] as 'search' | 'answer', content: m[2]!.trim() };
}

/** Who wrote a segment of a transcript. Only `model` segments are trained on. */
export type SegmentOrigin = 'prompt' | 'model' | 'information' | 'correction';
export const SEGMENT_ORIGINS: readonly SegmentOrigin[] = Object.freeze(['prompt', 'model', 'information', 'correction']);

/** One piece of a transcript, in order. `tokens` are the ids it was decoded or sampled as. */
export interface Segment {
  origin: SegmentOrigin;
  text: string;
  tokens?: Int32Array;
  /** `model` segments of a rollout run with `logprobs`: the log-probability of each of `tokens` when sampled. */
  logprobs?: Float32Array;
}

/**
 * Why a trajectory ended. `answer`: the model answered. `turn-limit`: it used its turns without
 * answering. `context-budget`: the next turn would not fit the context. `no-action`: the model
 * ended its generation (end-of-generation token) without a search or an answer, so there was
 * nothing to continue from.
 */
export type StopReason = 'answer' | 'turn-limit' | 'context-budget' | 'no-action';

/** A whole rollout: every segment with its origin, the searches made, and how it ended. */
export interface Trajectory {
  question: string;
  segments: Segment[];
  /** The queries sent to the retriever, in order. */
  searches: string[];
  /** The final answer's text, or null when the trajectory did not end with one. */
  answer: string | null;
  /** Model turns taken. */
  turns: number;
  /** Turns read as `invalid` (each got the corrective message). */
  invalidActions: number;
  /** Null while the rollout runs. */
  stop: StopReason | null;
}

/**
 * Starts a trajectory with its prompt as the first segment.
 *
 * @example const t = newTrajectory('who wrote hamlet', buildAgentPrompt('who wrote hamlet'));
 */
export function newTrajectory(question: string, prompt: string, promptTokens?: Int32Array): Trajectory {
  assertString(question, 'question');
  const t: Trajectory = { question, segments: [], searches: [], answer: null, turns: 0, invalidActions: 0, stop: null };
  addSegment(t, 'prompt', prompt, promptTokens);
  return t;
}

/**
 * Appends a segment. A `model` segment is one turn: it is parsed with {@link parseAction}, and a
 * search is recorded in `searches`, an answer in `answer`, an invalid turn in `invalidActions`.
 * Returns the parsed action for `model` segments, null otherwise.
 */
export function addSegment(t: Trajectory, origin: SegmentOrigin, text: string, tokens?: Int32Array): AgentAction | null {
  if (t.stop !== null) throw new RangeError(`Expected a running trajectory but it already ended (${t.stop})`);
  if (!SEGMENT_ORIGINS.includes(origin)) throw new TypeError(expected(`one of ${SEGMENT_ORIGINS.join(', ')}`, 'origin', origin));
  assertString(text, 'text');
  if (tokens !== undefined && !(tokens instanceof Int32Array)) throw new TypeError(expected('Int32Array', 'tokens', tokens));
  if (origin === 'prompt' && t.segments.length > 0) throw new RangeError('Expected the prompt only as the first segment');
  t.segments.push(tokens === undefined ? { origin, text } : { origin, text, tokens });
  if (origin !== 'model') return null;
  t.turns++;
  const action = parseAction(text);
  if (action.kind === 'search') t.searches.push(action.content);
  else if (action.kind === 'answer') t.answer = action.content;
  else t.invalidActions++;
  return action;
}

/** Ends a trajectory with its reason. */
export function finishTrajectory(t: Trajectory, stop: StopReason): Trajectory {
  if (t.stop !== null) throw new RangeError(`Expected a running trajectory but it already ended (${t.stop})`);
  if (!['answer', 'turn-limit', 'context-budget', 'no-action'].includes(stop)) throw new TypeError(expected('a stop reason', 'stop', stop));
  if (stop === 'answer' && t.answer === null) throw new RangeError('Expected an answer turn before stopping with "answer"');
  t.stop = stop;
  return t;
}

/**
 * The model's turns and the information it received, after the prompt, as one string: the text
 * the rewards read, as Search-R1 scores the response that follows its prompt. Corrective messages
 * are left out: they are ours, and their literal `<answer> and </answer>` would otherwise read as
 * an answer (an answerless trajectory scoring as a wrong answer under `em-format`).
 */
export function responseText(t: Trajectory): string {
  return t.segments.filter((s) => s.origin !== 'prompt' && s.origin !== 'correction').map((s) => s.text).join('');
}

/** The whole transcript as one string. */
export function transcriptText(t: Trajectory): string {
  return t.segments.map((s) => s.text).join('');
}

/**
 * Fills in the tokens of every segment that has none with `tokenize(text, isFirst)`. Segments are
 * tokenized one by one, as Search-R1 tokenizes each observation on its own and appends the ids, so
 * the training sequence holds exactly the ids a continuing rollout would have decoded.
 */
export function tokenizeTrajectory(t: Trajectory, tokenize: (text: string, first: boolean) => Int32Array): Trajectory {
  if (typeof tokenize !== 'function') throw new TypeError(expected('function', 'tokenize', tokenize));
  t.segments.forEach((s, i) => {
    if (s.tokens === undefined) s.tokens = tokenize(s.text, i === 0);
  });
  return t;
}

/**
 * The training sequence of a tokenized trajectory: all segments' tokens in order, with `targets`
 * set on `model` tokens only. The prompt, the retrieved `<information>` and the corrective text are
 * context the model reads but did not write, so they are out of the loss and its KL term — Search-R1's
 * retrieved-token mask (its `info_mask`). The prompt's last token predicts the first model token,
 * so the mask is per predicted token, as `TrainSequence.targets` is.
 *
 * @example const seq = trajectorySequence(tokenizeTrajectory(t, (s, first) => model.tokenize(s, { addSpecial: first })));
 */
export function trajectorySequence(t: Trajectory): TrainSequence {
  let n = 0;
  t.segments.forEach((s, i) => {
    if (!(s.tokens instanceof Int32Array)) throw new RangeError(`Expected tokens on segment ${i} (${s.origin}); tokenize the trajectory first`);
    n += s.tokens.length;
  });
  const tokens = new Int32Array(n);
  const targets = new Uint8Array(n);
  let at = 0;
  for (const s of t.segments) {
    tokens.set(s.tokens!, at);
    if (s.origin === 'model') targets.fill(1, at, at + s.tokens!.length);
    at += s.tokens!.length;
  }
  if (targets[0] === 1) throw new RangeError('Expected a prompt before the first model token (token 0 cannot be a target)');
  return { tokens, targets };
}

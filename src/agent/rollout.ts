// One wave of Search-R1 rollouts on continuing sequences: the prompts are prefilled once per
// question and forked into its samples; then, turn by turn, every live sequence appends what it is
// owed (retrieved documents or the corrective message) and writes its next turn in one shared
// decode, and every search of the turn goes to the retriever in one batched call.
import type { Session } from '../engine/session';
import type { Sequence } from '../engine/sequence';
import { ACTION_STOPS, addSegment, finishTrajectory, newTrajectory, type SegmentOrigin, type StopReason, type Trajectory } from './trajectory';
import { buildAgentPrompt, INVALID_ACTION_MESSAGE, informationBlock } from './prompt';
import { turnSeed, type ResolvedAgentOptions } from './agent-options';

/** What `onTurn` hears after each shared decode and after each batched retrieval. */
export interface AgentTurnEvent {
  /** 'generate': a shared decode wrote a turn for `sequences` sequences; 'retrieve': one retriever call answered `queries`. */
  phase: 'generate' | 'retrieve';
  /** Which wave (0-based) and which turn of it (1-based). */
  wave: number;
  turn: number;
  /** Sequences advanced by the decode (0 for 'retrieve'). */
  sequences: number;
  /** Queries sent (0 for 'generate'). */
  queries: number;
  /** Tokens prefilled (only what was new: prompts, documents, corrections) and written by the decode. */
  prefillTokens: number;
  generatedTokens: number;
  /** Wall time of the decode or the retrieval. */
  ms: number;
  /** Trajectories finished so far in the whole run. */
  finished: number;
}

/** A rollout in flight: its trajectory, its sequence, and what it must read before its next turn. */
interface Live {
  t: Trajectory;
  seq: Sequence;
  sample: number;
  owed: { origin: SegmentOrigin; text: string; tokens: Int32Array } | null;
  query: string | null;
}

/** The pieces of a run one wave needs. */
export interface WaveContext {
  session: Session;
  options: ResolvedAgentOptions;
  signal?: AbortSignal;
  onTurn?: (e: AgentTurnEvent) => void;
  /** Counts finished trajectories across waves. */
  finished: { count: number };
}

const now = (): number => performance.now();

function end(live: Live, stop: StopReason, ctx: WaveContext): void {
  finishTrajectory(live.t, stop);
  live.seq.dispose();
  ctx.finished.count++;
}

/** Tokens of text the model did not write: never parsed for special tokens, so a document cannot inject one. */
function outsideTokens(session: Session, text: string): Int32Array {
  return session.model.tokenize(text, { addSpecial: false, parseSpecial: false });
}

/**
 * Runs `questions` × `group` rollouts (question-major) to the end, all sequences together, and
 * returns their trajectories. Sequences are disposed as their trajectories end, and all of them if
 * the wave fails or is aborted.
 */
export async function runWave(ctx: WaveContext, wave: number, questions: readonly string[], group: number): Promise<Trajectory[]> {
  const { session, options: o } = ctx;
  const opened: Sequence[] = [];
  try {
    const prompts = questions.map((q) => {
      const text = buildAgentPrompt(q, o.template);
      return { q, text, tokens: session.model.tokenize(text, { addSpecial: true, parseSpecial: true }) };
    });
    const out: Trajectory[] = [];
    const live: Live[] = [];
    const roots: { seq: Sequence; tokens: Int32Array }[] = [];
    const rootOf: (Live | null)[][] = [];
    for (const p of prompts) {
      const ts = Array.from({ length: group }, () => newTrajectory(p.q, p.text, p.tokens));
      out.push(...ts);
      if (p.tokens.length + 1 > o.contextPerSequence) {
        // The prompt leaves no room for a single token: the trajectory ends before its first turn.
        for (const t of ts) finishTrajectory(t, 'context-budget');
        ctx.finished.count += group;
        rootOf.push([]);
        continue;
      }
      const seq = session.openSequence();
      opened.push(seq);
      roots.push({ seq, tokens: p.tokens });
      rootOf.push(ts.map((t, g) => ({ t, seq, sample: g, owed: null, query: null })));
    }
    if (roots.length > 0) {
      // All prompts in one shared prefill; each question's samples then fork it (memory shared).
      const t0 = now();
      const { stats } = await session.step(roots.map((r) => ({ sequence: r.seq, append: r.tokens, maxTokens: 0 })), { signal: ctx.signal });
      ctx.onTurn?.({ phase: 'generate', wave, turn: 0, sequences: roots.length, queries: 0, prefillTokens: stats.promptTokens, generatedTokens: 0, ms: now() - t0, finished: ctx.finished.count });
    }
    for (const lives of rootOf) {
      if (lives.length === 0) continue;
      const forks = group > 1 ? lives[0]!.seq.fork(group - 1) : [];
      opened.push(...forks);
      forks.forEach((f, i) => { lives[i + 1]!.seq = f; });
      live.push(...(lives as Live[]));
    }
    for (let turn = 1; live.length > 0; turn++) {
      await generateTurn(ctx, wave, turn, live);
      await retrieveTurn(ctx, wave, turn, live);
    }
    return out;
  } finally {
    for (const s of opened) s.dispose();
  }
}

/** Room the sequence has for its next turn once what it is owed is appended. */
function room(l: Live, o: ResolvedAgentOptions): number {
  return o.contextPerSequence - l.seq.length - (l.owed?.tokens.length ?? 0);
}

async function generateTurn(ctx: WaveContext, wave: number, turn: number, live: Live[]): Promise<void> {
  const o = ctx.options;
  for (let i = live.length - 1; i >= 0; i--) {
    if (room(live[i]!, o) < 1) {
      end(live[i]!, 'context-budget', ctx);
      live.splice(i, 1);
    }
  }
  if (live.length === 0) return;
  const budgets = live.map((l) => Math.min(o.maxTurnTokens, room(l, o)));
  const items = live.map((l, i) => ({
    sequence: l.seq,
    append: l.owed?.tokens,
    maxTokens: budgets[i]!,
    temperature: o.temperature,
    topP: o.topP,
    seed: turnSeed(o.seed, l.sample, turn),
    stop: [...ACTION_STOPS],
    logprobs: o.logprobs,
  }));
  const t0 = now();
  const { results, stats } = await ctx.session.step(items, { signal: ctx.signal });
  const ms = now() - t0;
  for (let i = live.length - 1; i >= 0; i--) {
    const l = live[i]!;
    const r = results[i]!;
    if (l.owed) addSegment(l.t, l.owed.origin, l.owed.text, l.owed.tokens);
    l.owed = null;
    const action = addSegment(l.t, 'model', r.text, r.tokens)!;
    if (r.logprobs) l.t.segments[l.t.segments.length - 1]!.logprobs = r.logprobs;
    const stop = turnEnd(action.kind, r.finish, budgets[i]! < o.maxTurnTokens, l.t.turns >= o.maxTurns);
    if (stop !== null) {
      end(l, stop, ctx);
      live.splice(i, 1);
    } else if (action.kind === 'search') {
      l.query = action.content;
    } else {
      l.owed = { origin: 'correction', text: INVALID_ACTION_MESSAGE, tokens: outsideTokens(ctx.session, INVALID_ACTION_MESSAGE) };
    }
  }
  ctx.onTurn?.({ phase: 'generate', wave, turn, sequences: items.length, queries: 0, prefillTokens: stats.promptTokens, generatedTokens: stats.generatedTokens, ms, finished: ctx.finished.count });
}

/**
 * How a turn ends its trajectory, or null when it goes on. An answer ends it; so does an
 * end-of-generation token without an action (nothing to continue from), a turn cut by the context
 * budget rather than by `maxTurnTokens`, or the last allowed turn.
 */
function turnEnd(kind: 'search' | 'answer' | 'invalid', finish: string, budgetCut: boolean, lastTurn: boolean): StopReason | null {
  if (kind === 'answer') return 'answer';
  if (finish === 'context' || (finish === 'length' && budgetCut)) return 'context-budget';
  if (kind === 'invalid' && finish === 'eog') return 'no-action';
  return lastTurn ? 'turn-limit' : null;
}

async function retrieveTurn(ctx: WaveContext, wave: number, turn: number, live: Live[]): Promise<void> {
  const waiting = live.filter((l) => l.query !== null);
  if (waiting.length === 0) return;
  const t0 = now();
  const hits = await ctx.options.retriever.retrieve(waiting.map((l) => l.query!), { topk: ctx.options.topk, signal: ctx.signal });
  if (!Array.isArray(hits) || hits.length !== waiting.length) {
    throw new TypeError(`Expected the retriever "${ctx.options.retriever.name}" to return ${waiting.length} results but it returned ${Array.isArray(hits) ? hits.length : typeof hits}`);
  }
  waiting.forEach((l, i) => {
    const text = informationBlock(hits[i]!.docs);
    l.owed = { origin: 'information', text, tokens: outsideTokens(ctx.session, text) };
    l.query = null;
  });
  ctx.onTurn?.({ phase: 'retrieve', wave, turn, sequences: 0, queries: waiting.length, prefillTokens: 0, generatedTokens: 0, ms: now() - t0, finished: ctx.finished.count });
}

// The Search-R1 agent: rollouts on continuing sequences of one session, so a multi-turn
// trajectory never re-reads what it holds and a question's samples share its prompt's prefill.
import type { Model } from '../engine/model';
import type { Session } from '../engine/session';
import { SearchR3Error } from '../util/errors';
import { assertInteger, assertString, checkKeys, expected } from '../util/validate';
import { resolveAgentOptions, type AgentOptions, type ResolvedAgentOptions } from './agent-options';
import { runWave, type AgentTurnEvent } from './rollout';
import type { Trajectory } from './trajectory';

/** Options of {@link Agent.run}. */
export interface AgentRunOptions {
  /** Samples per question (default 1); at most the agent's `sequences`. */
  group?: number;
  signal?: AbortSignal;
  /** Called after every shared decode and every batched retrieval (progress, benchmarks). */
  onTurn?: (event: AgentTurnEvent) => void;
}

/**
 * Runs Search-R1 rollouts: the model reasons, writes `<search>query</search>`, reads the
 * retriever's documents as `<information>…</information>`, and ends with `<answer>…</answer>`.
 * Every trajectory records which tokens the model wrote (`model` segments, with log-probs when
 * asked) and which came from outside (prompt, information, correction), and why it ended.
 *
 * @example
 * const agent = await Agent.create(model, { retriever: new Bm25Retriever(docs) });
 * const [t] = await agent.run(['who wrote hamlet']);
 * t.answer; t.searches; t.stop;
 * agent.dispose();
 */
export class Agent {
  /** The session the sequences live in (its `sequences` slots, `contextPerSequence` tokens each). */
  readonly session: Session;
  /** The resolved options. */
  readonly options: Readonly<ResolvedAgentOptions>;
  #running = false;

  private constructor(session: Session, options: ResolvedAgentOptions) {
    this.session = session;
    this.options = Object.freeze(options);
  }

  /** Checks the options and opens the agent's session (with `lora` attached at scale 1). */
  static async create(model: Model, options: AgentOptions): Promise<Agent> {
    const o = resolveAgentOptions(model, options);
    // One KV buffer for all sequences, so forked samples share their prompt's cells.
    const session = await model.createSession({
      sequences: o.sequences, contextSize: o.sequences * o.contextPerSequence, kvUnified: true, cacheType: o.cacheType, flashAttention: o.flashAttention,
      ...(o.threads === undefined ? {} : { threads: o.threads }),
    });
    try {
      if (o.lora) session.setLoras([{ adapter: o.lora, scale: 1 }]);
    } catch (e) {
      session.dispose();
      throw e;
    }
    return new Agent(session, o);
  }

  /**
   * Every question × `group` samples, question-major (`result[q * group + g]`); all advance together
   * in shared decodes, in waves of `floor(sequences / group)` questions when there are more.
   */
  async run(questions: readonly string[], options: AgentRunOptions = {}): Promise<Trajectory[]> {
    if (!Array.isArray(questions)) throw new TypeError(expected('array of questions', 'questions', questions));
    questions.forEach((q, i) => assertString(q, `questions[${i}]`, { nonEmpty: true }));
    checkKeys(options, ['group', 'signal', 'onTurn'], 'options');
    const group = options.group ?? 1;
    assertInteger(group, 'options.group', 1, this.options.sequences);
    if (options.onTurn !== undefined && typeof options.onTurn !== 'function') throw new TypeError(expected('function', 'options.onTurn', options.onTurn));
    if (this.session.disposed) throw new SearchR3Error('ERR_DISPOSED', 'the agent was disposed');
    // Two runs would share the session's slots and its one-operation-at-a-time guard.
    if (this.#running) throw new SearchR3Error('ERR_BUSY', 'the agent is already running');
    this.#running = true;
    try {
      const perWave = Math.floor(this.options.sequences / group);
      const ctx = { session: this.session, options: this.options, signal: options.signal, onTurn: options.onTurn, finished: { count: 0 } };
      const out: Trajectory[] = [];
      for (let w = 0; w * perWave < questions.length; w++) {
        out.push(...await runWave(ctx, w, questions.slice(w * perWave, (w + 1) * perWave), group));
      }
      return out;
    } finally {
      this.#running = false;
    }
  }

  /** Frees the session (idempotent; a run in flight rejects with ERR_DISPOSED). */
  dispose(): void {
    this.session.dispose();
  }
}

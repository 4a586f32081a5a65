// The agent as the third `--task qa` method, beside no-retrieval and RAG (./methods.ts).
import type { Agent } from './agent';
import type { QaMethod, QaOutput } from './methods';
import { responseText, type Trajectory } from './trajectory';
import { expected } from '../util/validate';

/** A trajectory as the QA bench scores it: the model's tokens as generated, everything else as read. */
export function trajectoryOutput(t: Trajectory): QaOutput {
  let generated = 0;
  let read = 0;
  for (const s of t.segments) {
    const n = s.tokens?.length ?? 0;
    if (s.origin === 'model') generated += n;
    else read += n;
  }
  return { response: responseText(t), answer: t.answer, generatedTokens: generated, promptTokens: read, searches: t.searches.length };
}

/**
 * The Search-R1 agent: each question is one greedy rollout (search, read, answer) of `agent`; a
 * batch of questions runs as parallel sequences with one retrieval call per turn.
 *
 * @example const outs = await agentMethod(await Agent.create(model, { retriever })).answer(items);
 */
export function agentMethod(agent: Agent): QaMethod {
  if (typeof agent?.run !== 'function') throw new TypeError(expected('Agent', 'agent', agent));
  return {
    name: 'agent',
    async answer(items, signal) {
      if (items.length === 0) return [];
      const ts = await agent.run(items.map((i) => i.question), { signal });
      return ts.map(trajectoryOutput);
    },
  };
}

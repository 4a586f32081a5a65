import type { EmbedFinish } from '../engine/embedder';
import type { Model } from '../engine/model';
import type { Session } from '../engine/session';
import { fitEmbedPrompt, type EmbedTemplate } from '../engine/templates';
import { WeightRandom } from '../gguf/random';
import type { NativeRequest, NativeResult } from '../native';
import { normalize } from '../store/vector-math';
import { SearchR3Error } from '../util/errors';
import type { TrainSequence } from './batch';
import { encodeEmbedText } from './data';
import type { EncodeDocuments } from './rl-env';
import type { LoraTrainer } from './trainer';

/** One sampled reasoning of one query, ready for the reward and the update. */
export interface Rollout {
  /** Index of its query in the step's query list. */
  query: number;
  /** Prompt + generated tokens (+ the engine's appended `<|embed_token|>`); targets = the sampled tokens; embedAt = the embed token. */
  sequence: TrainSequence;
  /** The engine's log-prob of each sampled token (raw logits' log-softmax), in target order. */
  logp: Float32Array;
  /** Unit vector of the hidden state at `<|embed_token|>`. */
  vector: Float32Array;
  finish: EmbedFinish;
  /** Reasoning tokens, without the embed token. */
  reasoningTokens: number;
}

/** How rollouts are sampled. */
export interface RolloutOptions {
  group: number;
  maxReasoningTokens: number;
  temperature: number;
  topP: number;
  /** Longest prompt in tokens (texts are cut to fit, as stage 1 does). */
  maxTokens: number;
  signal?: AbortSignal;
}

/**
 * A hidden state as the unit vector the store compares (the store's own normalisation). A state
 * that is not finite, or zero, means the adapter diverged: ERR_TRAIN, so the run stops with its
 * last good checkpoint named (TrainRun).
 */
function unit(v: Float32Array, name: string): Float32Array {
  if (!v.every(Number.isFinite) || v.every((x) => x === 0)) {
    throw new SearchR3Error('ERR_TRAIN', `the hidden state of ${name} is not a finite non-zero vector (the adapter diverged)`);
  }
  return normalize(v, v.length, name);
}

/** The Embedder's finish rule (Embedder's EmbedFinish) for a reason-mode native result. */
function finishOf(r: NativeResult): EmbedFinish {
  if (!r.embedForced) return 'embed';
  return r.finish === 'length' || r.finish === 'context' ? 'budget' : 'stopped';
}

/** Tokens one rollout sequence needs at most: the prompt, the reasoning and `<|embed_token|>`. */
export const rolloutContext = (o: { maxTokens: number; maxReasoningTokens: number }): number => o.maxTokens + o.maxReasoningTokens + 1;

/**
 * Samples `group` reasonings for each query in one session call: each query's prompt is decoded
 * once and shared by its copies (`copies`), every copy has its own seed (the request's seed + copy),
 * and the request seeds are a pure function of (seed, step), so a resumed run samples the same.
 */
export async function sampleRollouts(
  session: Session, model: Model, template: EmbedTemplate, queries: readonly string[], seed: number, step: number, o: RolloutOptions,
): Promise<{ rollouts: Rollout[]; generated: number; seconds: number }> {
  const embedToken = model.info.embedTokenId!;
  const rand = new WeightRandom(seed, `stage2-rollout-${step}`);
  const prompts = queries.map((q) => fitEmbedPrompt(model, template, 'reason', q, o.maxTokens).ids);
  const requests: NativeRequest[] = prompts.map((prompt) => ({
    prompt, copies: o.group, maxTokens: o.maxReasoningTokens, temperature: o.temperature, topP: o.topP, seed: rand.next(),
    logprobs: true, embedToken, embedOnStop: true,
  }));
  const t0 = performance.now();
  const { results, stats } = await session.run(requests, { signal: o.signal });
  const seconds = (performance.now() - t0) / 1000;
  const rollouts = results.map((r): Rollout => {
    if (!r.embedding || !r.logprobs) throw new SearchR3Error('ERR_NATIVE', `rollout ${r.request}/${r.copy}: the engine returned no hidden state or log-probs`);
    const prompt = prompts[r.request]!;
    const tail = r.embedForced ? 1 : 0;
    const tokens = new Int32Array(prompt.length + r.tokens.length + tail);
    tokens.set(prompt, 0);
    tokens.set(r.tokens, prompt.length);
    if (tail) tokens[tokens.length - 1] = embedToken;
    // Every sampled token is an action of the policy, a self-emitted <|embed_token|> included (the
    // format reward is about it); the prompt and a token the engine appended are not.
    const targets = new Uint8Array(tokens.length);
    targets.fill(1, prompt.length, prompt.length + r.tokens.length);
    const finish = finishOf(r);
    return {
      query: r.request, sequence: { tokens, targets, embedAt: tokens.length - 1 }, logp: r.logprobs, vector: unit(r.embedding, `rollout ${r.request}/${r.copy}`), finish,
      reasoningTokens: r.tokens.length - (finish === 'embed' ? 1 : 0),
    };
  });
  return { rollouts, generated: stats.generatedTokens, seconds };
}

/**
 * Reason-mode query vectors for evaluation: greedy reasoning with the session's current adapter,
 * one per text, in order.
 */
export async function reasonVectors(session: Session, model: Model, template: EmbedTemplate, texts: readonly string[], o: { maxReasoningTokens: number; maxTokens: number; signal?: AbortSignal }): Promise<Float32Array[]> {
  const embedToken = model.info.embedTokenId!;
  const out: Float32Array[] = [];
  const chunk = session.info.sequences;
  for (let i = 0; i < texts.length; i += chunk) {
    const requests: NativeRequest[] = texts.slice(i, i + chunk).map((t) => ({
      prompt: fitEmbedPrompt(model, template, 'reason', t, o.maxTokens).ids, maxTokens: o.maxReasoningTokens, temperature: 0, embedToken, embedOnStop: true,
    }));
    const { results } = await session.run(requests, { signal: o.signal });
    for (const r of results) {
      if (!r.embedding) throw new SearchR3Error('ERR_NATIVE', `no hidden state was captured for eval query ${i + r.request}`);
      out.push(unit(r.embedding, `eval query ${i + r.request}`));
    }
  }
  return out;
}

/**
 * The environment's encoder: documents embedded by the trainer's own forward graph with its
 * current adapter (no file round trip), `document` side, unit vectors.
 */
export function trainerDocumentEncoder(trainer: LoraTrainer, model: Model, template: EmbedTemplate, maxTokens: number, batch = 16): EncodeDocuments {
  return async (texts, signal) => {
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += batch) {
      const sequences = texts.slice(i, i + batch).map((t): TrainSequence => {
        const tokens = encodeEmbedText(model, template, 'document', t, maxTokens);
        return { tokens, embedAt: tokens.length - 1 };
      });
      const r = await trainer.forward(sequences, { hidden: true, signal });
      r.hidden!.forEach((h, j) => out.push(unit(h!, `document ${i + j}`)));
    }
    return out;
  };
}

// Search-R1 training: warm-up SFT on synthesized trajectories, then GRPO on agent rollouts, through
// the shared run scaffold (TrainRun) and the GRPO pass stage 2 uses.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../agent/agent';
import { turnSeed } from '../agent/agent-options';
import { QA_REWARDS, qaReward } from '../agent/rewards';
import { responseText, type Trajectory } from '../agent/trajectory';
import { warmupSequences, warmupTrajectories } from '../agent/warmup';
import type { QaItem } from '../eval/qa-data';
import type { LoraAdapter } from '../engine/lora';
import { Model } from '../engine/model';
import { SearchR3Error } from '../util/errors';
import type { TrainSequence } from './batch';
import { groupAdvantages } from './rewards';
import { checkRunOutputs, fileIdentity, runFiles, TrainRun, type TrainHooks } from './run';
import { resolveSearchR1, searchR1Fingerprint, type ResolvedSearchR1, type SearchR1Options } from './search-r1-config';
import { loadSearchR1Data, type SearchR1Data } from './search-r1-data';
import { collapseCheck, rolloutSignals, type CollapseInput, type RolloutSignals } from './search-r1-signals';
import { accumulateTrajectories } from './search-r1-update';
import { openTrainer, QueryOrder } from './stage2';
import type { LoraTrainer, LossPart } from './trainer';

/** One line of `<out>.log.jsonl`: a supervised warm-up step or a GRPO step. */
export interface SearchR1StepLog extends Partial<RolloutSignals> {
  step: number;
  phase: 'warmup' | 'grpo';
  lr: number;
  loss: number;
  gradNorm: number;
  tokens: number;
  seconds: number;
  /** GRPO steps: the mean reward, mean exact match, the k3 KL (before its coefficient) and the update's diagnostics. */
  reward?: number;
  em?: number;
  kl?: number;
  parts?: Partial<Record<LossPart, number>>;
  clipFraction?: number;
  zeroVarianceGroups?: number;
  logpDiff?: { max: number; mean: number };
  logpOld?: 'engine' | 'trainer';
  times?: { rollout: number; update: number; handover: number };
  checkpoint?: boolean;
}

/** What {@link trainSearchR1} reports. */
export interface SearchR1Result {
  adapter: string;
  state: string;
  log: string;
  /** Warm-up steps and GRPO steps of the run (their sum is the run's step count). */
  warmupSteps: number;
  grpoSteps: number;
  /** Warm-up trajectories synthesized and the questions skipped (the answer was never retrieved). */
  warmupTrajectories: number;
  warmupSkipped: number;
  /** The format probe's valid-format share (null when `warmupSft` was a number). */
  probe: number | null;
  resumedFrom: number;
  finalLoss: number;
  adapterRepaired: boolean;
  /** Mean reward and EM of the first and last GRPO step run now (NaN when none ran). */
  firstReward: number;
  lastReward: number;
  firstEm: number;
  lastEm: number;
}

/** Optional callbacks of this stage (the shared {@link TrainHooks}). */
export type SearchR1Hooks = TrainHooks<SearchR1StepLog>;

/**
 * Search-R1 training (arXiv 2503.09516) on a laptop: optional supervised warm-up on synthesized
 * trajectories, then GRPO on agent rollouts. Each GRPO step runs `questionsPerStep` questions ×
 * `group` rollouts of the agent with the current adapter (with log-probs), scores them with the
 * exact-match reward, turns the scores into group advantages and updates the adapter on the
 * model-written tokens only (retrieved and corrective text are out of the loss and its KL term),
 * then hands the adapter to the next step's agent. Checkpoints are atomic and `resume` continues
 * bit for bit; a collapsing run stops with the last good checkpoint (see collapseCheck).
 *
 * @example
 * const r = await trainSearchR1({ model: 'm.gguf', train: 'train.jsonl', corpus: 'corpus.jsonl', out: 'search-r1.gguf', steps: 50 });
 */
export async function trainSearchR1(options: SearchR1Options, hooks: SearchR1Hooks = {}): Promise<SearchR1Result> {
  let c = resolveSearchR1(options);
  const files = runFiles(c.out);
  await checkRunOutputs(files, {
    model: c.model, lora: c.lora ?? undefined, train: typeof c.train === 'string' ? c.train : undefined, corpus: typeof c.corpus === 'string' ? c.corpus : undefined,
  }, c);
  const data = await loadSearchR1Data(c);
  const model = await Model.load(c.model);
  let trainer: LoraTrainer | null = null;
  let scratch: string | null = null;
  const adapters = new AdapterHandover();
  try {
    trainer = await openTrainer({ model: c.model, lora: c.lora, loraRank: c.loraRank, loraTargets: c.loraTargets, seed: c.seed, threads: c.threads });
    c = resolveSearchR1(options, trainer.info);
    scratch = await mkdtemp(join(tmpdir(), 'search-r3-search-r1-'));
    const adapterPath = join(scratch, 'rollout.lora.gguf');
    const tokenize = (text: string, first: boolean): Int32Array => model.tokenize(text, { addSpecial: first, parseSpecial: first });
    const warm = await warmupTrajectories(data.items, { retriever: data.retriever, template: c.template, topk: c.topk, maxTurns: c.maxTurns, contents: data.contents ?? undefined });
    const warmSeqs = warmupSequences(warm.trajectories, tokenize);
    let probe: number | null = null;
    if (c.warmupSft === 'auto') {
      probe = await formatProbe(model, await adapters.next(trainer, model, adapterPath), data, c, hooks.signal);
    }
    const warmupSteps = c.warmupSft === 'auto' ? (probe! < c.probeThreshold ? c.autoWarmupSteps : 0) : c.warmupSft;
    if (warmupSteps > 0 && warmSeqs.length === 0) {
      throw new SearchR3Error('ERR_TRAIN', `no warm-up trajectory could be made: no search within ${c.maxTurns} turns retrieved a gold answer of any training question; check the corpus, or pass warmupSft 0`);
    }
    const total = warmupSteps + c.steps;
    if (total === 0) throw new RangeError('steps is 0 and there is no warm-up: nothing to train');
    const fingerprint = searchR1Fingerprint(c, {
      model: await fileIdentity(c.model), lora: c.lora ? await fileIdentity(c.lora) : null, data: digest(data.items), warmupSteps,
    });
    const run = await TrainRun.open<Record<string, never>>({
      stage: 'search-r1', files, trainer, fingerprint, steps: total, checkpointEvery: c.checkpointEvery, resume: c.resume,
      adapterMetadata: (step) => ({ 'search_r3.stage': 'search-r1', 'search_r3.steps': step }),
      progress: { label: 'train search-r1', fields: ['phase', 'loss', 'reward', 'em', 'valid', 'invalid', 'len'], show: c.progress },
      signal: hooks.signal, onPhase: hooks.onPhase, extra: {},
    });
    const history: CollapseInput[] = run.start > 0 ? await grpoHistory(files.log) : [];
    const t = trainer;
    let adapter = await adapters.next(t, model, adapterPath);
    // Warm-up steps change the trainer's adapter without handing it over; the first GRPO step after them does.
    let stale = false;
    const warmOrder = new QueryOrder(Math.max(1, warmSeqs.length), c.seed);
    const order = new QueryOrder(data.items.length, c.seed);
    const grpoLogs: SearchR1StepLog[] = [];
    const summary = await run.loop(async (step): Promise<SearchR1StepLog> => {
      if (step < warmupSteps) {
        stale = true;
        return warmupStep(t, warmOrder.at(step, c.warmupBatch).map((i) => warmSeqs[i]!), step, c, hooks.signal);
      }
      const t0 = performance.now();
      if (stale) adapter = await adapters.next(t, model, adapterPath);
      stale = false;
      const g = step - warmupSteps;
      const questions = order.at(g, c.questionsPerStep).map((i) => data.items[i]!);
      const ts = await rollouts(model, adapter, data, c, questions, g, hooks.signal);
      const t1 = performance.now();
      const scored = ts.map((tr, i) => ({ response: responseText(tr), goldenAnswers: questions[Math.floor(i / c.group)]!.goldenAnswers }));
      const rewards = qaReward(c.reward)(scored);
      const em = QA_REWARDS.em(scored);
      const { advantages, zeroVarianceGroups } = groupAdvantages(rewards, c.group);
      const pass = await accumulateTrajectories(t, ts, advantages, c, hooks.signal);
      const s = await t.step({ lr: c.lr });
      const t2 = performance.now();
      adapter = await adapters.next(t, model, adapterPath);
      const t3 = performance.now();
      const signals = rolloutSignals(ts);
      const log: SearchR1StepLog = {
        step: step + 1, phase: 'grpo', lr: c.lr, loss: pass.result.loss, parts: pass.result.parts, reward: mean(rewards), em: mean(em),
        kl: pass.result.parts.grpoKl ?? 0, clipFraction: pass.clipFraction, zeroVarianceGroups, logpDiff: pass.logpDiff, logpOld: pass.logpOld,
        ...signals, gradNorm: s.gradNorm, tokens: pass.result.tokens, seconds: (t3 - t0) / 1000,
        times: { rollout: (t1 - t0) / 1000, update: (t2 - t1) / 1000, handover: (t3 - t2) / 1000 },
      };
      history.push({ reward: log.reward!, invalidRate: signals.invalidRate, responseLength: signals.responseLength });
      const state = c.collapse ? collapseCheck(history, c.collapse) : null;
      if (state?.collapsed) throw new SearchR3Error('ERR_TRAIN', state.reason!);
      grpoLogs.push(log);
      return log;
    }, (l) => ({
      phase: l.phase, loss: l.loss.toFixed(4), reward: l.reward?.toFixed(3) ?? '-', em: l.em?.toFixed(3) ?? '-',
      valid: l.validFormat?.toFixed(2) ?? '-', invalid: l.invalidRate?.toFixed(2) ?? '-', len: l.responseLength?.toFixed(0) ?? '-',
    }), hooks.onStep);
    return {
      adapter: files.adapter, state: files.state, log: files.log, warmupSteps, grpoSteps: c.steps, warmupTrajectories: warm.trajectories.length,
      warmupSkipped: warm.skipped.length, probe, resumedFrom: summary.resumedFrom, finalLoss: summary.finalLoss, adapterRepaired: run.adapterRepaired,
      firstReward: grpoLogs[0]?.reward ?? NaN, lastReward: grpoLogs.at(-1)?.reward ?? NaN, firstEm: grpoLogs[0]?.em ?? NaN, lastEm: grpoLogs.at(-1)?.em ?? NaN,
    };
  } finally {
    adapters.dispose();
    trainer?.dispose();
    model.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

/** One supervised step on warm-up sequences (loss on the model's turns only). */
async function warmupStep(trainer: LoraTrainer, batch: TrainSequence[], step: number, c: ResolvedSearchR1, signal?: AbortSignal): Promise<SearchR1StepLog> {
  const t0 = performance.now();
  const r = await trainer.accumulate(batch, { sft: { weight: 1 } }, { signal });
  const s = await trainer.step({ lr: c.warmupLr });
  return { step: step + 1, phase: 'warmup', lr: c.warmupLr, loss: r.loss, gradNorm: s.gradNorm, tokens: r.tokens, seconds: (performance.now() - t0) / 1000 };
}

/**
 * A GRPO step's rollouts: a fresh agent with the current adapter, log-probs on, its seed a function
 * of (seed, GRPO step) so every step samples anew and a resumed run samples what the first did.
 */
async function rollouts(model: Model, lora: LoraAdapter, data: SearchR1Data, c: ResolvedSearchR1, questions: readonly QaItem[], g: number, signal?: AbortSignal): Promise<Trajectory[]> {
  const agent = await Agent.create(model, {
    retriever: data.retriever, template: c.template, topk: c.topk, maxTurns: c.maxTurns, maxTurnTokens: c.maxTurnTokens, contextPerSequence: c.contextPerSequence,
    sequences: questions.length * c.group, temperature: c.temperature, topP: c.topP, seed: turnSeed(c.seed, 0x5e1, g), threads: c.threads, lora, logprobs: true,
    // Attention as the trainer's forward computes it, so the engine's log-probs can be logp_old.
    cacheType: 'f32', flashAttention: 'off',
  });
  try {
    return await agent.run(questions.map((q) => q.question), { group: c.group, signal });
  } finally {
    agent.dispose();
  }
}

/**
 * The documented format probe: greedy agent rollouts with the starting adapter on the first
 * `probeQuestions` training questions; the share of trajectories in Search-R1's valid format
 * (isValidFormat). Below `probeThreshold`, `warmupSft: 'auto'` runs the warm-up.
 */
async function formatProbe(model: Model, lora: LoraAdapter, data: SearchR1Data, c: ResolvedSearchR1, signal?: AbortSignal): Promise<number> {
  const questions = data.items.slice(0, c.probeQuestions);
  const agent = await Agent.create(model, {
    retriever: data.retriever, template: c.template, topk: c.topk, maxTurns: c.maxTurns, maxTurnTokens: c.maxTurnTokens, contextPerSequence: c.contextPerSequence,
    sequences: questions.length, temperature: 0, threads: c.threads, lora,
  });
  try {
    const ts = await agent.run(questions.map((q) => q.question), { signal });
    return rolloutSignals(ts).validFormat;
  } finally {
    agent.dispose();
  }
}

/**
 * The trainer's adapter as the engine's: written to a scratch GGUF and loaded. The previous one is
 * freed once the next is loaded (the agent that used it is already disposed).
 */
class AdapterHandover {
  #current: LoraAdapter | null = null;

  async next(trainer: LoraTrainer, model: Model, path: string): Promise<LoraAdapter> {
    await trainer.saveAdapter(path);
    const next = await model.loadLora(path);
    this.#current?.dispose();
    this.#current = next;
    return next;
  }

  dispose(): void {
    this.#current?.dispose();
    this.#current = null;
  }
}

/** The GRPO steps a resumed run already took, from its log (TrainRun has cut it to the checkpoint). */
async function grpoHistory(log: string): Promise<CollapseInput[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as SearchR1StepLog).filter((l) => l.phase === 'grpo')
    .map((l) => ({ reward: l.reward!, invalidRate: l.invalidRate!, responseLength: l.responseLength! }));
}

/** The training questions' identity for the fingerprint. */
function digest(items: readonly QaItem[]): string {
  return createHash('sha256').update(JSON.stringify(items.map((q) => [q.id, q.question, q.goldenAnswers]))).digest('hex');
}

const mean = (xs: readonly number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

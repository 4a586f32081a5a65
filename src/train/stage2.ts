import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoraAdapter } from '../engine/lora';
import { EMBED_TOKEN_TEXT, Model } from '../engine/model';
import type { Session } from '../engine/session';
import { WeightRandom } from '../gguf/random';
import { SearchR3Error } from '../util/errors';
import { readLoraAdapter } from './checkpoint';
import { loadTrainingData, type PairRecord } from './data';
import { evaluateRetrieval, readRetrievalSplit, type RetrievalScores } from './retrieval-eval';
import { computeRewards, groupAdvantages, rewardAgreement, type ScoredRollout } from './rewards';
import { CorpusEnvironment, type CorpusEnvironmentOptions } from './rl-env';
import { checkRunOutputs, fileIdentity, runFiles, TrainRun, type TrainHooks } from './run';
import { resolveStage2, stage2Fingerprint, type ResolvedStage2, type Stage2Options } from './stage2-config';
import { loadCorpus, placePositives, stage2DataDigest, type Stage2Query } from './stage2-data';
import { reasonVectors, rolloutContext, sampleRollouts, trainerDocumentEncoder, type Rollout } from './stage2-rollout';
import { updateOnRollouts } from './stage2-update';
import { adapterTargets, LoraTrainer, type LoraModule, type LossPart } from './trainer';

/** One line of `<out>.log.jsonl`. */
export interface Stage2StepLog {
  step: number;
  lr: number;
  loss: number;
  parts: Partial<Record<LossPart, number>>;
  /** Mean total reward of the step's rollouts, and of each reward term. */
  reward: number;
  rewardParts: Record<string, number>;
  /** The k3 KL estimate to the reference (before its coefficient). */
  kl: number;
  clipFraction: number;
  zeroVarianceGroups: number;
  logpDiff: { max: number; mean: number };
  logpOld: 'engine' | 'trainer';
  /** How the rollouts ended: self-emitted `<|embed_token|>`, budget, stopped. */
  finish: Record<string, number>;
  /**
   * Rows re-encoded this step — the stale rows the rewards look at (positives, hard negatives,
   * retrieved top-k), re-encoded before the rewards, plus what the policy adds after the update —
   * their share of the corpus, and staleness after the step (steps).
   */
  reencoded: number;
  share: number;
  staleMax: number;
  staleMean: number;
  gradNorm: number;
  /** Generated rollout tokens, their rate, and the step's wall time. */
  tokens: number;
  tokensPerSecond: number;
  seconds: number;
  /** Seconds per phase; `refresh` is both re-encodes (before the rewards and after the update), `reward` includes the store searches. */
  times: { rollout: number; reward: number; update: number; handover: number; refresh: number; eval?: number };
  /** Every evalEvery steps: held-out `reason`-mode scores (with `eval`) and rewardAgreement(rewards from the store, rewards from a full re-encode) on `agreementSample` rollouts. */
  eval?: RetrievalScores;
  agreement?: number;
  checkpoint?: boolean;
}

/** What {@link trainStage2} reports. */
export interface Stage2Result {
  adapter: string;
  state: string;
  log: string;
  steps: number;
  resumedFrom: number;
  finalLoss: number;
  adapterRepaired: boolean;
  /** Held-out `reason`-mode scores with the starting adapter and after the last step. */
  evalBefore?: RetrievalScores;
  evalAfter?: RetrievalScores;
  /** Mean reward of the first and last step run now (NaN when none ran). */
  firstReward: number;
  lastReward: number;
  corpusSize: number;
  /** Positives found neither by id nor by text and added to the corpus. */
  addedPositives: number;
  tokensPerSecond: number;
}

/** Optional callbacks of this stage (the shared {@link TrainHooks}). */
export type Stage2Hooks = TrainHooks<Stage2StepLog>;

/**
 * Search-R3 stage 2: GRPO on `reason`-mode embeddings. Each step samples `group` reasonings for
 * `queriesPerStep` training queries, ranks the corpus for each rollout's embed-token vector in the
 * RL environment's store, turns the ranks into rewards and group advantages, updates the adapter
 * (GRPO on the sampled tokens + InfoNCE on the embed-token states) and hands the adapter to the
 * rollout session. The store rows a step's rewards look at (its positives, hard negatives and the
 * rollouts' retrieved top-k) are re-encoded with the sampling adapter before the rewards when they
 * are stale; the refresh policy's extra rows follow each update. Checkpoints (adapter, optimizer, step,
 * store) are atomic and `resume` continues bit for bit.
 *
 * @example
 * const r = await trainStage2({ model: 'base.gguf', lora: 'stage1.gguf', train: 'pairs.jsonl', corpus: 'beir/corpus.jsonl', out: 'stage2.gguf' });
 */
export async function trainStage2(options: Stage2Options, hooks: Stage2Hooks = {}): Promise<Stage2Result> {
  let c = resolveStage2(options);
  const files = runFiles(c.out);
  const envRoot = `${c.out}.env`;
  await checkRunOutputs(files, {
    model: c.model, lora: c.lora ?? undefined, train: typeof c.train === 'string' ? c.train : undefined,
    corpus: typeof c.corpus === 'string' ? c.corpus : undefined, eval: typeof c.eval === 'string' ? c.eval : undefined,
  }, c);
  const records: PairRecord[] = typeof c.train === 'string' ? await loadTrainingData(c.train) : c.train;
  if (records.length === 0) throw new RangeError('train has no records');
  const data = placePositives(records, await loadCorpus(c.corpus));
  const split = c.eval === null ? null : typeof c.eval === 'string' ? await readRetrievalSplit(c.eval) : c.eval;

  const model = await Model.load(c.model);
  const owned: { dispose(): void }[] = [model];
  let scratch: string | null = null;
  try {
    if (model.info.embedTokenId === null) {
      throw new SearchR3Error('ERR_MODEL', `${c.model} has no ${EMBED_TOKEN_TEXT} token; add it with "search-r3 add-embed-token ${c.model} OUT.gguf"`);
    }
    const trainer = await openTrainer(c);
    owned.unshift(trainer);
    c = resolveStage2(options, trainer.info);
    const fingerprint = stage2Fingerprint(c, {
      model: await fileIdentity(c.model), lora: c.lora ? await fileIdentity(c.lora) : null, ...stage2DataDigest(data),
    });
    if (!c.resume) await rm(envRoot, { recursive: true, force: true });
    const run: TrainRun<{ evalBefore?: RetrievalScores }> = await TrainRun.open<{ evalBefore?: RetrievalScores }>({
      stage: 'stage-2', files, trainer, fingerprint, steps: c.steps, checkpointEvery: c.checkpointEvery, resume: c.resume,
      adapterMetadata: (step) => ({ 'search_r3.stage': 2, 'search_r3.steps': step }),
      progress: { label: 'train stage 2', fields: ['reward', 'kl', 'clip', 're-enc', 'tok/s'], show: c.progress },
      signal: hooks.signal, onPhase: hooks.onPhase, extra: {},
      checkpointFiles: {
        save: (step): Promise<void> => env.save(join(envRoot, `step-${step}`)),
        committed: (step) => dropOlder(envRoot, `step-${step}`),
      },
    });
    const envOptions: CorpusEnvironmentOptions = {
      docs: data.docs, dim: trainer.info.nEmbd, encode: trainerDocumentEncoder(trainer, model, c.template, c.maxTokens),
      policy: c.refreshPolicy, fullRefreshEvery: c.fullRefreshEvery, threads: c.threads ?? 0,
    };
    const env: CorpusEnvironment = run.start > 0 ? await CorpusEnvironment.load(join(envRoot, `step-${run.start}`), envOptions) : await CorpusEnvironment.create(envOptions);

    const rolloutsPerStep = c.queriesPerStep * c.group;
    const session = await model.createSession({
      sequences: rolloutsPerStep, contextSize: rolloutContext(c) * rolloutsPerStep, threads: c.threads, cacheType: 'f32',
    });
    owned.unshift(session);
    scratch = await mkdtemp(join(tmpdir(), 'search-r3-stage2-'));
    const handover = new Handover(trainer, model, session, join(scratch, 'rollout.lora.gguf'));
    owned.unshift(handover);
    await handover.run();

    const evaluate = (): Promise<RetrievalScores> => evaluateRetrieval(trainer, model, c.template, split!, {
      maxTokens: c.maxTokens, signal: hooks.signal,
      queryVectors: (texts) => reasonVectors(session, model, c.template, texts, { ...c, signal: hooks.signal }),
    });
    if (split && run.start === 0) run.extra = { evalBefore: await evaluate() };
    const order = new QueryOrder(data.queries.length, c.seed);
    const rewards: number[] = [];
    const summary = await run.loop(async (step): Promise<Stage2StepLog> => {
      const t0 = performance.now();
      const queries = order.at(step, c.queriesPerStep).map((i) => data.queries[i]!);
      const sampled = await sampleRollouts(session, model, c.template, queries.map((q) => q.text), c.seed, step, { ...c, signal: hooks.signal });
      const t1 = performance.now();
      const scored = await score(env, c, queries, sampled.rollouts, step, hooks.signal);
      const { advantages, zeroVarianceGroups } = groupAdvantages(scored.total, c.group);
      const t2 = performance.now();
      const evalStep = c.evalEvery > 0 && (step + 1) % c.evalEvery === 0;
      // Before the update: the full re-encode must use the adapter that the rewards' store rows and rollouts came from.
      const agreement = evalStep ? await agreementOf(env, c, queries, sampled.rollouts, scored.rankings, hooks.signal) : undefined;
      const t3 = performance.now();
      const lr = c.lr;
      const u = await updateOnRollouts(trainer, model, c.template, c, queries, sampled.rollouts, advantages, lr, hooks.signal);
      const t4 = performance.now();
      await handover.run();
      const t5 = performance.now();
      const refreshed = await env.refresh(step + 1, [], hooks.signal);
      const t6 = performance.now();
      const times: Stage2StepLog['times'] = {
        rollout: (t1 - t0) / 1000, reward: (t2 - t1) / 1000 - scored.refresh.seconds, update: (t4 - t3) / 1000, handover: (t5 - t4) / 1000,
        refresh: scored.refresh.seconds + (t6 - t5) / 1000,
      };
      const reencoded = scored.refresh.reencoded + refreshed.reencoded;
      const reward = mean(scored.total);
      rewards.push(reward);
      const log: Stage2StepLog = {
        step: step + 1, lr, loss: u.loss, parts: u.parts, reward, rewardParts: Object.fromEntries(Object.entries(scored.parts).map(([k, v]) => [k, mean(v)])),
        kl: u.parts.grpoKl ?? 0, clipFraction: u.clipFraction, zeroVarianceGroups, logpDiff: u.logpDiff, logpOld: u.logpOld,
        finish: countFinish(sampled.rollouts), reencoded, share: reencoded / env.size, staleMax: refreshed.staleMax,
        staleMean: refreshed.staleMean, gradNorm: u.gradNorm, tokens: sampled.generated, tokensPerSecond: sampled.generated / sampled.seconds,
        seconds: 0, times,
      };
      if (evalStep) {
        const t7 = performance.now();
        if (agreement !== undefined) log.agreement = agreement;
        if (split) log.eval = await evaluate();
        times.eval = (performance.now() - t7) / 1000 + (t3 - t2) / 1000;
      }
      log.seconds = (performance.now() - t0) / 1000;
      return log;
    }, (l) => ({
      reward: l.reward.toFixed(3), kl: l.kl.toFixed(4), clip: l.clipFraction.toFixed(3), 're-enc': `${(100 * l.share).toFixed(1)}%`, 'tok/s': l.tokensPerSecond.toFixed(0),
    }), hooks.onStep);
    const evalAfter = split ? await evaluate() : undefined;
    return {
      adapter: files.adapter, state: files.state, log: files.log, steps: c.steps, resumedFrom: summary.resumedFrom, finalLoss: summary.finalLoss,
      adapterRepaired: run.adapterRepaired, evalBefore: run.extra?.evalBefore, evalAfter, firstReward: rewards[0] ?? NaN, lastReward: rewards.at(-1) ?? NaN,
      corpusSize: env.size, addedPositives: data.added, tokensPerSecond: summary.tokensPerSecond,
    };
  } finally {
    for (const o of owned) o.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

/** The trainer, starting from `lora` (its rank, alpha and targets) or from a fresh adapter (shared with Search-R1 training). */
export async function openTrainer(c: Pick<ResolvedStage2, 'model' | 'lora' | 'loraRank' | 'seed' | 'threads'> & { loraTargets?: readonly LoraModule[] }): Promise<LoraTrainer> {
  if (!c.lora) return LoraTrainer.open(c.model, { lora: { rank: c.loraRank, seed: c.seed, targets: c.loraTargets }, threads: c.threads });
  const file = await readLoraAdapter(c.lora);
  const a = file.tensors.find((t) => t.name.endsWith('.lora_a'));
  if (!a) throw new SearchR3Error('ERR_MODEL', `adapter ${c.lora} has no LoRA tensors`);
  const targets = adapterTargets(file.tensors.map((t) => t.name));
  const trainer = await LoraTrainer.open(c.model, { lora: { rank: a.dims[1]!, alpha: file.alpha, targets }, threads: c.threads });
  try {
    await trainer.loadAdapter(c.lora);
  } catch (err) {
    trainer.dispose();
    throw err;
  }
  return trainer;
}

/**
 * Puts the trainer's current adapter into the rollout session: written to a scratch GGUF, loaded
 * by the engine and swapped in; the previous engine adapter is freed.
 */
class Handover {
  #adapter: LoraAdapter | null = null;
  constructor(private trainer: LoraTrainer, private model: Model, private session: Session, private path: string) {}

  async run(): Promise<void> {
    await this.trainer.saveAdapter(this.path);
    const next = await this.model.loadLora(this.path);
    this.session.setLoras([{ adapter: next, scale: 1 }]);
    this.#adapter?.dispose();
    this.#adapter = next;
  }

  /** Detaches and frees the engine's adapter (an adapter cannot be freed while a session holds it). */
  dispose(): void {
    if (!this.session.disposed) this.session.setLoras([]);
    this.#adapter?.dispose();
    this.#adapter = null;
  }
}

/** Deterministic query order: one seeded permutation per epoch, so step k's queries are a pure function of (seed, k). */
export class QueryOrder {
  #perms = new Map<number, Uint32Array>();
  constructor(private n: number, private seed: number) {}

  at(step: number, count: number): number[] {
    return Array.from({ length: count }, (_, j) => {
      const g = step * count + j;
      return this.#perm(Math.floor(g / this.n))[g % this.n]!;
    });
  }

  #perm(epoch: number): Uint32Array {
    let p = this.#perms.get(epoch);
    if (!p) {
      const rnd = new WeightRandom(this.seed, `stage2-epoch-${epoch}`);
      p = Uint32Array.from({ length: this.n }, (_, i) => i);
      for (let i = p.length - 1; i > 0; i--) {
        const j = rnd.next() % (i + 1);
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      this.#perms.set(epoch, p);
    }
    return p;
  }
}

const scoredRollouts = (queries: readonly Stage2Query[], rollouts: readonly Rollout[], rankings: string[][]): ScoredRollout[] =>
  rollouts.map((r, i) => ({ ranking: rankings[i]!, relevant: queries[r.query]!.relevant, finish: r.finish, reasoningTokens: r.reasoningTokens }));

/**
 * The rewards of `step`'s rollouts. A first search finds what they retrieve; the stale rows among
 * those and the queries' positives and hard negatives are re-encoded with the adapter of `step` (the
 * one that sampled the rollouts), and the rollouts are ranked again when any row changed. So the
 * rows a reward depends on are current, and only they are re-encoded (one pass: a stale row that
 * the second search lifts into the top-k keeps its old vector).
 */
async function score(env: CorpusEnvironment, c: ResolvedStage2, queries: readonly Stage2Query[], rollouts: readonly Rollout[], step: number, signal?: AbortSignal) {
  const vectors = rollouts.map((r) => r.vector);
  const k = Math.min(c.topK, env.size);
  const first = await env.search(vectors, k);
  const refresh = await env.refreshStale(step, touchedBy(queries, first, c.topK), signal);
  const rankings = refresh.reencoded > 0 ? await env.search(vectors, k) : first;
  return { rankings, refresh, ...computeRewards(c.rewardTerms, scoredRollouts(queries, rollouts, rankings)) };
}

/**
 * Reward agreement on the first `agreementSample` rollouts: their retrieval reward (the spec's
 * ranking terms, weights scaled to sum 1, so it lies in [0, 1]; the format term does not depend on
 * the store) from the store's rankings against the same from a full re-encode's. Undefined for a
 * spec without a ranking term.
 */
async function agreementOf(env: CorpusEnvironment, c: ResolvedStage2, queries: readonly Stage2Query[], rollouts: readonly Rollout[], rankings: string[][], signal?: AbortSignal): Promise<number | undefined> {
  const ranking = c.rewardTerms.filter((t) => t.name !== 'format' && t.weight > 0);
  const w = ranking.reduce((a, t) => a + t.weight, 0);
  if (w === 0) return undefined;
  const terms = ranking.map((t) => ({ name: t.name, weight: t.weight / w }));
  const sample = rollouts.slice(0, c.agreementSample);
  const fresh = await env.searchFresh(sample.map((r) => r.vector), Math.min(c.topK, env.size), signal);
  // Summed terms can overshoot 1 by rounding.
  const retrieval = (r: string[][]) => Array.from(computeRewards(terms, scoredRollouts(queries, sample, r)).total, (x) => Math.min(1, Math.max(0, x)));
  return rewardAgreement(retrieval(rankings.slice(0, sample.length)), retrieval(fresh));
}

/** What a step's rewards look at: the positives, every rollout's retrieved top-k, and the hard negatives found in the corpus. */
function touchedBy(queries: readonly Stage2Query[], rankings: readonly string[][], k: number): Set<string> {
  const touched = new Set<string>();
  for (const q of queries) {
    touched.add(q.positiveId);
    for (const id of q.negativeIds) touched.add(id);
  }
  for (const r of rankings) for (const id of r.slice(0, k)) touched.add(id);
  return touched;
}

function countFinish(rollouts: readonly Rollout[]): Record<string, number> {
  const out: Record<string, number> = { embed: 0, budget: 0, stopped: 0 };
  for (const r of rollouts) out[r.finish] = (out[r.finish] ?? 0) + 1;
  return out;
}

const mean = (v: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return v.length > 0 ? s / v.length : 0;
};

/** Removes the store checkpoints other than `keep` (older ones, after a newer state commits). */
async function dropOlder(root: string, keep: string): Promise<void> {
  const names = await readdir(root).catch(() => [] as string[]);
  for (const n of names) if (n !== keep && n.startsWith('step-')) await rm(join(root, n), { recursive: true, force: true });
}


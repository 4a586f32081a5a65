import { createHash } from 'node:crypto';
import { EMBED_TOKEN_TEXT, Model } from '../engine/model';
import { WeightRandom } from '../gguf/random';
import { SearchR3Error } from '../util/errors';
import { encodePair, fitTrainingData, loadTrainingData, type EncodedPair, type PairRecord } from './data';
import { evaluateRetrieval, readRetrievalSplit, type RetrievalScores } from './retrieval-eval';
import { checkRunOutputs, fileIdentity, runFiles, TrainRun, type TrainHooks } from './run';
import { lrAt } from './schedule';
import { stage1MicroBatch } from './stage1-batch';
import { resolveStage1, resumeFingerprint, type ResolvedStage1, type Stage1Options } from './stage1-config';
import { LoraTrainer, type LossPart } from './trainer';

/** One line of `<out>.log.jsonl`. */
export interface Stage1StepLog {
  step: number;
  lr: number;
  loss: number;
  parts: Partial<Record<LossPart, number>>;
  gradNorm: number;
  clipped: boolean;
  tokens: number;
  tokensPerSecond: number;
  seconds: number;
  eval?: RetrievalScores;
  checkpoint?: boolean;
}

export interface Stage1Result {
  adapter: string;
  state: string;
  log: string;
  steps: number;
  /** Step the run started from (0, or the checkpoint it resumed). */
  resumedFrom: number;
  /** Loss of the last step, also when a resume found nothing left to run (then the checkpoint's). */
  finalLoss: number;
  /** True when resuming found the adapter out of step with the state and rewrote it from the state. */
  adapterRepaired: boolean;
  /** Held-out scores before the first trained step and after the last. */
  evalBefore?: RetrievalScores;
  evalAfter?: RetrievalScores;
  tokensPerSecond: number;
  /** Bytes the trainer held for the frozen weights and for their transposed copies (0 with leanMemory). */
  weightBytes: number;
  transposedBytes: number;
  /** The "Long texts" rule's count: texts shortened to maxTokens, ids of records skipped. */
  longText: { shortened: number; skipped: string[] };
}

/** Optional callbacks of this stage (the shared {@link TrainHooks}). */
export type Stage1Hooks = TrainHooks<Stage1StepLog>;

/**
 * Search-R3 stage 1: LoRA fine-tuning on (query, positive, negatives) pairs with SFT + KL +
 * InfoNCE + triplet, checkpointed atomically and resumable exactly (the shared run scaffold,
 * `TrainRun`). Refuses, before any work, an `out` that is one of the inputs and an earlier run's
 * files unless `resume` or `force` says what to do with them.
 *
 * @example
 * const r = await trainStage1({ model: 'base.gguf', train: 'pairs.jsonl', out: 'stage1.lora.gguf', steps: 200 });
 */
export async function trainStage1(options: Stage1Options, hooks: Stage1Hooks = {}): Promise<Stage1Result> {
  let c = resolveStage1(options);
  const files = runFiles(c.out);
  await checkRunOutputs(files, { model: c.model, train: typeof c.train === 'string' ? c.train : undefined, eval: typeof c.eval === 'string' ? c.eval : undefined }, c);
  const records = typeof c.train === 'string' ? await loadTrainingData(c.train) : c.train;
  if (records.length === 0) throw new RangeError('train has no records');
  const split = c.eval === null ? null : typeof c.eval === 'string' ? await readRetrievalSplit(c.eval) : c.eval;

  const tokenizer = await Model.load(c.model, { vocabOnly: true });
  let trainer: LoraTrainer | null = null;
  try {
    if (tokenizer.info.embedTokenId === null) {
      throw new SearchR3Error('ERR_MODEL', `${c.model} has no ${EMBED_TOKEN_TEXT} token; add it with "search-r3 add-embed-token ${c.model} OUT.gguf"`);
    }
    // Before the weights load, so a record refused by longText 'error' costs nothing.
    const fitted = fitTrainingData(tokenizer, c.template, records, { maxTokens: c.maxTokens, longText: c.longText });
    reportLongText(fitted.shortened, fitted.skipped, records.length, c);
    if (fitted.records.length === 0) throw new SearchR3Error('ERR_CONTEXT', `every training record has a text over maxTokens ${c.maxTokens} and longText is 'skip'; raise maxTokens (--max-tokens)`);
    trainer = await LoraTrainer.open(c.model, { lora: c.lora, threads: c.threads, transposedWeights: !c.leanMemory });
    // The defaults that follow the model (the learning rate) need its width.
    c = resolveStage1(options, trainer.info);
    // After the load above, so a missing or broken model gets the loader's error, not a raw ENOENT.
    const fingerprint = resumeFingerprint(c, { model: await fileIdentity(c.model), data: recordsDigest(records), trainSize: records.length });
    const run = await TrainRun.open<{ evalBefore?: RetrievalScores }>({
      stage: 'stage-1', files, trainer, fingerprint, steps: c.steps, checkpointEvery: c.checkpointEvery, resume: c.resume,
      adapterMetadata: (step) => ({ 'search_r3.stage': 1, 'search_r3.steps': step }),
      progress: { label: 'train stage 1', fields: ['loss', 'gnorm', 'tok/s'], show: c.progress },
      signal: hooks.signal, onPhase: hooks.onPhase, extra: {},
    });
    const evalOpts = { maxTokens: c.maxTokens, signal: hooks.signal };
    if (split && run.start === 0) run.extra = { evalBefore: await evaluateRetrieval(trainer, tokenizer, c.template, split, evalOpts) };

    const data = new BatchSource(fitted.records, c, tokenizer);
    const t = trainer;
    const summary = await run.loop(async (step): Promise<Stage1StepLog> => {
      const lr = lrAt(step, { lr: c.lr, totalSteps: c.steps, warmupSteps: c.warmupSteps, schedule: c.schedule, minLrRatio: c.minLrRatio });
      let loss = 0;
      const parts: Partial<Record<LossPart, number>> = {};
      let tokens = 0;
      let seconds = 0;
      for (let a = 0; a < c.accumulate; a++) {
        const { sequences, losses } = data.microBatch(step * c.accumulate + a);
        const r = await t.accumulate(sequences, losses, { signal: hooks.signal });
        loss += r.loss / c.accumulate;
        for (const [k, v] of Object.entries(r.parts)) parts[k as LossPart] = (parts[k as LossPart] ?? 0) + v / c.accumulate;
        tokens += r.tokens;
        seconds += r.seconds;
      }
      const s = await t.step({ lr, weightDecay: c.weightDecay, clipNorm: c.clipNorm });
      const log: Stage1StepLog = {
        step: s.step, lr, loss, parts, gradNorm: s.gradNorm, clipped: s.clipped, tokens, tokensPerSecond: tokens / seconds, seconds,
      };
      if (split && c.evalEvery > 0 && s.step % c.evalEvery === 0 && s.step < c.steps) {
        log.eval = await evaluateRetrieval(t, tokenizer, c.template, split, evalOpts);
      }
      return log;
    }, (log) => ({ loss: log.loss.toFixed(4), gnorm: log.gradNorm.toFixed(3), 'tok/s': log.tokensPerSecond.toFixed(0) }), hooks.onStep);
    const evalAfter = split ? await evaluateRetrieval(trainer, tokenizer, c.template, split, evalOpts) : undefined;
    return {
      adapter: files.adapter, state: files.state, log: files.log, steps: c.steps, resumedFrom: summary.resumedFrom, finalLoss: summary.finalLoss,
      adapterRepaired: run.adapterRepaired, evalBefore: run.extra?.evalBefore, evalAfter, tokensPerSecond: summary.tokensPerSecond,
      weightBytes: trainer.info.weightBytes, transposedBytes: trainer.info.transposedBytes,
      longText: { shortened: fitted.shortened, skipped: fitted.skipped.map((r) => r.id) },
    };
  } finally {
    trainer?.dispose();
    tokenizer.dispose();
  }
}

/** One stderr line per skipped record and one count, with the progress output (README "Long texts"). */
function reportLongText(shortened: number, skipped: PairRecord[], total: number, c: ResolvedStage1): void {
  if (!c.progress) return;
  for (const r of skipped) process.stderr.write(`train: skipped record "${r.id}"${r.source ? ` (${r.source})` : ''}: a text is over maxTokens ${c.maxTokens}\n`);
  if (skipped.length > 0) process.stderr.write(`train: ${skipped.length} of ${total} records were skipped as too long\n`);
  if (shortened > 0) process.stderr.write(`train: ${shortened} texts of ${total} records were shortened to ${c.maxTokens} tokens\n`);
}

/** Deterministic micro-batches: micro-batch k is a pure function of (records, seed, k), so a resumed run sees the same data. */
class BatchSource {
  #perms = new Map<number, Uint32Array>();
  #encoded = new Map<number, EncodedPair>();
  #targetsLength: number;

  constructor(private records: PairRecord[], private c: ResolvedStage1, private tokenizer: Model) {
    // The direct form's SFT/KL targets: the direct assistant turn ("The embedding is <|embed_token|>").
    this.#targetsLength = tokenizer.tokenize(c.template.directAssistant, { addSpecial: false, parseSpecial: true }).length;
  }

  microBatch(k: number): ReturnType<typeof stage1MicroBatch> {
    const n = this.records.length;
    const B = this.c.batch;
    const picked = Array.from({ length: B }, (_, j) => {
      const g = k * B + j;
      return this.#perm(Math.floor(g / n))[g % n];
    });
    return stage1MicroBatch(picked.map((i) => this.#encode(i)), this.c, this.#targetsLength);
  }

  #perm(epoch: number): Uint32Array {
    let p = this.#perms.get(epoch);
    if (!p) {
      const rnd = new WeightRandom(this.c.seed, `stage1-epoch-${epoch}`);
      p = Uint32Array.from({ length: this.records.length }, (_, i) => i);
      for (let i = p.length - 1; i > 0; i--) {
        const j = rnd.next() % (i + 1);
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      this.#perms.set(epoch, p);
    }
    return p;
  }

  #encode(i: number): EncodedPair {
    let e = this.#encoded.get(i);
    if (!e) {
      e = encodePair(this.tokenizer, this.c.template, this.records[i]!, { maxTokens: this.c.maxTokens });
      this.#encoded.set(i, e);
    }
    return e;
  }
}

/** A digest of the training records, in order (a resumed run must see the same data). */
function recordsDigest(records: readonly PairRecord[]): string {
  const hash = createHash('sha256');
  // A trace joins the digest only where there is one, so trace-less data keeps its old digest.
  for (const r of records) hash.update(JSON.stringify(r.reasoning === undefined ? [r.query, r.positive, r.negatives] : [r.query, r.positive, r.negatives, r.reasoning])).update('\n');
  return hash.digest('hex').slice(0, 16);
}

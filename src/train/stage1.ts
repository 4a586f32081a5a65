import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, open, readFile } from 'node:fs/promises';
import { EMBED_TOKEN_TEXT, Model } from '../engine/model';
import { readBeirCorpus, readBeirQrels, readBeirQueries } from '../eval/beir';
import { WeightRandom } from '../gguf/random';
import { SearchR3Error } from '../util/errors';
import { writeFileAtomic } from '../util/fs';
import { startProgress } from '../util/progress';
import type { TrainSequence } from './batch';
import { readTrainState, writeTrainState } from './checkpoint';
import { encodePair, loadTrainingData, type EncodedPair, type PairRecord } from './data';
import { evaluateRetrieval, type RetrievalScores, type RetrievalSplit } from './retrieval-eval';
import { lrAt } from './schedule';
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
  finalLoss: number;
  /** Held-out scores before the first trained step (absent when resuming) and after the last. */
  evalBefore?: RetrievalScores;
  evalAfter?: RetrievalScores;
  tokensPerSecond: number;
  /** Bytes the trainer held for the frozen weights and for their transposed copies (0 with leanMemory). */
  weightBytes: number;
  transposedBytes: number;
}

interface StateRecord {
  kind: 'search-r3 stage1';
  step: number;
  fingerprint: Record<string, unknown>;
  evalBefore?: RetrievalScores;
}

/**
 * Search-R3 stage 1: LoRA fine-tuning on (query, positive, negatives) pairs with SFT + KL +
 * InfoNCE + triplet, checkpointed atomically and resumable exactly.
 *
 * @example
 * const r = await trainStage1({ model: 'base.gguf', train: 'pairs.jsonl', out: 'stage1.lora.gguf', steps: 200 });
 */
export async function trainStage1(options: Stage1Options, hooks: { onStep?: (log: Stage1StepLog) => void; signal?: AbortSignal } = {}): Promise<Stage1Result> {
  let c = resolveStage1(options);
  const records = typeof c.train === 'string' ? await loadTrainingData(c.train) : c.train;
  if (records.length === 0) throw new RangeError('train has no records');
  const split = c.eval === null ? null : typeof c.eval === 'string' ? await readEvalSplit(c.eval) : c.eval;
  const statePath = `${c.out}.state`;
  const logPath = `${c.out}.log.jsonl`;

  const tokenizer = await Model.load(c.model, { vocabOnly: true });
  let trainer: LoraTrainer | null = null;
  try {
    if (tokenizer.info.embedTokenId === null) {
      throw new SearchR3Error('ERR_MODEL', `${c.model} has no ${EMBED_TOKEN_TEXT} token; add it with "search-r3 add-embed-token ${c.model} OUT.gguf"`);
    }
    trainer = await LoraTrainer.open(c.model, { lora: c.lora, threads: c.threads, transposedWeights: !c.leanMemory });
    // The defaults that follow the model (the learning rate) need its width.
    c = resolveStage1(options, trainer.info);
    // After the load above, so a missing or broken model gets the loader's error, not a raw ENOENT.
    const fingerprint = resumeFingerprint(c, { model: await modelIdentity(c.model), data: recordsDigest(records), trainSize: records.length });
    let start = 0;
    let evalBefore: RetrievalScores | undefined;
    if (c.resume && existsSync(statePath)) {
      const saved = await readTrainState<StateRecord>(statePath);
      checkFingerprint(saved.state, fingerprint, statePath);
      if (saved.state.step > c.steps) {
        throw new SearchR3Error('ERR_TRAIN', `--resume: ${statePath} is at step ${saved.state.step}, past --steps ${c.steps}; give --steps ${saved.state.step} or more`);
      }
      trainer.restore({ ...saved.tensors, step: saved.state.step });
      start = saved.state.step;
      evalBefore = saved.state.evalBefore;
      await truncateLog(logPath, start);
    } else if (c.resume) {
      throw new SearchR3Error('ERR_FILE', `--resume: no state file ${statePath}; start without --resume`);
    } else {
      await writeFileAtomic(logPath, '');
    }
    if (split && start === 0) evalBefore = await evaluateRetrieval(trainer, tokenizer, c.template, split, { maxTokens: c.maxTokens, signal: hooks.signal });

    const data = new BatchSource(records, c, tokenizer);
    const progress = startProgress('train stage 1', c.steps - start, { unit: 'steps', fields: ['loss', 'gnorm', 'tok/s'], silent: !c.progress });
    let last: Stage1StepLog | null = null;
    let lastCheckpoint = start;
    let tokens = 0;
    let seconds = 0;
    const checkpoint = async (step: number) => {
      const { params, m, v } = trainer!.state();
      await writeTrainState(statePath, { tensors: { params, m, v }, state: { kind: 'search-r3 stage1', step, fingerprint, evalBefore } satisfies StateRecord });
      await trainer!.saveAdapter(c.out, { 'search_r3.stage': 1, 'search_r3.steps': step });
      lastCheckpoint = step;
    };
    try {
      for (let step = start; step < c.steps; step++) {
        const lr = lrAt(step, { lr: c.lr, totalSteps: c.steps, warmupSteps: c.warmupSteps, schedule: c.schedule, minLrRatio: c.minLrRatio });
        let loss = 0;
        const parts: Partial<Record<LossPart, number>> = {};
        let stepTokens = 0;
        let stepSeconds = 0;
        for (let a = 0; a < c.accumulate; a++) {
          const { sequences, losses } = data.microBatch(step * c.accumulate + a);
          const r = await trainer.accumulate(sequences, losses, { signal: hooks.signal }).catch((e: unknown) => {
            if (e instanceof SearchR3Error && e.code === 'ERR_TRAIN') {
              throw new SearchR3Error('ERR_TRAIN', `step ${step + 1}: ${e.message}. The last good checkpoint is step ${lastCheckpoint} (${statePath}); lower --lr and continue with --resume`);
            }
            throw e;
          });
          loss += r.loss / c.accumulate;
          for (const [k, v] of Object.entries(r.parts)) parts[k as LossPart] = (parts[k as LossPart] ?? 0) + v / c.accumulate;
          stepTokens += r.tokens;
          stepSeconds += r.seconds;
        }
        const s = await trainer.step({ lr, weightDecay: c.weightDecay, clipNorm: c.clipNorm });
        tokens += stepTokens;
        seconds += stepSeconds;
        const log: Stage1StepLog = {
          step: s.step, lr, loss, parts, gradNorm: s.gradNorm, clipped: s.clipped, tokens: stepTokens,
          tokensPerSecond: stepTokens / stepSeconds, seconds: stepSeconds,
        };
        if (split && c.evalEvery > 0 && s.step % c.evalEvery === 0 && s.step < c.steps) {
          log.eval = await evaluateRetrieval(trainer, tokenizer, c.template, split, { maxTokens: c.maxTokens, signal: hooks.signal });
        }
        // The log line goes first: a kill before the checkpoint resumes from the step before,
        // and resuming drops log lines past the restored step.
        const due = s.step % c.checkpointEvery === 0 || s.step === c.steps;
        if (due) log.checkpoint = true;
        await appendLog(logPath, log);
        if (due) await checkpoint(s.step);
        hooks.onStep?.(log);
        progress.tick(1, { loss: loss.toFixed(4), gnorm: s.gradNorm.toFixed(3), 'tok/s': log.tokensPerSecond.toFixed(0) });
        last = log;
      }
    } finally {
      progress.stop();
    }
    const evalAfter = split ? await evaluateRetrieval(trainer, tokenizer, c.template, split, { maxTokens: c.maxTokens, signal: hooks.signal }) : undefined;
    return {
      adapter: c.out, state: statePath, log: logPath, steps: c.steps, resumedFrom: start, finalLoss: last?.loss ?? NaN,
      evalBefore, evalAfter, tokensPerSecond: seconds > 0 ? tokens / seconds : 0,
      weightBytes: trainer.info.weightBytes, transposedBytes: trainer.info.transposedBytes,
    };
  } finally {
    trainer?.dispose();
    tokenizer.dispose();
  }
}

/** Deterministic micro-batches: micro-batch k is a pure function of (records, seed, k), so a resumed run sees the same data. */
class BatchSource {
  #perms = new Map<number, Uint32Array>();
  #encoded = new Map<number, EncodedPair>();
  #targetsLength: number;

  constructor(private records: PairRecord[], private c: ResolvedStage1, private tokenizer: Model) {
    // The SFT/KL targets: the direct assistant turn ("The embedding is <|embed_token|>").
    this.#targetsLength = tokenizer.tokenize(c.template.directAssistant, { addSpecial: false, parseSpecial: true }).length;
  }

  microBatch(k: number): { sequences: TrainSequence[]; losses: Parameters<LoraTrainer['accumulate']>[1] } {
    const n = this.records.length;
    const B = this.c.batch;
    const picked = Array.from({ length: B }, (_, j) => {
      const g = k * B + j;
      return this.#perm(Math.floor(g / n))[g % n];
    });
    const pairs = picked.map((i) => this.#encode(i));
    const withTargets = (tokens: Int32Array): TrainSequence => {
      const targets = new Uint8Array(tokens.length);
      targets.fill(1, Math.max(1, tokens.length - this.#targetsLength));
      return { tokens, targets, embedAt: tokens.length - 1 };
    };
    const sequences: TrainSequence[] = [...pairs.map((p) => withTargets(p.query)), ...pairs.map((p) => withTargets(p.positive))];
    const firstNegative: number[] = [];
    for (const p of pairs) {
      const hard = p.negatives.slice(0, this.c.hardNegatives);
      firstNegative.push(hard.length > 0 ? sequences.length : -1);
      for (const neg of hard) sequences.push({ tokens: neg, embedAt: neg.length - 1 });
    }
    const queries = pairs.map((_, i) => i);
    const candidates = sequences.map((_, i) => i).slice(B);
    const { losses: w } = this.c;
    const losses: Parameters<LoraTrainer['accumulate']>[1] = {};
    if (w.sft > 0) losses.sft = { weight: w.sft };
    if (w.kl > 0) losses.kl = { weight: w.kl };
    if (w.infonce > 0) losses.infonce = { weight: w.infonce, temperature: this.c.temperature, queries, candidates, labels: queries };
    const negatives = pairs.map((_, i) => (firstNegative[i] >= 0 ? firstNegative[i] : B + ((i + 1) % B)));
    if (w.triplet > 0 && negatives.every((neg, i) => neg !== B + i)) {
      losses.triplet = { weight: w.triplet, margin: this.c.margin, anchors: queries, positives: queries.map((i) => B + i), negatives };
    }
    return { sequences, losses };
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

async function readEvalSplit(dir: string): Promise<RetrievalSplit> {
  const corpus = [];
  for await (const d of readBeirCorpus(dir)) corpus.push(d);
  const queries = [];
  for await (const q of readBeirQueries(dir)) queries.push(q);
  return { corpus, queries, qrels: (await readBeirQrels(dir, 'test')).qrels };
}

/**
 * A quick identity of a model file for resume checks: its size and a digest of its first and last
 * MiB (the GGUF header with every tensor's name, type and offset, and the end of the tensor data),
 * so a resumed run notices a different model without reading gigabytes.
 */
async function modelIdentity(path: string): Promise<string> {
  const CHUNK = 1 << 20;
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const hash = createHash('sha256');
    // Small files are hashed whole.
    const [len, starts] = size > 2 * CHUNK ? [CHUNK, [0, size - CHUNK]] : [size, [0]];
    for (const at of starts) {
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, at);
      hash.update(buf.subarray(0, bytesRead));
    }
    return `${size} bytes, sha256 of ends ${hash.digest('hex').slice(0, 16)}`;
  } finally {
    await fh.close();
  }
}

/** A digest of the training records, in order (a resumed run must see the same data). */
function recordsDigest(records: readonly PairRecord[]): string {
  const hash = createHash('sha256');
  for (const r of records) hash.update(JSON.stringify([r.query, r.positive, r.negatives])).update('\n');
  return hash.digest('hex').slice(0, 16);
}

function checkFingerprint(saved: StateRecord, now: Record<string, unknown>, path: string): void {
  if (saved?.kind !== 'search-r3 stage1') throw new SearchR3Error('ERR_FILE', `${path} is not a stage-1 training state`);
  const differs = Object.keys(now).filter((k) => JSON.stringify(saved.fingerprint[k]) !== JSON.stringify(now[k]));
  if (differs.length > 0) {
    const detail = differs.map((k) => `${k}: saved ${JSON.stringify(saved.fingerprint[k])}, now ${JSON.stringify(now[k])}`).join('; ');
    throw new SearchR3Error('ERR_TRAIN', `cannot resume from ${path}: settings differ (${detail})`);
  }
}

async function appendLog(path: string, log: Stage1StepLog): Promise<void> {
  await appendFile(path, `${JSON.stringify(log)}\n`);
}

/**
 * Drops log lines of steps after the checkpoint being resumed (they will be run again), and a last
 * line cut short by the kill.
 */
async function truncateLog(path: string, step: number): Promise<void> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const stepOf = (line: string): number => {
    try {
      return (JSON.parse(line) as Stage1StepLog).step;
    } catch {
      return Infinity;
    }
  };
  const kept = text.split('\n').filter((line) => line.trim() !== '' && stepOf(line) <= step);
  await writeFileAtomic(path, kept.map((l) => `${l}\n`).join(''));
}

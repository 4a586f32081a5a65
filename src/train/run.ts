import { createHash } from 'node:crypto';
import { appendFile, open, readFile, rm } from 'node:fs/promises';
import { SearchR3Error } from '../util/errors';
import { writeFileAtomic } from '../util/fs';
import { startProgress } from '../util/progress';
import { readTrainState, writeTrainState } from './checkpoint';
import type { RunFiles } from './run-outputs';
import type { LoraTrainer } from './trainer';

export { checkRunOutputs, runFiles, type RunFiles, type RunOutputMode } from './run-outputs';

/**
 * The run scaffold every training stage shares: resume (fingerprint check, restore, log
 * truncation), the step log, checkpoints, the progress bar, abort between steps and the
 * message for a diverged step. A stage supplies what one step does; this owns the files.
 *
 * Checkpoint protocol (why a kill at any instant resumes to the same adapter, bit for bit):
 * each step appends its log line first, then, when a checkpoint is due, writes the adapter and
 * then the state, both atomically. The state is the single commit point: it records the step, the
 * step's loss and the sha256 of the adapter bytes that belong to it. Resuming restores the state,
 * drops log lines past its step, and rewrites the adapter when its bytes are not the recorded
 * ones (a kill between the two writes leaves an adapter newer than the state, or an older
 * state format recorded no hash); the rewrite is checked against the hash.
 */

/** Named points of a step's writes, in order; {@link TrainRunOptions.onPhase} is called at each. */
export type RunPhase =
  | 'step' // the step is computed, nothing of it written yet
  | 'log' // its log line is appended
  | 'adapter' // a due checkpoint's adapter is written, its state not yet
  | 'state'; // the state is written: the checkpoint is committed

/** What the scaffold needs of a step's log line; stages add their own fields. */
/** The callbacks every training stage takes (stage 1, stage 2, Search-R1), with its step log type `L`. */
export interface TrainHooks<L> {
  /** Called after each step's log line and checkpoint are written. */
  onStep?: (log: L) => void;
  /** Stops the run between steps and inside native steps with `ERR_ABORTED`; the last checkpoint stays resumable. */
  signal?: AbortSignal;
  /** Fault injection for tests (see `TrainRunOptions.onPhase`): called at each named point of a step's writes. */
  onPhase?: (phase: RunPhase, step: number) => void;
}

export interface RunStepLog {
  /** The step just finished, counted from 1. */
  step: number;
  loss: number;
  tokens: number;
  seconds: number;
  /** Set by the scaffold on steps that write a checkpoint. */
  checkpoint?: boolean;
}

export interface TrainRunOptions<E> {
  /** Names the stage in the state file and in messages, e.g. 'stage-1'. */
  stage: string;
  files: RunFiles;
  trainer: LoraTrainer;
  /** What a resumed run must share with the run that wrote the state (JSON values). */
  fingerprint: Record<string, unknown>;
  /** Total steps of the run. */
  steps: number;
  /** Write a checkpoint every this many steps and at the last step. */
  checkpointEvery: number;
  /** Continue from `files.state` (which must exist); otherwise start at step 0, dropping any old state and log. */
  resume: boolean;
  /** Extra keys for the adapter GGUF at a step; must depend on the step only, so a rewrite gives the same bytes. */
  adapterMetadata: (step: number) => Record<string, string | number>;
  /** Progress bar label and fields; `show: false` prints nothing. */
  progress: { label: string; fields: string[]; show: boolean };
  /** Checked between steps (and passed on to each step by the stage). */
  signal?: AbortSignal;
  /**
   * Fault injection for tests: called at every {@link RunPhase} of every step, synchronously, so a
   * test child can kill itself at an exact point of the checkpoint protocol. Not for production use.
   */
  onPhase?: (phase: RunPhase, step: number) => void;
  /** State a stage keeps with each checkpoint (e.g. scores before training); saved and restored as JSON. */
  extra?: E;
  /**
   * Files a stage keeps beside the state (stage 2's corpus store): `save(step)` writes them after the
   * adapter and before the state commits the checkpoint, so they must go to a place named by the step
   * (a kill before the commit leaves the previous checkpoint's files intact); `committed(step)` runs
   * once the state is written, to drop older ones.
   */
  checkpointFiles?: { save: (step: number) => Promise<void>; committed: (step: number) => Promise<void> };
}

/** What {@link TrainRun.loop} reports. */
export interface RunSummary {
  /** Step the run started from (0, or the checkpoint it resumed). */
  resumedFrom: number;
  /** Loss of the last step: the last one run now, or the checkpoint's when nothing was left to run. */
  finalLoss: number;
  /** Tokens per second over the steps run now (0 when none). */
  tokensPerSecond: number;
}

interface RunState<E> {
  kind: string;
  step: number;
  fingerprint: Record<string, unknown>;
  loss?: number;
  adapterSha256?: string;
  extra?: E;
}

/**
 * One training run's files and loop. Open it after the trainer, then `loop` over the steps.
 *
 * @example
 * const run = await TrainRun.open({ stage: 'stage-2', files: runFiles(out), trainer, fingerprint, steps, checkpointEvery: 50,
 *   resume, adapterMetadata: (s) => ({ 'search_r3.steps': s }), progress: { label: 'train stage 2', fields: ['loss'], show: true } });
 * const summary = await run.loop(async (step) => ({ step: step + 1, loss, tokens, seconds }), (l) => ({ loss: l.loss.toFixed(4) }));
 */
export class TrainRun<E = unknown> {
  /** Step the run starts from. */
  readonly start: number;
  /** True when resuming found the adapter out of step with the state and rewrote it. */
  readonly adapterRepaired: boolean;
  /** Saved with every checkpoint; holds the resumed checkpoint's value after a resume. */
  extra: E | undefined;
  #o: TrainRunOptions<E>;
  #kind: string;
  #lastCheckpoint: number;
  #savedLoss: number;

  private constructor(o: TrainRunOptions<E>, start: number, saved: RunState<E> | null, repaired: boolean) {
    this.#o = o;
    this.#kind = stateKind(o.stage);
    this.start = start;
    this.#lastCheckpoint = start;
    this.adapterRepaired = repaired;
    this.extra = saved ? saved.extra : o.extra;
    this.#savedLoss = saved?.loss ?? NaN;
  }

  /** Restores the state (resume) or starts afresh; see the protocol above. */
  static async open<E>(o: TrainRunOptions<E>): Promise<TrainRun<E>> {
    const { files } = o;
    if (!o.resume) {
      // The caller's output check allowed replacing an earlier run: its state goes first, so a
      // kill before this run's first checkpoint cannot resume the earlier run over a new log.
      await rm(files.state, { force: true });
      await writeFileAtomic(files.log, '');
      return new TrainRun(o, 0, null, false);
    }
    const saved = await readTrainState<RunState<E>>(files.state);
    checkFingerprint(saved.state, stateKind(o.stage), o, files.state);
    const step = saved.state.step;
    if (step > o.steps) {
      throw new SearchR3Error('ERR_TRAIN', `--resume: ${files.state} is at step ${step}, past --steps ${o.steps}; give --steps ${step} or more`);
    }
    o.trainer.restore({ ...saved.tensors, step });
    const repaired = await repairAdapter(o, step, saved.state.adapterSha256);
    await truncateLog(files.log, step);
    return new TrainRun(o, step, saved.state, repaired);
  }

  /**
   * Runs steps `start` … `steps - 1`: `body(step)` computes one optimizer step and returns its log
   * line; the scaffold writes it, checkpoints when due, ticks the progress bar with
   * `fields(log)` and calls `onStep`. A step that fails with `ERR_TRAIN` (a NaN loss) is reported
   * with the last good checkpoint; an aborted signal stops between steps with `ERR_ABORTED`.
   */
  async loop<L extends RunStepLog>(
    body: (step: number) => Promise<L>,
    fields: (log: L) => Record<string, string>,
    onStep?: (log: L) => void,
  ): Promise<RunSummary> {
    const o = this.#o;
    const progress = startProgress(o.progress.label, o.steps - this.start, { unit: 'steps', fields: o.progress.fields, silent: !o.progress.show });
    let finalLoss = this.#savedLoss;
    let tokens = 0;
    let seconds = 0;
    try {
      for (let step = this.start; step < o.steps; step++) {
        if (o.signal?.aborted) {
          throw new SearchR3Error('ERR_ABORTED', `aborted after step ${step}; the last checkpoint is step ${this.#lastCheckpoint} (${o.files.state}), continue with --resume`);
        }
        const log = await body(step).catch((e: unknown) => {
          if (e instanceof SearchR3Error && e.code === 'ERR_TRAIN') {
            // --resume needs the same settings (lr included), so a lower --lr means starting over.
            const where = this.#lastCheckpoint > 0
              ? `The last good checkpoint is step ${this.#lastCheckpoint} (${o.files.state}): continue from it with --resume, or start over with a lower --lr and --force`
              : 'No checkpoint was written; start over with a lower --lr and --force';
            throw new SearchR3Error('ERR_TRAIN', `step ${step + 1}: ${e.message}. ${where}`);
          }
          throw e;
        });
        await this.#commit(log);
        onStep?.(log);
        progress.tick(1, fields(log));
        finalLoss = log.loss;
        tokens += log.tokens;
        seconds += log.seconds;
      }
    } finally {
      progress.stop();
    }
    return { resumedFrom: this.start, finalLoss, tokensPerSecond: seconds > 0 ? tokens / seconds : 0 };
  }

  /** Writes one step: log line, then (when due) adapter, then the state that commits both. */
  async #commit(log: RunStepLog): Promise<void> {
    const o = this.#o;
    const due = log.step % o.checkpointEvery === 0 || log.step === o.steps;
    if (due) log.checkpoint = true;
    o.onPhase?.('step', log.step);
    await appendFile(o.files.log, `${JSON.stringify(log)}\n`);
    o.onPhase?.('log', log.step);
    if (!due) return;
    await o.trainer.saveAdapter(o.files.adapter, o.adapterMetadata(log.step));
    o.onPhase?.('adapter', log.step);
    await o.checkpointFiles?.save(log.step);
    const { params, m, v } = o.trainer.state();
    const state: RunState<E> = {
      kind: this.#kind, step: log.step, fingerprint: o.fingerprint, loss: log.loss,
      adapterSha256: (await sha256File(o.files.adapter))!, extra: this.extra,
    };
    await writeTrainState(o.files.state, { tensors: { params, m, v }, state });
    o.onPhase?.('state', log.step);
    this.#lastCheckpoint = log.step;
    await o.checkpointFiles?.committed(log.step);
  }
}

/** The `kind` a stage's state files carry: 'stage-1' → 'search-r3 stage1' (the value stage 1 always wrote). */
const stateKind = (stage: string): string => `search-r3 ${stage.replace(/-/g, '')}`;

/** The sha256 of a file's bytes, or null when it does not exist. */
async function sha256File(path: string): Promise<string | null> {
  const bytes = await readFile(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  return bytes && createHash('sha256').update(bytes).digest('hex');
}

/** Rewrites the adapter from the restored parameters when its bytes are not the checkpoint's. */
async function repairAdapter(o: TrainRunOptions<unknown>, step: number, recorded: string | undefined): Promise<boolean> {
  if (recorded !== undefined && (await sha256File(o.files.adapter)) === recorded) return false;
  await o.trainer.saveAdapter(o.files.adapter, o.adapterMetadata(step));
  if (recorded !== undefined && (await sha256File(o.files.adapter)) !== recorded) {
    throw new SearchR3Error('ERR_TRAIN', `${o.files.adapter} rewritten from ${o.files.state} (step ${step}) does not have the bytes the checkpoint recorded`);
  }
  return true;
}

function checkFingerprint(saved: RunState<unknown>, kind: string, o: TrainRunOptions<unknown>, path: string): void {
  if (saved?.kind !== kind) throw new SearchR3Error('ERR_FILE', `${path} is not a ${o.stage} training state`);
  const now = o.fingerprint;
  const differs = Object.keys(now).filter((k) => JSON.stringify(saved.fingerprint[k]) !== JSON.stringify(now[k]));
  if (differs.length > 0) {
    const detail = differs.map((k) => `${k}: saved ${JSON.stringify(saved.fingerprint[k])}, now ${JSON.stringify(now[k])}`).join('; ');
    throw new SearchR3Error('ERR_TRAIN', `cannot resume from ${path}: settings differ (${detail})`);
  }
}

/**
 * Drops log lines of steps after the checkpoint being resumed (they will be run again), and a last
 * line cut short by a kill.
 */
async function truncateLog(path: string, step: number): Promise<void> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const stepOf = (line: string): number => {
    try {
      return (JSON.parse(line) as RunStepLog).step;
    } catch {
      return Infinity;
    }
  };
  const kept = text.split('\n').filter((line) => line.trim() !== '' && stepOf(line) <= step);
  await writeFileAtomic(path, kept.map((l) => `${l}\n`).join(''));
}

/**
 * A quick identity of a model file for resume fingerprints: its size and a digest of its first and
 * last MiB (the GGUF header with every tensor's name, type and offset, and the end of the tensor
 * data), so a resumed run notices a different model without reading gigabytes.
 *
 * @example
 * const fingerprint = { model: await fileIdentity('base.gguf'), … };
 */
export async function fileIdentity(path: string): Promise<string> {
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

import { checkedGgufPath } from '../engine/gguf-path';
import { callNative, callNativeAbortable, callNativeSync, InFlight } from '../engine/native-call';
import { binding, type NativeLossPart, type NativeTensorPart, type NativeTrainer } from '../native';
import { SearchR3Error } from '../util/errors';
import { assertBoolean, assertInteger, assertNumber, assertString, checkKeys, expected } from '../util/validate';
import { lossSpec, packBatch, perSequence, type LossOptions, type TrainSequence } from './batch';
import { readLoraAdapter, writeLoraAdapter, type NamedTensor } from './checkpoint';
import { LORA_DEFAULTS, STEP_DEFAULTS } from './defaults';

/** Every layer's projections LoRA can adapt, named as in GGUF tensor names: the default targets. */
export const LORA_MODULES = ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down'] as const;
/**
 * Every LoRA target, in adapter-file order: each layer's LORA_MODULES, then the output head
 * (`output`, tensors `output.weight.lora_a/b`). The head is opt-in: it moves the logits of tokens
 * the layers' adapters cannot reach on a small model (tags a base model gives the same row), and
 * it needs a model with its own `output.weight` (llama.cpp cannot adapt a head tied to
 * `token_embd.weight`).
 */
export const LORA_TARGETS = [...LORA_MODULES, 'output'] as const;
export type LoraModule = (typeof LORA_TARGETS)[number];

/** The targets an adapter file adapts, read from its tensor names, in LORA_TARGETS order. */
export function adapterTargets(tensorNames: readonly string[]): LoraModule[] {
  return LORA_TARGETS.filter((m) => tensorNames.some((n) => n === `${m}.weight.lora_a` || n.endsWith(`.${m}.weight.lora_a`)));
}

export interface LoraConfig {
  /** Rank r of A [n_in, r] and B [r, n_out]. Default 8. */
  rank?: number;
  /** Scale numerator: the update is (alpha / rank)·B·A·x. Default 2 × rank. */
  alpha?: number;
  /** Adapted matrices (LORA_TARGETS). Default: every layer's seven projections (LORA_MODULES). */
  targets?: readonly LoraModule[];
  /** Seed of A's initialisation (B starts at zero, so step 0 is the base model). Default 0. */
  seed?: number;
}

export interface LoraTrainerOptions {
  lora?: LoraConfig;
  /** CPU threads for the training graph (default: all hardware threads). */
  threads?: number;
  /**
   * Keep a transposed copy of every frozen matrix so that the backward pass multiplies gradients on
   * ggml's tiled matmul kernels instead of its out_prod loop: 1.6× faster steps on the Qwen2.5-0.5B
   * shape (README, Performance) for about one more copy of the model's matrices in memory
   * (F32/F16/BF16 copies keep the type; quantized ones are stored as Q8_0, so their backward pass
   * uses 8-bit weights). Default true; false halves the memory of the frozen weights.
   */
  transposedWeights?: boolean;
}

export interface TrainerInfo {
  architecture: string;
  nVocab: number;
  nEmbd: number;
  nLayer: number;
  /** Bytes of the frozen weights held in memory (about the GGUF's size). */
  weightBytes: number;
  /** Bytes of their transposed copies (0 with `transposedWeights: false`). */
  transposedBytes: number;
  /** Trainable parameters (all A and B matrices). */
  loraParams: number;
  rank: number;
  alpha: number;
  targets: LoraModule[];
  /** Optimizer steps taken. */
  step: number;
  /** CPU threads of the training graph (the `threads` option, or every hardware thread). */
  threads: number;
}

export type LossPart = NativeLossPart;

export interface AccumulateResult {
  /** Weighted sum of the losses of this micro-batch. */
  loss: number;
  /** Each loss unweighted; `grpoKl` is the k3 term before its coefficient. */
  parts: Partial<Record<LossPart, number>>;
  /** Log-probs of each sequence's target tokens under the current adapter (token-level losses only). */
  logp: Float32Array[] | null;
  /** Real tokens in the batch and wall time of forward + backward. */
  tokens: number;
  seconds: number;
}

export interface StepOptions {
  /** Learning rate of this step (see lrAt in ./schedule for warm-up and decay). */
  lr: number;
  /** AdamW's moment decay rates, 0 ≤ β < 1. Defaults 0.9 and 0.999. */
  beta1?: number;
  beta2?: number;
  /** AdamW's denominator epsilon, > 0. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay (AdamW). Default 0. */
  weightDecay?: number;
  /** Global gradient-norm clip; 0 = none. Default 1. */
  clipNorm?: number;
}

export interface StepResult {
  /** Global norm of the averaged gradient before clipping. */
  gradNorm: number;
  clipped: boolean;
  step: number;
}

export interface ForwardOptions {
  /** false: the base model without the adapter (the reference). Default true. */
  lora?: boolean;
  /** Logits of every target row, [targets][n_vocab] flattened. */
  logits?: boolean;
  /** Final hidden state (after the output norm) at each sequence's embedAt. */
  hidden?: boolean;
  /** Log-probs of each sequence's target tokens. */
  logp?: boolean;
  signal?: AbortSignal;
}

export interface ForwardResult {
  logits: Float32Array | null;
  /** One vector per sequence (null where the sequence has no embedAt). */
  hidden: (Float32Array | null)[] | null;
  logp: Float32Array[] | null;
}

/** The tensors that make a training run resumable. */
export interface TrainerState {
  params: NamedTensor[];
  m: NamedTensor[];
  v: NamedTensor[];
  step: number;
}

/**
 * LoRA training of a GGUF decoder on search-r3's own ggml graph: forward passes that match
 * llama.cpp's inference, SFT / KL / InfoNCE / triplet / GRPO losses with exact gradients, AdamW.
 * Gradients accumulate over `accumulate()` calls until `step()` averages and applies them.
 *
 * @example
 * const trainer = await LoraTrainer.open('model.gguf', { lora: { rank: 8 } });
 * await trainer.accumulate([{ tokens, targets }], { sft: {} });
 * await trainer.step({ lr: 1e-4 });
 * await trainer.saveAdapter('adapter.gguf');
 * trainer.dispose();
 */
export class LoraTrainer {
  #native: NativeTrainer | null;
  readonly #ops = new InFlight('trainer');
  readonly path: string;
  readonly targets: LoraModule[];

  private constructor(native: NativeTrainer, path: string, targets: LoraModule[]) {
    this.#native = native;
    this.path = path;
    this.targets = targets;
  }

  /** Loads the model's weights (kept as stored, quantized or not) and creates a fresh adapter. */
  static async open(path: string, options: LoraTrainerOptions = {}): Promise<LoraTrainer> {
    assertString(path, 'path', { nonEmpty: true });
    checkKeys(options, ['lora', 'threads', 'transposedWeights'], 'options');
    const lora = options.lora ?? {};
    checkKeys(lora, ['rank', 'alpha', 'targets', 'seed'], 'options.lora');
    const rank = lora.rank ?? LORA_DEFAULTS.rank;
    assertInteger(rank, 'lora.rank', 1, 4096);
    const alpha = lora.alpha ?? LORA_DEFAULTS.alphaPerRank * rank;
    assertNumber(alpha, 'lora.alpha', 1e-6, 1e6);
    const seed = lora.seed ?? LORA_DEFAULTS.seed;
    assertInteger(seed, 'lora.seed', 0, 0xffffffff);
    const targets = [...(lora.targets ?? LORA_MODULES)];
    if (targets.length === 0) throw new RangeError(expected('at least one target module', 'lora.targets', targets));
    for (const t of targets) {
      if (!LORA_TARGETS.includes(t)) throw new RangeError(expected(`one of ${LORA_TARGETS.join(', ')}`, 'lora.targets[]', t));
    }
    if (options.threads !== undefined) assertInteger(options.threads, 'threads', 1, 1024);
    const transposedWeights = options.transposedWeights ?? LORA_DEFAULTS.transposedWeights;
    assertBoolean(transposedWeights, 'transposedWeights');
    const abs = await checkedGgufPath(path, 'model');
    const native = await callNative(() => binding().createTrainer(abs, { rank, alpha, targets: [...new Set(targets)], seed, threads: options.threads, transposedWeights }));
    return new LoraTrainer(native, abs, LORA_TARGETS.filter((m) => targets.includes(m)));
  }

  get #n(): NativeTrainer {
    if (!this.#native) throw new SearchR3Error('ERR_DISPOSED', 'the trainer was disposed');
    return this.#native;
  }

  get info(): TrainerInfo {
    const i = callNativeSync(() => this.#n.info());
    return {
      architecture: i.architecture, nVocab: i.nVocab, nEmbd: i.nEmbd, nLayer: i.nLayer, weightBytes: i.weightBytes, transposedBytes: i.transposedBytes,
      loraParams: i.loraParams, rank: i.rank, alpha: i.alpha, targets: [...this.targets], step: i.step, threads: i.threads,
    };
  }

  /** Runs the forward pass only (no gradients). */
  async forward(sequences: readonly TrainSequence[], options: ForwardOptions = {}): Promise<ForwardResult> {
    checkKeys(options, ['lora', 'logits', 'hidden', 'logp', 'signal'], 'options');
    const packed = packBatch(sequences);
    const r = await this.#run(options.signal, () => this.#n.forward(packed.native, {
      lora: options.lora ?? true, logits: options.logits ?? false, hidden: options.hidden ?? false, logp: options.logp ?? false,
    }));
    const d = this.info.nEmbd;
    const hidden = r.hidden ? Array.from(packed.embedIndex, (e) => (e < 0 ? null : r.hidden!.slice(e * d, (e + 1) * d))) : null;
    return { logits: r.logits, hidden, logp: r.logp ? perSequence(packed, r.logp) : null };
  }

  /**
   * Computes the losses of one micro-batch and adds their gradients to the accumulator. A NaN or
   * infinite loss or gradient adds nothing and throws ERR_TRAIN.
   */
  async accumulate(sequences: readonly TrainSequence[], losses: LossOptions, options: { signal?: AbortSignal } = {}): Promise<AccumulateResult> {
    const packed = packBatch(sequences);
    const spec = lossSpec(packed, losses);
    if (Object.keys(spec).length === 0) throw new RangeError('losses names no loss; give at least one of sft, kl, infonce, triplet, grpo');
    const r = await this.#run(options.signal, () => this.#n.accumulate(packed.native, spec));
    if (!r.finite) {
      throw new SearchR3Error('ERR_TRAIN', `the loss or its gradient is not finite (loss ${r.total}, parts ${JSON.stringify(r.parts)}); nothing was accumulated`);
    }
    return { loss: r.total, parts: r.parts, logp: r.logp ? perSequence(packed, r.logp) : null, tokens: packed.tokens, seconds: r.seconds };
  }

  /** Averages the accumulated gradients over the micro-batches, clips, applies AdamW, and clears them. */
  async step(options: StepOptions): Promise<StepResult> {
    checkKeys(options, ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'clipNorm'], 'options');
    const d = STEP_DEFAULTS;
    const { lr, beta1 = d.beta1, beta2 = d.beta2, eps = d.eps, weightDecay = d.weightDecay, clipNorm = d.clipNorm } = options;
    assertNumber(lr, 'lr', 0, 10);
    for (const [name, beta] of [['beta1', beta1], ['beta2', beta2]] as const) {
      assertNumber(beta, name, 0, 1);
      if (beta === 1) throw new RangeError(expected('a number in [0, 1)', name, beta));
    }
    assertNumber(eps, 'eps', 0, 1);
    if (eps === 0) throw new RangeError(expected('a positive number', 'eps', eps));
    assertNumber(weightDecay, 'weightDecay', 0, 1e6);
    assertNumber(clipNorm, 'clipNorm', 0, 1e12);
    return this.#run(undefined, () => this.#n.step({ lr, beta1, beta2, eps, weightDecay, clipNorm }));
  }

  /** Drops accumulated gradients without stepping. */
  zeroGrads(): void {
    callNativeSync(() => this.#n.zeroGrads());
  }

  /** Copies of the adapter's tensors (`params`), the accumulated gradients, or AdamW's moments. */
  tensors(part: NativeTensorPart): NamedTensor[] {
    return callNativeSync(() => this.#n.getTensors(part));
  }

  /** Replaces one family of tensors; names and sizes must match {@link tensors}' order exactly. */
  setTensors(part: NativeTensorPart, tensors: readonly { name: string; data: Float32Array }[]): void {
    callNativeSync(() => this.#n.setTensors(part, tensors as { name: string; data: Float32Array }[]));
  }

  /** Everything needed to resume: parameters, moments and the step count. */
  state(): TrainerState {
    return { params: this.tensors('params'), m: this.tensors('m'), v: this.tensors('v'), step: this.info.step };
  }

  restore(state: TrainerState): void {
    this.setTensors('params', state.params);
    this.setTensors('m', state.m);
    this.setTensors('v', state.v);
    callNativeSync(() => this.#n.setStep(state.step));
  }

  /** Writes the adapter in llama.cpp's adapter GGUF format (atomically). */
  async saveAdapter(path: string, metadata: Record<string, string | number> = {}): Promise<void> {
    const info = this.info;
    await writeLoraAdapter(path, { architecture: info.architecture, alpha: info.alpha, tensors: this.tensors('params'), metadata });
  }

  /** Loads adapter weights written by {@link saveAdapter} (same rank, targets and model shapes). */
  async loadAdapter(path: string): Promise<void> {
    const file = await readLoraAdapter(path);
    const info = this.info;
    if (file.architecture !== info.architecture) {
      throw new SearchR3Error('ERR_MODEL', `adapter ${path} is for ${file.architecture}, the trainer's model is ${info.architecture}`);
    }
    if (Math.abs(file.alpha - info.alpha) > 1e-6 * Math.max(1, info.alpha)) {
      throw new SearchR3Error('ERR_MODEL', `adapter ${path} has alpha ${file.alpha}, the trainer was opened with alpha ${info.alpha}`);
    }
    const byName = new Map(file.tensors.map((t) => [t.name, t]));
    const wanted = this.tensors('params');
    this.setTensors('params', wanted.map((t) => {
      const found = byName.get(t.name);
      if (!found) throw new SearchR3Error('ERR_MODEL', `adapter ${path} lacks ${t.name} (rank, targets or layer count differ)`);
      if (found.data.length !== t.data.length) {
        throw new SearchR3Error('ERR_MODEL', `adapter ${path}: ${t.name} has dims [${found.dims}], expected [${t.dims}]`);
      }
      return { name: t.name, data: found.data };
    }));
  }

  #run<T>(signal: AbortSignal | undefined, start: () => Promise<T>): Promise<T> {
    const n = this.#n;
    return this.#ops.run(() => callNativeAbortable(signal, () => n.abort(), start));
  }

  /**
   * Frees the weights and the adapter. Never throws and is idempotent: an operation in flight
   * (forward, accumulate, step) is stopped at its next check and its promise rejects with
   * ERR_DISPOSED; the native trainer is freed once that work has stopped. Later calls are
   * ERR_DISPOSED errors.
   */
  dispose(): void {
    this.#ops.dispose();
    this.#native?.dispose();
    this.#native = null;
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
    return Promise.resolve();
  }
}

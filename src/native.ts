/**
 * The whole native surface, typed in one place, and the loader that finds the compiled addon.
 * Everything here is mechanism: TypeScript classes in `engine/` validate arguments and decide policy
 * before calling in.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SearchR3Error } from './util/errors';

/** A backend device ggml registered: the CPU, and each GPU of a CUDA build that found a driver. */
export interface NativeDevice {
  name: string;
  description: string;
  type: 'cpu' | 'gpu' | 'other';
  /** Bytes; 0 where the backend does not say. */
  memoryTotal: number;
  memoryFree: number;
}

export interface NativeModelMetadata {
  description: string;
  architecture: string;
  name: string;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nVocab: number;
  contextLength: number;
  sizeBytes: number;
  parameters: number;
  hasEncoder: boolean;
  isRecurrent: boolean;
  chatTemplate: string | null;
  bos: number;
  eos: number;
  eot: number;
  addBos: boolean;
  addEos: boolean;
}

export interface NativeModel {
  metadata(): NativeModelMetadata;
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string;
  tokenPieces(tokens: Int32Array, special: boolean): string[];
  metaValue(key: string): string | null;
  applyChatTemplate(messages: { role: string; content: string }[], addAssistant: boolean): string | null;
  dispose(): void;
}

export interface NativeLora {
  meta(): Record<string, string>;
  dispose(): void;
}

export interface NativeSessionOptions {
  sequences?: number;
  contextSize?: number;
  batchSize?: number;
  threads?: number;
  threadsBatch?: number;
  kvUnified?: boolean;
  flashAttention?: -1 | 0 | 1;
  /** ggml type of the K/V cache: 1 = F16, 0 = F32. */
  cacheType?: 0 | 1;
}

/** One generation request; see native/generate.h for the exact semantics of each field. */
export interface NativeRequest {
  prompt: Int32Array;
  copies?: number;
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  seed?: number;
  stopTokens?: Int32Array;
  stopStrings?: string[];
  logprobs?: boolean;
  ignoreEog?: boolean;
  embedToken?: number;
  embedOnStop?: boolean;
  embedPromptLast?: boolean;
}

export type NativeFinish = 'embed' | 'eog' | 'stop' | 'length' | 'context' | 'prompt';

export interface NativeResult {
  request: number;
  copy: number;
  promptTokens: number;
  tokens: Int32Array;
  logprobs: Float32Array | null;
  text: string;
  finish: NativeFinish;
  embedForced: boolean;
  embedding: Float32Array | null;
}

export interface NativeRunStats {
  promptTokens: number;
  generatedTokens: number;
  decodeCalls: number;
  promptMs: number;
  generateMs: number;
}

/** One continuing sequence's share of a seqRun; see native/sequence.h. */
export interface NativeSeqItem {
  seq: number;
  append: Int32Array;
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  seed?: number;
  stopTokens?: Int32Array;
  stopStrings?: string[];
  logprobs?: boolean;
  ignoreEog?: boolean;
}

export interface NativeSeqResult {
  seq: number;
  tokens: Int32Array;
  logprobs: Float32Array | null;
  text: string;
  finish: NativeFinish;
  /** The stop string that ended generation, or null. */
  stop: string | null;
  /** Tokens the sequence holds after the call. */
  length: number;
}

export interface NativeSessionInfo {
  contextSize: number;
  contextPerSequence: number;
  sequences: number;
  batchSize: number;
  threads: number;
  threadsBatch: number;
  openSequences: number;
  /** Positions held in llama.cpp's KV memory, summed over sequences; null while an operation runs. */
  cachedTokens: number | null;
}

export interface NativeSession {
  run(requests: NativeRequest[]): Promise<{ results: NativeResult[]; stats: NativeRunStats }>;
  evaluate(tokens: Int32Array, wantLogits: boolean): Promise<{ logits: Float32Array | null; embeddings: Float32Array }>;
  setLoras(loras: NativeLora[], scales: number[]): void;
  abort(): void;
  info(): NativeSessionInfo;
  seqOpen(): number;
  seqFork(seq: number, count: number): number[];
  seqFree(seq: number): void;
  seqRun(items: NativeSeqItem[]): Promise<{ results: NativeSeqResult[]; stats: NativeRunStats }>;
  dispose(): void;
}

export interface NativeTrainBatch {
  nSeq: number;
  nLen: number;
  tokens: Int32Array;
  embedRows?: Int32Array;
  targetRows?: Int32Array;
  targetTokens?: Int32Array;
}

export interface NativeLossSpec {
  sft?: { weight: number; rowWeights: Float32Array };
  kl?: { weight: number; rowWeights: Float32Array };
  infonce?: { weight: number; temperature: number; queries: Int32Array; candidates: Int32Array; labels: Int32Array };
  triplet?: { weight: number; margin: number; anchors: Int32Array; positives: Int32Array; negatives: Int32Array };
  grpo?: {
    weight: number; rowWeights: Float32Array; advantages: Float32Array; logpOld: Float32Array;
    epsLow: number; epsHigh: number; klCoef: number;
  };
}

export type NativeLossPart = 'sft' | 'kl' | 'infonce' | 'triplet' | 'grpo' | 'grpoKl';
export type NativeTensorPart = 'params' | 'grads' | 'm' | 'v';

export interface NativeTrainer {
  info(): {
    architecture: string; nVocab: number; nEmbd: number; nLayer: number; nHead: number; nHeadKv: number; nFf: number;
    weightBytes: number; transposedBytes: number; loraParams: number; rank: number; alpha: number; step: number; microBatches: number; threads: number;
  };
  forward(batch: NativeTrainBatch, options: { lora: boolean; logits: boolean; hidden: boolean; logp: boolean }):
    Promise<{ logits: Float32Array | null; hidden: Float32Array | null; logp: Float32Array | null }>;
  accumulate(batch: NativeTrainBatch, loss: NativeLossSpec):
    Promise<{ total: number; parts: Partial<Record<NativeLossPart, number>>; finite: boolean; logp: Float32Array | null; seconds: number }>;
  /** Every value is required: the addon has no defaults (src/train/defaults.ts has them). */
  step(options: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; clipNorm: number }):
    Promise<{ gradNorm: number; clipped: boolean; step: number }>;
  getTensors(part: NativeTensorPart): { name: string; dims: number[]; data: Float32Array }[];
  setTensors(part: NativeTensorPart, tensors: { name: string; data: Float32Array }[]): void;
  setStep(step: number): void;
  zeroGrads(): void;
  abort(): void;
  dispose(): void;
}

/** The vector kernels of native/store are typed beside their TS wrapper (src/store/kernels.ts). */
export interface NativeBinding {
  loadModel(path: string, options: { gpuLayers?: number; mmap?: boolean; vocabOnly?: boolean }): Promise<NativeModel>;
  loadLora(model: NativeModel, path: string): Promise<NativeLora>;
  createSession(model: NativeModel, options: NativeSessionOptions): Promise<NativeSession>;
  systemInfo(): { system: string; gpuOffload: boolean; mmap: boolean; maxDevices: number; cuda: boolean; devices: NativeDevice[] };
  setLogLevel(level: 0 | 1 | 2 | 3 | 4): void;
  /** `targets`: LORA_TARGETS names (src/train/trainer.ts holds the one list), each checked by the addon. */
  createTrainer(path: string, options: { rank: number; alpha: number; targets: string[]; seed: number; threads?: number; transposedWeights: boolean }): Promise<NativeTrainer>;
}

let cached: NativeBinding | undefined;

/** The package root (dist/.. or src/..). */
export const packageRoot = join(__dirname, '..');

/**
 * Spins libgomp's barrier makes before it sleeps (GNU OpenMP's default is 300,000), set when
 * neither GOMP_SPINCOUNT nor OMP_WAIT_POLICY is: a thread whose partner lost its core to another
 * process then frees its own core soon instead of spinning out its time slice, at every op of a
 * graph. README, Busy machines, has the figures.
 */
export const GOMP_SPIN_COUNT = '10000';

/**
 * Loads build/Release/search_r3.node once (libgomp, which it links, reads its settings from the
 * environment as it loads: see GOMP_SPIN_COUNT). SEARCH_R3_BINDING=/path/to/file.node overrides the path
 * (used to test the node-gyp build).
 */
export function binding(): NativeBinding {
  if (cached) return cached;
  const candidates = process.env.SEARCH_R3_BINDING
    ? [process.env.SEARCH_R3_BINDING]
    : [join(packageRoot, 'build', 'Release', 'search_r3.node'), join(packageRoot, 'build', 'Debug', 'search_r3.node')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new SearchR3Error('ERR_NATIVE', `the search-r3 native addon is not built (looked for ${candidates.join(', ')}); run "npm run build:native"`);
  }
  if (process.env.GOMP_SPINCOUNT === undefined && process.env.OMP_WAIT_POLICY === undefined) process.env.GOMP_SPINCOUNT = GOMP_SPIN_COUNT;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  cached = require(found) as NativeBinding;
  return cached;
}

import { readFile } from 'node:fs/promises';
import { SearchR3Error } from '../util/errors.js';
import { assertBoolean, assertInteger, assertNumber, assertOneOf, assertString, checkKeys, expected } from '../util/validate.js';
import { GgmlType, GgufType } from './constants.js';
import { quantizeRow } from './quant.js';
import { MODEL_PRESET_NAMES, MODEL_PRESETS, type ModelPresetName, type ModelShape } from './presets.js';
import type { GgufKv } from './reader.js';
import { WeightRandom } from './random.js';
import { claimPaddingSlot, defaultChatTemplatePath, defaultVocabPath, qwen25TokenizerMetadata } from './vocab.js';
import { formatBytes } from '../util/output.js';
import { ggufFileBytes, tensorBytes, writeGguf, type GgufTensorInput } from './writer.js';

/** Storage type of the generated 2-D weights (norms and biases always stay F32). */
export type ModelWeightType = 'f32' | 'f16' | 'q8_0';

/** Options of {@link makeModel}; any shape field overrides the preset's value. */
export interface MakeModelOptions extends Partial<ModelShape> {
  /** Output path; written atomically. */
  out: string;
  /** Starting shape (default `tiny`). */
  preset?: ModelPresetName;
  /** PRNG seed, an unsigned 32-bit integer (default 1). Same seed ⇒ byte-identical file. */
  seed?: number;
  /** Default `f32`. With `q8_0`, a matrix whose rows are not a multiple of 32 falls back to F16. */
  type?: ModelWeightType;
  /** Tokenizer source (a Qwen2 vocabulary GGUF); default llama.cpp's `models/ggml-vocab-qwen2.gguf`. */
  vocabPath?: string;
  /** Chat template text; default Qwen2.5-Instruct's ChatML template vendored with llama.cpp. */
  chatTemplate?: string;
  /** Add `<|embed_token|>` (default true); false gives a "stock instruct" model for surgery tests. */
  embedToken?: boolean;
}

/** One tensor of a planned model. */
export interface PlannedTensor {
  name: string;
  dims: number[];
  type: number;
  /** How values are drawn: approximately normal with standard deviation `std`, or ones (norm weights; 1 + normal noise when `std` > 0). */
  init: 'normal' | 'ones';
  /** Standard deviation of the normal values (around 0 for `normal`, around 1 for `ones`). */
  std: number;
  nbytes: number;
}

/** A resolved model: shape, seed, weight type and the tensors in file order. */
export interface ModelPlan {
  shape: ModelShape;
  preset: ModelPresetName;
  seed: number;
  type: ModelWeightType;
  tensors: PlannedTensor[];
  /** Sum of tensor data bytes (without alignment padding or header). */
  tensorBytes: number;
  /** Number of weights. */
  parameters: number;
}

/** What {@link makeModel} wrote. */
export interface MakeModelResult extends ModelPlan {
  /** Id of `<|embed_token|>`; null with `embedToken: false`. */
  embedTokenId: number | null;
  /** Exact size of the written file in bytes (header, metadata and aligned tensor data). */
  fileBytes: number;
}

/**
 * The largest model {@link makeModel} generates: per-field bounds, and a cap on the file size.
 * Generated models are for tests, demos and benchmarks (the `qwen2.5-0.5b` preset is 1.9 GiB as
 * f32); the cap keeps a mistyped flag from filling a disk for hours (a 123 TB request is refused
 * at once, with its size).
 */
export const MAKE_MODEL_LIMITS = {
  layers: 256,
  embd: 16384,
  heads: 256,
  kvHeads: 256,
  ff: 65536,
  vocabRows: 1 << 20,
  /** Bytes of the whole file: 32 GiB. */
  fileBytes: 32 * 2 ** 30,
} as const;

function checkFileLimit(bytes: number, what: string): void {
  if (bytes > MAKE_MODEL_LIMITS.fileBytes) {
    throw new RangeError(`make-model would write ${what}${formatBytes(bytes)}, more than the ${formatBytes(MAKE_MODEL_LIMITS.fileBytes)} limit; choose a smaller shape`);
  }
}

const KNOWN_OPTIONS = [
  'out', 'preset', 'seed', 'type', 'vocabPath', 'chatTemplate', 'embedToken', 'arch', 'layers', 'embd', 'heads', 'kvHeads', 'ff',
  'contextLength', 'ropeTheta', 'rmsEps', 'tieEmbeddings', 'vocabRows',
];
// Embeddings and biases are N(0, 0.02) (the GPT-2/Llama initialiser). Block matrices use 1/√fan_in,
// which keeps every projection's output at unit scale: the blocks then dominate the residual stream,
// so with tied embeddings the LM head does not just echo the input token (N(0, 0.02) everywhere
// makes a tiny tied model repeat its last token forever), and activations stay O(1).
const EMBEDDING_STD = 0.02;
const FILE_TYPE: Record<ModelWeightType, number> = { f32: 0, f16: 1, q8_0: 7 }; // llama_ftype

function resolveShape(options: MakeModelOptions): { shape: ModelShape; preset: ModelPresetName } {
  const preset = options.preset ?? 'tiny';
  assertOneOf(preset, 'options.preset', MODEL_PRESET_NAMES);
  const shape: ModelShape = { ...MODEL_PRESETS[preset] };
  for (const key of Object.keys(shape) as Array<keyof ModelShape>) {
    if (options[key] !== undefined) (shape as unknown as Record<string, unknown>)[key] = options[key];
  }
  assertOneOf(shape.arch, 'options.arch', ['qwen2', 'llama', 'qwen3']);
  assertInteger(shape.layers, 'options.layers', 1, MAKE_MODEL_LIMITS.layers);
  assertInteger(shape.embd, 'options.embd', 1, MAKE_MODEL_LIMITS.embd);
  assertInteger(shape.heads, 'options.heads', 1, MAKE_MODEL_LIMITS.heads);
  assertInteger(shape.kvHeads, 'options.kvHeads', 1, MAKE_MODEL_LIMITS.kvHeads);
  assertInteger(shape.ff, 'options.ff', 1, MAKE_MODEL_LIMITS.ff);
  assertInteger(shape.contextLength, 'options.contextLength', 1, 1 << 24);
  assertNumber(shape.ropeTheta, 'options.ropeTheta', Number.MIN_VALUE);
  assertNumber(shape.rmsEps, 'options.rmsEps', Number.MIN_VALUE, 1);
  assertBoolean(shape.tieEmbeddings, 'options.tieEmbeddings');
  assertInteger(shape.vocabRows, 'options.vocabRows', 1, MAKE_MODEL_LIMITS.vocabRows);
  if (shape.embd % shape.heads !== 0) throw new RangeError(`Expected options.embd (${shape.embd}) to be a multiple of options.heads (${shape.heads})`);
  if (shape.heads % shape.kvHeads !== 0) throw new RangeError(`Expected options.heads (${shape.heads}) to be a multiple of options.kvHeads (${shape.kvHeads})`);
  if ((shape.embd / shape.heads) % 2 !== 0) throw new RangeError(`Expected an even head size for RoPE but embd / heads = ${shape.embd / shape.heads}`);
  return { shape, preset };
}

function matrixType(type: ModelWeightType, rowLength: number): number {
  if (type === 'f32') return GgmlType.F32;
  if (type === 'f16') return GgmlType.F16;
  return rowLength % 32 === 0 ? GgmlType.Q8_0 : GgmlType.F16;
}

/**
 * Resolves options into the list of tensors a generated model has, without generating anything;
 * names and shapes are those llama.cpp's qwen2/llama/qwen3 loaders expect.
 *
 * @example planModel({ out: 'x.gguf', preset: 'qwen2.5-0.5b' }).parameters // 494032768
 */
export function planModel(options: MakeModelOptions): ModelPlan {
  if (typeof options !== 'object' || options === null) throw new TypeError(expected('object', 'options', options));
  checkKeys(options, KNOWN_OPTIONS, 'options');
  const { shape, preset } = resolveShape(options);
  const seed = options.seed ?? 1;
  assertInteger(seed, 'options.seed', 0, 0xffffffff);
  const type = options.type ?? 'f32';
  assertOneOf(type, 'options.type', ['f32', 'f16', 'q8_0']);
  const { embd, ff, vocabRows } = shape;
  const kvDim = (embd / shape.heads) * shape.kvHeads;
  const tensors: PlannedTensor[] = [];
  const matrix = (name: string, cols: number, rows: number, std = 1 / Math.sqrt(cols)): void => {
    const t = matrixType(type, cols);
    tensors.push({ name, dims: [cols, rows], type: t, init: 'normal', std, nbytes: tensorBytes(t, [cols, rows]) });
  };
  // Projections that write into the residual stream are scaled down by √(2·layers) (GPT-2's
  // scheme), so the stream stays O(1) however deep the model and does not collapse to one state.
  const residualStd = (fanIn: number): number => 1 / Math.sqrt(fanIn * 2 * shape.layers);
  // 'ones' with a std: 1 + N(0, std), a norm weight that is not the identity.
  const vector = (name: string, n: number, init: 'normal' | 'ones', std = init === 'ones' ? 0 : EMBEDDING_STD): void => {
    tensors.push({ name, dims: [n], type: GgmlType.F32, init, std, nbytes: n * 4 });
  };
  matrix('token_embd.weight', embd, vocabRows, EMBEDDING_STD);
  vector('output_norm.weight', embd, 'ones');
  if (!shape.tieEmbeddings) matrix('output.weight', embd, vocabRows, EMBEDDING_STD);
  for (let i = 0; i < shape.layers; i++) {
    const blk = `blk.${i}`;
    vector(`${blk}.attn_norm.weight`, embd, 'ones');
    matrix(`${blk}.attn_q.weight`, embd, embd);
    matrix(`${blk}.attn_k.weight`, embd, kvDim);
    matrix(`${blk}.attn_v.weight`, embd, kvDim);
    if (shape.arch === 'qwen2') {
      vector(`${blk}.attn_q.bias`, embd, 'normal');
      vector(`${blk}.attn_k.bias`, kvDim, 'normal');
      vector(`${blk}.attn_v.bias`, kvDim, 'normal');
    }
    if (shape.arch === 'qwen3') {
      // Qwen3 normalises each head of Q and K (after the projection, before RoPE).
      vector(`${blk}.attn_q_norm.weight`, embd / shape.heads, 'ones', 0.1);
      vector(`${blk}.attn_k_norm.weight`, embd / shape.heads, 'ones', 0.1);
    }
    matrix(`${blk}.attn_output.weight`, embd, embd, residualStd(embd));
    vector(`${blk}.ffn_norm.weight`, embd, 'ones');
    matrix(`${blk}.ffn_gate.weight`, embd, ff);
    matrix(`${blk}.ffn_up.weight`, embd, ff);
    matrix(`${blk}.ffn_down.weight`, ff, embd, residualStd(ff));
  }
  const bytes = tensors.reduce((a, t) => a + t.nbytes, 0);
  checkFileLimit(bytes, 'at least ');
  return {
    shape, preset, seed, type, tensors,
    tensorBytes: bytes,
    parameters: tensors.reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1), 0),
  };
}

function architectureMetadata(plan: ModelPlan): Map<string, GgufKv> {
  const { shape } = plan;
  const a = shape.arch;
  const u32 = (value: number): GgufKv => ({ type: GgufType.UINT32, value });
  const f32 = (value: number): GgufKv => ({ type: GgufType.FLOAT32, value });
  const str = (value: string): GgufKv => ({ type: GgufType.STRING, value });
  const kv = new Map<string, GgufKv>([
    ['general.architecture', str(a)],
    ['general.type', str('model')],
    ['general.name', str(`search-r3 ${plan.preset} ${a} seed ${plan.seed}`)],
    ['general.file_type', u32(FILE_TYPE[plan.type])],
  ]);
  if (plan.type === 'q8_0') kv.set('general.quantization_version', u32(2));
  kv.set(`${a}.block_count`, u32(shape.layers));
  kv.set(`${a}.context_length`, u32(shape.contextLength));
  kv.set(`${a}.embedding_length`, u32(shape.embd));
  kv.set(`${a}.feed_forward_length`, u32(shape.ff));
  kv.set(`${a}.attention.head_count`, u32(shape.heads));
  kv.set(`${a}.attention.head_count_kv`, u32(shape.kvHeads));
  kv.set(`${a}.rope.freq_base`, f32(shape.ropeTheta));
  kv.set(`${a}.attention.layer_norm_rms_epsilon`, f32(shape.rmsEps));
  if (a === 'llama') {
    // llama.cpp's converter writes both for llama; the loader checks n_rot == head size.
    kv.set(`${a}.rope.dimension_count`, u32(shape.embd / shape.heads));
    kv.set(`${a}.vocab_size`, u32(shape.vocabRows));
  }
  return kv;
}

function tensorSource(plan: ModelPlan, t: PlannedTensor): () => AsyncIterable<Uint8Array> {
  return async function* generate() {
    const rowLength = t.dims[0]!;
    const rows = t.dims.slice(1).reduce((x, y) => x * y, 1);
    const rowsPerChunk = Math.max(1, Math.floor((1 << 18) / rowLength));
    const rng = new WeightRandom(plan.seed, t.name);
    for (let r = 0; r < rows; r += rowsPerChunk) {
      const values = new Float32Array(Math.min(rowsPerChunk, rows - r) * rowLength);
      if (t.init === 'ones' && t.std === 0) values.fill(1);
      else rng.fillNormal(values, t.std);
      if (t.init === 'ones' && t.std > 0) for (let i = 0; i < values.length; i++) values[i]! += 1;
      yield quantizeRow(t.type, values);
    }
  };
}

/**
 * Writes a GGUF decoder (llama.cpp `qwen2`, `llama` or `qwen3` architecture) with deterministic random
 * weights and the real Qwen2.5 tokenizer, including `<|embed_token|>` as a CONTROL token in the
 * first padding slot (id 151665, where Qwen2.5-Instruct models get it too). Weights come from a
 * seeded PRNG, approximately normal: embeddings and biases with std 0.02, block matrices with
 * std 1/√fan_in; norms are 1. llama.cpp then generates deterministic, non-degenerate text. Resolves to the plan that was written and the embed token's id (null
 * with `embedToken: false`) and the file's exact size. Shapes are bounded by {@link MAKE_MODEL_LIMITS};
 * a shape over the size cap is refused before anything is generated, and a file larger than the
 * free space of the output's file system before anything is written.
 *
 * @example
 * const { embedTokenId } = await makeModel({ out: '/tmp/tiny.gguf', preset: 'tiny', seed: 7, type: 'q8_0' });
 */
export async function makeModel(options: MakeModelOptions): Promise<MakeModelResult> {
  const plan = planModel(options);
  assertString(options.out, 'options.out', { nonEmpty: true });
  const withEmbedToken = options.embedToken ?? true;
  assertBoolean(withEmbedToken, 'options.embedToken');
  const vocabPath = options.vocabPath ?? defaultVocabPath();
  assertString(vocabPath, 'options.vocabPath', { nonEmpty: true });
  let chatTemplate = options.chatTemplate;
  if (chatTemplate === undefined) {
    const path = defaultChatTemplatePath();
    try {
      chatTemplate = await readFile(path, 'utf8');
    } catch (err) {
      throw new SearchR3Error('ERR_FILE', `${path}: cannot read the default chat template (${(err as NodeJS.ErrnoException).code}); pass options.chatTemplate`, { cause: err });
    }
  }
  assertString(chatTemplate, 'options.chatTemplate');
  const metadata = architectureMetadata(plan);
  for (const [k, v] of await qwen25TokenizerMetadata(vocabPath, chatTemplate, plan.shape.vocabRows)) metadata.set(k, v);
  const embedTokenId = withEmbedToken ? claimPaddingSlot(metadata, vocabPath) : null;
  if (embedTokenId === undefined) {
    throw new RangeError(`Expected options.vocabRows (${plan.shape.vocabRows}) to leave a padding row for <|embed_token|>`);
  }
  const tensors: GgufTensorInput[] = plan.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: tensorSource(plan, t) }));
  const fileBytes = ggufFileBytes({ metadata, tensors });
  checkFileLimit(fileBytes, '');
  await writeGguf(options.out, { metadata, tensors });
  return { ...plan, embedTokenId, fileBytes };
}

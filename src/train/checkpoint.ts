import { GGML_MAX_NAME, GgmlType, GgufType } from '../gguf/constants';
import { ggufError } from '../gguf/cursor';
import { CONVERTIBLE_TYPES, dequantizeRow } from '../gguf/quant';
import { readGguf, readTensorBytes, type GgufFile, type GgufKv } from '../gguf/reader';
import { writeGguf, type GgufTensorInput } from '../gguf/writer';
import { assertNumber, assertString, checkKeys, expected } from '../util/validate';

/**
 * Files the stage-1 trainer writes: the LoRA adapter (llama.cpp's adapter GGUF, loadable by any
 * llama.cpp runtime) and the training state to resume from (parameters, AdamW moments and a JSON
 * record of everything else). Both go through `writeGguf`, which writes a temporary file beside
 * the target, fsyncs it and renames it over the target, so a crash leaves the previous file whole.
 */

/** An F32 tensor in ggml dimension order (`dims[0]` is the row length). */
export interface NamedTensor {
  name: string;
  dims: number[];
  data: Float32Array;
}

/** What {@link writeLoraAdapter} writes and {@link readLoraAdapter} returns. */
export interface LoraAdapterFile {
  /** The base model's `general.architecture`; llama.cpp refuses an adapter for another one. */
  architecture: string;
  /** `adapter.lora.alpha`: llama.cpp scales B·A by alpha / rank. Stored as f32, as llama.cpp reads it. */
  alpha: number;
  /** Pairs `<base>.lora_a` with dims [n_in, rank] and `<base>.lora_b` with dims [rank, n_out]. */
  tensors: NamedTensor[];
  /** Extra string or numeric keys (e.g. training provenance); not `general.type` and the like, nor `adapter.*`. */
  metadata?: Record<string, string | number>;
}

/** What {@link writeTrainState} writes and {@link readTrainState} returns. */
export interface TrainStateFile<S = unknown> {
  /** Trainable parameters and AdamW's first (`m`) and second (`v`) moments, one of each per name. */
  tensors: { params: NamedTensor[]; m: NamedTensor[]; v: NamedTensor[] };
  /** Step, configuration, data cursor, RNG state…: anything JSON can hold exactly. */
  state: S;
}

const STATE_KEY = 'search_r3.train_state';
const STATE_VERSION_KEY = 'search_r3.train_state.version';
const STATE_VERSION = 1;
const MOMENTS = [['params', 'param.'], ['m', 'adam_m.'], ['v', 'adam_v.']] as const;
// Keys the adapter format itself defines (llama.cpp reads everything under `adapter.`, e.g.
// `adapter.alora.invocation_tokens`); user metadata may not shadow them.
const GENERAL_KEYS = ['general.architecture', 'general.type', 'general.alignment'];
const isFormatKey = (key: string): boolean => GENERAL_KEYS.includes(key) || key.startsWith('adapter.');
const LORA_NAME = /^(.+)\.lora_(a|b)$/;

const str = (value: string): GgufKv => ({ type: GgufType.STRING, value });

function checkTensor(t: NamedTensor, where: string): void {
  if (typeof t !== 'object' || t === null) throw new TypeError(expected('{ name, dims, data }', where, t));
  assertString(t.name, `${where}.name`, { nonEmpty: true });
  if (!Array.isArray(t.dims) || t.dims.length < 1 || t.dims.length > 4 || !t.dims.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new RangeError(expected('1 to 4 positive integer dims', `${where}.dims`, t.dims));
  }
  if (!(t.data instanceof Float32Array)) throw new TypeError(expected('Float32Array', `${where}.data`, t.data));
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== n) {
    throw new RangeError(`Expected ${n} values for tensor '${t.name}' of dims [${t.dims.join(', ')}] but received ${t.data.length}`);
  }
}

function f32Input(name: string, t: NamedTensor): GgufTensorInput {
  // A view, not a copy: GGUF is little-endian like every platform Node runs on.
  return { name, type: GgmlType.F32, dims: t.dims, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
}

function checkLoraPairs(tensors: NamedTensor[]): void {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  for (const [i, t] of tensors.entries()) {
    const m = LORA_NAME.exec(t.name);
    if (m === null) throw new RangeError(expected("tensor name ending in '.lora_a' or '.lora_b'", `tensors[${i}].name`, t.name));
    // llama.cpp stores tensor names in a fixed 64-byte field; a longer name fails to load.
    if (Buffer.byteLength(t.name) >= GGML_MAX_NAME) {
      throw new RangeError(`Expected tensor name of at most ${GGML_MAX_NAME - 1} bytes for tensors[${i}].name but '${t.name}' has ${Buffer.byteLength(t.name)}`);
    }
    if (t.dims.length !== 2) throw new RangeError(expected('2 dims', `dims of '${t.name}'`, t.dims));
    if (m[2] === 'b') continue;
    const b = byName.get(`${m[1]}.lora_b`);
    if (b === undefined) throw new RangeError(`LoRA tensor '${t.name}' has no matching '${m[1]}.lora_b'`);
    // llama.cpp computes B·(A·x): A maps n_in → rank, so A's rank (dims[1]) must be B's row length (dims[0]).
    if (b.dims[0] !== t.dims[1]) {
      throw new RangeError(`LoRA rank mismatch: '${t.name}' has dims [${t.dims.join(', ')}] (rank ${t.dims[1]}) but '${b.name}' has dims [${b.dims.join(', ')}] (rank ${b.dims[0]})`);
    }
  }
  for (const t of tensors) {
    const m = LORA_NAME.exec(t.name)!;
    if (m[2] === 'b' && !byName.has(`${m[1]}.lora_a`)) throw new RangeError(`LoRA tensor '${t.name}' has no matching '${m[1]}.lora_a'`);
  }
}

function metadataKv(metadata: Record<string, string | number>): [string, GgufKv][] {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw new TypeError(expected('object', 'adapter.metadata', metadata));
  return Object.entries(metadata).map(([key, value]) => {
    if (key.length === 0 || isFormatKey(key)) {
      throw new RangeError(expected(`non-empty key outside adapter.* and other than ${GENERAL_KEYS.join(', ')}`, 'adapter.metadata key', key));
    }
    if (typeof value === 'string') return [key, str(value)];
    assertNumber(value, `adapter.metadata['${key}']`);
    // Safe integers as INT64 read back as the same integer; anything else as FLOAT64, which holds every JS number exactly.
    return [key, Number.isSafeInteger(value) && !Object.is(value, -0) ? { type: GgufType.INT64, value: BigInt(value) } : { type: GgufType.FLOAT64, value }];
  });
}

/**
 * Writes a LoRA adapter in llama.cpp's adapter GGUF format: `general.architecture`,
 * `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha` (f32) and F32 tensors
 * `<base tensor>.lora_a` (dims [n_in, rank]) and `.lora_b` (dims [rank, n_out]), e.g.
 * `blk.0.attn_q.weight.lora_a`. Written atomically. Argument mistakes are TypeError/RangeError.
 *
 * @example
 * await writeLoraAdapter('stage1.lora.gguf', {
 *   architecture: 'qwen2', alpha: 16,
 *   tensors: [{ name: 'blk.0.attn_q.weight.lora_a', dims: [896, 8], data: a }, { name: 'blk.0.attn_q.weight.lora_b', dims: [8, 896], data: b }],
 * });
 */
export async function writeLoraAdapter(path: string, adapter: LoraAdapterFile): Promise<void> {
  assertString(path, 'path', { nonEmpty: true });
  if (typeof adapter !== 'object' || adapter === null) throw new TypeError(expected('object { architecture, alpha, tensors }', 'adapter', adapter));
  checkKeys(adapter, ['architecture', 'alpha', 'tensors', 'metadata'], 'adapter');
  assertString(adapter.architecture, 'adapter.architecture', { nonEmpty: true });
  assertNumber(adapter.alpha, 'adapter.alpha');
  if (!Number.isFinite(adapter.alpha) || adapter.alpha <= 0) throw new RangeError(expected('finite number > 0', 'adapter.alpha', adapter.alpha));
  if (!Array.isArray(adapter.tensors) || adapter.tensors.length === 0) throw new TypeError(expected('non-empty array', 'adapter.tensors', adapter.tensors));
  adapter.tensors.forEach((t, i) => checkTensor(t, `adapter.tensors[${i}]`));
  checkLoraPairs(adapter.tensors);
  const metadata = new Map<string, GgufKv>([
    ['general.architecture', str(adapter.architecture)],
    ['general.type', str('adapter')],
    ['adapter.type', str('lora')],
    ['adapter.lora.alpha', { type: GgufType.FLOAT32, value: adapter.alpha }],
    ...metadataKv(adapter.metadata ?? {}),
  ]);
  await writeGguf(path, { metadata, tensors: adapter.tensors.map((t) => f32Input(t.name, t)) });
}

function stringKey(gguf: GgufFile, key: string, what: string): string {
  const kv = gguf.metadata.get(key);
  if (kv?.type !== GgufType.STRING) throw ggufError(gguf.path, `${what}: key '${key}' is ${kv === undefined ? 'missing' : 'not a string'}`);
  return kv.value as string;
}

async function readF32(gguf: GgufFile, name: string): Promise<Float32Array> {
  const info = gguf.tensors.find((t) => t.name === name)!;
  // Adapters converted by llama.cpp's tools may be F16/BF16/Q8_0; the trainer works in F32.
  if (!CONVERTIBLE_TYPES.includes(info.type.id)) {
    throw ggufError(gguf.path, `tensor '${name}' has type ${info.type.name}; expected F32, F16, BF16 or Q8_0`);
  }
  return dequantizeRow(info.type.id, await readTensorBytes(gguf, name));
}

function userMetadata(gguf: GgufFile, skip: (key: string) => boolean): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [key, kv] of gguf.metadata) {
    if (skip(key)) continue;
    if (typeof kv.value === 'string' || typeof kv.value === 'number') out[key] = kv.value;
    else if (typeof kv.value === 'bigint') out[key] = Number(kv.value);
  }
  return out;
}

/**
 * Reads a LoRA adapter GGUF (ours or llama.cpp's `convert_lora_to_gguf.py`'s) into F32 tensors.
 * A file that is not a valid GGUF, not a LoRA adapter, or has unpaired or mis-shaped tensors is a
 * `SearchR3Error` with code `ERR_GGUF` whose message starts with the path; a missing file is
 * `ERR_FILE`. `metadata` holds the file's other string and numeric keys.
 *
 * @example
 * const { architecture, alpha, tensors } = await readLoraAdapter('stage1.lora.gguf');
 */
export async function readLoraAdapter(path: string): Promise<Required<LoraAdapterFile>> {
  const gguf = await readGguf(path);
  const what = 'not a LoRA adapter';
  const type = stringKey(gguf, 'general.type', what);
  if (type !== 'adapter') throw ggufError(path, `${what}: general.type is ${JSON.stringify(type)}, expected "adapter"`);
  const adapterType = stringKey(gguf, 'adapter.type', what);
  if (adapterType !== 'lora') throw ggufError(path, `${what}: adapter.type is ${JSON.stringify(adapterType)}, expected "lora"`);
  const architecture = stringKey(gguf, 'general.architecture', what);
  const alphaKv = gguf.metadata.get('adapter.lora.alpha');
  if (alphaKv?.type !== GgufType.FLOAT32 && alphaKv?.type !== GgufType.FLOAT64) {
    throw ggufError(path, `${what}: key 'adapter.lora.alpha' is ${alphaKv === undefined ? 'missing' : 'not a float'}`);
  }
  const tensors: NamedTensor[] = [];
  for (const t of gguf.tensors) tensors.push({ name: t.name, dims: [...t.dims], data: await readF32(gguf, t.name) });
  try {
    checkLoraPairs(tensors);
  } catch (err) {
    throw ggufError(path, (err as Error).message);
  }
  const metadata = userMetadata(gguf, isFormatKey);
  return { architecture, alpha: alphaKv.value as number, tensors, metadata };
}

function checkStateJson(state: unknown): string {
  if (typeof state !== 'object' || state === null || Array.isArray(state)) throw new TypeError(expected('object', 'state', state));
  // JSON turns NaN and ±Infinity into null, a Map or typed array into a plain object, and cannot
  // hold bigint; any of these would make a resumed run differ silently, so they are refused with
  // the path to the value.
  const walk = (v: unknown, at: string): void => {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new RangeError(`Expected a finite number for state${at} but received ${v}; JSON cannot hold it`);
    if (typeof v === 'bigint') throw new TypeError(`Expected a number for state${at} but received ${v}n of type bigint; JSON cannot hold it`);
    if (typeof v !== 'object' || v === null) return;
    const proto = Object.getPrototypeOf(v);
    if (!Array.isArray(v) && proto !== Object.prototype && proto !== null) {
      throw new TypeError(`Expected a plain object or array for state${at} but received ${v.constructor?.name ?? 'an object'}; JSON cannot hold it exactly`);
    }
    for (const [k, x] of Object.entries(v)) walk(x, Array.isArray(v) ? `${at}[${k}]` : `${at}.${k}`);
  };
  walk(state, '');
  return JSON.stringify(state);
}

/**
 * Writes the training state to resume from into one GGUF: parameters as `param.<name>`, AdamW
 * moments as `adam_m.<name>` / `adam_v.<name>` (F32, bit-exact), and `state` as a JSON string under
 * `search_r3.train_state`. Every parameter needs an `m` and a `v` tensor of the same name and dims.
 * Written atomically, so the previous checkpoint survives a crash mid-write.
 *
 * @example
 * await writeTrainState('run/state.gguf', { tensors: { params, m, v }, state: { step: 120, rng: [1, 2, 3, 4] } });
 */
export async function writeTrainState(path: string, file: TrainStateFile): Promise<void> {
  assertString(path, 'path', { nonEmpty: true });
  if (typeof file !== 'object' || file === null) throw new TypeError(expected('object { tensors, state }', 'file', file));
  checkKeys(file, ['tensors', 'state'], 'file');
  if (typeof file.tensors !== 'object' || file.tensors === null) throw new TypeError(expected('object { params, m, v }', 'file.tensors', file.tensors));
  checkKeys(file.tensors, ['params', 'm', 'v'], 'file.tensors');
  for (const [group] of MOMENTS) {
    const list = file.tensors[group];
    if (!Array.isArray(list)) throw new TypeError(expected('array', `file.tensors.${group}`, list));
    list.forEach((t, i) => checkTensor(t, `file.tensors.${group}[${i}]`));
  }
  const params = new Map(file.tensors.params.map((t) => [t.name, t]));
  for (const group of ['m', 'v'] as const) {
    const list = file.tensors[group];
    if (list.length !== params.size) {
      throw new RangeError(`Expected one ${group} tensor per parameter (${params.size}) but received ${list.length}`);
    }
    for (const t of list) {
      const p = params.get(t.name);
      if (p === undefined) throw new RangeError(`${group} tensor '${t.name}' has no parameter of that name`);
      if (p.dims.join() !== t.dims.join()) {
        throw new RangeError(`${group} tensor '${t.name}' has dims [${t.dims.join(', ')}] but its parameter has [${p.dims.join(', ')}]`);
      }
    }
  }
  const json = checkStateJson(file.state);
  const tensors = MOMENTS.flatMap(([group, prefix]) => file.tensors[group].map((t) => f32Input(prefix + t.name, t)));
  const metadata = new Map<string, GgufKv>([
    [STATE_VERSION_KEY, { type: GgufType.UINT32, value: STATE_VERSION }],
    [STATE_KEY, str(json)],
  ]);
  await writeGguf(path, { metadata, tensors });
}

/**
 * Reads a file written by {@link writeTrainState}. A truncated, corrupt or foreign file (a model,
 * an adapter, a state of a newer format version) is a `SearchR3Error` with code `ERR_GGUF` whose
 * message starts with the path; a missing file is `ERR_FILE`.
 *
 * @example
 * const { tensors, state } = await readTrainState('run/state.gguf');
 */
export async function readTrainState<S = unknown>(path: string): Promise<TrainStateFile<S>> {
  const gguf = await readGguf(path);
  const what = 'not a search-r3 training state';
  const version = gguf.metadata.get(STATE_VERSION_KEY);
  if (version === undefined) throw ggufError(path, `${what} (no '${STATE_VERSION_KEY}' key)`);
  if (version.type !== GgufType.UINT32 || version.value !== STATE_VERSION) {
    throw ggufError(path, `training state format version ${String(version.value)} is not supported (supported: ${STATE_VERSION})`);
  }
  let state: S;
  try {
    state = JSON.parse(stringKey(gguf, STATE_KEY, what)) as S;
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    throw ggufError(path, `key '${STATE_KEY}' is not valid JSON (${err.message})`);
  }
  const tensors: TrainStateFile['tensors'] = { params: [], m: [], v: [] };
  for (const info of gguf.tensors) {
    const group = MOMENTS.find(([, prefix]) => info.name.startsWith(prefix));
    if (group === undefined) throw ggufError(path, `tensor '${info.name}' has none of the prefixes ${MOMENTS.map(([, p]) => `'${p}'`).join(', ')}`);
    if (info.type.id !== GgmlType.F32) throw ggufError(path, `tensor '${info.name}' has type ${info.type.name}; training state tensors are F32`);
    const data = dequantizeRow(GgmlType.F32, await readTensorBytes(gguf, info.name));
    tensors[group[0]].push({ name: info.name.slice(group[1].length), dims: [...info.dims], data });
  }
  const names = tensors.params.map((t) => t.name).sort().join('\n');
  if (tensors.m.map((t) => t.name).sort().join('\n') !== names || tensors.v.map((t) => t.name).sort().join('\n') !== names) {
    throw ggufError(path, `the adam_m and adam_v tensors do not name the same ${tensors.params.length} parameters as the param tensors`);
  }
  return { tensors, state };
}

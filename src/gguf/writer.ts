import { checkFreeSpace } from '../util/output.js';
import { writeViaTemp, type TempSink } from '../util/temp-files.js';
import { assertString, expected } from '../util/validate.js';
import { GGML_MAX_DIMS, GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GgufType } from './constants.js';
import { encodeValue, HeaderEncoder } from './encode.js';
import type { GgufKv } from './reader.js';

/** Tensor bytes: in memory, or produced chunk by chunk so large tensors are never held whole. */
export type TensorSource = Uint8Array | (() => AsyncIterable<Uint8Array>);

/** One tensor to write: `dims` in ggml order (row length first), data already in `type`'s encoding. */
export interface GgufTensorInput {
  name: string;
  /** ggml type id, e.g. {@link GgmlType.F32}. */
  type: number;
  dims: number[];
  data: TensorSource;
}

/** Everything a GGUF file holds. `general.alignment` (u32) in metadata sets the alignment (default 32). */
export interface GgufContents {
  metadata: ReadonlyMap<string, GgufKv>;
  tensors: readonly GgufTensorInput[];
}

/** Bytes a tensor of this type and shape occupies. @example tensorBytes(8, [64, 2]) // 136 */
export function tensorBytes(type: number, dims: readonly number[]): number {
  const t = GGML_TYPES.get(type);
  if (t === undefined) throw new RangeError(expected('known ggml type id', 'type', type));
  const elements = dims.reduce((a, b) => a * b, 1);
  return (elements / t.blockSize) * t.typeSize;
}

function checkTensor(t: GgufTensorInput, i: number, seen: Set<string>): void {
  const where = `tensors[${i}]`;
  assertString(t.name, `${where}.name`, { nonEmpty: true });
  if (seen.has(t.name)) throw new RangeError(`Duplicate tensor name '${t.name}' in ${where}`);
  seen.add(t.name);
  const type = GGML_TYPES.get(t.type);
  if (type === undefined) throw new RangeError(expected('known ggml type id', `${where}.type`, t.type));
  if (!Array.isArray(t.dims) || t.dims.length < 1 || t.dims.length > GGML_MAX_DIMS || !t.dims.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new RangeError(expected(`1 to ${GGML_MAX_DIMS} positive integer dims`, `${where}.dims`, t.dims));
  }
  if (t.dims[0]! % type.blockSize !== 0) {
    throw new RangeError(`Expected ${where}.dims[0] (${t.dims[0]}) to be a multiple of ${type.name}'s block size ${type.blockSize}`);
  }
  if (t.data instanceof Uint8Array && t.data.length !== tensorBytes(t.type, t.dims)) {
    throw new RangeError(`Expected ${tensorBytes(t.type, t.dims)} bytes of data for tensor '${t.name}' but received ${t.data.length}`);
  }
}

function alignmentOf(metadata: ReadonlyMap<string, GgufKv>): number {
  const kv = metadata.get('general.alignment');
  if (kv === undefined) return GGUF_DEFAULT_ALIGNMENT;
  const a = kv.value;
  if (kv.type !== GgufType.UINT32 || typeof a !== 'number' || a === 0 || (a & (a - 1)) !== 0) {
    throw new RangeError(expected('u32 power of 2', "metadata key 'general.alignment'", a));
  }
  return a;
}

/** Serialises header, metadata and tensor infos, padded so the data section starts aligned. */
function encodeHeader(contents: GgufContents, alignment: number): Buffer {
  const enc = new HeaderEncoder();
  enc.u32(GGUF_MAGIC);
  enc.u32(GGUF_VERSION);
  enc.u64(contents.tensors.length);
  enc.u64(contents.metadata.size);
  for (const [key, kv] of contents.metadata) {
    enc.string(key);
    enc.u32(kv.type);
    encodeValue(enc, kv.type, kv.value, key);
  }
  let offset = 0;
  for (const t of contents.tensors) {
    enc.string(t.name);
    enc.u32(t.dims.length);
    for (const d of t.dims) enc.u64(d);
    enc.u32(t.type);
    enc.u64(offset);
    offset += Math.ceil(tensorBytes(t.type, t.dims) / alignment) * alignment;
  }
  if (contents.tensors.length > 0) enc.pad(alignment);
  return enc.bytes();
}

async function writeTensorData(sink: TempSink, t: GgufTensorInput, alignment: number): Promise<void> {
  const want = tensorBytes(t.type, t.dims);
  let written = 0;
  const chunks: AsyncIterable<Uint8Array> | Uint8Array[] = t.data instanceof Uint8Array ? [t.data] : t.data();
  for await (const chunk of chunks) {
    if (written + chunk.length > want) throw new RangeError(`Tensor '${t.name}' data source produced more than the ${want} bytes its shape needs`);
    await sink.write(chunk);
    written += chunk.length;
  }
  if (written !== want) throw new RangeError(`Tensor '${t.name}' data source produced ${written} bytes but its shape needs ${want}`);
  const pad = Math.ceil(want / alignment) * alignment - want;
  if (pad > 0) await sink.write(new Uint8Array(pad));
}

function checkContents(contents: GgufContents): void {
  if (typeof contents !== 'object' || contents === null || !(contents.metadata instanceof Map) || !Array.isArray(contents.tensors)) {
    throw new TypeError(expected('{ metadata: Map, tensors: array }', 'contents', contents));
  }
  for (const key of contents.metadata.keys()) {
    if (typeof key !== 'string' || key.length === 0) throw new TypeError(expected('non-empty string', 'metadata key', key));
  }
  const seen = new Set<string>();
  contents.tensors.forEach((t, i) => checkTensor(t, i, seen));
}

function dataBytes(contents: GgufContents, alignment: number): number {
  return contents.tensors.reduce((a, t) => a + Math.ceil(tensorBytes(t.type, t.dims) / alignment) * alignment, 0);
}

/**
 * The exact size in bytes of the file {@link writeGguf} would write for `contents`: header,
 * metadata, tensor infos and aligned tensor data. Computed without producing any tensor data.
 *
 * @example ggufFileBytes({ metadata: new Map(), tensors: [{ name: 'w', type: GgmlType.F32, dims: [4], data: new Uint8Array(16) }] }) // 96
 */
export function ggufFileBytes(contents: GgufContents): number {
  checkContents(contents);
  const alignment = alignmentOf(contents.metadata);
  return encodeHeader(contents, alignment).length + dataBytes(contents, alignment);
}

/**
 * Writes a GGUF v3 file atomically: the header is built in memory, tensor data is streamed from
 * each tensor's source into a temporary file beside `path`, which is fsynced and renamed over
 * `path`, so a crash leaves the old file or the new one, never a torn one. Argument mistakes are
 * TypeError/RangeError; a source that yields the wrong byte count is a RangeError and leaves no file.
 * The file's exact size ({@link ggufFileBytes}) is checked against the free space first; I/O
 * failures (no space, missing directory, permission) are ERR_FILE errors naming `path`.
 *
 * @example
 * await writeGguf('tiny.gguf', {
 *   metadata: new Map([['general.architecture', { type: GgufType.STRING, value: 'llama' }]]),
 *   tensors: [{ name: 'w', type: GgmlType.F32, dims: [4], data: new Uint8Array(16) }],
 * });
 */
export async function writeGguf(path: string, contents: GgufContents): Promise<void> {
  assertString(path, 'path', { nonEmpty: true });
  checkContents(contents);
  const alignment = alignmentOf(contents.metadata);
  const header = encodeHeader(contents, alignment);
  // Refuse before streaming gigabytes into a disk that cannot hold them.
  await checkFreeSpace(path, header.length + dataBytes(contents, alignment));
  await writeViaTemp(path, async (sink) => {
    await sink.write(header);
    for (const t of contents.tensors) await writeTensorData(sink, t, alignment);
  });
}

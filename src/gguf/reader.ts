import { open, stat, type FileHandle } from 'node:fs/promises';
import { SearchR3Error } from '../util/errors.js';
import { assertString } from '../util/validate.js';
import {
  GGML_MAX_DIMS, GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_SCALAR_SIZES, GGUF_TYPE_NAMES, GgufType,
  type GgmlTypeInfo,
} from './constants.js';
import { FileCursor, ggufError } from './cursor.js';

/** Values of a metadata array; numeric arrays are typed arrays so a 150k-entry vocab stays compact. */
export type GgufArrayValues =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array
  | BigUint64Array | BigInt64Array | boolean[] | string[] | GgufArray[];

/** A metadata array: its element type and its elements. */
export interface GgufArray {
  itemType: GgufType;
  values: GgufArrayValues;
}

/** A metadata value: 64-bit integers are bigint, other numbers are number. */
export type GgufValue = number | bigint | boolean | string | GgufArray;

/** One metadata entry with its GGUF type, so a file can be written back unchanged. */
export interface GgufKv {
  type: GgufType;
  value: GgufValue;
}

/** Where one tensor lives and what it holds. `offset` is relative to the data section. */
export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the row length (contiguous), dims[1] the number of rows. */
  dims: number[];
  type: GgmlTypeInfo;
  offset: number;
  /** Absolute offset of the first data byte in the file. */
  fileOffset: number;
  nbytes: number;
}

/** A parsed GGUF header: everything but the tensor data, which stays on disk. */
export interface GgufFile {
  path: string;
  version: number;
  /** File size in bytes. */
  size: number;
  alignment: number;
  /** Absolute offset of the data section. */
  dataOffset: number;
  /** Metadata in file order. */
  metadata: Map<string, GgufKv>;
  tensors: GgufTensorInfo[];
}

// Caps that no real model reaches but that stop a forged length from allocating gigabytes.
const MAX_STRING_BYTES = 64 * 1024 * 1024;
const MAX_ARRAY_ITEMS = 1 << 26;
const MAX_ARRAY_DEPTH = 8;
// Smallest possible encodings, used to reject forged counts before looping over them.
const MIN_KV_BYTES = 8 + 1 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8;

/** Opens a file for reading, mapping "missing", "directory" and "empty" to ERR_FILE. */
export async function openGgufFile(path: string): Promise<{ handle: FileHandle; size: number }> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SearchR3Error('ERR_FILE', `${path}: cannot open GGUF file (${code ?? String(err)})`, { cause: err });
  }
  if (info.isDirectory()) throw new SearchR3Error('ERR_FILE', `${path}: is a directory, expected a GGUF file`);
  if (info.size === 0) throw new SearchR3Error('ERR_FILE', `${path}: file is empty, expected a GGUF file`);
  try {
    return { handle: await open(path, 'r'), size: info.size };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SearchR3Error('ERR_FILE', `${path}: cannot open GGUF file (${code ?? String(err)})`, { cause: err });
  }
}

async function readString(c: FileCursor, what: string): Promise<string> {
  await c.need(8, `${what} length`);
  const len = c.u64();
  if (len > BigInt(c.remaining)) {
    throw ggufError(c.file, `${what}: truncated or forged string: length ${len} at byte ${c.pos - 8} exceeds the ${c.remaining} bytes left in the file`);
  }
  if (len > BigInt(MAX_STRING_BYTES)) {
    throw ggufError(c.file, `${what}: string length ${len} at byte ${c.pos - 8} exceeds the ${MAX_STRING_BYTES}-byte limit`);
  }
  const n = Number(len);
  await c.need(n, what);
  return c.utf8(n);
}

async function readValueType(c: FileCursor, what: string): Promise<GgufType> {
  await c.need(4, `${what} type`);
  const t = c.u32();
  if (!(t in GGUF_TYPE_NAMES)) throw ggufError(c.file, `${what}: invalid value type ${t} at byte ${c.pos - 4} (valid: 0..12)`);
  return t as GgufType;
}

function readScalar(c: FileCursor, type: GgufType, what: string): number | bigint | boolean {
  switch (type) {
    case GgufType.UINT8: return c.u8();
    case GgufType.INT8: return c.i8();
    case GgufType.UINT16: return c.u16();
    case GgufType.INT16: return c.i16();
    case GgufType.UINT32: return c.u32();
    case GgufType.INT32: return c.i32();
    case GgufType.FLOAT32: return c.f32();
    case GgufType.FLOAT64: return c.f64();
    case GgufType.UINT64: return c.u64();
    case GgufType.INT64: return c.i64();
    case GgufType.BOOL: {
      const b = c.u8();
      if (b > 1) throw ggufError(c.file, `${what}: bool value ${b} at byte ${c.pos - 1} is neither 0 nor 1`);
      return b === 1;
    }
    default: throw ggufError(c.file, `${what}: type ${type} is not a scalar`);
  }
}

function typedArray(type: GgufType, buf: ArrayBuffer): GgufArrayValues {
  // GGUF is little-endian and so is every platform Node runs on, so the bytes are viewed as they are.
  switch (type) {
    case GgufType.UINT8: return new Uint8Array(buf);
    case GgufType.INT8: return new Int8Array(buf);
    case GgufType.UINT16: return new Uint16Array(buf);
    case GgufType.INT16: return new Int16Array(buf);
    case GgufType.UINT32: return new Uint32Array(buf);
    case GgufType.INT32: return new Int32Array(buf);
    case GgufType.FLOAT32: return new Float32Array(buf);
    case GgufType.FLOAT64: return new Float64Array(buf);
    case GgufType.UINT64: return new BigUint64Array(buf);
    case GgufType.INT64: return new BigInt64Array(buf);
    default: throw new Error(`unreachable: typedArray(${type})`);
  }
}

async function readArray(c: FileCursor, what: string, depth: number): Promise<GgufArray> {
  const itemType = await readValueType(c, `${what} array element`);
  await c.need(8, `${what} array length`);
  const count = c.u64();
  // Each element takes at least this many bytes, so the count is checked against the bytes left.
  const minItem = GGUF_SCALAR_SIZES[itemType] ?? (itemType === GgufType.STRING ? 8 : 12);
  if (count * BigInt(minItem) > BigInt(c.remaining)) {
    throw ggufError(c.file, `${what}: truncated or forged array: ${count} ${GGUF_TYPE_NAMES[itemType]} elements at byte ${c.pos - 8} need at least ${count * BigInt(minItem)} bytes but only ${c.remaining} are left in the file`);
  }
  if (count > BigInt(MAX_ARRAY_ITEMS)) {
    throw ggufError(c.file, `${what}: array of ${count} elements at byte ${c.pos - 8} exceeds the ${MAX_ARRAY_ITEMS}-element limit`);
  }
  const n = Number(count);
  if (itemType === GgufType.STRING) {
    const values: string[] = new Array(n);
    for (let i = 0; i < n; i++) values[i] = c.stringIfBuffered() ?? (await readString(c, `${what}[${i}]`));
    return { itemType, values };
  }
  if (itemType === GgufType.ARRAY) {
    if (depth >= MAX_ARRAY_DEPTH) throw ggufError(c.file, `${what}: arrays nested deeper than ${MAX_ARRAY_DEPTH} levels`);
    const values: GgufArray[] = new Array(n);
    for (let i = 0; i < n; i++) values[i] = await readArray(c, `${what}[${i}]`, depth + 1);
    return { itemType, values };
  }
  const bytes = n * minItem;
  await c.need(bytes, `${what} array data`);
  if (itemType === GgufType.BOOL) {
    const values: boolean[] = new Array(n);
    for (let i = 0; i < n; i++) values[i] = readScalar(c, itemType, `${what}[${i}]`) as boolean;
    return { itemType, values };
  }
  return { itemType, values: typedArray(itemType, c.bytes(bytes)) };
}

async function readValue(c: FileCursor, type: GgufType, what: string): Promise<GgufValue> {
  if (type === GgufType.STRING) return readString(c, what);
  if (type === GgufType.ARRAY) return readArray(c, what, 1);
  await c.need(GGUF_SCALAR_SIZES[type]!, `${what} value`);
  return readScalar(c, type, what);
}

async function readHeader(c: FileCursor): Promise<{ version: number; nTensors: number; nKv: number }> {
  await c.need(4, 'magic');
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) {
    const shown = Buffer.alloc(4);
    shown.writeUInt32LE(magic);
    throw ggufError(c.file, `bad magic ${JSON.stringify(shown.toString('latin1'))} at byte 0, expected "GGUF" (not a GGUF file)`);
  }
  await c.need(4, 'version');
  const version = c.u32();
  if ((version & 0xffff) === 0 && version !== 0) {
    throw ggufError(c.file, `version field reads ${version}: the file is big-endian, which is not supported`);
  }
  if (version === 1) throw ggufError(c.file, 'GGUF version 1 is no longer supported (supported: 2, 3)');
  if (version < 2 || version > 3) throw ggufError(c.file, `unsupported GGUF version ${version} (supported: 2, 3)`);
  await c.need(16, 'tensor and key-value counts');
  const tensors = c.u64();
  const kvs = c.u64();
  const need = kvs * BigInt(MIN_KV_BYTES) + tensors * BigInt(MIN_TENSOR_INFO_BYTES);
  if (need > BigInt(c.remaining)) {
    throw ggufError(c.file, `truncated or forged header: it claims ${kvs} key-value pairs and ${tensors} tensors, which need at least ${need} bytes, but only ${c.remaining} bytes follow the header`);
  }
  return { version, nTensors: Number(tensors), nKv: Number(kvs) };
}

async function readMetadata(c: FileCursor, nKv: number): Promise<Map<string, GgufKv>> {
  const metadata = new Map<string, GgufKv>();
  for (let i = 0; i < nKv; i++) {
    const keyAt = c.pos;
    const key = await readString(c, `key ${i} name`);
    if (key.length === 0) throw ggufError(c.file, `key ${i} at byte ${keyAt} has an empty name`);
    if (metadata.has(key)) throw ggufError(c.file, `duplicate key '${key}' (key ${i} at byte ${keyAt})`);
    const what = `key '${key}'`;
    const type = await readValueType(c, what);
    metadata.set(key, { type, value: await readValue(c, type, what) });
  }
  return metadata;
}

function alignmentOf(c: FileCursor, metadata: Map<string, GgufKv>): number {
  const kv = metadata.get('general.alignment');
  if (kv === undefined) return GGUF_DEFAULT_ALIGNMENT;
  if (kv.type !== GgufType.UINT32) {
    throw ggufError(c.file, `key 'general.alignment' must be of type u32 but is ${GGUF_TYPE_NAMES[kv.type]}`);
  }
  const a = kv.value as number;
  if (a === 0 || (a & (a - 1)) !== 0) throw ggufError(c.file, `key 'general.alignment' is ${a}, which is not a power of 2`);
  return a;
}

async function readTensorInfo(c: FileCursor, index: number, alignment: number, seen: Set<string>): Promise<GgufTensorInfo> {
  const at = c.pos;
  const name = await readString(c, `tensor ${index} name`);
  if (name.length === 0) throw ggufError(c.file, `tensor ${index} at byte ${at} has an empty name`);
  if (seen.has(name)) throw ggufError(c.file, `duplicate tensor name '${name}' (tensor ${index} at byte ${at})`);
  seen.add(name);
  const what = `tensor '${name}'`;
  await c.need(4, `${what} dimension count`);
  const nDims = c.u32();
  if (nDims < 1 || nDims > GGML_MAX_DIMS) {
    throw ggufError(c.file, `${what} has ${nDims} dimensions at byte ${c.pos - 4}, expected 1 to ${GGML_MAX_DIMS}`);
  }
  await c.need(8 * nDims + 4 + 8, `${what} shape, type and offset`);
  const dims: number[] = [];
  let elements = 1n;
  for (let d = 0; d < nDims; d++) {
    const ne = c.i64();
    if (ne <= 0n) throw ggufError(c.file, `${what} dimension ${d} is ${ne}, expected a positive size`);
    elements *= ne;
    if (elements > BigInt(c.size) * 256n) {
      // More elements than even a 1-bit type could store in this file.
      throw ggufError(c.file, `${what} shape claims more than ${elements} elements, far more than the ${c.size}-byte file can hold`);
    }
    dims.push(Number(ne));
  }
  const typeId = c.u32();
  const type = GGML_TYPES.get(typeId);
  if (type === undefined) throw ggufError(c.file, `${what} has invalid or removed ggml type ${typeId} at byte ${c.pos - 4}`);
  if (dims[0]! % type.blockSize !== 0) {
    throw ggufError(c.file, `${what} of type ${type.name} has ${dims[0]} elements per row, not a multiple of the block size ${type.blockSize}`);
  }
  const offset = c.u64();
  if (offset % BigInt(alignment) !== 0n) {
    throw ggufError(c.file, `${what} data offset ${offset} is not a multiple of the alignment ${alignment}`);
  }
  if (offset > BigInt(c.size)) {
    throw ggufError(c.file, `truncated: ${what} data offset ${offset} is beyond the end of the ${c.size}-byte file`);
  }
  const nbytes = Number((elements / BigInt(type.blockSize)) * BigInt(type.typeSize));
  return { name, dims, type, offset: Number(offset), fileOffset: 0, nbytes };
}

function checkTensorPlacement(c: FileCursor, tensors: GgufTensorInfo[], dataOffset: number): void {
  for (const t of tensors) {
    t.fileOffset = dataOffset + t.offset;
    const end = t.fileOffset + t.nbytes;
    if (end > c.size) {
      throw ggufError(c.file, `truncated: tensor '${t.name}' data ends at byte ${end} but the file has ${c.size} bytes`);
    }
  }
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const a = byOffset[i - 1]!;
    const b = byOffset[i]!;
    if (a.offset + a.nbytes > b.offset) {
      throw ggufError(c.file, `tensors '${a.name}' (data bytes ${a.offset}..${a.offset + a.nbytes}) and '${b.name}' (from ${b.offset}) overlap`);
    }
  }
}

/** Parses and checks the header from an open handle; shared by readGguf and validateGguf. */
export async function parseGguf(handle: FileHandle, size: number, path: string): Promise<GgufFile> {
  const c = new FileCursor(handle, size, path);
  const { version, nTensors, nKv } = await readHeader(c);
  const metadata = await readMetadata(c, nKv);
  const alignment = alignmentOf(c, metadata);
  const tensors: GgufTensorInfo[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < nTensors; i++) tensors.push(await readTensorInfo(c, i, alignment, seen));
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  if (nTensors > 0 && dataOffset > size) {
    throw ggufError(path, `truncated: the data section should start at byte ${dataOffset} but the file has ${size} bytes`);
  }
  checkTensorPlacement(c, tensors, dataOffset);
  return { path, version, size, alignment, dataOffset, metadata, tensors };
}

/**
 * Reads a GGUF file's header (v2 or v3): metadata and tensor infos, validated against the file's
 * size without reading any tensor data. Any malformed byte becomes a {@link SearchR3Error} with
 * code `ERR_GGUF` whose message names the file, what is wrong and at which byte; a missing file, a
 * directory or an empty file is `ERR_FILE`.
 *
 * @example
 * const gguf = await readGguf('model.gguf');
 * gguf.metadata.get('general.architecture')?.value; // 'qwen2'
 * gguf.tensors.find((t) => t.name === 'token_embd.weight')?.dims; // [896, 151936]
 */
export async function readGguf(path: string): Promise<GgufFile> {
  assertString(path, 'path', { nonEmpty: true });
  const { handle, size } = await openGgufFile(path);
  try {
    return await parseGguf(handle, size, path);
  } finally {
    await handle.close();
  }
}

/**
 * Streams a tensor's raw bytes from disk in chunks, so copying a 1 GB tensor never holds it whole.
 * @example for await (const chunk of readTensorChunks(gguf, gguf.tensors[0])) out.write(chunk);
 */
export async function* readTensorChunks(gguf: GgufFile, tensor: GgufTensorInfo, chunkBytes = 8 << 20): AsyncGenerator<Uint8Array> {
  const handle = await open(gguf.path, 'r');
  try {
    for (let done = 0; done < tensor.nbytes;) {
      const n = Math.min(chunkBytes, tensor.nbytes - done);
      const buf = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await handle.read(buf, got, n - got, tensor.fileOffset + done + got);
        if (bytesRead === 0) throw ggufError(gguf.path, `truncated: tensor '${tensor.name}' ends early (the file changed while it was read)`);
        got += bytesRead;
      }
      done += n;
      yield buf;
    }
  } finally {
    await handle.close();
  }
}

/**
 * Reads one tensor's raw bytes into memory; meant for small tensors and tests.
 * @example const bytes = await readTensorBytes(gguf, 'output_norm.weight');
 */
export async function readTensorBytes(gguf: GgufFile, name: string): Promise<Uint8Array> {
  const tensor = gguf.tensors.find((t) => t.name === name);
  if (tensor === undefined) throw new SearchR3Error('ERR_MODEL', `${gguf.path}: has no tensor '${name}'`);
  const out = new Uint8Array(tensor.nbytes);
  let at = 0;
  for await (const chunk of readTensorChunks(gguf, tensor)) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

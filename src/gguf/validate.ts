import { assertString } from '../util/validate.js';
import { GGML_MAX_NAME, GgufType } from './constants.js';
import { ggufError } from './cursor.js';
import { metaArray, metaNumber, metaString, metaStrings } from './metadata.js';
import { openGgufFile, parseGguf, type GgufArray, type GgufFile } from './reader.js';

/**
 * Checks beyond the GGUF format itself: what llama.cpp's loader (at the vendored commit) requires
 * or would abort the process on. Each check names the llama.cpp behaviour it protects against.
 */

function checkNoNestedArrays(gguf: GgufFile): void {
  // gguf.cpp rejects arrays of arrays outright, so a spec-valid file with one cannot load.
  for (const [key, kv] of gguf.metadata) {
    if (kv.type === GgufType.ARRAY && (kv.value as GgufArray).itemType === GgufType.ARRAY) {
      throw ggufError(gguf.path, `key '${key}' is an array of arrays, which llama.cpp cannot load`);
    }
  }
}

function checkTensorLayout(gguf: GgufFile): void {
  // gguf.cpp requires tensors stored in header order, each padded to the alignment, no gaps.
  let expected = 0;
  for (const t of gguf.tensors) {
    if (Buffer.byteLength(t.name) >= GGML_MAX_NAME) {
      throw ggufError(gguf.path, `tensor name '${t.name}' is ${Buffer.byteLength(t.name)} bytes; llama.cpp allows at most ${GGML_MAX_NAME - 1}`);
    }
    if (t.offset !== expected) {
      throw ggufError(gguf.path, `tensor '${t.name}' has data offset ${t.offset} but llama.cpp expects ${expected} (tensors must be stored in order, each padded to ${gguf.alignment} bytes)`);
    }
    expected += Math.ceil(t.nbytes / gguf.alignment) * gguf.alignment;
  }
}

function checkVocab(gguf: GgufFile): void {
  const meta = gguf.metadata;
  if (!meta.has('tokenizer.ggml.tokens')) return;
  const tokens = metaStrings(meta, 'tokenizer.ggml.tokens');
  if (tokens === undefined) throw ggufError(gguf.path, `key 'tokenizer.ggml.tokens' must be an array of strings`);
  // llama-vocab.cpp asserts one id per distinct text (empty tokens become "[EMPTY_<id>]"), so a
  // duplicate token would abort the process at load time.
  const seen = new Map<string, number>();
  for (let i = 0; i < tokens.length; i++) {
    const text = tokens[i] === '' ? `[EMPTY_${i}]` : tokens[i]!;
    const prev = seen.get(text);
    if (prev !== undefined) {
      throw ggufError(gguf.path, `tokenizer.ggml.tokens has the token ${JSON.stringify(text)} twice (ids ${prev} and ${i}); llama.cpp would abort`);
    }
    seen.set(text, i);
  }
  const perToken: Array<[string, readonly number[]]> = [
    ['tokenizer.ggml.scores', [GgufType.FLOAT32, GgufType.INT32]],
    ['tokenizer.ggml.token_type', [GgufType.INT32]],
  ];
  for (const [key, types] of perToken) {
    if (!meta.has(key)) continue;
    const arr = metaArray(meta, key);
    if (arr === undefined || !types.includes(arr.itemType)) {
      throw ggufError(gguf.path, `key '${key}' must be an array of ${types.length === 1 ? 'i32' : 'f32 or i32'}`);
    }
    if (arr.values.length < tokens.length) {
      throw ggufError(gguf.path, `key '${key}' has ${arr.values.length} entries for ${tokens.length} tokens`);
    }
  }
}

const ROPE_SCALING_TYPES = ['none', 'linear', 'yarn', 'longrope'];

function checkHyperparameters(gguf: GgufFile): void {
  const meta = gguf.metadata;
  const arch = metaString(meta, 'general.architecture');
  if (arch === undefined) return;
  // An unknown rope scaling type trips a GGML_ASSERT in llama_model::load_hparams.
  const scaling = metaString(meta, `${arch}.rope.scaling.type`);
  if (scaling !== undefined && !ROPE_SCALING_TYPES.includes(scaling)) {
    throw ggufError(gguf.path, `key '${arch}.rope.scaling.type' is ${JSON.stringify(scaling)}, expected one of ${ROPE_SCALING_TYPES.join(', ')}`);
  }
  const nEmbd = metaNumber(meta, `${arch}.embedding_length`);
  const nHead = metaNumber(meta, `${arch}.attention.head_count`);
  const nHeadKv = metaNumber(meta, `${arch}.attention.head_count_kv`) ?? nHead;
  if (nEmbd === undefined || nHead === undefined || nHead === 0 || nHeadKv === undefined) return;
  // Grouped-query attention broadcasts K/V heads over query heads; ggml asserts the ratio is whole.
  if (nHeadKv === 0 || nHead % nHeadKv !== 0) {
    throw ggufError(gguf.path, `${arch}.attention.head_count ${nHead} is not a multiple of head_count_kv ${nHeadKv}`);
  }
  if (!meta.has(`${arch}.attention.key_length`) && nEmbd % nHead !== 0) {
    throw ggufError(gguf.path, `${arch}.embedding_length ${nEmbd} is not a multiple of head_count ${nHead}`);
  }
  // The qwen2 graph asserts n_rot == head size (llama throws an error for the same mismatch).
  const nRot = metaNumber(meta, `${arch}.rope.dimension_count`);
  const headDim = metaNumber(meta, `${arch}.attention.key_length`) ?? nEmbd / nHead;
  if ((arch === 'qwen2' || arch === 'llama') && nRot !== undefined && nRot !== headDim) {
    throw ggufError(gguf.path, `${arch}.rope.dimension_count is ${nRot} but the head size is ${headDim}`);
  }
}

/**
 * Checks that a file is a well-formed GGUF that llama.cpp can load without aborting: everything
 * {@link readGguf} checks, plus llama.cpp's own rules (tensors packed in order, tensor names under
 * 64 bytes, no nested arrays, a consistent vocabulary without duplicate tokens, head counts that
 * divide). Resolves to the parsed header; rejects with `SearchR3Error` `ERR_GGUF` (or `ERR_FILE`).
 *
 * @example
 * try { await validateGguf('model.gguf'); } catch (e) { console.error(e.message); }
 * // "model.gguf: truncated: tensor 'blk.0.attn_q.weight' data ends at byte 123456 but the file has 120000 bytes"
 */
export async function validateGguf(path: string): Promise<GgufFile> {
  assertString(path, 'path', { nonEmpty: true });
  const { handle, size } = await openGgufFile(path);
  let gguf: GgufFile;
  try {
    gguf = await parseGguf(handle, size, path);
  } finally {
    await handle.close();
  }
  checkNoNestedArrays(gguf);
  checkTensorLayout(gguf);
  checkVocab(gguf);
  checkHyperparameters(gguf);
  return gguf;
}

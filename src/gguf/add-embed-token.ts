import { SearchR3Error } from '../util/errors.js';
import { assertString } from '../util/validate.js';
import { EMBED_TOKEN, GgufType, TokenType } from './constants.js';
import { metaArray, metaNumber, metaString, metaStrings } from './metadata.js';
import { CONVERTIBLE_TYPES, dequantizeRow, quantizeRow } from './quant.js';
import { readTensorChunks, type GgufArray, type GgufFile, type GgufKv, type GgufTensorInfo } from './reader.js';
import { validateGguf } from './validate.js';
import { claimPaddingSlot } from './vocab.js';
import { writeGguf, type GgufTensorInput } from './writer.js';

/** How {@link addEmbedToken} made room for the token. */
export interface AddEmbedTokenResult {
  tokenId: number;
  /** `padding-slot`: an existing unused row was taken; `extended`: the vocabulary grew by one row. */
  mode: 'padding-slot' | 'extended';
}

const VOCAB_TENSORS = ['token_embd.weight', 'output.weight'];

/** Sets entry `n` of a per-token array (dropping any stray entries past the vocabulary). */
function appendToArray(metadata: Map<string, GgufKv>, key: string, n: number, value: string | number): void {
  const arr = metaArray(metadata, key);
  if (arr === undefined) return;
  let values: GgufArray['values'];
  if (arr.itemType === GgufType.STRING) values = [...(arr.values as string[]).slice(0, n), value as string];
  else if (arr.values instanceof Float32Array) values = Float32Array.from([...arr.values.subarray(0, n), value as number]);
  else values = Int32Array.from([...(arr.values as Int32Array).subarray(0, n), value as number]);
  metadata.set(key, { type: GgufType.ARRAY, value: { itemType: arr.itemType, values } });
}

async function* rowsOf(gguf: GgufFile, t: GgufTensorInfo): AsyncGenerator<Uint8Array> {
  // Re-chunk the stream on row boundaries so each row can be decoded on its own.
  const rowBytes = t.nbytes / t.dims[1]!;
  let carry: Uint8Array = new Uint8Array(0);
  for await (const chunk of readTensorChunks(gguf, t, Math.max(rowBytes, (8 << 20) - ((8 << 20) % rowBytes)))) {
    const data = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    let at = 0;
    for (; at + rowBytes <= data.length; at += rowBytes) yield data.subarray(at, at + rowBytes);
    carry = data.subarray(at);
  }
}

/** The bytes of the new row: the mean of all rows where ggml types allow decoding, else EOS's row. */
async function newRow(gguf: GgufFile, t: GgufTensorInfo, eosId: number | undefined): Promise<Uint8Array> {
  if (CONVERTIBLE_TYPES.includes(t.type.id)) {
    const sum = new Float64Array(t.dims[0]!);
    for await (const row of rowsOf(gguf, t)) {
      const x = dequantizeRow(t.type.id, row);
      for (let i = 0; i < x.length; i++) sum[i]! += x[i]!;
    }
    const mean = Float32Array.from(sum, (s) => s / t.dims[1]!);
    return quantizeRow(t.type.id, mean);
  }
  if (eosId === undefined || eosId >= t.dims[1]!) {
    throw new SearchR3Error('ERR_MODEL', `${gguf.path}: cannot initialise the new row of '${t.name}' (type ${t.type.name}): no usable tokenizer.ggml.eos_token_id to copy`);
  }
  let id = 0;
  for await (const row of rowsOf(gguf, t)) if (id++ === eosId) return new Uint8Array(row);
  throw new Error(`unreachable: row ${eosId} of '${t.name}' not found`);
}

function copySource(gguf: GgufFile, t: GgufTensorInfo, extra?: Uint8Array): () => AsyncIterable<Uint8Array> {
  return async function* copy() {
    yield* readTensorChunks(gguf, t);
    if (extra !== undefined) yield extra;
  };
}

/**
 * Adds `<|embed_token|>` as a special (CONTROL) token to an instruct GGUF and writes the result to
 * `outPath` (atomically; `outPath` may equal `inPath`).
 *
 * Like Hugging Face's `add_special_tokens` without resizing, the token takes the first free id:
 * the first `[PAD<id>]` slot (UNUSED, or USER_DEFINED from older converters) is renamed and made
 * CONTROL, or, when the embedding has more rows than the vocabulary lists, the next row is named.
 * Tensors are then copied unchanged (`mode: 'padding-slot'`).
 *
 * With no free row, the vocabulary arrays (tokens, scores, token_type), `token_embd.weight` and
 * `output.weight` (if present) grow by one row (`mode: 'extended'`), also when quantized, since a
 * row is whole blocks. The new row is the mean of all rows for F32/F16/BF16/Q8_0 tensors (decoded,
 * averaged, re-encoded), a neutral start the fine-tune moves from; for other types it is a copy of
 * the EOS token's row. `<arch>.vocab_size` is updated when present.
 *
 * Rejects with ERR_MODEL when the token already exists or the model has no vocabulary; with
 * ERR_GGUF/ERR_FILE when the input is not a valid GGUF.
 *
 * @example
 * const { tokenId, mode } = await addEmbedToken('qwen2.5-0.5b-instruct.gguf', 'search-r3-base.gguf');
 * // { tokenId: 151665, mode: 'padding-slot' }
 */
export async function addEmbedToken(inPath: string, outPath: string): Promise<AddEmbedTokenResult> {
  assertString(inPath, 'inPath', { nonEmpty: true });
  assertString(outPath, 'outPath', { nonEmpty: true });
  const gguf = await validateGguf(inPath);
  const metadata = new Map(gguf.metadata);
  const vocabTensors = gguf.tensors.filter((t) => VOCAB_TENSORS.includes(t.name));
  const tokens = metaStrings(metadata, 'tokenizer.ggml.tokens');
  if (tokens === undefined || vocabTensors.length === 0) {
    throw new SearchR3Error('ERR_MODEL', `${inPath}: needs tokenizer.ggml.tokens and token_embd.weight to add ${EMBED_TOKEN}`);
  }
  for (const t of vocabTensors) {
    if (t.dims.length !== 2 || t.dims[1]! < tokens.length) {
      throw new SearchR3Error('ERR_MODEL', `${inPath}: tensor '${t.name}' has shape [${t.dims.join(', ')}], fewer rows than the ${tokens.length} tokens`);
    }
  }
  let tokenId = claimPaddingSlot(metadata, inPath);
  let mode: AddEmbedTokenResult['mode'] = 'padding-slot';
  const rows = vocabTensors[0]!.dims[1]!;
  const extra = new Map<string, Uint8Array>();
  if (tokenId === undefined) {
    tokenId = tokens.length;
    appendToArray(metadata, 'tokenizer.ggml.tokens', tokenId, EMBED_TOKEN);
    appendToArray(metadata, 'tokenizer.ggml.scores', tokenId, 0);
    appendToArray(metadata, 'tokenizer.ggml.token_type', tokenId, TokenType.CONTROL);
    if (rows === tokens.length) {
      // No spare row: grow the vocabulary tensors by one row.
      mode = 'extended';
      const eos = metaNumber(metadata, 'tokenizer.ggml.eos_token_id');
      for (const t of vocabTensors) extra.set(t.name, await newRow(gguf, t, eos));
      const arch = metaString(metadata, 'general.architecture');
      const vocabKey = `${arch}.vocab_size`;
      const old = metadata.get(vocabKey);
      if (old !== undefined) metadata.set(vocabKey, { type: old.type, value: typeof old.value === 'bigint' ? BigInt(rows + 1) : rows + 1 });
    }
  }
  const tensors: GgufTensorInput[] = gguf.tensors.map((t) => {
    const row = extra.get(t.name);
    const dims = row === undefined ? t.dims : [t.dims[0]!, t.dims[1]! + 1];
    return { name: t.name, type: t.type.id, dims, data: copySource(gguf, t, row) };
  });
  await writeGguf(outPath, { metadata, tensors });
  return { tokenId, mode };
}

import { existsSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { SearchR3Error } from '../util/errors.js';
import { EMBED_TOKEN, GgufType, TokenType } from './constants.js';
import { metaArray, metaNumber, metaString, metaStrings } from './metadata.js';
import { readGguf, type GgufFile, type GgufKv } from './reader.js';

/** Qwen2.5's embedding matrix has this many rows; ids past the real tokens are padding. */
export const QWEN25_VOCAB_ROWS = 151936;

// Added tokens of Qwen2.5 after <|im_end|> (151645), in id order from 151646. llama.cpp's converter
// marks "<|…|>" tokens CONTROL (they look special) and the two tool-call tags USER_DEFINED.
const QWEN25_ADDED_TOKENS = [
  '<|object_ref_start|>', '<|object_ref_end|>', '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>',
  '<|vision_start|>', '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>', '<tool_call>',
  '</tool_call>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|fim_pad|>', '<|repo_name|>', '<|file_sep|>',
];

/** Walks up from this file to the directory holding search-r3's package.json. */
export function packageRoot(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'search-r3') return dir;
    if (dirname(dir) === dir) return resolve(__dirname, '..', '..');
  }
}

/** Default tokenizer source: llama.cpp's Qwen2 vocabulary test file, vendored with the engine. */
export function defaultVocabPath(): string {
  return join(packageRoot(), 'deps', 'llama.cpp', 'models', 'ggml-vocab-qwen2.gguf');
}

/** Default chat template: Qwen2.5-Instruct's ChatML template as vendored with llama.cpp. */
export function defaultChatTemplatePath(): string {
  return join(packageRoot(), 'deps', 'llama.cpp', 'models', 'templates', 'Qwen-Qwen2.5-7B-Instruct.jinja');
}

// The last vocabulary read, keyed by path, size and mtime: test suites generate many models from the
// same 6 MB file, and parsing it dominates the time of a tiny model. One entry bounds the memory.
let cached: { key: string; gguf: GgufFile } | undefined;

async function readVocabCached(path: string): Promise<GgufFile> {
  let key: string;
  try {
    const st = await stat(path);
    key = `${resolve(path)}\0${st.size}\0${st.mtimeMs}`;
  } catch {
    return readGguf(path); // let readGguf report the missing file
  }
  if (cached?.key !== key) cached = { key, gguf: await readGguf(path) };
  return cached.gguf;
}

const PAD_RE = /^\[PAD(\d+)\]$/;

function isPadding(text: string, type: number | undefined, id: number): boolean {
  // Current converters write UNUSED; GGUFs from older converters (and llama.cpp's vocab test
  // files) marked the same "[PAD<id>]" slots USER_DEFINED, so both count as free.
  const m = PAD_RE.exec(text);
  return m !== null && Number(m[1]) === id && (type === undefined || type === TokenType.UNUSED || type === TokenType.USER_DEFINED);
}

/**
 * Builds Qwen2.5's tokenizer metadata from a Qwen2 vocabulary GGUF: its tokens, token types,
 * merges and pre-tokenizer; Qwen2.5's added tokens where the source predates them; padding to
 * `rows` entries as `[PAD<id>]` UNUSED tokens (as llama.cpp's converter writes them); the ChatML
 * template; bos/pad = <|endoftext|> and eos = <|im_end|> as in Qwen2.5-Instruct GGUFs.
 *
 * @example const kv = await qwen25TokenizerMetadata(defaultVocabPath(), template, 151936);
 */
export async function qwen25TokenizerMetadata(vocabPath: string, chatTemplate: string, rows: number): Promise<Map<string, GgufKv>> {
  const src = await readVocabCached(vocabPath);
  const tokens = metaStrings(src.metadata, 'tokenizer.ggml.tokens');
  const types = metaArray(src.metadata, 'tokenizer.ggml.token_type')?.values;
  const merges = metaStrings(src.metadata, 'tokenizer.ggml.merges');
  if (tokens === undefined || merges === undefined || !(types instanceof Int32Array)) {
    throw new SearchR3Error('ERR_MODEL', `${vocabPath}: expected a BPE vocabulary with tokenizer.ggml.tokens, token_type and merges`);
  }
  let real = tokens.length;
  while (real > 0 && isPadding(tokens[real - 1]!, types[real - 1], real - 1)) real--;
  const outTokens = tokens.slice(0, real);
  const outTypes = Array.from(types.subarray(0, real));
  if (real === 151646 && outTokens[151645] === '<|im_end|>') {
    for (const t of QWEN25_ADDED_TOKENS) {
      outTokens.push(t);
      outTypes.push(t.startsWith('<|') ? TokenType.CONTROL : TokenType.USER_DEFINED);
    }
  }
  if (outTokens.length > rows) {
    throw new RangeError(`Expected vocabulary rows >= ${outTokens.length} (the tokenizer's size) but received ${rows}`);
  }
  for (let id = outTokens.length; id < rows; id++) {
    outTokens.push(`[PAD${id}]`);
    outTypes.push(TokenType.UNUSED);
  }
  const idOf = (text: string): number | undefined => {
    const i = outTokens.indexOf(text);
    return i < 0 ? undefined : i;
  };
  const eot = idOf('<|endoftext|>') ?? metaNumber(src.metadata, 'tokenizer.ggml.bos_token_id') ?? 0;
  const eos = idOf('<|im_end|>') ?? metaNumber(src.metadata, 'tokenizer.ggml.eos_token_id') ?? eot;
  const str = (value: string): GgufKv => ({ type: GgufType.STRING, value });
  const u32 = (value: number): GgufKv => ({ type: GgufType.UINT32, value });
  return new Map<string, GgufKv>([
    ['tokenizer.ggml.model', str(metaString(src.metadata, 'tokenizer.ggml.model') ?? 'gpt2')],
    ['tokenizer.ggml.pre', str(metaString(src.metadata, 'tokenizer.ggml.pre') ?? 'qwen2')],
    ['tokenizer.ggml.tokens', { type: GgufType.ARRAY, value: { itemType: GgufType.STRING, values: outTokens } }],
    ['tokenizer.ggml.token_type', { type: GgufType.ARRAY, value: { itemType: GgufType.INT32, values: Int32Array.from(outTypes) } }],
    ['tokenizer.ggml.merges', { type: GgufType.ARRAY, value: { itemType: GgufType.STRING, values: merges } }],
    ['tokenizer.ggml.eos_token_id', u32(eos)],
    ['tokenizer.ggml.padding_token_id', u32(eot)],
    ['tokenizer.ggml.bos_token_id', u32(eot)],
    ['tokenizer.ggml.add_bos_token', { type: GgufType.BOOL, value: false }],
    ['tokenizer.chat_template', str(chatTemplate)],
  ]);
}

/**
 * Claims the first free padding slot for {@link EMBED_TOKEN} in a metadata map (mutating it: the
 * slot's text becomes the token and its type CONTROL; arrays are replaced, not edited in place).
 * Returns the id, or undefined when the vocabulary has no `[PAD<id>]` slot left.
 * Throws ERR_MODEL when the token already exists.
 *
 * @example const id = claimPaddingSlot(metadata, 'model.gguf'); // 151665 for Qwen2.5
 */
export function claimPaddingSlot(metadata: Map<string, GgufKv>, file: string): number | undefined {
  const tokens = metaStrings(metadata, 'tokenizer.ggml.tokens');
  if (tokens === undefined) throw new SearchR3Error('ERR_MODEL', `${file}: has no tokenizer.ggml.tokens array, cannot add ${EMBED_TOKEN}`);
  const existing = tokens.indexOf(EMBED_TOKEN);
  if (existing >= 0) throw new SearchR3Error('ERR_MODEL', `${file}: already has ${EMBED_TOKEN} (token id ${existing})`);
  const typeArr = metaArray(metadata, 'tokenizer.ggml.token_type');
  const types = typeArr?.values as Int32Array | undefined;
  const slot = tokens.findIndex((text, id) => isPadding(text, types?.[id], id));
  if (slot < 0) return undefined;
  const newTokens = tokens.slice();
  newTokens[slot] = EMBED_TOKEN;
  metadata.set('tokenizer.ggml.tokens', { type: GgufType.ARRAY, value: { itemType: GgufType.STRING, values: newTokens } });
  if (types !== undefined) {
    const newTypes = Int32Array.from(types);
    newTypes[slot] = TokenType.CONTROL;
    metadata.set('tokenizer.ggml.token_type', { type: GgufType.ARRAY, value: { itemType: GgufType.INT32, values: newTypes } });
  }
  return slot;
}

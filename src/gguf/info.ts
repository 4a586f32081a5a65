import { assertString } from '../util/validate.js';
import { EMBED_TOKEN, FILE_TYPE_NAMES } from './constants.js';
import { metaNumber, metaString, metaStrings } from './metadata.js';
import { readGguf } from './reader.js';

/** Token ids a runtime needs; null when the model does not define one. */
export interface GgufSpecialTokens {
  bos: number | null;
  eos: number | null;
  pad: number | null;
  unk: number | null;
  /** Id of `<|embed_token|>`, null until {@link addEmbedToken} has run. */
  embed: number | null;
}

/** A JSON-friendly summary of a model file. Fields the file does not state are null. */
export interface GgufInfo {
  file: string;
  version: number;
  sizeBytes: number;
  architecture: string | null;
  name: string | null;
  nEmbd: number | null;
  nLayer: number | null;
  nHead: number | null;
  nHeadKv: number | null;
  nFf: number | null;
  nVocab: number | null;
  contextLength: number | null;
  /** `general.file_type` (llama_ftype) and its name, e.g. 7 / "MOSTLY_Q8_0". */
  fileType: number | null;
  fileTypeName: string | null;
  tensorCount: number;
  tokenizerModel: string | null;
  hasChatTemplate: boolean;
  specialTokens: GgufSpecialTokens;
}

/**
 * Summarises a GGUF model from its header (tensor data is not read).
 * @example
 * const info = await ggufInfo('model.gguf');
 * console.log(JSON.stringify(info)); // {"architecture":"qwen2","nEmbd":896,…,"specialTokens":{"embed":151665,…}}
 */
export async function ggufInfo(path: string): Promise<GgufInfo> {
  assertString(path, 'path', { nonEmpty: true });
  const gguf = await readGguf(path);
  const meta = gguf.metadata;
  const arch = metaString(meta, 'general.architecture') ?? null;
  const num = (key: string): number | null => metaNumber(meta, key) ?? null;
  const archNum = (suffix: string): number | null => (arch === null ? null : num(`${arch}.${suffix}`));
  const tokens = metaStrings(meta, 'tokenizer.ggml.tokens');
  const embed = tokens?.indexOf(EMBED_TOKEN) ?? -1;
  const fileType = num('general.file_type');
  const special = (key: string): number | null => {
    const id = num(`tokenizer.ggml.${key}_token_id`);
    // Converters write 0xFFFFFFFF (-1 as u32) for "none".
    return id === null || id === 0xffffffff || id < 0 ? null : id;
  };
  return {
    file: path,
    version: gguf.version,
    sizeBytes: gguf.size,
    architecture: arch,
    name: metaString(meta, 'general.name') ?? null,
    nEmbd: archNum('embedding_length'),
    nLayer: archNum('block_count'),
    nHead: archNum('attention.head_count'),
    nHeadKv: archNum('attention.head_count_kv') ?? archNum('attention.head_count'),
    nFf: archNum('feed_forward_length'),
    nVocab: archNum('vocab_size') ?? tokens?.length ?? null,
    contextLength: archNum('context_length'),
    fileType,
    fileTypeName: fileType === null ? null : FILE_TYPE_NAMES[fileType] ?? `unknown (${fileType})`,
    tensorCount: gguf.tensors.length,
    tokenizerModel: metaString(meta, 'tokenizer.ggml.model') ?? null,
    hasChatTemplate: metaString(meta, 'tokenizer.chat_template') !== undefined,
    specialTokens: { bos: special('bos'), eos: special('eos'), pad: special('padding'), unk: special('unknown'), embed: embed < 0 ? null : embed },
  };
}

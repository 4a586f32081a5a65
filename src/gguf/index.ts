/**
 * GGUF model tooling: read and validate files before llama.cpp sees them, write files, convert
 * F32 to F16/BF16/Q8_0, generate deterministic test models, and add `<|embed_token|>`.
 */
export {
  GgufType, GgmlType, TokenType, GGML_TYPES, GGUF_TYPE_NAMES, FILE_TYPE_NAMES, EMBED_TOKEN, ggmlType,
  type GgmlTypeInfo,
} from './constants.js';
export {
  readGguf, readTensorBytes, readTensorChunks,
  type GgufFile, type GgufKv, type GgufValue, type GgufArray, type GgufArrayValues, type GgufTensorInfo,
} from './reader.js';
export { validateGguf } from './validate.js';
export { metaNumber, metaString, metaArray, metaStrings } from './metadata.js';
export { writeGguf, ggufFileBytes, tensorBytes, type GgufContents, type GgufTensorInput, type TensorSource } from './writer.js';
export {
  f32ToF16, f16ToF32, f32ToBf16, bf16ToF32, quantizeQ8_0, dequantizeQ8_0, quantizeRow, dequantizeRow,
  CONVERTIBLE_TYPES, Q8_0_BLOCK, Q8_0_BYTES,
} from './quant.js';
export { MODEL_PRESETS, MODEL_PRESET_NAMES, type ModelPresetName, type ModelShape } from './presets.js';
export { makeModel, planModel, MAKE_MODEL_LIMITS, type MakeModelOptions, type MakeModelResult, type ModelPlan, type PlannedTensor, type ModelWeightType } from './make-model.js';
export { addEmbedToken, type AddEmbedTokenResult } from './add-embed-token.js';
export { ggufInfo, type GgufInfo, type GgufSpecialTokens } from './info.js';
export { QWEN25_VOCAB_ROWS, defaultVocabPath, defaultChatTemplatePath } from './vocab.js';

/**
 * Numbers of the GGUF format and of ggml that the reader, writer and model tools share. The
 * values mirror `deps/llama.cpp/ggml/include/gguf.h`, `ggml.h` (enum ggml_type), the
 * `type_traits` table in `ggml/src/ggml.c` (block and type sizes, checked against `sizeof` of the
 * block structs in `ggml-common.h`) and `include/llama.h` (token types, file types).
 */

/** Value types of GGUF metadata (enum gguf_type). */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufType = (typeof GgufType)[keyof typeof GgufType];

/** Short names used in error messages, as gguf.cpp prints them. */
export const GGUF_TYPE_NAMES: Readonly<Record<GgufType, string>> = {
  0: 'u8', 1: 'i8', 2: 'u16', 3: 'i16', 4: 'u32', 5: 'i32', 6: 'f32', 7: 'bool',
  8: 'str', 9: 'arr', 10: 'u64', 11: 'i64', 12: 'f64',
};

/** Byte size of each fixed-size metadata value type; strings and arrays have none. */
export const GGUF_SCALAR_SIZES: Readonly<Partial<Record<GgufType, number>>> = {
  0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8,
};

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** llama.cpp stores tensor names in a fixed char[64] (GGML_MAX_NAME) including the NUL. */
export const GGML_MAX_NAME = 64;
export const GGML_MAX_DIMS = 4;

/** One ggml tensor type: its id in GGUF files, elements per block and bytes per block. */
export interface GgmlTypeInfo {
  readonly id: number;
  readonly name: string;
  readonly blockSize: number;
  readonly typeSize: number;
}

const QK_K = 256;
// [id, name, elements per block, bytes per block]. Ids 4, 5 and 31..33, 36..38 were removed from
// ggml and are deliberately absent: llama.cpp cannot load tensors of those types.
const TYPE_ROWS: ReadonlyArray<readonly [number, string, number, number]> = [
  [0, 'F32', 1, 4],
  [1, 'F16', 1, 2],
  [2, 'Q4_0', 32, 18],
  [3, 'Q4_1', 32, 20],
  [6, 'Q5_0', 32, 22],
  [7, 'Q5_1', 32, 24],
  [8, 'Q8_0', 32, 34],
  [9, 'Q8_1', 32, 36],
  [10, 'Q2_K', QK_K, 84],
  [11, 'Q3_K', QK_K, 110],
  [12, 'Q4_K', QK_K, 144],
  [13, 'Q5_K', QK_K, 176],
  [14, 'Q6_K', QK_K, 210],
  [15, 'Q8_K', QK_K, 292],
  [16, 'IQ2_XXS', QK_K, 66],
  [17, 'IQ2_XS', QK_K, 74],
  [18, 'IQ3_XXS', QK_K, 98],
  [19, 'IQ1_S', QK_K, 50],
  [20, 'IQ4_NL', 32, 18],
  [21, 'IQ3_S', QK_K, 110],
  [22, 'IQ2_S', QK_K, 82],
  [23, 'IQ4_XS', QK_K, 136],
  [24, 'I8', 1, 1],
  [25, 'I16', 1, 2],
  [26, 'I32', 1, 4],
  [27, 'I64', 1, 8],
  [28, 'F64', 1, 8],
  [29, 'IQ1_M', QK_K, 56],
  [30, 'BF16', 1, 2],
  [34, 'TQ1_0', QK_K, 54],
  [35, 'TQ2_0', QK_K, 66],
  [39, 'MXFP4', 32, 17],
  [40, 'NVFP4', 64, 36],
  [41, 'Q1_0', 128, 18],
  [42, 'Q2_0', 64, 18],
];

/** Every ggml type a GGUF tensor may have, by id. */
export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map(
  TYPE_ROWS.map(([id, name, blockSize, typeSize]) => [id, Object.freeze({ id, name, blockSize, typeSize })]),
);

/** Ids of the ggml types this package writes and converts itself. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;

/**
 * Looks up a ggml type by id.
 * @example ggmlType(8) // { id: 8, name: 'Q8_0', blockSize: 32, typeSize: 34 }
 */
export function ggmlType(id: number): GgmlTypeInfo | undefined {
  return GGML_TYPES.get(id);
}

/** Token types of `tokenizer.ggml.token_type` (enum llama_token_type). */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** `general.file_type` values (enum llama_ftype) and their names, for summaries. */
export const FILE_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'ALL_F32', 1: 'MOSTLY_F16', 2: 'MOSTLY_Q4_0', 3: 'MOSTLY_Q4_1', 7: 'MOSTLY_Q8_0', 8: 'MOSTLY_Q5_0',
  9: 'MOSTLY_Q5_1', 10: 'MOSTLY_Q2_K', 11: 'MOSTLY_Q3_K_S', 12: 'MOSTLY_Q3_K_M', 13: 'MOSTLY_Q3_K_L',
  14: 'MOSTLY_Q4_K_S', 15: 'MOSTLY_Q4_K_M', 16: 'MOSTLY_Q5_K_S', 17: 'MOSTLY_Q5_K_M', 18: 'MOSTLY_Q6_K',
  19: 'MOSTLY_IQ2_XXS', 20: 'MOSTLY_IQ2_XS', 21: 'MOSTLY_Q2_K_S', 22: 'MOSTLY_IQ3_XS', 23: 'MOSTLY_IQ3_XXS',
  24: 'MOSTLY_IQ1_S', 25: 'MOSTLY_IQ4_NL', 26: 'MOSTLY_IQ3_S', 27: 'MOSTLY_IQ3_M', 28: 'MOSTLY_IQ2_S',
  29: 'MOSTLY_IQ2_M', 30: 'MOSTLY_IQ4_XS', 31: 'MOSTLY_IQ1_M', 32: 'MOSTLY_BF16', 36: 'MOSTLY_TQ1_0',
  37: 'MOSTLY_TQ2_0', 38: 'MOSTLY_MXFP4_MOE', 39: 'MOSTLY_NVFP4', 40: 'MOSTLY_Q1_0', 41: 'MOSTLY_Q2_0',
};

/** The special token this package adds so a model can mark where its embedding is read. */
export const EMBED_TOKEN = '<|embed_token|>';

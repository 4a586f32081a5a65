/** Shapes of a generated decoder; one preset fills them all, options override single fields. */
export interface ModelShape {
  /** llama.cpp architecture: `qwen2` (QKV biases), `llama`, or `qwen3` (per-head RMS norms on Q and K, no biases). */
  arch: 'qwen2' | 'llama' | 'qwen3';
  /** Transformer blocks. */
  layers: number;
  /** Hidden size (n_embd). */
  embd: number;
  /** Query heads; embd / heads is the head size. */
  heads: number;
  /** Key/value heads (grouped-query attention); must divide heads. */
  kvHeads: number;
  /** Feed-forward (SwiGLU) inner size. */
  ff: number;
  /** Trained context length written to `<arch>.context_length`. */
  contextLength: number;
  /** RoPE base frequency (`<arch>.rope.freq_base`). */
  ropeTheta: number;
  /** RMSNorm epsilon. */
  rmsEps: number;
  /** No `output.weight`: the LM head reuses `token_embd.weight`, as Qwen2.5-0.5B does. */
  tieEmbeddings: boolean;
  /** Embedding rows (vocabulary padded, as Qwen2.5 pads to 151,936). */
  vocabRows: number;
}

/**
 * Named shapes. `tiny` is the fast test default (a few MB; the padded 151,936-row vocabulary
 * dominates its size); `qwen2.5-0.5b` is the real Qwen2.5-0.5B-Instruct architecture.
 *
 * @example await makeModel({ out: 'm.gguf', preset: 'qwen2.5-0.5b', type: 'q8_0' });
 */
export const MODEL_PRESETS = {
  tiny: {
    arch: 'qwen2', layers: 2, embd: 64, heads: 4, kvHeads: 2, ff: 128, contextLength: 4096,
    ropeTheta: 1e6, rmsEps: 1e-6, tieEmbeddings: true, vocabRows: 151936,
  },
  'qwen2.5-0.5b': {
    arch: 'qwen2', layers: 24, embd: 896, heads: 14, kvHeads: 2, ff: 4864, contextLength: 32768,
    ropeTheta: 1e6, rmsEps: 1e-6, tieEmbeddings: true, vocabRows: 151936,
  },
} as const satisfies Record<string, ModelShape>;

export type ModelPresetName = keyof typeof MODEL_PRESETS;
export const MODEL_PRESET_NAMES = Object.keys(MODEL_PRESETS) as ModelPresetName[];

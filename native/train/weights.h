// The frozen base model of a training run: hyperparameters and weight tensors of a dense decoder
// (llama, qwen2, qwen3) read straight from its GGUF into a backend buffer, types kept as stored
// (quantized weights stay quantized; ggml dequantizes inside mul_mat and out_prod on CPU).
//
// Optionally also a transposed copy of every matrix the backward pass multiplies a gradient by
// (each block's projections and the output head). ggml's autodiff writes the input gradient of
// y = W·x as out_prod(W, transpose(dy)), a plain multiply-add loop; with Wᵀ stored, the trainer
// rewrites that node into mul_mat(Wᵀ, dy), which runs on ggml's tiled matmul kernels (about 3×
// faster on CPU). The copy has W's type when that is F32, F16 or BF16; a quantized W is
// transposed into Q8_0 (F16 when the row length is not a multiple of 32), so for quantized models
// the gradient that flows back is computed with 8-bit weights (and dy rounded to Q8_0 blocks by
// mul_mat) while the forward pass stays exact.
#pragma once

#include <ggml.h>
#include <ggml-backend.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace sr3 {

enum class TrainArch { kLlama, kQwen2, kQwen3 };

struct TrainHparams {
  TrainArch arch = TrainArch::kLlama;
  std::string arch_name;
  int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, head_dim = 0, n_ctx_train = 0;
  int n_rot = 0;
  int rope_mode = 0;           // GGML_ROPE_TYPE_NORMAL for llama, NEOX for qwen
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-6f;
  float kq_scale = 0.0f;       // 1/sqrt(head_dim) unless the model says otherwise
};

// Per-layer weights. Biases and q/k norms are null when the architecture has none.
struct TrainLayer {
  ggml_tensor * attn_norm = nullptr;
  ggml_tensor * wq = nullptr, * wk = nullptr, * wv = nullptr, * wo = nullptr;
  ggml_tensor * bq = nullptr, * bk = nullptr, * bv = nullptr;
  ggml_tensor * q_norm = nullptr, * k_norm = nullptr;
  ggml_tensor * ffn_norm = nullptr;
  ggml_tensor * ffn_gate = nullptr, * ffn_up = nullptr, * ffn_down = nullptr;
};

// LoRA target modules, in the order the adapter file lists them per layer. kOutputHead is the
// one model-level target (the output head, `output.weight`), listed after every layer's.
enum TrainModule { kAttnQ, kAttnK, kAttnV, kAttnOut, kFfnGate, kFfnUp, kFfnDown, kModuleCount };
constexpr int kOutputHead = kModuleCount;
constexpr int kTargetCount = kModuleCount + 1;
const char * TrainModuleName(int module);  // "attn_q", ..., "output", as in GGUF tensor names
ggml_tensor * TrainModuleWeight(const TrainLayer & layer, int module);

// Owns the ggml context and buffer of the weights. Not copyable.
class TrainWeights {
 public:
  // Reads the GGUF at `path` into a buffer of `backend`. Throws NativeError (ERR_MODEL) for a
  // file that is not a supported dense decoder, naming what is missing or wrong.
  // With `transposed`, also builds the transposed copies (see above) on `threads` threads.
  TrainWeights(const std::string & path, ggml_backend_t backend, bool transposed, int threads);
  ~TrainWeights();
  TrainWeights(const TrainWeights &) = delete;
  TrainWeights & operator=(const TrainWeights &) = delete;

  TrainHparams hp;
  ggml_tensor * tok_embd = nullptr;
  ggml_tensor * output_norm = nullptr;
  ggml_tensor * output = nullptr;  // token_embd when the model ties them
  std::vector<TrainLayer> layers;
  size_t bytes = 0;                // size of the weight buffer
  size_t transposed_bytes = 0;     // size of the transposed copies (0 without them)

  // Wᵀ for a frozen matrix W of this model, or null when there is none.
  ggml_tensor * Transposed(const ggml_tensor * w) const;
  // Whether `t` is one of the model's (frozen) tensors.
  bool Owns(const ggml_tensor * t) const { return t->buffer != nullptr && t->buffer == buffer_; }

 private:
  void Load(const std::string & path, ggml_backend_t backend);
  void BuildTransposed(ggml_backend_t backend, int threads);
  ggml_context * ctx_ = nullptr;
  ggml_backend_buffer_t buffer_ = nullptr;
  ggml_context * ctx_t_ = nullptr;
  ggml_backend_buffer_t buffer_t_ = nullptr;
  std::unordered_map<const ggml_tensor *, ggml_tensor *> transposed_;
};

}  // namespace sr3

// Trainable LoRA matrices for a TrainWeights model, with their gradient accumulators and AdamW
// moments, all in one backend buffer. Layout and names follow llama.cpp's adapter GGUF:
// `blk.N.<module>.weight.lora_a` is [n_in, rank], `.lora_b` is [rank, n_out], and the update is
// W·x + (alpha/rank)·B·(A·x). The output head, when a target, is `output.weight.lora_a/b`, its
// slot last (layer -1), as llama.cpp applies an adapter to every matrix by the matrix's name.
#pragma once

#include "train/weights.h"

#include <cstdint>
#include <string>
#include <vector>

namespace sr3 {

struct LoraSlot {
  int layer = 0;   // -1 for the output head
  int module = 0;  // TrainModule, kOutputHead for the output head
  ggml_tensor * a = nullptr;  // parameters
  ggml_tensor * b = nullptr;
  ggml_tensor * grad_a = nullptr, * grad_b = nullptr;  // gradients summed over micro-batches
  ggml_tensor * m_a = nullptr, * m_b = nullptr;        // AdamW first moments
  ggml_tensor * v_a = nullptr, * v_b = nullptr;        // AdamW second moments
};

struct LoraConfig {
  int rank = 8;
  float alpha = 16.0f;
  uint32_t modules = 0;  // bit i set: TrainModule i is adapted (bit kOutputHead: the output head)
  uint64_t seed = 0;
};

// Which tensor family get/set address.
enum class LoraPart { kParams, kGrads, kFirstMoment, kSecondMoment };

class LoraParams {
 public:
  // A is drawn uniformly from ±1/sqrt(n_in) (PEFT's default), B is zero, so training starts from
  // the base model exactly. Deterministic for a seed.
  LoraParams(const TrainWeights & w, const LoraConfig & config, ggml_backend_t backend);
  ~LoraParams();
  LoraParams(const LoraParams &) = delete;
  LoraParams & operator=(const LoraParams &) = delete;

  float scale() const { return config.alpha / (float)config.rank; }
  // The slot adapting `module` of `layer`, or null when that module is not a target.
  const LoraSlot * Find(int layer, int module) const;
  // The slot adapting the output head, or null when it is not a target.
  const LoraSlot * Head() const { return head_ < 0 ? nullptr : &slots[head_]; }

  // The tensors of one part in slot order (a then b per slot), for copying in and out.
  std::vector<ggml_tensor *> Tensors(LoraPart part) const;
  // Name of parameter tensor i as in the adapter file.
  std::string Name(size_t i) const;

  void ZeroGrads();
  void ZeroMoments();

  LoraConfig config;
  std::vector<LoraSlot> slots;
  ggml_tensor * adamw_params = nullptr;  // [7]: alpha, beta1, beta2, eps, wd, beta1h, beta2h
  int64_t n_params = 0;
  int64_t step = 0;  // optimizer steps taken

 private:
  std::vector<int> index_;  // layer * kModuleCount + module -> slot or -1
  int head_ = -1;           // the output head's slot or -1
  ggml_context * ctx_ = nullptr;
  ggml_backend_buffer_t buffer_ = nullptr;
};

}  // namespace sr3

// The LoRA trainer's C++ core (no N-API): forward passes, loss + gradient accumulation over
// micro-batches, and AdamW steps with global-norm clipping. Not thread-safe; the N-API wrapper
// (trainer_wrap.h) runs one operation at a time off the JS thread.
#pragma once

#include "train/graph.h"
#include "train/losses.h"
#include "train/lora.h"
#include "train/weights.h"

#include <ggml-alloc.h>
#include <ggml-backend.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace sr3 {

struct ForwardRequest {
  bool lora = true;    // false: the base model alone (the reference)
  bool logits = false; // logits of the target rows
  bool hidden = false; // final hidden states of the embed rows
  bool logp = false;   // log-prob of each target row's token
};

struct ForwardResult {
  std::vector<float> logits;  // [n_targets][n_vocab]
  std::vector<float> hidden;  // [n_embed_rows][n_embd]
  std::vector<float> logp;    // [n_targets]
};

struct LossResult {
  double total = 0;
  double parts[kLossPartCount] = {};
  bool has[kLossPartCount] = {};
  bool finite = true;          // false: loss or gradient was NaN/Inf and nothing was accumulated
  std::vector<float> logp;     // current log-probs of the target rows (when logits were built)
  double seconds = 0;
};

// No defaults here: TS resolves every value (src/train/defaults.ts) and the wrapper requires each.
struct OptimSpec {
  float lr = 0;
  float beta1 = 0, beta2 = 0, eps = 0;
  float weight_decay = 0;
  float clip_norm = 0;   // 0: no clipping
};

struct StepResult {
  double grad_norm = 0;  // of the mean over micro-batches, before clipping
  bool clipped = false;
  int64_t step = 0;
};

class Trainer {
 public:
  // `transposed`: keep transposed copies of the frozen matrices for a faster backward pass
  // (TrainWeights), at the cost of about one more copy of the model's matrices in memory.
  Trainer(const std::string & model_path, const LoraConfig & lora, int threads, bool transposed);
  ~Trainer();
  Trainer(const Trainer &) = delete;
  Trainer & operator=(const Trainer &) = delete;

  ForwardResult Forward(const TrainBatch & batch, const ForwardRequest & req);
  LossResult Accumulate(const TrainBatch & batch, const LossSpec & spec);
  StepResult Step(const OptimSpec & opt);

  // Checks a batch and a loss spec against the model; throws NativeError(ERR_INVALID).
  void Validate(const TrainBatch & batch) const;
  void Validate(const TrainBatch & batch, const LossSpec & spec) const;

  void SetAbortFlag(std::atomic<bool> * flag);
  int threads() const { return threads_; }

  std::unique_ptr<TrainWeights> weights;
  std::unique_ptr<LoraParams> lora;
  int64_t micro_batches = 0;  // accumulated since the last step

 private:
  ggml_context * NewContext() const;
  // Allocates, uploads inputs and computes; throws ERR_ABORTED or ERR_NATIVE.
  void Compute(ggml_cgraph * graph, const GraphInputs & in, ggml_gallocr_t galloc, bool reset_grads);
  Reference ComputeReference(const TrainBatch & batch, const LossSpec & spec);
  void BuildOptimizerGraph();

  ggml_backend_t backend_ = nullptr;
  int threads_ = 1;
  ggml_gallocr_t galloc_ = nullptr;
  ggml_gallocr_t galloc_opt_ = nullptr;
  ggml_context * ctx_opt_ = nullptr;
  ggml_cgraph * graph_opt_ = nullptr;
  std::atomic<bool> * abort_ = nullptr;
};

}  // namespace sr3

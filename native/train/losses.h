// Training losses as ggml ops on top of the forward graph, so that autodiff yields their LoRA
// gradients. Per-token losses read log-probabilities of the batch's target rows; embedding losses
// read the final hidden state at the batch's embed rows, L2-normalised (rms_norm · 1/sqrt(d)).
#pragma once

#include "train/graph.h"

#include <vector>

namespace sr3 {

enum LossPart { kLossSft, kLossKl, kLossInfoNce, kLossTriplet, kLossGrpo, kLossGrpoKl, kLossPartCount };
const char * LossPartName(int part);

// Weights and per-row inputs of every loss. A loss with weight 0 is not built. No defaults here:
// TS resolves every value (src/train/defaults.ts) and the wrapper requires each of a loss it builds.
struct LossSpec {
  float w[kLossPartCount - 1] = {0, 0, 0, 0, 0};  // sft, kl, infonce, triplet, grpo
  // SFT: -sum_m sft_w[m] * log p(target_m). KL: sum_m kl_w[m] * KL(p_theta || p_ref) at row m.
  std::vector<float> sft_w, kl_w;
  // InfoNCE: query i (an index into embed_rows) against candidates (indices into embed_rows);
  // its positive is candidates[nce_label[i]]. Mean over queries of the cross-entropy.
  std::vector<int32_t> nce_q, nce_c, nce_label;
  float temperature = 0;
  // Triplet: mean over t of relu(margin + cos(a_t, n_t) - cos(a_t, p_t)).
  std::vector<int32_t> tri_a, tri_p, tri_n;
  float margin = 0;
  // GRPO: -sum_m grpo_w[m] * min(r_m A_m, clip(r_m, 1-eps_low, 1+eps_high) A_m), r = exp(logp - old),
  // plus kl_coef * sum_m grpo_w[m] * k3(ref, logp). grpo_w carries the mask and the normalisation.
  std::vector<float> grpo_w, grpo_adv, grpo_old;
  float eps_low = 0, eps_high = 0, grpo_kl = 0;

  bool Uses(int part) const { return part < kLossPartCount - 1 && w[part] != 0.0f; }
  bool NeedsLogits() const { return Uses(kLossSft) || Uses(kLossKl) || Uses(kLossGrpo); }
  bool NeedsReference() const { return Uses(kLossKl) || (Uses(kLossGrpo) && grpo_kl != 0.0f); }
};

// Reference-model values a loss needs, from a pass without LoRA over the same batch.
struct Reference {
  std::vector<float> logprobs;  // [n_vocab * n_targets], for KL
  std::vector<float> logp;      // [n_targets], for GRPO's k3 term
};

struct LossTensors {
  ggml_tensor * total = nullptr;                 // scalar, weighted sum
  ggml_tensor * parts[kLossPartCount] = {};      // unweighted parts (null when not built)
  ggml_tensor * logp = nullptr;                  // [1, n_targets] current log-probs (null without logits)
};

// log softmax of logits [n_vocab, M]; and, from any [n_vocab, M] matrix (log-probs or
// probabilities), the value at each row's target token, [1, M].
ggml_tensor * LogSoftmax(ggml_context * ctx, ggml_tensor * logits);
ggml_tensor * PickTargets(ggml_context * ctx, GraphInputs & in, ggml_tensor * values, const TrainBatch & batch);

// The losses of `hidden` (the adapted forward pass); `lora` adapts the output head when it targets it.
LossTensors BuildLosses(ggml_context * ctx, GraphInputs & in, const TrainWeights & w, const LoraParams * lora,
                        ggml_tensor * hidden, const TrainBatch & batch, const LossSpec & spec, const Reference & ref);

}  // namespace sr3

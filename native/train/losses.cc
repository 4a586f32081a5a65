#include "train/losses.h"

#include <cmath>

namespace sr3 {

static const char * const kPartNames[kLossPartCount] = {"sft", "kl", "infonce", "triplet", "grpo", "grpoKl"};

const char * LossPartName(int part) { return kPartNames[part]; }

ggml_tensor * LogSoftmax(ggml_context * ctx, ggml_tensor * logits) { return ggml_log(ctx, ggml_soft_max(ctx, logits)); }

ggml_tensor * PickTargets(ggml_context * ctx, GraphInputs & in, ggml_tensor * values, const TrainBatch & batch) {
  const int64_t V = values->ne[0], M = values->ne[1];
  std::vector<int32_t> idx(M);
  for (int64_t m = 0; m < M; m++) idx[m] = (int32_t)(m * V + batch.target_tokens[m]);
  // Each element its own row, so get_rows picks one value per target (and has a backward pass).
  ggml_tensor * flat = ggml_reshape_2d(ctx, values, 1, V * M);
  return ggml_reshape_2d(ctx, ggml_get_rows(ctx, flat, in.I32(ctx, idx, "target_index")), 1, M);
}

namespace {

ggml_tensor * Row(GraphInputs & in, ggml_context * ctx, const std::vector<float> & v, const char * name) {
  return in.F32(ctx, v, 1, (int64_t)v.size(), name);
}

// sum(a * w) for a, w of the same shape.
ggml_tensor * WeightedSum(ggml_context * ctx, ggml_tensor * a, ggml_tensor * w) { return ggml_sum(ctx, ggml_mul(ctx, a, w)); }

ggml_tensor * Normalized(ggml_context * ctx, ggml_tensor * e) {
  return ggml_scale(ctx, ggml_rms_norm(ctx, e, 1e-12f), 1.0f / std::sqrt((float)e->ne[0]));
}

ggml_tensor * InfoNce(ggml_context * ctx, GraphInputs & in, ggml_tensor * emb, const LossSpec & s) {
  ggml_tensor * q = ggml_get_rows(ctx, emb, in.I32(ctx, s.nce_q, "nce_q"));
  ggml_tensor * c = ggml_get_rows(ctx, emb, in.I32(ctx, s.nce_c, "nce_c"));
  ggml_tensor * sim = ggml_mul_mat(ctx, c, q);  // [n_cand, n_query]
  ggml_tensor * lp = ggml_log(ctx, ggml_soft_max_ext(ctx, sim, nullptr, 1.0f / s.temperature, 0.0f));
  const int64_t nc = (int64_t)s.nce_c.size(), nq = (int64_t)s.nce_q.size();
  std::vector<int32_t> idx(nq);
  for (int64_t i = 0; i < nq; i++) idx[i] = (int32_t)(i * nc + s.nce_label[i]);
  ggml_tensor * picked = ggml_get_rows(ctx, ggml_reshape_2d(ctx, lp, 1, nc * nq), in.I32(ctx, idx, "nce_label"));
  return ggml_scale(ctx, ggml_sum(ctx, picked), -1.0f / (float)nq);
}

ggml_tensor * Triplet(ggml_context * ctx, GraphInputs & in, ggml_tensor * emb, const LossSpec & s) {
  ggml_tensor * a = ggml_get_rows(ctx, emb, in.I32(ctx, s.tri_a, "tri_a"));
  ggml_tensor * p = ggml_get_rows(ctx, emb, in.I32(ctx, s.tri_p, "tri_p"));
  ggml_tensor * n = ggml_get_rows(ctx, emb, in.I32(ctx, s.tri_n, "tri_n"));
  ggml_tensor * cos_ap = ggml_sum_rows(ctx, ggml_mul(ctx, a, p));  // [1, n_triplets]
  ggml_tensor * cos_an = ggml_sum_rows(ctx, ggml_mul(ctx, a, n));
  ggml_tensor * hinge = ggml_relu(ctx, ggml_scale_bias(ctx, ggml_sub(ctx, cos_an, cos_ap), 1.0f, s.margin));
  return ggml_scale(ctx, ggml_sum(ctx, hinge), 1.0f / (float)s.tri_a.size());
}

// min(r A, clip(r, 1-el, 1+eh) A) = A+ * min(r, 1+eh) + A- * max(r, 1-el), with
// min(r, c) = r - relu(r - c) and max(r, c) = r + relu(c - r): differentiable ggml ops whose
// gradient is zero exactly where PPO's clip is active.
ggml_tensor * GrpoPolicy(ggml_context * ctx, GraphInputs & in, ggml_tensor * logp, const LossSpec & s, ggml_tensor * w) {
  std::vector<float> pos(s.grpo_adv.size()), neg(s.grpo_adv.size());
  for (size_t i = 0; i < pos.size(); i++) {
    pos[i] = std::max(s.grpo_adv[i], 0.0f);
    neg[i] = std::min(s.grpo_adv[i], 0.0f);
  }
  ggml_tensor * old = Row(in, ctx, s.grpo_old, "grpo_old");
  ggml_tensor * r = ggml_exp(ctx, ggml_sub(ctx, logp, old));
  ggml_tensor * upper = ggml_sub(ctx, r, ggml_relu(ctx, ggml_scale_bias(ctx, r, 1.0f, -(1.0f + s.eps_high))));
  ggml_tensor * lower = ggml_add(ctx, r, ggml_relu(ctx, ggml_scale_bias(ctx, r, -1.0f, 1.0f - s.eps_low)));
  ggml_tensor * objective = ggml_add(ctx, ggml_mul(ctx, upper, Row(in, ctx, pos, "grpo_adv_pos")),
                                     ggml_mul(ctx, lower, Row(in, ctx, neg, "grpo_adv_neg")));
  return ggml_scale(ctx, WeightedSum(ctx, objective, w), -1.0f);
}

// k3 estimator of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1, per token.
ggml_tensor * K3(ggml_context * ctx, GraphInputs & in, ggml_tensor * logp, const std::vector<float> & ref, ggml_tensor * w) {
  ggml_tensor * d = ggml_sub(ctx, Row(in, ctx, ref, "ref_logp"), logp);
  ggml_tensor * k3 = ggml_scale_bias(ctx, ggml_sub(ctx, ggml_exp(ctx, d), d), 1.0f, -1.0f);
  return WeightedSum(ctx, k3, w);
}

}  // namespace

LossTensors BuildLosses(ggml_context * ctx, GraphInputs & in, const TrainWeights & w, const LoraParams * lora,
                        ggml_tensor * hidden, const TrainBatch & batch, const LossSpec & s, const Reference & ref) {
  LossTensors out;
  const int64_t M = (int64_t)batch.target_rows.size();
  if (s.NeedsLogits()) {
    ggml_tensor * logits = BuildTargetLogits(ctx, in, w, lora, hidden, batch);
    ggml_tensor * lp_all = nullptr;  // full log-softmax, only for KL
    if (s.Uses(kLossKl)) {
      lp_all = LogSoftmax(ctx, logits);
      out.logp = PickTargets(ctx, in, lp_all, batch);
    } else {
      // log of the picked probabilities: one log per target instead of a log (and its backward
      // divide) over the whole [n_vocab, n_targets] matrix
      ggml_tensor * probs = ggml_soft_max(ctx, logits);
      // Kept as an output: otherwise ggml's allocator lets soft_max_back, its last reader, write
      // its result over it in place while still reading it (found by the finite-difference test).
      ggml_set_output(probs);
      out.logp = ggml_log(ctx, PickTargets(ctx, in, probs, batch));
    }
    if (s.Uses(kLossSft)) {
      out.parts[kLossSft] = ggml_scale(ctx, WeightedSum(ctx, out.logp, Row(in, ctx, s.sft_w, "sft_w")), -1.0f);
    }
    if (s.Uses(kLossKl)) {
      ggml_tensor * ref_lp = in.F32(ctx, ref.logprobs, w.hp.n_vocab, M, "ref_logprobs");
      ggml_tensor * p = ggml_exp(ctx, lp_all);
      ggml_tensor * kl_rows = ggml_sum_rows(ctx, ggml_mul(ctx, p, ggml_sub(ctx, lp_all, ref_lp)));  // [1, M]
      out.parts[kLossKl] = WeightedSum(ctx, kl_rows, Row(in, ctx, s.kl_w, "kl_w"));
    }
    if (s.Uses(kLossGrpo)) {
      ggml_tensor * gw = Row(in, ctx, s.grpo_w, "grpo_w");
      out.parts[kLossGrpo] = GrpoPolicy(ctx, in, out.logp, s, gw);
      if (s.grpo_kl != 0.0f) out.parts[kLossGrpoKl] = K3(ctx, in, out.logp, ref.logp, gw);
    }
  }
  if (s.Uses(kLossInfoNce) || s.Uses(kLossTriplet)) {
    ggml_tensor * emb = Normalized(ctx, ggml_get_rows(ctx, hidden, in.I32(ctx, batch.embed_rows, "embed_rows")));
    if (s.Uses(kLossInfoNce)) out.parts[kLossInfoNce] = InfoNce(ctx, in, emb, s);
    if (s.Uses(kLossTriplet)) out.parts[kLossTriplet] = Triplet(ctx, in, emb, s);
  }
  for (int part = 0; part < kLossPartCount; part++) {
    if (!out.parts[part]) continue;
    float weight = part == kLossGrpoKl ? s.w[kLossGrpo] * s.grpo_kl : s.w[part];
    ggml_tensor * term = ggml_scale(ctx, out.parts[part], weight);
    out.total = out.total ? ggml_add(ctx, out.total, term) : term;
  }
  return out;
}

}  // namespace sr3

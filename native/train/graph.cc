#include "train/graph.h"

#include <ggml-backend.h>

#include <cmath>
#include <cstring>

namespace sr3 {

ggml_tensor * GraphInputs::I32(ggml_context * ctx, const std::vector<int32_t> & data, const char * name) {
  ggml_tensor * t = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, (int64_t)data.size());
  ggml_set_name(t, name);
  ggml_set_input(t);
  Pending p{t, std::vector<uint8_t>(data.size() * sizeof(int32_t))};
  std::memcpy(p.bytes.data(), data.data(), p.bytes.size());
  pending_.push_back(std::move(p));
  return t;
}

ggml_tensor * GraphInputs::F32(ggml_context * ctx, std::vector<float> data, int64_t ne0, int64_t ne1, const char * name) {
  ggml_tensor * t = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, ne0, ne1);
  ggml_set_name(t, name);
  ggml_set_input(t);
  Pending p{t, std::vector<uint8_t>(data.size() * sizeof(float))};
  std::memcpy(p.bytes.data(), data.data(), p.bytes.size());
  pending_.push_back(std::move(p));
  return t;
}

void GraphInputs::Upload() const {
  for (const Pending & p : pending_) ggml_backend_tensor_set(p.t, p.bytes.data(), 0, p.bytes.size());
}

size_t GraphSize(const TrainWeights & w) { return 4096 + (size_t)w.hp.n_layer * 1024; }

namespace {

// W·x, plus (alpha/rank)·B·(A·x) when the module is adapted, plus the bias.
ggml_tensor * Linear(ggml_context * ctx, const LoraParams * lora, int layer, int module, ggml_tensor * weight,
                     ggml_tensor * bias, ggml_tensor * x) {
  ggml_tensor * y = ggml_mul_mat(ctx, weight, x);
  if (const LoraSlot * s = lora ? lora->Find(layer, module) : nullptr) {
    ggml_tensor * ab = ggml_mul_mat(ctx, s->b, ggml_mul_mat(ctx, s->a, x));
    y = ggml_add(ctx, y, ggml_scale(ctx, ab, lora->scale()));
  }
  if (bias) y = ggml_add(ctx, y, bias);
  return y;
}

ggml_tensor * Norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * weight, float eps) {
  return ggml_mul(ctx, ggml_rms_norm(ctx, x, eps), weight);
}

// [d0, d1, n_kv, B] -> [d0, d1, n_kv * rep, B] with head h of the result reading KV head h / rep,
// which is how llama.cpp pairs query heads with KV heads. Spelled as repeat (which has a
// backward pass) because mul_mat's broadcast backward cannot handle a batch dimension.
ggml_tensor * RepeatKv(ggml_context * ctx, ggml_tensor * x, int64_t rep) {
  if (rep == 1) return x;
  const int64_t d0 = x->ne[0], d1 = x->ne[1], n_kv = x->ne[2], b = x->ne[3];
  ggml_tensor * r = ggml_repeat_4d(ctx, ggml_reshape_4d(ctx, x, d0 * d1, 1, n_kv, b), d0 * d1, rep, n_kv, b);
  return ggml_reshape_4d(ctx, r, d0, d1, n_kv * rep, b);
}

}  // namespace

ggml_tensor * BuildForward(ggml_context * ctx, GraphInputs & in, const TrainWeights & w, const LoraParams * lora,
                           const TrainBatch & batch) {
  const TrainHparams & hp = w.hp;
  const int64_t T = batch.n_len, B = batch.n_seq, N = T * B, hd = hp.head_dim;
  const int64_t rep = hp.n_head / hp.n_head_kv;

  std::vector<int32_t> pos(N);
  for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)(i % T);
  std::vector<float> mask((size_t)(T * T));
  for (int64_t q = 0; q < T; q++) {
    for (int64_t k = 0; k < T; k++) mask[q * T + k] = k <= q ? 0.0f : -INFINITY;
  }
  ggml_tensor * tokens = in.I32(ctx, batch.tokens, "tokens");
  ggml_tensor * positions = in.I32(ctx, pos, "positions");
  ggml_tensor * kq_mask = in.F32(ctx, std::move(mask), T, T, "kq_mask");

  ggml_tensor * x = ggml_get_rows(ctx, w.tok_embd, tokens);  // [n_embd, N]
  for (int il = 0; il < (int)hp.n_layer; il++) {
    const TrainLayer & L = w.layers[il];
    ggml_tensor * h = Norm(ctx, x, L.attn_norm, hp.rms_eps);
    ggml_tensor * q = Linear(ctx, lora, il, kAttnQ, L.wq, L.bq, h);
    ggml_tensor * k = Linear(ctx, lora, il, kAttnK, L.wk, L.bk, h);
    ggml_tensor * v = Linear(ctx, lora, il, kAttnV, L.wv, L.bv, h);
    q = ggml_reshape_3d(ctx, q, hd, hp.n_head, N);
    k = ggml_reshape_3d(ctx, k, hd, hp.n_head_kv, N);
    if (L.q_norm) q = Norm(ctx, q, L.q_norm, hp.rms_eps);
    if (L.k_norm) k = Norm(ctx, k, L.k_norm, hp.rms_eps);
    q = ggml_rope_ext(ctx, q, positions, nullptr, hp.n_rot, hp.rope_mode, (int)hp.n_ctx_train, hp.rope_freq_base, 1.0f,
                      0.0f, 1.0f, 32.0f, 1.0f);
    k = ggml_rope_ext(ctx, k, positions, nullptr, hp.n_rot, hp.rope_mode, (int)hp.n_ctx_train, hp.rope_freq_base, 1.0f,
                      0.0f, 1.0f, 32.0f, 1.0f);
    // [hd, heads, T, B] -> [hd, T, heads, B]
    q = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, q, hd, hp.n_head, T, B), 0, 2, 1, 3));
    k = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, k, hd, hp.n_head_kv, T, B), 0, 2, 1, 3));
    k = RepeatKv(ctx, k, rep);
    // [hd, kv_heads, T, B] -> [T, hd, kv_heads, B]
    v = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, v, hd, hp.n_head_kv, T, B), 1, 2, 0, 3));
    v = RepeatKv(ctx, v, rep);
    ggml_tensor * kq = ggml_mul_mat(ctx, k, q);  // [T_k, T_q, heads, B]
    kq = ggml_soft_max_ext(ctx, kq, kq_mask, hp.kq_scale, 0.0f);
    ggml_tensor * kqv = ggml_mul_mat(ctx, v, kq);  // [hd, T_q, heads, B]
    ggml_tensor * o = ggml_cont(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3));  // [hd, heads, T, B]
    o = ggml_reshape_2d(ctx, o, hd * hp.n_head, N);
    o = Linear(ctx, lora, il, kAttnOut, L.wo, nullptr, o);
    x = ggml_add(ctx, x, o);

    h = Norm(ctx, x, L.ffn_norm, hp.rms_eps);
    ggml_tensor * gate = Linear(ctx, lora, il, kFfnGate, L.ffn_gate, nullptr, h);
    ggml_tensor * up = Linear(ctx, lora, il, kFfnUp, L.ffn_up, nullptr, h);
    ggml_tensor * f = Linear(ctx, lora, il, kFfnDown, L.ffn_down, nullptr, ggml_mul(ctx, ggml_silu(ctx, gate), up));
    x = ggml_add(ctx, x, f);
  }
  return Norm(ctx, x, w.output_norm, hp.rms_eps);
}

ggml_tensor * BuildTargetLogits(ggml_context * ctx, GraphInputs & in, const TrainWeights & w, ggml_tensor * hidden,
                                const TrainBatch & batch) {
  ggml_tensor * rows = in.I32(ctx, batch.target_rows, "target_rows");
  return ggml_mul_mat(ctx, w.output, ggml_get_rows(ctx, hidden, rows));
}

}  // namespace sr3

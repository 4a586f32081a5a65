#include "train/graph.h"

#include "train/kernels.h"

#include <ggml-backend.h>

#include <cmath>
#include <cstring>

namespace sr3 {

ggml_tensor * GraphInputs::Stage(ggml_tensor * t, const void * data, size_t bytes, const char * name) {
  ggml_set_name(t, name);
  ggml_set_input(t);
  const auto * b = static_cast<const uint8_t *>(data);
  pending_.push_back(Pending{t, std::vector<uint8_t>(b, b + bytes)});
  return t;
}

ggml_tensor * GraphInputs::I32(ggml_context * ctx, const std::vector<int32_t> & data, const char * name) {
  return Stage(ggml_new_tensor_1d(ctx, GGML_TYPE_I32, (int64_t)data.size()), data.data(), data.size() * sizeof(int32_t), name);
}

ggml_tensor * GraphInputs::F32(ggml_context * ctx, const std::vector<float> & data, int64_t ne0, int64_t ne1, const char * name) {
  return Stage(ggml_new_tensor_2d(ctx, GGML_TYPE_F32, ne0, ne1), data.data(), data.size() * sizeof(float), name);
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
  ggml_tensor * kq_mask = in.F32(ctx, mask, T, T, "kq_mask");

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

ggml_tensor * BuildTargetLogits(ggml_context * ctx, GraphInputs & in, const TrainWeights & w, const LoraParams * lora,
                                ggml_tensor * hidden, const TrainBatch & batch) {
  ggml_tensor * rows = ggml_get_rows(ctx, hidden, in.I32(ctx, batch.target_rows, "target_rows"));
  return Linear(ctx, lora, -1, kOutputHead, w.output, nullptr, rows);
}

namespace {

// Tensors made to replace a node, in the order they must run.
struct Added {
  std::vector<ggml_tensor *> nodes;
  ggml_tensor * operator()(ggml_tensor * t) {
    t->flags |= GGML_TENSOR_FLAG_COMPUTE;  // what ggml_build_forward_expand marks; the backend skips nodes without it
    nodes.push_back(t);
    return t;
  }
};

// Puts `added` (in order) into the graph just before node index `at`.
void InsertNodes(ggml_cgraph * graph, int at, const std::vector<ggml_tensor *> & added) {
  const int n = ggml_graph_n_nodes(graph), k = (int)added.size();
  for (int i = 0; i < k; i++) ggml_graph_add_node(graph, added[i]);  // grows the node count
  ggml_tensor ** nodes = ggml_graph_nodes(graph);
  std::memmove(nodes + at + k, nodes + at, sizeof(ggml_tensor *) * (size_t)(n - at));
  for (int i = 0; i < k; i++) nodes[at + i] = added[i];
}

// xᵀ with contiguous rows, as mul_mat wants its operands: the stored copy of a frozen matrix, the
// source of a transpose view, or a transposing copy (StridedCopy) of any other F32 tensor. Null
// for a frozen matrix without a stored copy (copying it every step would cost more than out_prod).
ggml_tensor * Transposed(ggml_context * ctx, Added & add, ggml_tensor * x, const TrainWeights & w) {
  if (ggml_tensor * t = w.Transposed(x)) return t;
  if (x->op == GGML_OP_TRANSPOSE && ggml_is_contiguous(x->src[0])) return x->src[0];
  if (w.Owns(x) || x->type != GGML_TYPE_F32) return nullptr;
  return add(StridedCopy(ctx, add(ggml_transpose(ctx, x)), x->ne[1]));
}

// Σ_k a[k, i]·b[k, j] for a 2-D pair whose inner dimension K is a vocabulary. One matmul with
// K = 150k streams both operands from memory for every output tile; instead the sum is split into
// slabs of kSlab rows (one batched mul_mat over [kSlab, ·, slabs] copies, then a reduction over the
// slabs) plus the remainder. Returns the [n, m] sum and the remainder's product (or null).
constexpr int64_t kSlab = 8192;

constexpr int64_t kMinInner = 32;

// The inner dimension that ggml's tiled F32 matmul needs a multiple of: 16 floats with AVX-512, 8
// with AVX2, 4 with NEON; 16 serves all of them.
constexpr int64_t kSimdFloats = 16;

void SlabbedProduct(ggml_context * ctx, Added & add, ggml_tensor * a, ggml_tensor * b, ggml_tensor ** sum,
                    ggml_tensor ** rest) {
  const int64_t K = a->ne[0], n = a->ne[1], m = b->ne[1], slabs = K / kSlab, tail = K - slabs * kSlab;
  ggml_tensor * a3 = add(ggml_view_3d(ctx, a, kSlab, n, slabs, a->nb[1], ggml_row_size(a->type, kSlab), 0));
  // b's slabs copied contiguous (one pass over b) so that the matmul takes ggml's tiled sgemm path
  ggml_tensor * b3 = add(ggml_cont(ctx, add(ggml_view_3d(ctx, b, kSlab, m, slabs, b->nb[1], ggml_row_size(b->type, kSlab), 0))));
  ggml_tensor * parts = add(ggml_mul_mat(ctx, a3, b3));                              // [n, m, slabs]
  ggml_tensor * t = add(ggml_cont(ctx, add(ggml_permute(ctx, parts, 1, 2, 0, 3))));  // [slabs, n, m]
  *sum = add(ggml_reshape_2d(ctx, add(ggml_sum_rows(ctx, t)), n, m));
  *rest = nullptr;
  if (tail > 0) {
    const size_t off_a = ggml_row_size(a->type, slabs * kSlab), off_b = ggml_row_size(b->type, slabs * kSlab);
    ggml_tensor * a2 = add(ggml_view_2d(ctx, a, tail, n, a->nb[1], off_a));
    ggml_tensor * b2 = add(ggml_cont(ctx, add(ggml_view_2d(ctx, b, tail, m, b->nb[1], off_b))));
    *rest = add(ggml_mul_mat(ctx, a2, b2));
  }
}

// x with each row divided by its RMS (plus 1e-30, so that a zero row stays zero); the RMS, one
// per row, in *rms.
ggml_tensor * UnitRows(ggml_context * ctx, Added & add, ggml_tensor * x, ggml_tensor ** rms) {
  ggml_tensor * mean_sq = add(ggml_scale(ctx, add(ggml_sum_rows(ctx, add(ggml_sqr(ctx, x)))), 1.0f / (float)x->ne[0]));
  *rms = add(ggml_scale_bias(ctx, add(ggml_sqrt(ctx, mean_sq)), 1.0f, 1e-30f));
  return add(ggml_div(ctx, x, *rms));
}

}  // namespace

int RewriteOutProducts(ggml_context * ctx, ggml_cgraph * graph, const TrainWeights & w) {
  int rewritten = 0;
  for (int i = 0; i < ggml_graph_n_nodes(graph); i++) {
    ggml_tensor * node = ggml_graph_node(graph, i);
    if (node->op != GGML_OP_OUT_PROD) continue;
    // out_prod(a, b)[i, j] = Σ_k a[i, k]·b[j, k] = mul_mat(aᵀ, bᵀ)[i, j]
    // Over a short k (a LoRA rank, an 8-wide attention head) mul_mat falls back to one tiny dot
    // product per output, while out_prod's loop runs along the long rows: 5× slower measured.
    if (node->src[0]->ne[1] < kMinInner) continue;
    Added add;
    ggml_tensor * at = Transposed(ctx, add, node->src[0], w);
    ggml_tensor * bt = at ? Transposed(ctx, add, node->src[1], w) : nullptr;
    if (!at || !bt || at->ne[0] != bt->ne[0] || bt->ne[2] % at->ne[2] != 0 || bt->ne[3] % at->ne[3] != 0 ||
        node->ne[0] != at->ne[1] || node->ne[1] != bt->ne[1] || node->ne[2] != bt->ne[2] || node->ne[3] != bt->ne[3]) {
      continue;  // the tensors made for it are never used
    }
    std::memset(node->op_params, 0, sizeof(node->op_params));
    // A non-F32 aᵀ makes mul_mat round bᵀ to F16, BF16 or Q8_0 (whose block scales are F16): gradients
    // of 1e-8 would flush to zero. So bᵀ's rows are scaled to unit RMS first and the product's
    // columns scaled back.
    ggml_tensor * rms = nullptr;
    if (at->type != GGML_TYPE_F32) bt = UnitRows(ctx, add, bt, &rms);
    const bool slabbed = at->ne[0] >= 2 * kSlab && ggml_n_dims(at) == 2 && ggml_n_dims(bt) == 2;
    ggml_tensor * sum = nullptr, * rest = nullptr;
    if (slabbed) SlabbedProduct(ctx, add, at, bt, &sum, &rest);
    if (rms) {
      node->op = GGML_OP_MUL;
      node->src[0] = slabbed ? (rest ? add(ggml_add(ctx, sum, rest)) : sum) : add(ggml_mul_mat(ctx, at, bt));
      node->src[1] = rms;
    } else if (!slabbed) {
      node->op = GGML_OP_MUL_MAT;
      node->src[0] = at;
      node->src[1] = bt;
    } else if (rest) {
      node->op = GGML_OP_ADD;
      node->src[0] = sum;
      node->src[1] = rest;
    } else {
      node->op = GGML_OP_SCALE;  // node = 1·sum
      const float params[2] = {1.0f, 0.0f};
      std::memcpy(node->op_params, params, sizeof(params));
      node->src[0] = sum;
      node->src[1] = nullptr;
    }
    InsertNodes(graph, i, add.nodes);
    i += (int)add.nodes.size();
    rewritten++;
  }
  return rewritten;
}

int RewriteForCpu(ggml_context * ctx, ggml_cgraph * graph) {
  int rewritten = 0;
  for (int i = 0; i < ggml_graph_n_nodes(graph); i++) {
    ggml_tensor * node = ggml_graph_node(graph, i);
    ggml_tensor * a = node->src[0], * b = node->src[1];
    if (node->op == GGML_OP_CONT && node->type == GGML_TYPE_F32 && a->type == GGML_TYPE_F32 &&
        a->nb[0] != sizeof(float) && ggml_are_same_shape(node, a)) {
      MakeStridedCopy(ctx, node);
      rewritten++;
      continue;
    }
    if (node->op != GGML_OP_MUL_MAT || a->type != GGML_TYPE_F32 || b->type != GGML_TYPE_F32) continue;
    const int64_t K = a->ne[0];
    if (K % kSimdFloats == 0) continue;
    Added add;
    if (K < kSimdFloats) {
      // mul_mat(a, b)[i, j] = Σ_k a[k, i]·b[k, j] = out_prod(aᵀ, bᵀ)[i, j]; out_prod wants its first
      // operand's rows contiguous and reads the second through its strides.
      node->op = GGML_OP_OUT_PROD;
      node->src[0] = add(StridedCopy(ctx, add(ggml_transpose(ctx, a)), a->ne[1]));
      node->src[1] = add(ggml_transpose(ctx, b));
    } else {
      const int64_t padded = (K + kSimdFloats - 1) / kSimdFloats * kSimdFloats;
      node->src[0] = add(StridedCopy(ctx, a, padded));
      node->src[1] = add(StridedCopy(ctx, b, padded));
    }
    std::memset(node->op_params, 0, sizeof(node->op_params));
    InsertNodes(graph, i, add.nodes);
    i += (int)add.nodes.size();
    rewritten++;
  }
  return rewritten;
}

}  // namespace sr3

#include "train/weights.h"

#include "common.h"

#include <gguf.h>
#include <ggml-alloc.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <memory>

namespace sr3 {

static const char * const kModuleNames[kTargetCount] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "output"};

const char * TrainModuleName(int module) { return kModuleNames[module]; }

ggml_tensor * TrainModuleWeight(const TrainLayer & l, int module) {
  switch (module) {
    case kAttnQ: return l.wq;
    case kAttnK: return l.wk;
    case kAttnV: return l.wv;
    case kAttnOut: return l.wo;
    case kFfnGate: return l.ffn_gate;
    case kFfnUp: return l.ffn_up;
    default: return l.ffn_down;
  }
}

namespace {

struct GgufCloser {
  void operator()(gguf_context * g) const { gguf_free(g); }
};

[[noreturn]] void Fail(const std::string & path, const std::string & why) {
  throw NativeError("ERR_MODEL", "cannot train on " + path + ": " + why);
}

// A numeric metadata value of any integer or float type; `def` when absent (or a failure when
// `def` is negative, meaning required).
double NumberKey(gguf_context * g, const std::string & path, const std::string & key, double def) {
  int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) {
    if (def < 0) Fail(path, "metadata key " + key + " is missing");
    return def;
  }
  switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_UINT8: return gguf_get_val_u8(g, id);
    case GGUF_TYPE_INT8: return gguf_get_val_i8(g, id);
    case GGUF_TYPE_UINT16: return gguf_get_val_u16(g, id);
    case GGUF_TYPE_INT16: return gguf_get_val_i16(g, id);
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, id);
    case GGUF_TYPE_INT32: return gguf_get_val_i32(g, id);
    case GGUF_TYPE_UINT64: return (double)gguf_get_val_u64(g, id);
    case GGUF_TYPE_INT64: return (double)gguf_get_val_i64(g, id);
    case GGUF_TYPE_FLOAT32: return gguf_get_val_f32(g, id);
    case GGUF_TYPE_FLOAT64: return gguf_get_val_f64(g, id);
    case GGUF_TYPE_ARRAY: Fail(path, "metadata key " + key + " is an array (per-layer values are not supported)");
    default: Fail(path, "metadata key " + key + " is not a number");
  }
}

std::string Shape(const ggml_tensor * t) {
  std::string s = "[";
  for (int i = 0; i < ggml_n_dims(t); i++) s += (i ? ", " : "") + std::to_string(t->ne[i]);
  return s + "]";
}

}  // namespace

TrainWeights::TrainWeights(const std::string & path, ggml_backend_t backend, bool transposed, int threads) {
  try {
    Load(path, backend);
    if (transposed) BuildTransposed(backend, threads);
  } catch (...) {
    if (buffer_t_) ggml_backend_buffer_free(buffer_t_);
    if (ctx_t_) ggml_free(ctx_t_);
    if (buffer_) ggml_backend_buffer_free(buffer_);
    if (ctx_) ggml_free(ctx_);
    throw;
  }
}

ggml_tensor * TrainWeights::Transposed(const ggml_tensor * w) const {
  auto it = transposed_.find(w);
  return it == transposed_.end() ? nullptr : it->second;
}

namespace {

ggml_type TransposedType(ggml_type type, int64_t row) {
  if (type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) return type;
  return row % ggml_blck_size(GGML_TYPE_Q8_0) == 0 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
}

// dst = srcᵀ, converted to dst's type, a band of dst rows (source columns) at a time so that the
// float staging stays under ~64 MiB per thread whatever the matrix size. Each band reads and
// dequantizes only its own columns of the source rows (bands are whole quantization blocks), kTile
// rows at a time, written out as runs of kTile contiguous floats, which keeps both sides in cache.
void TransposeInto(const ggml_tensor * src, ggml_tensor * dst) {
  constexpr int64_t kTile = 64;
  const int64_t n_in = src->ne[0], n_out = src->ne[1];  // dst is [n_out, n_in]
  const ggml_type_traits * traits = ggml_get_type_traits(src->type);
  const int64_t block = ggml_blck_size(src->type);  // n_in is a multiple of it (a row holds whole blocks)
  const size_t src_row = ggml_row_size(src->type, n_in), dst_row = ggml_row_size(dst->type, n_out);
  const int64_t fit = (64ll << 20) / (int64_t)(sizeof(float) * n_out);
  const int64_t band = std::min(n_in, std::max<int64_t>(block, fit / block * block));
  std::vector<uint8_t> raw(ggml_row_size(src->type, band) * kTile);
  std::vector<float> cols((size_t)(kTile * band)), tmp((size_t)(band * n_out));
  std::vector<uint8_t> out((size_t)band * dst_row);
  for (int64_t i0 = 0; i0 < n_in; i0 += band) {
    const int64_t nb = std::min(band, n_in - i0);
    const size_t seg = ggml_row_size(src->type, nb), seg_at = ggml_row_size(src->type, i0);
    for (int64_t o0 = 0; o0 < n_out; o0 += kTile) {
      const int64_t no = std::min(kTile, n_out - o0);
      for (int64_t o = 0; o < no; o++) {
        uint8_t * r = &raw[(size_t)o * seg];
        ggml_backend_tensor_get(src, r, (size_t)(o0 + o) * src_row + seg_at, seg);
        if (src->type == GGML_TYPE_F32) std::memcpy(&cols[(size_t)(o * nb)], r, seg);
        else traits->to_float(r, &cols[(size_t)(o * nb)], nb);
      }
      for (int64_t i = 0; i < nb; i++) {
        float * d = &tmp[(size_t)(i * n_out + o0)];
        for (int64_t o = 0; o < no; o++) d[o] = cols[(size_t)(o * nb + i)];
      }
    }
    ggml_quantize_chunk(dst->type, tmp.data(), out.data(), 0, nb, n_out, nullptr);
    ggml_backend_tensor_set(dst, out.data(), (size_t)i0 * dst_row, (size_t)nb * dst_row);
  }
}

}  // namespace

void TrainWeights::BuildTransposed(ggml_backend_t backend, int threads) {
  std::vector<ggml_tensor *> mats;
  for (const TrainLayer & l : layers) {
    for (int m = 0; m < kModuleCount; m++) mats.push_back(TrainModuleWeight(l, m));
  }
  mats.push_back(output);
  ggml_init_params p = {ggml_tensor_overhead() * mats.size(), nullptr, true};
  ctx_t_ = ggml_init(p);
  if (!ctx_t_) throw NativeError("ERR_NATIVE", "out of memory creating the transposed weights");
  for (ggml_tensor * w : mats) {
    ggml_tensor * t = ggml_new_tensor_2d(ctx_t_, TransposedType(w->type, w->ne[1]), w->ne[1], w->ne[0]);
    ggml_format_name(t, "%s.T", w->name);
    transposed_[w] = t;
  }
  buffer_t_ = ggml_backend_alloc_ctx_tensors(ctx_t_, backend);
  if (!buffer_t_) throw NativeError("ERR_NATIVE", "out of memory allocating the transposed weights");
  transposed_bytes = ggml_backend_buffer_get_size(buffer_t_);
  // One matrix per thread at a time, largest first so that the output head does not come last.
  std::sort(mats.begin(), mats.end(), [](const ggml_tensor * x, const ggml_tensor * y) { return ggml_nelements(x) > ggml_nelements(y); });
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    for (size_t i; (i = next++) < mats.size();) {
      try {
        TransposeInto(mats[i], transposed_.at(mats[i]));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, threads); t++) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error &) {
      break;  // no more threads to be had (a pids limit): the ones started share the work
    }
  }
  work();
  for (std::thread & t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

void TrainWeights::Load(const std::string & path, ggml_backend_t backend) {
  gguf_init_params params = {/*no_alloc =*/true, /*ctx =*/&ctx_};
  std::unique_ptr<gguf_context, GgufCloser> g(gguf_init_from_file(path.c_str(), params));
  if (!g) Fail(path, "not a readable GGUF file");

  int64_t arch_id = gguf_find_key(g.get(), "general.architecture");
  if (arch_id < 0 || gguf_get_kv_type(g.get(), arch_id) != GGUF_TYPE_STRING) Fail(path, "general.architecture is missing");
  hp.arch_name = gguf_get_val_str(g.get(), arch_id);
  if (hp.arch_name == "llama") hp.arch = TrainArch::kLlama;
  else if (hp.arch_name == "qwen2") hp.arch = TrainArch::kQwen2;
  else if (hp.arch_name == "qwen3") hp.arch = TrainArch::kQwen3;
  else Fail(path, "architecture '" + hp.arch_name + "' is not supported by the trainer (llama, qwen2, qwen3 are)");

  const std::string a = hp.arch_name + ".";
  hp.n_embd = (int64_t)NumberKey(g.get(), path, a + "embedding_length", -1);
  hp.n_layer = (int64_t)NumberKey(g.get(), path, a + "block_count", -1);
  hp.n_ff = (int64_t)NumberKey(g.get(), path, a + "feed_forward_length", -1);
  hp.n_head = (int64_t)NumberKey(g.get(), path, a + "attention.head_count", -1);
  hp.n_head_kv = (int64_t)NumberKey(g.get(), path, a + "attention.head_count_kv", (double)hp.n_head);
  hp.n_ctx_train = (int64_t)NumberKey(g.get(), path, a + "context_length", 2048);
  if (hp.n_embd <= 0 || hp.n_layer <= 0 || hp.n_head <= 0 || hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0) {
    Fail(path, "inconsistent head counts or sizes in the metadata");
  }
  hp.head_dim = (int64_t)NumberKey(g.get(), path, a + "attention.key_length", (double)(hp.n_embd / hp.n_head));
  if ((int64_t)NumberKey(g.get(), path, a + "attention.value_length", (double)hp.head_dim) != hp.head_dim) {
    Fail(path, "different key and value head sizes are not supported");
  }
  hp.n_rot = (int)NumberKey(g.get(), path, a + "rope.dimension_count", (double)hp.head_dim);
  if (hp.n_rot != hp.head_dim) Fail(path, "partial rotary embeddings are not supported");
  hp.rope_freq_base = (float)NumberKey(g.get(), path, a + "rope.freq_base", 10000.0);
  hp.rms_eps = (float)NumberKey(g.get(), path, a + "attention.layer_norm_rms_epsilon", -1);
  float attn_scale = (float)NumberKey(g.get(), path, a + "attention.scale", 0.0);
  hp.kq_scale = attn_scale != 0.0f ? attn_scale : 1.0f / std::sqrt((float)hp.head_dim);
  hp.rope_mode = hp.arch == TrainArch::kLlama ? GGML_ROPE_TYPE_NORMAL : GGML_ROPE_TYPE_NEOX;
  int64_t scaling = gguf_find_key(g.get(), (a + "rope.scaling.type").c_str());
  if (scaling >= 0 && gguf_get_kv_type(g.get(), scaling) == GGUF_TYPE_STRING &&
      std::string(gguf_get_val_str(g.get(), scaling)) != "none") {
    Fail(path, std::string("rope scaling '") + gguf_get_val_str(g.get(), scaling) + "' is not supported by the trainer");
  }
  if (ggml_get_tensor(ctx_, "rope_freqs.weight")) Fail(path, "rope frequency factors (llama 3 style) are not supported by the trainer");

  auto tensor = [&](const std::string & name, std::initializer_list<int64_t> shape, bool required) -> ggml_tensor * {
    ggml_tensor * t = ggml_get_tensor(ctx_, name.c_str());
    if (!t) {
      if (required) Fail(path, "tensor " + name + " is missing");
      return nullptr;
    }
    int i = 0;
    for (int64_t n : shape) {
      if (t->ne[i++] != n) Fail(path, "tensor " + name + " has shape " + Shape(t) + ", which does not fit the metadata");
    }
    return t;
  };

  tok_embd = ggml_get_tensor(ctx_, "token_embd.weight");
  if (!tok_embd) Fail(path, "tensor token_embd.weight is missing");
  hp.n_vocab = tok_embd->ne[1];
  tensor("token_embd.weight", {hp.n_embd, hp.n_vocab}, true);
  output_norm = tensor("output_norm.weight", {hp.n_embd}, true);
  output = tensor("output.weight", {hp.n_embd, hp.n_vocab}, false);
  if (!output) output = tok_embd;
  if (ggml_get_tensor(ctx_, "output.bias")) Fail(path, "an output bias is not supported by the trainer");

  const int64_t n_q = hp.n_head * hp.head_dim, n_kv = hp.n_head_kv * hp.head_dim;
  const bool qkv_bias = hp.arch == TrainArch::kQwen2;
  layers.resize(hp.n_layer);
  for (int64_t il = 0; il < hp.n_layer; il++) {
    const std::string p = "blk." + std::to_string(il) + ".";
    TrainLayer & l = layers[il];
    if (ggml_get_tensor(ctx_, (p + "attn_qkv.weight").c_str())) Fail(path, "fused attn_qkv tensors are not supported by the trainer");
    l.attn_norm = tensor(p + "attn_norm.weight", {hp.n_embd}, true);
    l.wq = tensor(p + "attn_q.weight", {hp.n_embd, n_q}, true);
    l.wk = tensor(p + "attn_k.weight", {hp.n_embd, n_kv}, true);
    l.wv = tensor(p + "attn_v.weight", {hp.n_embd, n_kv}, true);
    l.wo = tensor(p + "attn_output.weight", {n_q, hp.n_embd}, true);
    l.bq = tensor(p + "attn_q.bias", {n_q}, false);
    l.bk = tensor(p + "attn_k.bias", {n_kv}, false);
    l.bv = tensor(p + "attn_v.bias", {n_kv}, false);
    if (qkv_bias && !(l.bq && l.bk && l.bv)) Fail(path, "qwen2 layer " + std::to_string(il) + " lacks its q/k/v biases");
    if (hp.arch == TrainArch::kQwen3) {
      l.q_norm = tensor(p + "attn_q_norm.weight", {hp.head_dim}, true);
      l.k_norm = tensor(p + "attn_k_norm.weight", {hp.head_dim}, true);
    }
    l.ffn_norm = tensor(p + "ffn_norm.weight", {hp.n_embd}, true);
    l.ffn_gate = tensor(p + "ffn_gate.weight", {hp.n_embd, hp.n_ff}, true);
    l.ffn_up = tensor(p + "ffn_up.weight", {hp.n_embd, hp.n_ff}, true);
    l.ffn_down = tensor(p + "ffn_down.weight", {hp.n_ff, hp.n_embd}, true);
    if (ggml_get_tensor(ctx_, (p + "ffn_gate_inp.weight").c_str())) Fail(path, "mixture-of-experts layers are not supported by the trainer");
  }

  buffer_ = ggml_backend_alloc_ctx_tensors(ctx_, backend);
  if (!buffer_) throw NativeError("ERR_NATIVE", "out of memory allocating the weights of " + path);
  bytes = ggml_backend_buffer_get_size(buffer_);

  std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) Fail(path, "cannot open the file");
  const size_t data_offset = gguf_get_data_offset(g.get());
  std::vector<uint8_t> staging;
  const bool host = ggml_backend_buffer_is_host(buffer_);
  for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); i++) {
    ggml_tensor * t = ggml_get_tensor(ctx_, gguf_get_tensor_name(g.get(), i));
    const size_t n = ggml_nbytes(t);
    uint8_t * dst = (uint8_t *)t->data;
    if (!host) {
      staging.resize(n);
      dst = staging.data();
    }
    if (fseeko(f.get(), (off_t)(data_offset + gguf_get_tensor_offset(g.get(), i)), SEEK_SET) != 0 || std::fread(dst, 1, n, f.get()) != n) {
      Fail(path, std::string("the data of tensor ") + t->name + " is truncated");
    }
    if (!host) ggml_backend_tensor_set(t, dst, 0, n);
  }
}

TrainWeights::~TrainWeights() {
  if (buffer_t_) ggml_backend_buffer_free(buffer_t_);
  if (ctx_t_) ggml_free(ctx_t_);
  if (buffer_) ggml_backend_buffer_free(buffer_);
  if (ctx_) ggml_free(ctx_);
}

}  // namespace sr3

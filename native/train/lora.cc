#include "train/lora.h"

#include "common.h"

#include <ggml-alloc.h>

#include <cmath>

namespace sr3 {

namespace {

// splitmix64: a small, well-mixed generator so that an adapter's initial values depend only on
// the seed and the slot, never on thread timing or platform.
uint64_t SplitMix(uint64_t & s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

LoraParams::LoraParams(const TrainWeights & w, const LoraConfig & cfg, ggml_backend_t backend) : config(cfg) {
  if (config.rank < 1) throw NativeError("ERR_INVALID", "LoRA rank must be at least 1");
  if (config.modules == 0) throw NativeError("ERR_INVALID", "LoRA needs at least one target module");
  const int n_layer = (int)w.layers.size();
  index_.assign((size_t)n_layer * kModuleCount, -1);
  for (int il = 0; il < n_layer; il++) {
    for (int m = 0; m < kModuleCount; m++) {
      if (!(config.modules & (1u << m))) continue;
      index_[(size_t)il * kModuleCount + m] = (int)slots.size();
      LoraSlot s;
      s.layer = il;
      s.module = m;
      slots.push_back(s);
    }
  }
  if (config.modules & (1u << kOutputHead)) {
    // llama.cpp finds an adapter's matrices by name; a model that ties its head to token_embd has
    // no output.weight, and llama.cpp adapts token_embd with A and B in another layout.
    if (w.output == w.tok_embd) {
      throw NativeError("ERR_INVALID", "the LoRA target 'output' needs a model with its own output.weight; this one ties its output head to token_embd.weight");
    }
    head_ = (int)slots.size();
    LoraSlot s;
    s.layer = -1;
    s.module = kOutputHead;
    slots.push_back(s);
  }
  const size_t n_tensors = slots.size() * 8 + 1;
  ggml_init_params params = {ggml_tensor_overhead() * n_tensors, nullptr, /*no_alloc =*/true};
  ctx_ = ggml_init(params);
  if (!ctx_) throw NativeError("ERR_NATIVE", "out of memory creating the LoRA context");
  for (LoraSlot & s : slots) {
    ggml_tensor * weight = s.layer < 0 ? w.output : TrainModuleWeight(w.layers[s.layer], s.module);
    const int64_t n_in = weight->ne[0], n_out = weight->ne[1];
    auto make = [&](int64_t ne0, int64_t ne1) { return ggml_new_tensor_2d(ctx_, GGML_TYPE_F32, ne0, ne1); };
    s.a = make(n_in, config.rank);
    s.b = make(config.rank, n_out);
    s.grad_a = make(n_in, config.rank);
    s.grad_b = make(config.rank, n_out);
    s.m_a = make(n_in, config.rank);
    s.m_b = make(config.rank, n_out);
    s.v_a = make(n_in, config.rank);
    s.v_b = make(config.rank, n_out);
    const std::string base = (s.layer < 0 ? std::string() : "blk." + std::to_string(s.layer) + ".") + TrainModuleName(s.module) + ".weight";
    ggml_set_name(s.a, (base + ".lora_a").c_str());
    ggml_set_name(s.b, (base + ".lora_b").c_str());
    ggml_set_param(s.a);
    ggml_set_param(s.b);
    n_params += ggml_nelements(s.a) + ggml_nelements(s.b);
  }
  adamw_params = ggml_new_tensor_1d(ctx_, GGML_TYPE_F32, 7);
  buffer_ = ggml_backend_alloc_ctx_tensors(ctx_, backend);
  if (!buffer_) {
    ggml_free(ctx_);
    throw NativeError("ERR_NATIVE", "out of memory allocating LoRA parameters");
  }
  ggml_backend_buffer_clear(buffer_, 0);
  std::vector<float> init;
  for (size_t i = 0; i < slots.size(); i++) {
    ggml_tensor * a = slots[i].a;
    uint64_t state = config.seed * 0x100000001B3ull + i;
    const float bound = 1.0f / std::sqrt((float)a->ne[0]);
    init.resize(ggml_nelements(a));
    for (float & x : init) x = ((float)(SplitMix(state) >> 40) / (float)(1ull << 24) * 2.0f - 1.0f) * bound;
    ggml_backend_tensor_set(a, init.data(), 0, ggml_nbytes(a));
  }
}

LoraParams::~LoraParams() {
  if (buffer_) ggml_backend_buffer_free(buffer_);
  if (ctx_) ggml_free(ctx_);
}

const LoraSlot * LoraParams::Find(int layer, int module) const {
  if (layer < 0) return module == kOutputHead ? Head() : nullptr;
  int i = index_[(size_t)layer * kModuleCount + module];
  return i < 0 ? nullptr : &slots[i];
}

std::vector<ggml_tensor *> LoraParams::Tensors(LoraPart part) const {
  std::vector<ggml_tensor *> out;
  out.reserve(slots.size() * 2);
  for (const LoraSlot & s : slots) {
    switch (part) {
      case LoraPart::kParams: out.push_back(s.a); out.push_back(s.b); break;
      case LoraPart::kGrads: out.push_back(s.grad_a); out.push_back(s.grad_b); break;
      case LoraPart::kFirstMoment: out.push_back(s.m_a); out.push_back(s.m_b); break;
      case LoraPart::kSecondMoment: out.push_back(s.v_a); out.push_back(s.v_b); break;
    }
  }
  return out;
}

std::string LoraParams::Name(size_t i) const {
  const LoraSlot & s = slots[i / 2];
  return i % 2 == 0 ? ggml_get_name(s.a) : ggml_get_name(s.b);
}

void LoraParams::ZeroGrads() {
  for (ggml_tensor * t : Tensors(LoraPart::kGrads)) ggml_backend_tensor_memset(t, 0, 0, ggml_nbytes(t));
}

void LoraParams::ZeroMoments() {
  for (ggml_tensor * t : Tensors(LoraPart::kFirstMoment)) ggml_backend_tensor_memset(t, 0, 0, ggml_nbytes(t));
  for (ggml_tensor * t : Tensors(LoraPart::kSecondMoment)) ggml_backend_tensor_memset(t, 0, 0, ggml_nbytes(t));
}

}  // namespace sr3

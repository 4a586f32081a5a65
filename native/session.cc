#include "session.h"

#include "addon_data.h"
#include "common.h"
#include "generate.h"
#include "model.h"

#include <algorithm>
#include <thread>

namespace sr3 {

// ---- LoRA adapters -------------------------------------------------------------------------------

class LoadLoraWorker : public PromiseWorker {
 public:
  LoadLoraWorker(Napi::Env env, Napi::Object model, std::string path)
      : PromiseWorker(env), model_(ModelWrap::Unwrap(model)), llama_model_(model_->model()), path_(std::move(path)) {
    model_ref_ = Napi::Persistent(model);
    model_->users++;  // held from now so the model cannot be disposed under the worker
  }

 protected:
  void Run() override {
    ClearRecentLlamaErrors();
    adapter_ = llama_adapter_lora_init(llama_model_, path_.c_str());
    if (!adapter_) {
      std::string why = RecentLlamaErrors();
      throw NativeError("ERR_MODEL", "llama.cpp could not load the LoRA adapter " + path_ + (why.empty() ? "" : ": " + why));
    }
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object obj = GetAddonData(env)->lora_ctor.New({});
    LoraWrap * w = LoraWrap::Unwrap(obj);
    w->adapter = adapter_;
    w->owner = model_;
    w->model_ref = Napi::Persistent(model_ref_.Value());
    adapter_ = nullptr;
    handed_over_ = true;
    return obj;
  }
  ~LoadLoraWorker() override {
    if (adapter_) llama_adapter_lora_free(adapter_);
    if (!handed_over_) model_->users--;
  }

 private:
  ModelWrap * model_;
  llama_model * llama_model_;
  bool handed_over_ = false;
  Napi::ObjectReference model_ref_;
  std::string path_;
  llama_adapter_lora * adapter_ = nullptr;
};

Napi::Function LoraWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeLora", {
      InstanceMethod<&LoraWrap::Meta>("meta"),
      InstanceMethod<&LoraWrap::Dispose>("dispose"),
  });
}

Napi::Value LoraWrap::Load(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  Napi::Object model = GetObject(info[0], "model");
  if (!model.InstanceOf(GetAddonData(env)->model_ctor.Value())) throw Napi::TypeError::New(env, "Expected NativeModel for model");
  ModelWrap::Unwrap(model)->Checked(env);
  auto * w = new LoadLoraWorker(env, model, GetString(info[1], "path"));
  w->Queue();
  return w->Promise();
}

void LoraWrap::Free() {
  if (adapter) {
    llama_adapter_lora_free(adapter);
    adapter = nullptr;
    owner->users--;
    model_ref.Reset();
  }
}

LoraWrap::~LoraWrap() { Free(); }

Napi::Value LoraWrap::Meta(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  if (!adapter) throw MakeError(env, "ERR_DISPOSED", "the LoRA adapter was disposed");
  Napi::Object o = Napi::Object::New(env);
  const int32_t n = llama_adapter_meta_count(adapter);
  std::vector<char> key(256), val(4096);
  for (int32_t i = 0; i < n; i++) {
    if (llama_adapter_meta_key_by_index(adapter, i, key.data(), key.size()) < 0) continue;
    if (llama_adapter_meta_val_str_by_index(adapter, i, val.data(), val.size()) < 0) continue;
    o.Set(key.data(), val.data());
  }
  return o;
}

Napi::Value LoraWrap::Dispose(const Napi::CallbackInfo & info) {
  if (attached.load() > 0) throw MakeError(info.Env(), "ERR_BUSY", "the LoRA adapter is attached to a session; detach it first");
  Free();
  return info.Env().Undefined();
}

// ---- sessions ------------------------------------------------------------------------------------

namespace {

struct SessionArgs {
  uint32_t sequences = 1;
  uint32_t context = 2048;
  uint32_t batch = 512;
  int32_t threads = 0;
  int32_t threads_batch = 0;
  bool kv_unified = false;
  int32_t flash_attn = -1;  // llama_flash_attn_type: -1 auto, 0 off, 1 on
  int32_t cache_type = GGML_TYPE_F16;  // ggml_type of the K and V caches
};

}  // namespace

void CpuThreadPools::Attach(llama_context * ctx, int32_t threads, int32_t threads_batch) {
  ggml_threadpool_params params = ggml_threadpool_params_default(threads);
  gen = ggml_threadpool_new(&params);
  if (threads_batch == threads) {
    batch = gen;
  } else if (gen) {
    params = ggml_threadpool_params_default(threads_batch);
    batch = ggml_threadpool_new(&params);
  }
  if (!gen || !batch) {
    Free();
    throw NativeError("ERR_NATIVE", "ggml could not start its CPU thread pool (" + std::to_string(threads) + " threads)");
  }
  llama_attach_threadpool(ctx, gen, batch);
}

void CpuThreadPools::Free() {
  if (batch && batch != gen) ggml_threadpool_free(batch);
  if (gen) ggml_threadpool_free(gen);
  gen = batch = nullptr;
}

class CreateSessionWorker : public PromiseWorker {
 public:
  CreateSessionWorker(Napi::Env env, Napi::Object model, SessionArgs args)
      : PromiseWorker(env), model_(ModelWrap::Unwrap(model)), args_(args) {
    model_ref_ = Napi::Persistent(model);
    model_->users++;  // held from now so the model cannot be disposed under the worker
  }

 protected:
  void Run() override {
    llama_context_params p = llama_context_default_params();
    p.n_ctx = args_.context;
    p.n_batch = args_.batch;
    p.n_ubatch = args_.batch;
    p.n_seq_max = args_.sequences;
    const int32_t hw = (int32_t)std::max(1u, std::thread::hardware_concurrency());
    p.n_threads = args_.threads > 0 ? args_.threads : hw;
    p.n_threads_batch = args_.threads_batch > 0 ? args_.threads_batch : p.n_threads;
    p.kv_unified = args_.kv_unified;
    p.flash_attn_type = (llama_flash_attn_type)args_.flash_attn;
    p.type_k = (ggml_type)args_.cache_type;
    p.type_v = (ggml_type)args_.cache_type;
    p.embeddings = false;
    p.pooling_type = LLAMA_POOLING_TYPE_NONE;
    p.no_perf = true;
    ClearRecentLlamaErrors();
    if (llama_model_n_layer(model_->model()) == 0) {
      throw NativeError("ERR_MODEL", "the model was loaded with vocabOnly; load its weights to create a session");
    }
    // llama.cpp caps the batch at the context size, and aborts (n_outputs_max assertion) when that
    // batch cannot hold one output per sequence; the scheduler needs two tokens per sequence.
    if (std::min(args_.context, args_.batch) < 2 * args_.sequences) {
      throw NativeError("ERR_CONTEXT", "contextSize " + std::to_string(args_.context) + " is too small for " +
                                           std::to_string(args_.sequences) + " sequences; use at least " +
                                           std::to_string(2 * args_.sequences));
    }
    ctx_ = llama_init_from_model(model_->model(), p);
    if (!ctx_) {
      std::string why = RecentLlamaErrors();
      throw NativeError("ERR_NATIVE", "llama.cpp could not create a context" + (why.empty() ? "" : ": " + why));
    }
    pools_.Attach(ctx_, p.n_threads, p.n_threads_batch);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object obj = GetAddonData(env)->session_ctor.New({});
    SessionWrap * s = SessionWrap::Unwrap(obj);
    s->ctx = ctx_;
    s->owner = model_;
    s->model_ref = Napi::Persistent(model_ref_.Value());
    s->pools = pools_;
    s->seqs.resize(llama_n_seq_max(ctx_));
    llama_set_abort_callback(ctx_, OperationGate::AbortRequested, &s->gate.abort_flag);
    ctx_ = nullptr;
    pools_ = {};
    handed_over_ = true;
    return obj;
  }
  ~CreateSessionWorker() override {
    if (ctx_) llama_free(ctx_);
    pools_.Free();
    if (!handed_over_) model_->users--;
  }

 private:
  ModelWrap * model_;
  Napi::ObjectReference model_ref_;
  SessionArgs args_;
  llama_context * ctx_ = nullptr;
  CpuThreadPools pools_;
  bool handed_over_ = false;
};

Napi::Function SessionWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeSession", {
      InstanceMethod<&SessionWrap::Run>("run"),
      InstanceMethod<&SessionWrap::Evaluate>("evaluate"),
      InstanceMethod<&SessionWrap::SetLoras>("setLoras"),
      InstanceMethod<&SessionWrap::Abort>("abort"),
      InstanceMethod<&SessionWrap::Info>("info"),
      InstanceMethod<&SessionWrap::SeqOpen>("seqOpen"),
      InstanceMethod<&SessionWrap::SeqFork>("seqFork"),
      InstanceMethod<&SessionWrap::SeqFree>("seqFree"),
      InstanceMethod<&SessionWrap::SeqRun>("seqRun"),
      InstanceMethod<&SessionWrap::Dispose>("dispose"),
  });
}

Napi::Value SessionWrap::Create(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  Napi::Object model = GetObject(info[0], "model");
  if (!model.InstanceOf(GetAddonData(env)->model_ctor.Value())) throw Napi::TypeError::New(env, "Expected NativeModel for model");
  ModelWrap::Unwrap(model)->Checked(env);
  Napi::Object o = GetObject(info[1], "options");
  SessionArgs a;
  a.sequences = (uint32_t)OptInt(o, "sequences", 1, 1, 256);
  a.context = (uint32_t)OptInt(o, "contextSize", 2048, 16, 1 << 24);
  a.batch = (uint32_t)OptInt(o, "batchSize", 512, 2 * a.sequences, 1 << 16);
  a.threads = (int32_t)OptInt(o, "threads", 0, 0, 1024);
  a.threads_batch = (int32_t)OptInt(o, "threadsBatch", 0, 0, 1024);
  a.kv_unified = OptBool(o, "kvUnified", false);
  a.flash_attn = (int32_t)OptInt(o, "flashAttention", -1, -1, 1);
  a.cache_type = (int32_t)OptInt(o, "cacheType", GGML_TYPE_F16, 0, GGML_TYPE_COUNT - 1);
  if (a.cache_type != GGML_TYPE_F16 && a.cache_type != GGML_TYPE_F32) {
    throw Napi::RangeError::New(env, "Expected the ggml type of F16 or F32 for cacheType but received " + std::to_string(a.cache_type));
  }
  auto * w = new CreateSessionWorker(env, model, a);
  w->Queue();
  return w->Promise();
}

void SessionWrap::Acquire(Napi::Env env) { gate.Acquire(env, ctx != nullptr, "session"); }

void SessionWrap::Release() {
  for (size_t i = 0; i < seqs.size(); i++) {
    seqs[i].borrowed = false;
    if (seqs[i].free_pending) FreeSlot((llama_seq_id)i);
  }
  if (gate.Release()) Free();
}

std::vector<llama_seq_id> SessionWrap::BorrowFreeSlots(Napi::Env env, const char * what) {
  std::vector<llama_seq_id> ids;
  for (size_t i = 0; i < seqs.size(); i++) {
    if (!seqs[i].open && !seqs[i].borrowed) ids.push_back((llama_seq_id)i);
  }
  if (ids.empty()) {
    throw MakeError(env, "ERR_BUSY", std::string(what) + " needs a free sequence slot, but all " + std::to_string(seqs.size()) +
                                         " of the session's sequences are held by open sequences; dispose one first");
  }
  for (llama_seq_id id : ids) seqs[id].borrowed = true;
  return ids;
}

void SessionWrap::Free() {
  for (LoraWrap * l : loras_) l->attached--;
  loras_.clear();
  lora_refs_.clear();
  seqs.clear();
  if (ctx) {
    llama_free(ctx);
    pools.Free();  // after the context that computed on them
    ctx = nullptr;
    owner->users--;
    model_ref.Reset();
  }
}

SessionWrap::~SessionWrap() { Free(); }

namespace {

class RunWorker : public PromiseWorker {
 public:
  RunWorker(Napi::Env env, SessionWrap * s, Napi::Object self, std::vector<GenRequest> reqs, std::vector<llama_seq_id> slots)
      : PromiseWorker(env), s_(s), reqs_(std::move(reqs)), slots_(std::move(slots)) {
    self_ = Napi::Persistent(self);
  }

 protected:
  void Run() override { results_ = RunGeneration(s_->ctx, reqs_, slots_, s_->gate.abort_flag, &stats_); }
  void Finally() override { s_->Release(); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Array out = Napi::Array::New(env, results_.size());
    for (size_t i = 0; i < results_.size(); i++) {
      const GenResult & r = results_[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("request", r.request);
      o.Set("copy", r.copy);
      o.Set("promptTokens", r.prompt_tokens);
      Napi::Int32Array toks = Napi::Int32Array::New(env, r.tokens.size());
      std::copy(r.tokens.begin(), r.tokens.end(), toks.Data());
      o.Set("tokens", toks);
      if (reqs_[r.request].logprobs) {
        Napi::Float32Array lp = Napi::Float32Array::New(env, r.logprobs.size());
        std::copy(r.logprobs.begin(), r.logprobs.end(), lp.Data());
        o.Set("logprobs", lp);
      } else {
        o.Set("logprobs", env.Null());
      }
      o.Set("text", Napi::String::New(env, r.text));
      o.Set("finish", FinishName(r.finish));
      o.Set("embedForced", r.embed_forced);
      if (r.embedding.empty()) {
        o.Set("embedding", env.Null());
      } else {
        Napi::Float32Array e = Napi::Float32Array::New(env, r.embedding.size());
        std::copy(r.embedding.begin(), r.embedding.end(), e.Data());
        o.Set("embedding", e);
      }
      out.Set(i, o);
    }
    Napi::Object res = Napi::Object::New(env);
    res.Set("results", out);
    res.Set("stats", StatsObject(env, stats_));
    return res;
  }

 private:
  SessionWrap * s_;
  Napi::ObjectReference self_;
  std::vector<GenRequest> reqs_;
  std::vector<llama_seq_id> slots_;
  std::vector<GenResult> results_;
  GenStats stats_;
};

class EvaluateWorker : public PromiseWorker {
 public:
  EvaluateWorker(Napi::Env env, SessionWrap * s, Napi::Object self, std::vector<llama_token> tokens, bool logits, llama_seq_id seq)
      : PromiseWorker(env), s_(s), tokens_(std::move(tokens)), want_logits_(logits), seq_(seq) {
    self_ = Napi::Persistent(self);
  }

 protected:
  void Run() override { EvaluateAll(s_->ctx, tokens_, seq_, want_logits_, &logits_, &embd_, s_->gate.abort_flag); }
  void Finally() override { s_->Release(); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    Napi::Float32Array e = Napi::Float32Array::New(env, embd_.size());
    std::copy(embd_.begin(), embd_.end(), e.Data());
    o.Set("embeddings", e);
    if (want_logits_) {
      Napi::Float32Array l = Napi::Float32Array::New(env, logits_.size());
      std::copy(logits_.begin(), logits_.end(), l.Data());
      o.Set("logits", l);
    } else {
      o.Set("logits", env.Null());
    }
    return o;
  }

 private:
  SessionWrap * s_;
  Napi::ObjectReference self_;
  std::vector<llama_token> tokens_;
  bool want_logits_;
  llama_seq_id seq_;
  std::vector<float> logits_, embd_;
};

}  // namespace

Napi::Object StatsObject(Napi::Env env, const GenStats & stats) {
  Napi::Object st = Napi::Object::New(env);
  st.Set("promptTokens", (double)stats.prompt_tokens);
  st.Set("generatedTokens", (double)stats.generated_tokens);
  st.Set("decodeCalls", (double)stats.decode_calls);
  st.Set("promptMs", stats.prompt_ms);
  st.Set("generateMs", stats.generate_ms);
  return st;
}

void ParseSampling(const Napi::Object & o, const Napi::Value & v, GenRequest & r) {
  r.max_tokens = (int32_t)OptInt(o, "maxTokens", 0, 0, 1 << 24);
  r.sampling.temperature = (float)OptNumber(o, "temperature", 0.0);
  r.sampling.top_k = (int32_t)OptInt(o, "topK", 0, 0, 1 << 24);
  r.sampling.top_p = (float)OptNumber(o, "topP", 1.0);
  r.sampling.min_p = (float)OptNumber(o, "minP", 0.0);
  r.sampling.seed = (uint32_t)OptInt(o, "seed", 0, 0, 0xFFFFFFFFll);
  if (!o.Get("stopTokens").IsUndefined()) r.stop_tokens = GetInt32Array(o.Get("stopTokens"), "stopTokens");
  Napi::Value ss = o.Get("stopStrings");
  if (!ss.IsUndefined()) {
    if (!ss.IsArray()) throw Napi::TypeError::New(v.Env(), "Expected string[] for stopStrings");
    Napi::Array a = ss.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) r.stop_strings.push_back(GetString(a.Get(i), "stopStrings[i]"));
  }
  r.logprobs = OptBool(o, "logprobs", false);
  r.ignore_eog = OptBool(o, "ignoreEog", false);
}

namespace {

GenRequest ParseRequest(const Napi::Value & v, size_t index) {
  const std::string name = "requests[" + std::to_string(index) + "]";
  Napi::Object o = GetObject(v, name.c_str());
  GenRequest r;
  r.prompt = GetInt32Array(o.Get("prompt"), "prompt");
  r.copies = (int32_t)OptInt(o, "copies", 1, 1, 256);
  ParseSampling(o, v, r);
  r.embed_token = (int32_t)OptInt(o, "embedToken", -1, -1, INT32_MAX);
  r.embed_on_stop = OptBool(o, "embedOnStop", false);
  r.embed_prompt_last = OptBool(o, "embedPromptLast", false);
  return r;
}

}  // namespace

// run(requests) -> Promise<{ results, stats }>
Napi::Value SessionWrap::Run(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "Expected array for requests");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<GenRequest> reqs;
  for (uint32_t i = 0; i < arr.Length(); i++) reqs.push_back(ParseRequest(arr.Get(i), i));
  Acquire(env);
  std::vector<llama_seq_id> slots;
  try {
    slots = BorrowFreeSlots(env, "run");
  } catch (...) {
    Release();
    throw;
  }
  auto * w = new RunWorker(env, this, Value(), std::move(reqs), std::move(slots));
  w->Queue();
  return w->Promise();
}

// evaluate(tokens, wantLogits) -> Promise<{ logits, embeddings }>
Napi::Value SessionWrap::Evaluate(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  std::vector<int32_t> tokens = GetInt32Array(info[0], "tokens");
  bool logits = GetBool(info[1], "wantLogits");
  Acquire(env);
  llama_seq_id seq = 0;
  try {
    seq = BorrowFreeSlots(env, "evaluate")[0];
  } catch (...) {
    Release();
    throw;
  }
  auto * w = new EvaluateWorker(env, this, Value(), std::move(tokens), logits, seq);
  w->Queue();
  return w->Promise();
}

// setLoras(loras: NativeLora[], scales: number[])
Napi::Value SessionWrap::SetLoras(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || !info[1].IsArray()) throw Napi::TypeError::New(env, "Expected (NativeLora[], number[]) for setLoras");
  Napi::Array la = info[0].As<Napi::Array>(), sa = info[1].As<Napi::Array>();
  if (la.Length() != sa.Length()) throw Napi::RangeError::New(env, "setLoras needs one scale per adapter");
  std::vector<LoraWrap *> next;
  std::vector<llama_adapter_lora *> ptrs;
  std::vector<float> scales;
  for (uint32_t i = 0; i < la.Length(); i++) {
    Napi::Object lo = GetObject(la.Get(i), "loras[i]");
    if (!lo.InstanceOf(GetAddonData(env)->lora_ctor.Value())) throw Napi::TypeError::New(env, "Expected NativeLora in loras");
    LoraWrap * l = LoraWrap::Unwrap(lo);
    if (!l->adapter) throw MakeError(env, "ERR_DISPOSED", "the LoRA adapter was disposed");
    if (l->owner != owner) throw MakeError(env, "ERR_MODEL", "the LoRA adapter was loaded for another model");
    next.push_back(l);
    ptrs.push_back(l->adapter);
    scales.push_back((float)GetNumber(sa.Get(i), "scales[i]"));
  }
  Acquire(env);
  int32_t rc = llama_set_adapters_lora(ctx, ptrs.data(), ptrs.size(), scales.data());
  if (rc == 0) {
    for (LoraWrap * l : loras_) l->attached--;
    for (LoraWrap * l : next) l->attached++;
    loras_ = next;
    lora_refs_.clear();
    for (uint32_t i = 0; i < la.Length(); i++) lora_refs_.push_back(Napi::Persistent(la.Get(i).As<Napi::Object>()));
  }
  Release();
  if (rc != 0) throw MakeError(env, "ERR_NATIVE", "llama.cpp refused the LoRA adapters (code " + std::to_string(rc) + ")");
  return env.Undefined();
}

Napi::Value SessionWrap::Abort(const Napi::CallbackInfo & info) {
  gate.abort_flag.store(true);
  return info.Env().Undefined();
}

Napi::Value SessionWrap::Info(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  if (!ctx) throw MakeError(env, "ERR_DISPOSED", "the session was disposed");
  Napi::Object o = Napi::Object::New(env);
  o.Set("contextSize", llama_n_ctx(ctx));
  o.Set("contextPerSequence", llama_n_ctx_seq(ctx));
  o.Set("sequences", llama_n_seq_max(ctx));
  o.Set("batchSize", llama_n_batch(ctx));
  o.Set("threads", llama_n_threads(ctx));
  o.Set("threadsBatch", llama_n_threads_batch(ctx));
  // Read from llama.cpp's memory, not from our bookkeeping, so a leak would show. Not while an
  // operation runs: the worker owns the memory then.
  int32_t open = 0;
  for (const SeqSlot & s : seqs) open += s.open && !s.free_pending;
  o.Set("openSequences", open);
  if (gate.Busy()) {
    o.Set("cachedTokens", env.Null());
  } else {
    llama_memory_t mem = llama_get_memory(ctx);
    double cached = 0;
    for (size_t i = 0; i < seqs.size(); i++) {
      const llama_pos lo = llama_memory_seq_pos_min(mem, (llama_seq_id)i), hi = llama_memory_seq_pos_max(mem, (llama_seq_id)i);
      if (hi >= 0) cached += hi - lo + 1;
    }
    o.Set("cachedTokens", cached);
  }
  return o;
}

Napi::Value SessionWrap::Dispose(const Napi::CallbackInfo & info) {
  // Frees now, or once the running operation (asked to stop early) ends.
  if (gate.RequestDispose()) Free();
  return info.Env().Undefined();
}

}  // namespace sr3

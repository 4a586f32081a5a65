#include "train/trainer_wrap.h"

#include "addon_data.h"
#include "common.h"

#include <cstdint>
#include <functional>
#include <limits>
#include <thread>

namespace sr3 {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// A worker made of two closures: `work` runs off the JS thread, `result` builds the value.
class TrainerJob : public PromiseWorker {
 public:
  TrainerJob(Napi::Env env, TrainerWrap * w, Napi::Object self, std::function<void()> work,
             std::function<Napi::Value(Napi::Env)> result)
      : PromiseWorker(env), w_(w), work_(std::move(work)), result_(std::move(result)) {
    self_ = Napi::Persistent(self);
  }

 protected:
  void Run() override { work_(); }
  Napi::Value Result(Napi::Env env) override { return result_(env); }
  void Finally() override { w_->Release(); }

 private:
  TrainerWrap * w_;
  Napi::ObjectReference self_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
};

class CreateTrainerWorker : public PromiseWorker {
 public:
  CreateTrainerWorker(Napi::Env env, std::string path, LoraConfig config, int threads, bool transposed)
      : PromiseWorker(env), path_(std::move(path)), config_(config), threads_(threads), transposed_(transposed) {}

 protected:
  void Run() override { trainer_ = std::make_unique<Trainer>(path_, config_, threads_, transposed_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object obj = GetAddonData(env)->trainer_ctor.New({});
    TrainerWrap::Unwrap(obj)->trainer = std::move(trainer_);
    return obj;
  }

 private:
  std::string path_;
  LoraConfig config_;
  int threads_;
  bool transposed_;
  std::unique_ptr<Trainer> trainer_;
};

Napi::Float32Array ToJs(Napi::Env env, const std::vector<float> & v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

std::vector<int32_t> OptInt32Array(const Napi::Object & o, const char * key) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? std::vector<int32_t>() : GetInt32Array(v, key);
}

TrainBatch ReadBatch(const Napi::Value & v) {
  Napi::Object o = GetObject(v, "batch");
  TrainBatch b;
  b.n_seq = (int)GetInt(o.Get("nSeq"), "batch.nSeq", 1, 1 << 16);
  b.n_len = (int)GetInt(o.Get("nLen"), "batch.nLen", 1, 1 << 20);
  b.tokens = GetInt32Array(o.Get("tokens"), "batch.tokens");
  b.embed_rows = OptInt32Array(o, "embedRows");
  b.target_rows = OptInt32Array(o, "targetRows");
  b.target_tokens = OptInt32Array(o, "targetTokens");
  return b;
}

LossSpec ReadLoss(const Napi::Value & v) {
  Napi::Object o = GetObject(v, "loss");
  LossSpec s;
  auto part = [&](const char * key) -> Napi::Object {
    Napi::Value p = o.Get(key);
    return p.IsUndefined() ? Napi::Object() : GetObject(p, key);
  };
  if (Napi::Object p = part("sft"); !p.IsEmpty()) {
    s.w[kLossSft] = (float)GetNumber(p.Get("weight"), "sft.weight");
    s.sft_w = GetFloat32Array(p.Get("rowWeights"), "sft.rowWeights");
  }
  if (Napi::Object p = part("kl"); !p.IsEmpty()) {
    s.w[kLossKl] = (float)GetNumber(p.Get("weight"), "kl.weight");
    s.kl_w = GetFloat32Array(p.Get("rowWeights"), "kl.rowWeights");
  }
  if (Napi::Object p = part("infonce"); !p.IsEmpty()) {
    s.w[kLossInfoNce] = (float)GetNumber(p.Get("weight"), "infonce.weight");
    s.temperature = (float)GetNumberIn(p.Get("temperature"), "infonce.temperature", 0, kInf, true, true);
    s.nce_q = GetInt32Array(p.Get("queries"), "infonce.queries");
    s.nce_c = GetInt32Array(p.Get("candidates"), "infonce.candidates");
    s.nce_label = GetInt32Array(p.Get("labels"), "infonce.labels");
    // The loss picks each query's label from a flattened [candidates x queries] matrix of int32 rows.
    if ((int64_t)s.nce_q.size() * (int64_t)s.nce_c.size() > INT32_MAX) {
      throw Napi::RangeError::New(p.Env(), "Expected infonce.queries x infonce.candidates below 2^31 but received " +
                                               std::to_string(s.nce_q.size()) + " x " + std::to_string(s.nce_c.size()));
    }
  }
  if (Napi::Object p = part("triplet"); !p.IsEmpty()) {
    s.w[kLossTriplet] = (float)GetNumber(p.Get("weight"), "triplet.weight");
    s.margin = (float)GetNumberIn(p.Get("margin"), "triplet.margin", 0, kInf, false, true);
    s.tri_a = GetInt32Array(p.Get("anchors"), "triplet.anchors");
    s.tri_p = GetInt32Array(p.Get("positives"), "triplet.positives");
    s.tri_n = GetInt32Array(p.Get("negatives"), "triplet.negatives");
  }
  if (Napi::Object p = part("grpo"); !p.IsEmpty()) {
    s.w[kLossGrpo] = (float)GetNumber(p.Get("weight"), "grpo.weight");
    s.grpo_w = GetFloat32Array(p.Get("rowWeights"), "grpo.rowWeights");
    s.grpo_adv = GetFloat32Array(p.Get("advantages"), "grpo.advantages");
    s.grpo_old = GetFloat32Array(p.Get("logpOld"), "grpo.logpOld");
    // 1 - epsLow must stay positive: the ratio is clipped to [1 - epsLow, 1 + epsHigh].
    s.eps_low = (float)GetNumberIn(p.Get("epsLow"), "grpo.epsLow", 0, 1, false, true);
    s.eps_high = (float)GetNumberIn(p.Get("epsHigh"), "grpo.epsHigh", 0, kInf, false, true);
    s.grpo_kl = (float)GetNumberIn(p.Get("klCoef"), "grpo.klCoef", 0, kInf, false, true);
  }
  return s;
}

// The adapted modules, by the names TS's LORA_MODULES lists; each must be a module this trainer knows.
uint32_t ReadTargets(const Napi::Value & v) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() == 0) {
    throw Napi::TypeError::New(v.Env(), "Expected a non-empty array of module names for targets");
  }
  Napi::Array list = v.As<Napi::Array>();
  std::string known;
  for (int m = 0; m < kTargetCount; m++) known += std::string(m ? ", " : "") + TrainModuleName(m);
  uint32_t modules = 0;
  for (uint32_t i = 0; i < list.Length(); i++) {
    std::string name = GetString(list.Get(i), "targets[i]");
    int m = 0;
    while (m < kTargetCount && name != TrainModuleName(m)) m++;
    if (m == kTargetCount) throw Napi::RangeError::New(v.Env(), "Expected one of " + known + " for targets[" + std::to_string(i) + "] but received '" + name + "'");
    if (modules & (1u << m)) throw Napi::RangeError::New(v.Env(), "Expected each module once in targets but received '" + name + "' twice");
    modules |= 1u << m;
  }
  return modules;
}

LoraPart ReadPart(const Napi::Value & v) {
  std::string p = GetString(v, "part");
  if (p == "params") return LoraPart::kParams;
  if (p == "grads") return LoraPart::kGrads;
  if (p == "m") return LoraPart::kFirstMoment;
  if (p == "v") return LoraPart::kSecondMoment;
  throw Napi::RangeError::New(v.Env(), "Expected 'params', 'grads', 'm' or 'v' for part but received '" + p + "'");
}

}  // namespace

Napi::Function TrainerWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeTrainer", {
      InstanceMethod<&TrainerWrap::Info>("info"),
      InstanceMethod<&TrainerWrap::Forward>("forward"),
      InstanceMethod<&TrainerWrap::Accumulate>("accumulate"),
      InstanceMethod<&TrainerWrap::Step>("step"),
      InstanceMethod<&TrainerWrap::GetTensors>("getTensors"),
      InstanceMethod<&TrainerWrap::SetTensors>("setTensors"),
      InstanceMethod<&TrainerWrap::SetStep>("setStep"),
      InstanceMethod<&TrainerWrap::ZeroGrads>("zeroGrads"),
      InstanceMethod<&TrainerWrap::Abort>("abort"),
      InstanceMethod<&TrainerWrap::Dispose>("dispose"),
  });
}

Napi::Value TrainerWrap::Create(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  std::string path = GetString(info[0], "path");
  Napi::Object o = GetObject(info[1], "options");
  LoraConfig c;
  c.rank = (int)GetInt(o.Get("rank"), "rank", 1, 4096);
  c.alpha = (float)GetNumber(o.Get("alpha"), "alpha");
  c.modules = ReadTargets(o.Get("targets"));
  c.seed = (uint64_t)GetInt(o.Get("seed"), "seed", 0, 0xFFFFFFFFll);
  int hw = (int)std::max(1u, std::thread::hardware_concurrency());
  int threads = (int)OptInt(o, "threads", hw, 1, 1024);
  bool transposed = GetBool(o.Get("transposedWeights"), "transposedWeights");
  auto * w = new CreateTrainerWorker(env, std::move(path), c, threads, transposed);
  w->Queue();
  return w->Promise();
}

void TrainerWrap::Acquire(Napi::Env env) {
  gate.Acquire(env, trainer != nullptr, "trainer");
  trainer->SetAbortFlag(&gate.abort_flag);
}

void TrainerWrap::Release() {
  if (gate.Release()) trainer.reset();
}

void TrainerWrap::CheckIdle(Napi::Env env) {
  if (!trainer || gate.DisposePending()) throw MakeError(env, "ERR_DISPOSED", "the trainer was disposed");
  if (gate.Busy()) throw MakeError(env, "ERR_BUSY", "the trainer is already running an operation; await it first");
}

Napi::Value TrainerWrap::Info(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  CheckIdle(env);
  const TrainHparams & hp = trainer->weights->hp;
  Napi::Object o = Napi::Object::New(env);
  o.Set("architecture", hp.arch_name);
  o.Set("nVocab", (double)hp.n_vocab);
  o.Set("nEmbd", (double)hp.n_embd);
  o.Set("nLayer", (double)hp.n_layer);
  o.Set("nHead", (double)hp.n_head);
  o.Set("nHeadKv", (double)hp.n_head_kv);
  o.Set("nFf", (double)hp.n_ff);
  o.Set("weightBytes", (double)trainer->weights->bytes);
  o.Set("transposedBytes", (double)trainer->weights->transposed_bytes);
  o.Set("loraParams", (double)trainer->lora->n_params);
  o.Set("rank", trainer->lora->config.rank);
  o.Set("alpha", trainer->lora->config.alpha);
  o.Set("step", (double)trainer->lora->step);
  o.Set("microBatches", (double)trainer->micro_batches);
  o.Set("threads", trainer->threads());
  return o;
}

Napi::Value TrainerWrap::Forward(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  TrainBatch batch = ReadBatch(info[0]);
  Napi::Object o = GetObject(info[1], "options");
  ForwardRequest req;
  req.lora = GetBool(o.Get("lora"), "lora");
  req.logits = GetBool(o.Get("logits"), "logits");
  req.hidden = GetBool(o.Get("hidden"), "hidden");
  req.logp = GetBool(o.Get("logp"), "logp");
  Acquire(env);
  auto result = std::make_shared<ForwardResult>();
  Trainer * t = trainer.get();
  auto * w = new TrainerJob(
      env, this, info.This().As<Napi::Object>(), [t, batch = std::move(batch), req, result] { *result = t->Forward(batch, req); },
      [result, req](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("logits", req.logits ? Napi::Value(ToJs(env, result->logits)) : env.Null());
        r.Set("hidden", req.hidden ? Napi::Value(ToJs(env, result->hidden)) : env.Null());
        r.Set("logp", req.logp ? Napi::Value(ToJs(env, result->logp)) : env.Null());
        return r;
      });
  w->Queue();
  return w->Promise();
}

Napi::Value TrainerWrap::Accumulate(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  TrainBatch batch = ReadBatch(info[0]);
  LossSpec spec = ReadLoss(info[1]);
  Acquire(env);
  auto result = std::make_shared<LossResult>();
  Trainer * t = trainer.get();
  auto * w = new TrainerJob(
      env, this, info.This().As<Napi::Object>(),
      [t, batch = std::move(batch), spec = std::move(spec), result] { *result = t->Accumulate(batch, spec); },
      [result](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("total", result->total);
        Napi::Object parts = Napi::Object::New(env);
        for (int p = 0; p < kLossPartCount; p++) {
          if (result->has[p]) parts.Set(LossPartName(p), result->parts[p]);
        }
        r.Set("parts", parts);
        r.Set("finite", result->finite);
        r.Set("logp", result->logp.empty() ? env.Null() : Napi::Value(ToJs(env, result->logp)));
        r.Set("seconds", result->seconds);
        return r;
      });
  w->Queue();
  return w->Promise();
}

Napi::Value TrainerWrap::Step(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  Napi::Object o = GetObject(info[0], "options");
  OptimSpec s;
  // Every value is required: the defaults live in TS (src/train/defaults.ts) and nowhere else.
  s.lr = (float)GetNumberIn(o.Get("lr"), "lr", 0, kInf, false, true);
  s.beta1 = (float)GetNumberIn(o.Get("beta1"), "beta1", 0, 1, false, true);
  s.beta2 = (float)GetNumberIn(o.Get("beta2"), "beta2", 0, 1, false, true);
  s.eps = (float)GetNumberIn(o.Get("eps"), "eps", 0, kInf, true, true);
  s.weight_decay = (float)GetNumberIn(o.Get("weightDecay"), "weightDecay", 0, kInf, false, true);
  s.clip_norm = (float)GetNumberIn(o.Get("clipNorm"), "clipNorm", 0, kInf, false, true);
  Acquire(env);
  auto result = std::make_shared<StepResult>();
  Trainer * t = trainer.get();
  auto * w = new TrainerJob(
      env, this, info.This().As<Napi::Object>(), [t, s, result] { *result = t->Step(s); },
      [result](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("gradNorm", result->grad_norm);
        r.Set("clipped", result->clipped);
        r.Set("step", (double)result->step);
        return r;
      });
  w->Queue();
  return w->Promise();
}

Napi::Value TrainerWrap::GetTensors(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  LoraPart part = ReadPart(info[0]);
  CheckIdle(env);
  const LoraParams & lora = *trainer->lora;
  std::vector<ggml_tensor *> ts = lora.Tensors(part);
  Napi::Array out = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", lora.Name(i));
    Napi::Array dims = Napi::Array::New(env, 2);
    dims.Set(0u, (double)ts[i]->ne[0]);
    dims.Set(1u, (double)ts[i]->ne[1]);
    o.Set("dims", dims);
    Napi::Float32Array data = Napi::Float32Array::New(env, ggml_nelements(ts[i]));
    ggml_backend_tensor_get(ts[i], data.Data(), 0, ggml_nbytes(ts[i]));
    o.Set("data", data);
    out.Set(i, o);
  }
  return out;
}

Napi::Value TrainerWrap::SetTensors(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  LoraPart part = ReadPart(info[0]);
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "Expected an array of { name, data } for tensors");
  Napi::Array list = info[1].As<Napi::Array>();
  CheckIdle(env);
  const LoraParams & lora = *trainer->lora;
  std::vector<ggml_tensor *> ts = lora.Tensors(part);
  if (list.Length() != ts.size()) {
    throw Napi::RangeError::New(env, "Expected " + std::to_string(ts.size()) + " tensors but received " + std::to_string(list.Length()));
  }
  // Check everything before writing anything, so a bad list leaves the trainer unchanged.
  std::vector<std::vector<float>> values(ts.size());
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Object o = GetObject(list.Get(i), "tensors[i]");
    std::string name = GetString(o.Get("name"), "tensors[i].name");
    if (name != lora.Name(i)) throw Napi::RangeError::New(env, "Expected tensor " + lora.Name(i) + " at index " + std::to_string(i) + " but received " + name);
    values[i] = GetFloat32Array(o.Get("data"), "tensors[i].data");
    if ((int64_t)values[i].size() != ggml_nelements(ts[i])) {
      throw Napi::RangeError::New(env, "Expected " + std::to_string(ggml_nelements(ts[i])) + " values for " + name + " but received " + std::to_string(values[i].size()));
    }
  }
  for (size_t i = 0; i < ts.size(); i++) ggml_backend_tensor_set(ts[i], values[i].data(), 0, ggml_nbytes(ts[i]));
  return env.Undefined();
}

Napi::Value TrainerWrap::SetStep(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  int64_t step = GetInt(info[0], "step", 0, (int64_t)1 << 40);
  CheckIdle(env);
  trainer->lora->step = step;
  return env.Undefined();
}

Napi::Value TrainerWrap::ZeroGrads(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  CheckIdle(env);
  trainer->lora->ZeroGrads();
  trainer->micro_batches = 0;
  return env.Undefined();
}

Napi::Value TrainerWrap::Abort(const Napi::CallbackInfo & info) {
  gate.abort_flag.store(true);
  return info.Env().Undefined();
}

Napi::Value TrainerWrap::Dispose(const Napi::CallbackInfo & info) {
  if (gate.RequestDispose()) trainer.reset();
  return info.Env().Undefined();
}

}  // namespace sr3

#include "train/trainer.h"

#include "common.h"

#include <ggml-cpu.h>

#include <chrono>
#include <cmath>
#include <limits>

namespace sr3 {

namespace {

struct ContextFree {
  void operator()(ggml_context * c) const { ggml_free(c); }
};
using ContextPtr = std::unique_ptr<ggml_context, ContextFree>;

std::vector<float> Read(const ggml_tensor * t) {
  std::vector<float> out(ggml_nelements(t));
  ggml_backend_tensor_get(t, out.data(), 0, ggml_nbytes(t));
  return out;
}

[[noreturn]] void Invalid(const std::string & message) { throw NativeError("ERR_INVALID", message); }

void CheckIndices(const std::vector<int32_t> & v, int64_t bound, const char * name, const char * what) {
  for (size_t i = 0; i < v.size(); i++) {
    if (v[i] < 0 || v[i] >= bound) {
      Invalid(std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(v[i]) + " is not a valid " + what +
              " (expected 0 to " + std::to_string(bound - 1) + ")");
    }
  }
}

void CheckLength(size_t got, size_t want, const char * name, const char * per) {
  if (got != want) {
    Invalid(std::string(name) + " has " + std::to_string(got) + " values but the batch has " + std::to_string(want) + " " + per);
  }
}

}  // namespace

Trainer::Trainer(const std::string & model_path, const LoraConfig & config, int threads, bool transposed) {
  backend_ = ggml_backend_cpu_init();
  if (!backend_) throw NativeError("ERR_NATIVE", "could not initialise ggml's CPU backend");
  try {
    threads_ = threads;
    ggml_backend_cpu_set_n_threads(backend_, threads);
    weights = std::make_unique<TrainWeights>(model_path, backend_, transposed, threads);
    lora = std::make_unique<LoraParams>(*weights, config, backend_);
    galloc_ = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend_));
    galloc_opt_ = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend_));
    BuildOptimizerGraph();
  } catch (...) {
    lora.reset();
    weights.reset();
    if (galloc_) ggml_gallocr_free(galloc_);
    if (galloc_opt_) ggml_gallocr_free(galloc_opt_);
    if (ctx_opt_) ggml_free(ctx_opt_);
    ggml_backend_free(backend_);
    throw;
  }
}

Trainer::~Trainer() {
  ggml_gallocr_free(galloc_);
  ggml_gallocr_free(galloc_opt_);
  ggml_free(ctx_opt_);
  lora.reset();
  weights.reset();
  ggml_backend_free(backend_);
}

void Trainer::SetAbortFlag(std::atomic<bool> * flag) {
  abort_ = flag;
  ggml_backend_cpu_set_abort_callback(backend_, flag ? OperationGate::AbortRequested : nullptr, flag);
}

ggml_context * Trainer::NewContext() const {
  const size_t size = GraphSize(*weights);
  ggml_init_params p = {ggml_tensor_overhead() * size * 4 + ggml_graph_overhead_custom(size, true), nullptr, true};
  ggml_context * ctx = ggml_init(p);
  if (!ctx) throw NativeError("ERR_NATIVE", "out of memory creating a graph context");
  return ctx;
}

void Trainer::Compute(ggml_cgraph * graph, const GraphInputs & in, ggml_gallocr_t galloc, bool reset_grads) {
  if (!ggml_gallocr_alloc_graph(galloc, graph)) throw NativeError("ERR_NATIVE", "out of memory allocating the training graph");
  in.Upload();
  if (reset_grads) ggml_graph_reset(graph);  // seeds d(loss)/d(loss) = 1
  ggml_status status = ggml_backend_graph_compute(backend_, graph);
  if (status == GGML_STATUS_ABORTED) throw NativeError("ERR_ABORTED", "the training operation was aborted");
  if (status != GGML_STATUS_SUCCESS) throw NativeError("ERR_NATIVE", std::string("ggml compute failed: ") + ggml_status_to_string(status));
}

void Trainer::Validate(const TrainBatch & b) const {
  if (b.n_seq < 1 || b.n_len < 1) Invalid("a batch needs at least one sequence of at least one token");
  const size_t n = (size_t)b.n_seq * (size_t)b.n_len;
  CheckLength(b.tokens.size(), n, "tokens", "slots (sequences × length)");
  CheckIndices(b.tokens, weights->hp.n_vocab, "tokens", "token id");
  CheckIndices(b.embed_rows, (int64_t)n, "embedRows", "row");
  CheckIndices(b.target_rows, (int64_t)n, "targetRows", "row");
  CheckLength(b.target_tokens.size(), b.target_rows.size(), "targetTokens", "target rows");
  CheckIndices(b.target_tokens, weights->hp.n_vocab, "targetTokens", "token id");
  if ((double)b.target_rows.size() * (double)weights->hp.n_vocab >= (double)std::numeric_limits<int32_t>::max()) {
    Invalid("too many target rows in one batch (" + std::to_string(b.target_rows.size()) + " × " +
            std::to_string(weights->hp.n_vocab) + " vocabulary exceeds 2^31 log-probs); split it into micro-batches");
  }
}

void Trainer::Validate(const TrainBatch & b, const LossSpec & s) const {
  Validate(b);
  bool any = false;
  for (int p = 0; p < kLossPartCount - 1; p++) {
    if (!std::isfinite(s.w[p])) Invalid(std::string("the weight of the ") + LossPartName(p) + " loss is not finite");
    any = any || s.Uses(p);
  }
  if (!any) Invalid("no loss has a non-zero weight");
  const size_t m = b.target_rows.size();
  if (s.NeedsLogits() && m == 0) Invalid("a token-level loss needs at least one target row");
  if (s.Uses(kLossSft)) CheckLength(s.sft_w.size(), m, "sft.rowWeights", "target rows");
  if (s.Uses(kLossKl)) CheckLength(s.kl_w.size(), m, "kl.rowWeights", "target rows");
  const int64_t n_emb = (int64_t)b.embed_rows.size();
  if (s.Uses(kLossInfoNce)) {
    if (s.nce_q.empty() || s.nce_c.empty()) Invalid("infonce needs at least one query and one candidate");
    if (!(s.temperature > 0)) Invalid("infonce.temperature must be positive");
    CheckIndices(s.nce_q, n_emb, "infonce.queries", "embed row index");
    CheckIndices(s.nce_c, n_emb, "infonce.candidates", "embed row index");
    CheckLength(s.nce_label.size(), s.nce_q.size(), "infonce.labels", "queries");
    CheckIndices(s.nce_label, (int64_t)s.nce_c.size(), "infonce.labels", "candidate index");
  }
  if (s.Uses(kLossTriplet)) {
    if (s.tri_a.empty()) Invalid("triplet needs at least one triplet");
    CheckLength(s.tri_p.size(), s.tri_a.size(), "triplet.positives", "anchors");
    CheckLength(s.tri_n.size(), s.tri_a.size(), "triplet.negatives", "anchors");
    CheckIndices(s.tri_a, n_emb, "triplet.anchors", "embed row index");
    CheckIndices(s.tri_p, n_emb, "triplet.positives", "embed row index");
    CheckIndices(s.tri_n, n_emb, "triplet.negatives", "embed row index");
  }
  if (s.Uses(kLossGrpo)) {
    CheckLength(s.grpo_w.size(), m, "grpo.rowWeights", "target rows");
    CheckLength(s.grpo_adv.size(), m, "grpo.advantages", "target rows");
    CheckLength(s.grpo_old.size(), m, "grpo.logpOld", "target rows");
    if (!(s.eps_low >= 0 && s.eps_low < 1) || !(s.eps_high >= 0)) Invalid("grpo clip range must satisfy 0 <= epsLow < 1 and epsHigh >= 0");
  }
}

ForwardResult Trainer::Forward(const TrainBatch & batch, const ForwardRequest & req) {
  Validate(batch);
  if ((req.logits || req.logp) && batch.target_rows.empty()) Invalid("logits and logp need target rows");
  ContextPtr ctx(NewContext());
  GraphInputs in;
  ggml_cgraph * g = ggml_new_graph_custom(ctx.get(), GraphSize(*weights), false);
  const LoraParams * adapter = req.lora ? lora.get() : nullptr;
  ggml_tensor * hidden = BuildForward(ctx.get(), in, *weights, adapter, batch);
  ggml_tensor * logits = nullptr, * logp = nullptr, * rows = nullptr;
  if (req.hidden && !batch.embed_rows.empty()) {
    rows = ggml_get_rows(ctx.get(), hidden, in.I32(ctx.get(), batch.embed_rows, "embed_rows"));
    ggml_set_output(rows);
    ggml_build_forward_expand(g, rows);
  }
  if (req.logits || req.logp) {
    logits = BuildTargetLogits(ctx.get(), in, *weights, adapter, hidden, batch);
    ggml_set_output(logits);
    ggml_build_forward_expand(g, logits);
    if (req.logp) {
      logp = PickTargets(ctx.get(), in, LogSoftmax(ctx.get(), logits), batch);
      ggml_set_output(logp);
      ggml_build_forward_expand(g, logp);
    }
  }
  if (!rows && !logits) Invalid("nothing to compute: ask for hidden (with embed rows), logits or logp");
  RewriteForCpu(ctx.get(), g);
  Compute(g, in, galloc_, false);
  ForwardResult out;
  if (rows) out.hidden = Read(rows);
  if (logits && req.logits) out.logits = Read(logits);
  if (logp) out.logp = Read(logp);
  return out;
}

Reference Trainer::ComputeReference(const TrainBatch & batch, const LossSpec & spec) {
  Reference ref;
  if (!spec.NeedsReference()) return ref;
  ContextPtr ctx(NewContext());
  GraphInputs in;
  ggml_cgraph * g = ggml_new_graph_custom(ctx.get(), GraphSize(*weights), false);
  ggml_tensor * hidden = BuildForward(ctx.get(), in, *weights, nullptr, batch);
  ggml_tensor * lp_all = LogSoftmax(ctx.get(), BuildTargetLogits(ctx.get(), in, *weights, nullptr, hidden, batch));
  ggml_tensor * lp = PickTargets(ctx.get(), in, lp_all, batch);
  ggml_set_output(lp_all);
  ggml_set_output(lp);
  ggml_build_forward_expand(g, lp_all);
  ggml_build_forward_expand(g, lp);
  RewriteForCpu(ctx.get(), g);
  Compute(g, in, galloc_, false);
  if (spec.Uses(kLossKl)) ref.logprobs = Read(lp_all);
  ref.logp = Read(lp);
  return ref;
}

LossResult Trainer::Accumulate(const TrainBatch & batch, const LossSpec & spec) {
  Validate(batch, spec);
  const auto t0 = std::chrono::steady_clock::now();
  Reference ref = ComputeReference(batch, spec);

  ContextPtr ctx(NewContext());
  GraphInputs in;
  ggml_cgraph * g = ggml_new_graph_custom(ctx.get(), GraphSize(*weights), true);
  ggml_tensor * hidden = BuildForward(ctx.get(), in, *weights, lora.get(), batch);
  LossTensors loss = BuildLosses(ctx.get(), in, *weights, lora.get(), hidden, batch, spec, ref);
  ggml_set_loss(loss.total);
  ggml_set_output(loss.total);
  for (ggml_tensor * t : loss.parts) {
    if (t) ggml_set_output(t);
  }
  if (loss.logp) ggml_set_output(loss.logp);
  ggml_build_forward_expand(g, loss.total);
  if (loss.logp) ggml_build_forward_expand(g, loss.logp);
  ggml_build_backward_expand(ctx.get(), g, nullptr);
  RewriteOutProducts(ctx.get(), g, *weights);
  RewriteForCpu(ctx.get(), g);
  const std::vector<ggml_tensor *> params = lora->Tensors(LoraPart::kParams);
  std::vector<ggml_tensor *> grads(params.size());
  for (size_t i = 0; i < params.size(); i++) {
    grads[i] = ggml_graph_get_grad(g, params[i]);
    if (grads[i]) ggml_set_output(grads[i]);
  }
  Compute(g, in, galloc_, true);

  LossResult out;
  out.total = Read(loss.total)[0];
  for (int p = 0; p < kLossPartCount; p++) {
    if (!loss.parts[p]) continue;
    out.has[p] = true;
    out.parts[p] = Read(loss.parts[p])[0];
  }
  if (loss.logp) out.logp = Read(loss.logp);
  out.finite = std::isfinite(out.total);
  std::vector<std::vector<float>> values(params.size());
  for (size_t i = 0; i < params.size() && out.finite; i++) {
    if (!grads[i]) continue;
    values[i] = Read(grads[i]);
    for (float v : values[i]) {
      if (!std::isfinite(v)) {
        out.finite = false;
        break;
      }
    }
  }
  if (out.finite) {
    const std::vector<ggml_tensor *> accs = lora->Tensors(LoraPart::kGrads);
    for (size_t i = 0; i < params.size(); i++) {
      if (values[i].empty()) continue;
      std::vector<float> acc = Read(accs[i]);
      for (size_t j = 0; j < acc.size(); j++) acc[j] += values[i][j];
      ggml_backend_tensor_set(accs[i], acc.data(), 0, ggml_nbytes(accs[i]));
    }
    micro_batches++;
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

void Trainer::BuildOptimizerGraph() {
  const std::vector<ggml_tensor *> params = lora->Tensors(LoraPart::kParams);
  const std::vector<ggml_tensor *> grads = lora->Tensors(LoraPart::kGrads);
  const std::vector<ggml_tensor *> m = lora->Tensors(LoraPart::kFirstMoment);
  const std::vector<ggml_tensor *> v = lora->Tensors(LoraPart::kSecondMoment);
  const size_t size = params.size() * 5 + 16;  // each step: the parameter, its update and three leaves
  ggml_init_params p = {ggml_tensor_overhead() * size + ggml_graph_overhead_custom(size, false), nullptr, true};
  ctx_opt_ = ggml_init(p);
  if (!ctx_opt_) throw NativeError("ERR_NATIVE", "out of memory creating the optimizer graph");
  graph_opt_ = ggml_new_graph_custom(ctx_opt_, size, false);
  for (size_t i = 0; i < params.size(); i++) {
    ggml_build_forward_expand(graph_opt_, ggml_opt_step_adamw(ctx_opt_, params[i], grads[i], m[i], v[i], lora->adamw_params));
  }
  if (!ggml_gallocr_alloc_graph(galloc_opt_, graph_opt_)) throw NativeError("ERR_NATIVE", "could not allocate the optimizer graph");
}

StepResult Trainer::Step(const OptimSpec & o) {
  if (!(o.lr >= 0) || !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || !(o.eps > 0) ||
      !(o.weight_decay >= 0) || !(o.clip_norm >= 0)) {
    Invalid("optimizer settings out of range (need lr >= 0, 0 <= beta < 1, eps > 0, weightDecay >= 0, clipNorm >= 0)");
  }
  if (micro_batches == 0) throw NativeError("ERR_TRAIN", "step() without accumulated gradients; call accumulate() first");
  const double scale = 1.0 / (double)micro_batches;  // the mean over micro-batches
  const std::vector<ggml_tensor *> accs = lora->Tensors(LoraPart::kGrads);
  std::vector<std::vector<float>> g(accs.size());
  double sq = 0;
  for (size_t i = 0; i < accs.size(); i++) {
    g[i] = Read(accs[i]);
    for (float & x : g[i]) {
      x = (float)(x * scale);
      sq += (double)x * x;
    }
  }
  StepResult out;
  out.grad_norm = std::sqrt(sq);
  float factor = 1.0f;
  if (o.clip_norm > 0 && out.grad_norm > o.clip_norm) {
    factor = (float)(o.clip_norm / out.grad_norm);
    out.clipped = true;
  }
  for (size_t i = 0; i < accs.size(); i++) {
    if (factor != 1.0f) {
      for (float & x : g[i]) x *= factor;
    }
    ggml_backend_tensor_set(accs[i], g[i].data(), 0, ggml_nbytes(accs[i]));
  }
  const double t = (double)(lora->step + 1);
  const float hp[7] = {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, (float)(1.0 / (1.0 - std::pow(o.beta1, t))),
                       (float)(1.0 / (1.0 - std::pow(o.beta2, t)))};
  ggml_backend_tensor_set(lora->adamw_params, hp, 0, sizeof(hp));
  // A small adapter's update is a few dozen tiny nodes: waking more threads for each costs more
  // (measured 1-11 ms instead of 1 ms on stories260K's 40k parameters) than it shares.
  const bool one_thread = lora->n_params < (1 << 20);
  if (one_thread) ggml_backend_cpu_set_n_threads(backend_, 1);
  ggml_status status = ggml_backend_graph_compute(backend_, graph_opt_);
  if (one_thread) ggml_backend_cpu_set_n_threads(backend_, threads_);
  if (status == GGML_STATUS_ABORTED) throw NativeError("ERR_ABORTED", "the optimizer step was aborted");
  if (status != GGML_STATUS_SUCCESS) throw NativeError("ERR_NATIVE", std::string("optimizer step failed: ") + ggml_status_to_string(status));
  lora->ZeroGrads();
  lora->step++;
  micro_batches = 0;
  out.step = lora->step;
  return out;
}

}  // namespace sr3

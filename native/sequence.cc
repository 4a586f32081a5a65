#include "sequence.h"

#include "common.h"

#include <algorithm>
#include <chrono>

namespace sr3 {

namespace {

using Clock = std::chrono::steady_clock;

struct Work {
  std::vector<llama_token> feed;  // tokens still to decode: the old pending token, then the appended
  size_t fed = 0;
  bool generating = false;
  bool done = false;
  int32_t row = -1;  // output row in the current batch
  SamplerPtr sampler;
};

class SequenceRunner {
 public:
  SequenceRunner(llama_context * ctx, std::vector<SeqItem> & items, const std::atomic<bool> & abort, GenStats * stats)
      : ctx_(ctx), items_(items), abort_(abort), stats_(stats),
        vocab_(llama_model_get_vocab(llama_get_model(ctx))),
        n_vocab_(llama_vocab_n_tokens(vocab_)),
        n_batch_((int32_t)llama_n_batch(ctx)),
        n_ctx_seq_((int32_t)llama_n_ctx_seq(ctx)),
        work_(items.size()),
        results_(items.size()),
        batch_(llama_batch_init(n_batch_, 0, 1)) {}

  ~SequenceRunner() { llama_batch_free(batch_); }

  std::vector<SeqResult> Run() {
    Validate();
    Plan();
    while (Active()) {
      if (abort_.load()) throw NativeError("ERR_ABORTED", "generation was aborted");
      Build();
      Decode();
      Outputs();
    }
    for (size_t i = 0; i < items_.size(); i++) results_[i].length = items_[i].state->length();
    return std::move(results_);
  }

 private:
  void Validate() const {
    for (const SeqItem & it : items_) {
      const std::string name = "sequence " + std::to_string(it.seq);
      for (llama_token t : it.req.prompt) {
        if (t < 0 || t >= n_vocab_) throw NativeError("ERR_CONTEXT", name + ": token id " + std::to_string(t) + " is outside the vocabulary");
      }
      const int64_t after = (int64_t)it.state->length() + (int64_t)it.req.prompt.size();
      if (after > n_ctx_seq_) {
        throw NativeError("ERR_CONTEXT", name + " holds " + std::to_string(it.state->length()) + " tokens; appending " +
                                             std::to_string(it.req.prompt.size()) + " would exceed the " + std::to_string(n_ctx_seq_) +
                                             " tokens a sequence of this session holds");
      }
      if (it.req.max_tokens > 0 && after == 0) {
        throw NativeError("ERR_CONTEXT", name + " is empty: append a prompt before generating");
      }
    }
  }

  // What each item decodes: an append-only item keeps its new last token pending; a generating one
  // decodes everything and samples from the last row.
  void Plan() {
    for (size_t i = 0; i < items_.size(); i++) {
      SeqItem & it = items_[i];
      Work & w = work_[i];
      if (it.state->pending >= 0) w.feed.push_back(it.state->pending);
      w.feed.insert(w.feed.end(), it.req.prompt.begin(), it.req.prompt.end());
      it.state->pending = -1;
      w.generating = it.req.max_tokens > 0;
      if (w.generating && it.state->n_mem + (int32_t)w.feed.size() >= n_ctx_seq_) {
        // Full: nothing can be sampled, and the last token stays pending as in any sequence.
        w.generating = false;
        results_[i].finish = Finish::kContext;
      }
      if (!w.generating && !w.feed.empty()) {
        it.state->pending = w.feed.back();
        w.feed.pop_back();
      }
      if (w.generating) w.sampler = MakeSampler(it.req.sampling, it.req.sampling.seed);
      w.done = !w.generating && w.feed.empty();
    }
  }

  bool Active() const {
    return std::any_of(work_.begin(), work_.end(), [](const Work & w) { return !w.done; });
  }

  void Add(SeqItem & it, Work & w, llama_token t, bool output) {
    const int32_t i = batch_.n_tokens++;
    batch_.token[i] = t;
    batch_.pos[i] = it.state->n_mem++;
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = it.seq;
    batch_.logits[i] = output;
    if (output) w.row = i;
  }

  // Sampled tokens first (one per generating item: latency-bound), then appended tokens in chunks.
  void Build() {
    batch_.n_tokens = 0;
    prefill_ = false;
    for (size_t i = 0; i < items_.size(); i++) {
      Work & w = work_[i];
      w.row = -1;
      if (!w.done && w.fed == w.feed.size() && w.generating) {
        Add(items_[i], w, items_[i].state->pending, true);
        items_[i].state->pending = -1;
      }
    }
    for (size_t i = 0; i < items_.size() && batch_.n_tokens < n_batch_; i++) {
      Work & w = work_[i];
      if (w.done || w.fed == w.feed.size()) continue;
      const size_t take = std::min(w.feed.size() - w.fed, (size_t)(n_batch_ - batch_.n_tokens));
      for (size_t k = 0; k < take; k++) {
        const bool last = w.fed + k + 1 == w.feed.size();
        Add(items_[i], w, w.feed[w.fed + k], last && w.generating);
      }
      w.fed += take;
      prefill_ = true;
      if (stats_) stats_->prompt_tokens += (int64_t)take;
      if (!w.generating && w.fed == w.feed.size()) w.done = true;
    }
  }

  void Decode() {
    const auto t0 = Clock::now();
    const int32_t ret = llama_decode(ctx_, batch_);
    if (ret == 2 || abort_.load()) throw NativeError("ERR_ABORTED", "generation was aborted");
    if (ret == 1) {
      throw NativeError("ERR_CONTEXT", "the session's memory has no room for this batch; dispose sequences or use a larger contextSize");
    }
    if (ret != 0) throw NativeError("ERR_NATIVE", "llama_decode failed with code " + std::to_string(ret) + ": " + RecentLlamaErrors());
    if (stats_) {
      stats_->decode_calls++;
      (prefill_ ? stats_->prompt_ms : stats_->generate_ms) += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    }
  }

  void Outputs() {
    for (size_t i = 0; i < items_.size(); i++) {
      if (work_[i].row >= 0) Sample(items_[i], work_[i], results_[i]);
    }
  }

  void Sample(SeqItem & it, Work & w, SeqResult & r) {
    const GenRequest & req = it.req;
    const llama_token t = llama_sampler_sample(w.sampler.get(), ctx_, w.row);
    if (stats_) stats_->generated_tokens++;
    r.tokens.push_back(t);
    if (req.logprobs) r.logprobs.push_back(LogProb(llama_get_logits_ith(ctx_, w.row), n_vocab_, t));
    it.state->pending = t;
    const size_t before = r.text.size();
    r.text += TokenPiece(vocab_, t);
    bool stop = true;
    if (!req.ignore_eog && llama_vocab_is_eog(vocab_, t)) {
      r.finish = Finish::kEog;
    } else if (std::find(req.stop_tokens.begin(), req.stop_tokens.end(), t) != req.stop_tokens.end()) {
      r.finish = Finish::kStop;
    } else if (MatchStop(req, r, before)) {
      r.finish = Finish::kStop;
    } else if ((int32_t)r.tokens.size() >= req.max_tokens) {
      r.finish = Finish::kLength;
    } else if (it.state->length() >= n_ctx_seq_) {
      r.finish = Finish::kContext;
    } else {
      stop = false;
    }
    if (stop) w.done = true;
  }

  // A stop string completed by the newest piece (text from `before` on) ends generation after that
  // token: nothing is cut, so text and tokens stay each other's exact image.
  static bool MatchStop(const GenRequest & req, SeqResult & r, size_t before) {
    for (const std::string & ss : req.stop_strings) {
      if (ss.empty()) continue;
      const size_t from = before >= ss.size() ? before - ss.size() + 1 : 0;
      if (r.text.find(ss, from) != std::string::npos) {
        r.stop = ss;
        return true;
      }
    }
    return false;
  }

  llama_context * ctx_;
  std::vector<SeqItem> & items_;
  const std::atomic<bool> & abort_;
  GenStats * stats_;
  const llama_vocab * vocab_;
  const int32_t n_vocab_;
  const int32_t n_batch_;
  const int32_t n_ctx_seq_;
  std::vector<Work> work_;
  std::vector<SeqResult> results_;
  llama_batch batch_;
  bool prefill_ = false;
};

}  // namespace

std::vector<SeqResult> RunSequences(llama_context * ctx, std::vector<SeqItem> & items, const std::atomic<bool> & abort,
                                    GenStats * stats) {
  std::vector<SeqState> before;
  for (const SeqItem & it : items) before.push_back(*it.state);
  try {
    SequenceRunner runner(ctx, items, abort, stats);
    return runner.Run();
  } catch (...) {
    // Nothing the caller had is lost: each sequence goes back to what it held before the call.
    for (size_t i = 0; i < items.size(); i++) {
      llama_memory_seq_rm(llama_get_memory(ctx), items[i].seq, before[i].n_mem, -1);
      *items[i].state = before[i];
    }
    throw;
  }
}

}  // namespace sr3

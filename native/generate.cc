#include "generate.h"

#include "common.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <memory>

namespace sr3 {

const char * FinishName(Finish f) {
  switch (f) {
    case Finish::kEmbed: return "embed";
    case Finish::kEog: return "eog";
    case Finish::kStop: return "stop";
    case Finish::kLength: return "length";
    case Finish::kContext: return "context";
    case Finish::kPrompt: return "prompt";
  }
  return "unknown";
}

SamplerPtr MakeSampler(const SamplingParams & p, uint32_t seed) {
  if (seed == LLAMA_DEFAULT_SEED) seed = 0;
  llama_sampler * chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
  if (p.temperature <= 0.0f) {
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
  } else {
    if (p.top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(p.top_k));
    if (p.top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(p.top_p, 1));
    if (p.min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(p.min_p, 1));
    llama_sampler_chain_add(chain, llama_sampler_init_temp(p.temperature));
    llama_sampler_chain_add(chain, llama_sampler_init_dist(seed));
  }
  return SamplerPtr(chain);
}

// log-softmax of the raw logits at `token`, in double for a stable sum over a large vocabulary.
float LogProb(const float * logits, int32_t n_vocab, llama_token token) {
  float mx = logits[0];
  for (int32_t i = 1; i < n_vocab; i++) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int32_t i = 0; i < n_vocab; i++) sum += std::exp((double)logits[i] - mx);
  return (float)((double)logits[token] - mx - std::log(sum));
}

std::string TokenPiece(const llama_vocab * vocab, llama_token t) {
  char buf[256];
  int32_t n = llama_token_to_piece(vocab, t, buf, sizeof buf, 0, false);
  if (n >= 0) return std::string(buf, n);
  std::string piece(-n, '\0');
  n = llama_token_to_piece(vocab, t, piece.data(), (int32_t)piece.size(), 0, false);
  piece.resize(std::max(n, 0));
  return piece;
}

namespace {

using Clock = std::chrono::steady_clock;

// kPromptLast: the prompt body is decoded; its last token is decoded alone with embeddings on
// (llama.cpp outputs every token of a batch decoded with embeddings on, so prompt bodies never are).
enum class State { kFree, kWaitPrefix, kPrompt, kPromptLast, kGenerate, kFeedEmbed };

struct Slot {
  State state = State::kFree;
  llama_seq_id seq = 0;
  int32_t request = -1;
  int32_t copy = 0;
  int32_t leader = -1;       // slot that decodes the shared prompt (itself for the leader)
  int32_t n_past = 0;        // tokens in this sequence's memory
  int32_t prompt_done = 0;   // prompt tokens decoded (leader only)
  llama_token pending = -1;  // next token to decode
  llama_token carry = -1;    // a sampled token to decode just before an appended embed token
  int32_t batch_index = -1;  // output row in the current batch, -1 if none
  SamplerPtr sampler;
  GenResult result;
};

class Scheduler {
 public:
  Scheduler(llama_context * ctx, const std::vector<GenRequest> & reqs, const std::vector<llama_seq_id> & seqs,
            const std::atomic<bool> & abort, GenStats * stats)
      : ctx_(ctx), reqs_(reqs), abort_(abort), stats_(stats),
        vocab_(llama_model_get_vocab(llama_get_model(ctx))),
        n_vocab_(llama_vocab_n_tokens(vocab_)),
        n_embd_(llama_model_n_embd_out(llama_get_model(ctx))),
        n_batch_((int32_t)llama_n_batch(ctx)),
        n_ctx_seq_((int32_t)llama_n_ctx_seq(ctx)),
        slots_(seqs.size()),
        batch_(llama_batch_init(n_batch_, 0, 1)) {
    for (size_t i = 0; i < slots_.size(); i++) slots_[i].seq = seqs[i];
    for (size_t i = 0; i < reqs_.size(); i++) pending_.push_back((int32_t)i);
  }

  ~Scheduler() {
    llama_batch_free(batch_);
    ClearSlots();
  }

  // Empties the memory of this run's sequences only: open sequences keep theirs.
  void ClearSlots() {
    for (const Slot & s : slots_) llama_memory_seq_rm(llama_get_memory(ctx_), s.seq, -1, -1);
  }

  std::vector<GenResult> Run() {
    Validate();
    ClearSlots();
    while (!pending_.empty() || Active() > 0) {
      if (abort_.load()) throw NativeError("ERR_ABORTED", "generation was aborted");
      Admit();
      bool prompt_phase = false;
      bool want_embd = BuildBatch(&prompt_phase);
      // A one-token prompt goes straight to its embeddings-on decode: build that batch now.
      if (batch_.n_tokens == 0) want_embd = BuildBatch(&prompt_phase);
      if (batch_.n_tokens == 0) throw NativeError("ERR_NATIVE", "scheduler made no progress (internal error)");
      Decode(want_embd, prompt_phase);
      ProcessOutputs();
    }
    std::sort(done_.begin(), done_.end(), [](const GenResult & a, const GenResult & b) {
      return a.request != b.request ? a.request < b.request : a.copy < b.copy;
    });
    return std::move(done_);
  }

 private:
  void Validate() {
    for (size_t i = 0; i < reqs_.size(); i++) {
      const GenRequest & r = reqs_[i];
      if (r.prompt.empty()) throw NativeError("ERR_CONTEXT", "request " + std::to_string(i) + " has an empty prompt");
      const int32_t total = (int32_t)llama_n_seq_max(ctx_);
      if (r.copies < 1 || r.copies > total) {
        throw NativeError("ERR_CONTEXT", "request " + std::to_string(i) + " asks for " + std::to_string(r.copies) +
                                             " copies but the session has " + std::to_string(total) + " sequences");
      }
      if ((size_t)r.copies > slots_.size()) {
        throw NativeError("ERR_BUSY", "request " + std::to_string(i) + " asks for " + std::to_string(r.copies) + " copies but only " +
                                          std::to_string(slots_.size()) + " of the session's " + std::to_string(total) +
                                          " sequences are free (the others are held by open sequences)");
      }
      // Room after the prompt: one sampled token, plus the appended embed token when asked for.
      const int32_t extra = r.max_tokens > 0 ? ((r.embed_on_stop && r.embed_token >= 0) ? 2 : 1) : 0;
      const int32_t need = (int32_t)r.prompt.size() + extra;
      if (need > n_ctx_seq_) {
        throw NativeError("ERR_CONTEXT", "request " + std::to_string(i) + " has a prompt of " + std::to_string(r.prompt.size()) +
                                             " tokens but a sequence holds " + std::to_string(n_ctx_seq_) + " tokens");
      }
      for (llama_token t : r.prompt) {
        if (t < 0 || t >= n_vocab_) throw NativeError("ERR_CONTEXT", "request " + std::to_string(i) + " has token id " + std::to_string(t) + " outside the vocabulary");
      }
      if (r.embed_token >= n_vocab_) throw NativeError("ERR_CONTEXT", "embed token id is outside the vocabulary");
    }
  }

  int32_t Active() const {
    int32_t n = 0;
    for (const Slot & s : slots_) n += s.state != State::kFree;
    return n;
  }

  // Moves pending requests into free slots, in order, while enough slots are free for all copies.
  void Admit() {
    while (!pending_.empty()) {
      const int32_t r = pending_.front();
      const GenRequest & req = reqs_[r];
      std::vector<int32_t> free;
      for (size_t i = 0; i < slots_.size() && (int32_t)free.size() < req.copies; i++) {
        if (slots_[i].state == State::kFree) free.push_back((int32_t)i);
      }
      if ((int32_t)free.size() < req.copies) return;
      pending_.pop_front();
      for (int32_t c = 0; c < req.copies; c++) {
        Slot & s = slots_[free[c]];
        s.state = c == 0 ? State::kPrompt : State::kWaitPrefix;
        s.request = r;
        s.copy = c;
        s.leader = free[0];
        s.n_past = 0;
        s.prompt_done = 0;
        s.pending = -1;
        s.carry = -1;
        s.sampler = req.max_tokens > 0 ? MakeSampler(req.sampling, req.sampling.seed + (uint32_t)c) : nullptr;
        s.result = GenResult();
        s.result.request = r;
        s.result.copy = c;
        s.result.prompt_tokens = (int32_t)req.prompt.size();
      }
    }
  }

  void Add(Slot & s, llama_token t, bool output) {
    const int32_t i = batch_.n_tokens++;
    batch_.token[i] = t;
    batch_.pos[i] = s.n_past++;
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = s.seq;
    batch_.logits[i] = output;
    if (output) s.batch_index = i;
  }

  // One token for every generating sequence first (they are latency-bound), then prompt chunks.
  // A step that must capture hidden states decodes only single tokens with embeddings on; prompt
  // chunks wait for the next step, so the LM head never runs over whole prompts.
  bool BuildBatch(bool * prompt_phase) {
    batch_.n_tokens = 0;
    bool want_embd = false;
    for (const Slot & s : slots_) {
      want_embd |= s.state == State::kFeedEmbed || s.state == State::kPromptLast;
      *prompt_phase |= s.state == State::kPromptLast;
    }
    for (Slot & s : slots_) {
      s.batch_index = -1;
      if (s.state == State::kGenerate || s.state == State::kFeedEmbed || s.state == State::kPromptLast) {
        if (s.carry >= 0) Add(s, s.carry, false);
        s.carry = -1;
        Add(s, s.pending, true);
      }
    }
    if (want_embd) return true;
    for (Slot & s : slots_) {
      if (s.state != State::kPrompt || batch_.n_tokens >= n_batch_) continue;
      const GenRequest & req = reqs_[s.request];
      // With embed_prompt_last the final token is held back for its own embeddings-on decode.
      const int32_t body = (int32_t)req.prompt.size() - (req.embed_prompt_last ? 1 : 0);
      const int32_t take = std::min(body - s.prompt_done, n_batch_ - batch_.n_tokens);
      for (int32_t k = 0; k < take; k++) {
        const bool last = !req.embed_prompt_last && s.prompt_done + k == body - 1;
        Add(s, req.prompt[s.prompt_done + k], last);
      }
      s.prompt_done += take;
      *prompt_phase = true;
      if (req.embed_prompt_last && s.prompt_done == body) {
        s.state = State::kPromptLast;
        s.pending = req.prompt.back();
      }
    }
    return false;
  }

  void Decode(bool want_embd, bool prompt_phase) {
    auto t0 = Clock::now();
    llama_set_embeddings(ctx_, want_embd);
    const int32_t ret = llama_decode(ctx_, batch_);
    llama_set_embeddings(ctx_, false);
    if (ret == 2 || abort_.load()) throw NativeError("ERR_ABORTED", "generation was aborted");
    if (ret == 1) throw NativeError("ERR_CONTEXT", "the context has no room for this batch; use fewer or shorter sequences or a larger context");
    if (ret != 0) throw NativeError("ERR_NATIVE", "llama_decode failed with code " + std::to_string(ret) + ": " + RecentLlamaErrors());
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (stats_) {
      stats_->decode_calls++;
      (prompt_phase ? stats_->prompt_ms : stats_->generate_ms) += ms;
    }
  }

  void CaptureEmbedding(Slot & s) {
    const float * e = llama_get_embeddings_ith(ctx_, s.batch_index);
    if (!e) throw NativeError("ERR_NATIVE", "llama.cpp returned no hidden state for the embed token");
    s.result.embedding.assign(e, e + n_embd_);
  }

  void ProcessOutputs() {
    for (size_t i = 0; i < slots_.size(); i++) {
      Slot & s = slots_[i];
      if (s.batch_index < 0) continue;
      const GenRequest & req = reqs_[s.request];
      if (s.state == State::kPrompt || s.state == State::kPromptLast) {
        if (stats_) stats_->prompt_tokens += req.prompt.size();
        if (s.state == State::kPromptLast) CaptureEmbedding(s);
        StartCopies((int32_t)i);
      } else if (s.state == State::kFeedEmbed) {
        CaptureEmbedding(s);
        Finish(s);
      } else if (s.state == State::kGenerate) {
        Sample(s, s.batch_index);
      }
    }
  }

  // The leader's prompt is decoded: share it with the copies and let each sample its first token.
  // Two passes, because sampling may finish the leader (and remove its memory) on the first token:
  // every copy gets the prompt before anyone samples.
  void StartCopies(int32_t leader) {
    Slot & l = slots_[leader];
    const int32_t request = l.request;
    const GenRequest & req = reqs_[request];
    const int32_t row = l.batch_index;
    std::vector<Slot *> group;
    for (Slot & s : slots_) {
      // A slot's `leader` outlives its request, so match the request and the waiting state too.
      if (&s == &l || (s.request == request && s.leader == leader && s.state == State::kWaitPrefix)) group.push_back(&s);
    }
    for (Slot * s : group) {
      if (s != &l) {
        llama_memory_seq_cp(llama_get_memory(ctx_), l.seq, s->seq, -1, -1);
        s->n_past = l.n_past;
        if (req.embed_prompt_last) s->result.embedding = l.result.embedding;
      }
      s->state = State::kGenerate;
    }
    for (Slot * s : group) {
      if (req.max_tokens == 0) {
        s->result.finish = Finish::kPrompt;
        Finish(*s);
      } else {
        Sample(*s, row);
      }
    }
  }

  void Sample(Slot & s, int32_t row) {
    const GenRequest & req = reqs_[s.request];
    const llama_token t = llama_sampler_sample(s.sampler.get(), ctx_, row);
    if (stats_) stats_->generated_tokens++;
    s.result.tokens.push_back(t);
    if (req.logprobs) s.result.logprobs.push_back(LogProb(llama_get_logits_ith(ctx_, row), n_vocab_, t));

    if (req.embed_token >= 0 && t == req.embed_token) {
      s.result.finish = Finish::kEmbed;
      s.state = State::kFeedEmbed;
      s.pending = t;
      return;
    }
    bool stop = false;
    if (!req.ignore_eog && llama_vocab_is_eog(vocab_, t)) {
      s.result.finish = Finish::kEog;
      stop = true;
    } else if (std::find(req.stop_tokens.begin(), req.stop_tokens.end(), t) != req.stop_tokens.end()) {
      s.result.finish = Finish::kStop;
      stop = true;
    } else {
      AppendText(s, t, req, &stop);
    }
    if (!stop && (int32_t)s.result.tokens.size() >= req.max_tokens) {
      s.result.finish = Finish::kLength;
      stop = true;
    }
    // Leave room for the token being fed now, and for an appended embed token.
    if (!stop && s.n_past + 1 + (req.embed_on_stop ? 1 : 0) >= n_ctx_seq_) {
      s.result.finish = Finish::kContext;
      stop = true;
    }
    if (!stop) {
      s.pending = t;
      return;
    }
    if (req.embed_on_stop && req.embed_token >= 0) {
      // The model stopped without the embed token: feed it in place of the stopping token.
      // A stopping token is replaced by the embed token; a token cut off by the budget or the
      // context is part of the reasoning, so it is decoded first.
      if (s.result.finish == Finish::kEog || s.result.finish == Finish::kStop) {
        s.result.tokens.pop_back();
        if (req.logprobs) s.result.logprobs.pop_back();
      } else {
        s.carry = t;
      }
      s.result.embed_forced = true;
      s.state = State::kFeedEmbed;
      s.pending = req.embed_token;
      return;
    }
    Finish(s);
  }

  void AppendText(Slot & s, llama_token t, const GenRequest & req, bool * stop) {
    const std::string piece = TokenPiece(vocab_, t);
    std::string & text = s.result.text;
    const size_t before = text.size();
    text += piece;
    for (const std::string & ss : req.stop_strings) {
      if (ss.empty()) continue;
      const size_t from = before >= ss.size() ? before - ss.size() + 1 : 0;
      const size_t at = text.find(ss, from);
      if (at != std::string::npos) {
        text.resize(at);
        s.result.finish = Finish::kStop;
        *stop = true;
        return;
      }
    }
  }

  void Finish(Slot & s) {
    llama_memory_seq_rm(llama_get_memory(ctx_), s.seq, -1, -1);
    done_.push_back(std::move(s.result));
    s.state = State::kFree;
    s.sampler.reset();
    s.request = -1;
    s.leader = -1;
    s.batch_index = -1;
  }

  llama_context * ctx_;
  const std::vector<GenRequest> & reqs_;
  const std::atomic<bool> & abort_;
  GenStats * stats_;
  const llama_vocab * vocab_;
  const int32_t n_vocab_;
  const int32_t n_embd_;
  const int32_t n_batch_;
  const int32_t n_ctx_seq_;
  std::vector<Slot> slots_;
  llama_batch batch_;
  std::deque<int32_t> pending_;
  std::vector<GenResult> done_;
};

}  // namespace

std::vector<GenResult> RunGeneration(llama_context * ctx, const std::vector<GenRequest> & requests,
                                     const std::vector<llama_seq_id> & seqs, const std::atomic<bool> & abort, GenStats * stats) {
  Scheduler sched(ctx, requests, seqs, abort, stats);
  return sched.Run();
}

void EvaluateAll(llama_context * ctx, const std::vector<llama_token> & tokens, llama_seq_id seq, bool want_logits,
                 std::vector<float> * logits, std::vector<float> * embeddings, const std::atomic<bool> & abort) {
  const llama_model * model = llama_get_model(ctx);
  const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  const int32_t n_embd = llama_model_n_embd_out(model);
  const int32_t n_batch = (int32_t)llama_n_batch(ctx);
  const int32_t n = (int32_t)tokens.size();
  if (n == 0) throw NativeError("ERR_CONTEXT", "no tokens to evaluate");
  if (n > (int32_t)llama_n_ctx_seq(ctx)) {
    throw NativeError("ERR_CONTEXT", std::to_string(n) + " tokens do not fit a sequence of " + std::to_string(llama_n_ctx_seq(ctx)));
  }
  for (llama_token t : tokens) {
    if (t < 0 || t >= n_vocab) throw NativeError("ERR_CONTEXT", "token id " + std::to_string(t) + " is outside the vocabulary");
  }
  llama_memory_seq_rm(llama_get_memory(ctx), seq, -1, -1);
  if (want_logits) logits->resize((size_t)n * n_vocab);
  embeddings->resize((size_t)n * n_embd);
  llama_batch batch = llama_batch_init(n_batch, 0, 1);
  struct Guard {
    llama_context * ctx;
    llama_batch * b;
    llama_seq_id seq;
    ~Guard() {
      llama_batch_free(*b);
      llama_set_embeddings(ctx, false);
      llama_memory_seq_rm(llama_get_memory(ctx), seq, -1, -1);
    }
  } guard{ctx, &batch, seq};
  llama_set_embeddings(ctx, true);
  for (int32_t start = 0; start < n; start += n_batch) {
    if (abort.load()) throw NativeError("ERR_ABORTED", "evaluation was aborted");
    const int32_t m = std::min(n_batch, n - start);
    batch.n_tokens = m;
    for (int32_t i = 0; i < m; i++) {
      batch.token[i] = tokens[start + i];
      batch.pos[i] = start + i;
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = seq;
      batch.logits[i] = true;
    }
    const int32_t ret = llama_decode(ctx, batch);
    if (ret == 2) throw NativeError("ERR_ABORTED", "evaluation was aborted");
    if (ret != 0) throw NativeError("ERR_NATIVE", "llama_decode failed with code " + std::to_string(ret));
    for (int32_t i = 0; i < m; i++) {
      const float * e = llama_get_embeddings_ith(ctx, i);
      if (!e) throw NativeError("ERR_NATIVE", "llama.cpp returned no hidden state for position " + std::to_string(start + i));
      std::copy(e, e + n_embd, embeddings->data() + (size_t)(start + i) * n_embd);
      if (want_logits) {
        const float * l = llama_get_logits_ith(ctx, i);
        if (!l) throw NativeError("ERR_NATIVE", "llama.cpp returned no logits for position " + std::to_string(start + i));
        std::copy(l, l + n_vocab, logits->data() + (size_t)(start + i) * n_vocab);
      }
    }
  }
}

}  // namespace sr3

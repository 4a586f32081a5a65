// The continuing-sequence methods of SessionWrap: open, fork, free and advance sequences whose KV
// memory outlives a call (sequence.h). Slot bookkeeping lives here, on the JS thread; the decoding
// runs in a worker.
#include "session.h"

#include "sequence.h"

#include <algorithm>

namespace sr3 {

namespace {

class SeqRunWorker : public PromiseWorker {
 public:
  SeqRunWorker(Napi::Env env, SessionWrap * s, Napi::Object self, std::vector<SeqItem> items)
      : PromiseWorker(env), s_(s), items_(std::move(items)) {
    self_ = Napi::Persistent(self);
  }

 protected:
  void Run() override { results_ = RunSequences(s_->ctx, items_, s_->gate.abort_flag, &stats_); }
  void Finally() override { s_->Release(); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Array out = Napi::Array::New(env, results_.size());
    for (size_t i = 0; i < results_.size(); i++) {
      const SeqResult & r = results_[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("seq", items_[i].seq);
      Napi::Int32Array toks = Napi::Int32Array::New(env, r.tokens.size());
      std::copy(r.tokens.begin(), r.tokens.end(), toks.Data());
      o.Set("tokens", toks);
      if (items_[i].req.logprobs) {
        Napi::Float32Array lp = Napi::Float32Array::New(env, r.logprobs.size());
        std::copy(r.logprobs.begin(), r.logprobs.end(), lp.Data());
        o.Set("logprobs", lp);
      } else {
        o.Set("logprobs", env.Null());
      }
      o.Set("text", Napi::String::New(env, r.text));
      o.Set("finish", FinishName(r.finish));
      o.Set("stop", r.stop.empty() ? env.Null() : Napi::String::New(env, r.stop));
      o.Set("length", r.length);
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
  std::vector<SeqItem> items_;
  std::vector<SeqResult> results_;
  GenStats stats_;
};

}  // namespace

llama_seq_id SessionWrap::OpenSlot(Napi::Env env) {
  for (size_t i = 0; i < seqs.size(); i++) {
    if (!seqs[i].open && !seqs[i].borrowed) {
      seqs[i] = SeqSlot();
      seqs[i].open = true;
      return (llama_seq_id)i;
    }
  }
  int32_t held = 0;
  for (const SeqSlot & s : seqs) held += s.open;
  throw MakeError(env, "ERR_BUSY", "no free sequence slot: " + std::to_string(held) + " of the session's " + std::to_string(seqs.size()) +
                                       " sequences are open" + (held < (int32_t)seqs.size() ? " and the others are in use by a running operation" : "") +
                                       "; dispose a sequence or create the session with more sequences");
}

void SessionWrap::FreeSlot(llama_seq_id id) {
  llama_memory_seq_rm(llama_get_memory(ctx), id, -1, -1);
  seqs[id] = SeqSlot();
}

SessionWrap::SeqSlot & SessionWrap::OpenSeq(Napi::Env env, const Napi::Value & v, const char * name) {
  const int64_t id = GetInt(v, name, 0, INT32_MAX);
  if ((size_t)id >= seqs.size() || !seqs[id].open || seqs[id].free_pending) {
    throw MakeError(env, "ERR_DISPOSED", std::string(name) + " " + std::to_string(id) + " is not an open sequence of this session");
  }
  return seqs[id];
}

// seqOpen() -> id: an empty sequence. Allowed while an operation runs (it touches no memory).
Napi::Value SessionWrap::SeqOpen(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  if (!ctx || gate.DisposePending()) throw MakeError(env, "ERR_DISPOSED", "the session was disposed");
  return Napi::Number::New(env, OpenSlot(env));
}

// seqFork(id, count) -> ids: `count` new sequences holding what `id` holds (llama_memory_seq_cp).
Napi::Value SessionWrap::SeqFork(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  const int64_t count = GetInt(info[1], "count", 1, 256);
  Acquire(env);
  std::vector<llama_seq_id> made;
  try {
    SeqSlot & src = OpenSeq(env, info[0], "sequence");
    const SeqState state = src.state;
    const llama_seq_id from = (llama_seq_id)(&src - seqs.data());
    for (int64_t i = 0; i < count; i++) made.push_back(OpenSlot(env));
    for (llama_seq_id id : made) {
      if (state.n_mem > 0) llama_memory_seq_cp(llama_get_memory(ctx), from, id, -1, -1);
      seqs[id].state = state;
    }
  } catch (...) {
    for (llama_seq_id id : made) seqs[id] = SeqSlot();  // nothing was copied yet when OpenSlot threw
    Release();
    throw;
  }
  Release();
  Napi::Array out = Napi::Array::New(env, made.size());
  for (size_t i = 0; i < made.size(); i++) out.Set(i, made[i]);
  return out;
}

// seqFree(id): frees now, or when the running operation ends. Idempotent.
Napi::Value SessionWrap::SeqFree(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  const int64_t id = GetInt(info[0], "sequence", 0, INT32_MAX);
  if (!ctx || (size_t)id >= seqs.size() || !seqs[id].open) return env.Undefined();
  if (gate.Busy()) {
    seqs[id].free_pending = true;
  } else {
    FreeSlot((llama_seq_id)id);
  }
  return env.Undefined();
}

// seqRun(items: { seq, append, maxTokens, ...sampling }[]) -> Promise<{ results, stats }>
Napi::Value SessionWrap::SeqRun(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "Expected array for items");
  Napi::Array arr = info[0].As<Napi::Array>();
  if (arr.Length() == 0) throw Napi::RangeError::New(env, "Expected at least one sequence in items");
  if (!ctx) throw MakeError(env, "ERR_DISPOSED", "the session was disposed");
  std::vector<SeqItem> items;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    const std::string name = "items[" + std::to_string(i) + "]";
    Napi::Object o = GetObject(arr.Get(i), name.c_str());
    SeqItem it;
    SeqSlot & slot = OpenSeq(env, o.Get("seq"), "sequence");
    it.seq = (llama_seq_id)(&slot - seqs.data());
    it.state = &slot.state;
    for (const SeqItem & other : items) {
      if (other.seq == it.seq) throw Napi::RangeError::New(env, "sequence " + std::to_string(it.seq) + " appears twice in items");
    }
    it.req.prompt = GetInt32Array(o.Get("append"), "append");
    ParseSampling(o, arr.Get(i), it.req);
    items.push_back(std::move(it));
  }
  Acquire(env);
  auto * w = new SeqRunWorker(env, this, Value(), std::move(items));
  w->Queue();
  return w->Promise();
}

}  // namespace sr3

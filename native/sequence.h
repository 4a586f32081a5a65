// Continuing sequences: a sequence keeps its KV memory between calls, so that a multi-turn caller
// appends only what is new and samples on from where the sequence stands, and a fork shares a
// decoded prefix. Pure C++ over llama.cpp, no N-API (runs inside a worker thread).
//
// Invariant: a sequence of `length` tokens holds the first n_mem of them in its memory and keeps
// the last one `pending` (not yet decoded); the next call decodes it first. That is what lets a
// call sample right after an append without re-decoding anything, and what lets a stop end on a
// sampled token that is then never decoded twice.
#pragma once

#include "generate.h"

#include <llama.h>

#include <atomic>
#include <string>
#include <vector>

namespace sr3 {

struct SeqState {
  int32_t n_mem = 0;         // tokens decoded into the memory, positions 0..n_mem-1
  llama_token pending = -1;  // the last token, not yet decoded (-1 when the sequence is empty)
  int32_t length() const { return n_mem + (pending >= 0 ? 1 : 0); }
};

// One sequence's share of a call: append `req.prompt` (may be empty), then sample up to
// `req.max_tokens` (0: append only) with req's sampling, stop tokens, stop strings and log-probs.
// The embed fields of req are not used here.
struct SeqItem {
  llama_seq_id seq = 0;
  SeqState * state = nullptr;  // updated in place; restored when the call throws
  GenRequest req;
};

struct SeqResult {
  std::vector<llama_token> tokens;  // sampled, including a sampled end-of-generation or stop token
  std::vector<float> logprobs;      // one per sampled token when asked for
  std::string text;                 // exactly the pieces of `tokens` (control tokens are empty)
  Finish finish = Finish::kPrompt;  // kPrompt: append only
  std::string stop;                 // the stop string that ended generation, if one did
  int32_t length = 0;               // tokens the sequence holds after the call
};

// Advances all items together: every decode carries one token per generating item plus as many
// appended tokens as fit the batch. A stop string ends generation after the token that completes
// it, so the returned text, the returned tokens and what the sequence holds agree.
// Throws NativeError (ERR_CONTEXT, ERR_ABORTED, ERR_NATIVE) with every item's sequence restored to
// what it held before the call.
std::vector<SeqResult> RunSequences(llama_context * ctx, std::vector<SeqItem> & items, const std::atomic<bool> & abort,
                                    GenStats * stats);

}  // namespace sr3

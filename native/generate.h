// The batched generation engine: pure C++ over llama.cpp, no N-API, so it runs entirely inside a
// worker thread. Requests are scheduled onto the context's parallel sequences (continuous batching:
// a finished sequence's slot takes the next request); every decode carries one token per generating
// sequence plus as many prompt tokens as fit. A request with `copies` > 1 decodes its prompt once and
// shares it with llama_memory_seq_cp (GRPO groups).
#pragma once

#include <llama.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sr3 {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  int32_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  uint32_t seed = 0;         // copy i of a request samples with seed + i
};

struct GenRequest {
  std::vector<llama_token> prompt;       // must be non-empty
  int32_t copies = 1;                    // sequences that share this prompt
  int32_t max_tokens = 0;                // 0: prompt only (e.g. direct embedding)
  SamplingParams sampling;
  std::vector<llama_token> stop_tokens;  // besides the vocabulary's end-of-generation tokens
  std::vector<std::string> stop_strings;
  bool logprobs = false;                 // log-softmax of the raw logits at each sampled token
  bool ignore_eog = false;               // keep going past end-of-generation tokens (benchmarks, fixed-length rollouts)
  llama_token embed_token = -1;          // when sampled: decode it with embeddings on and capture
  bool embed_on_stop = false;            // if generation stops without it, append it and capture
  bool embed_prompt_last = false;        // capture the hidden state at the last prompt token
};

enum class Finish { kEmbed, kEog, kStop, kLength, kContext, kPrompt };
const char * FinishName(Finish f);

struct GenResult {
  int32_t request = 0;
  int32_t copy = 0;
  int32_t prompt_tokens = 0;
  std::vector<llama_token> tokens;  // generated, including a sampled end/embed token
  std::vector<float> logprobs;      // one per generated token when asked for
  std::string text;                 // generated text without control tokens, cut at a stop string
  Finish finish = Finish::kPrompt;
  bool embed_forced = false;        // the engine appended the embed token itself
  std::vector<float> embedding;     // final-norm hidden state at the embed token (empty if none)
};

struct GenStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t decode_calls = 0;
  double prompt_ms = 0;
  double generate_ms = 0;
};

// Runs all requests to completion on the sequence ids `seqs` (the session's slots not held by open
// sequences; the memory of any other sequence is left as it is). Throws NativeError: ERR_CONTEXT
// when a prompt does not fit a sequence, ERR_BUSY when a request needs more copies than `seqs`
// holds, ERR_ABORTED when `abort` becomes true, ERR_NATIVE when llama_decode fails. The memory of
// `seqs` is left empty.
std::vector<GenResult> RunGeneration(llama_context * ctx, const std::vector<GenRequest> & requests,
                                     const std::vector<llama_seq_id> & seqs, const std::atomic<bool> & abort, GenStats * stats);

// Decodes `tokens` as sequence `seq` from position 0 and returns the logits (n x n_vocab) and the
// final-norm hidden states (n x n_embd) of every position. That sequence's memory is cleared before
// and after.
void EvaluateAll(llama_context * ctx, const std::vector<llama_token> & tokens, llama_seq_id seq, bool want_logits,
                 std::vector<float> * logits, std::vector<float> * embeddings, const std::atomic<bool> & abort);

// ---- shared with the continuing sequences (sequence.cc) ----

struct SamplerDeleter {
  void operator()(llama_sampler * s) const { llama_sampler_free(s); }
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerDeleter>;

// The sampler chain for `p`; `seed` is used as given except LLAMA_DEFAULT_SEED (llama.cpp's "pick a
// random seed"), which becomes 0 so that runs stay reproducible.
SamplerPtr MakeSampler(const SamplingParams & p, uint32_t seed);
// log-softmax of the raw logits at `token`.
float LogProb(const float * logits, int32_t n_vocab, llama_token token);
// The token's text as detokenization writes it (control tokens are empty).
std::string TokenPiece(const llama_vocab * vocab, llama_token t);

}  // namespace sr3

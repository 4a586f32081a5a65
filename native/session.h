// SessionWrap: one llama_context with n parallel sequences on a model; LoraWrap: one adapter file
// loaded against a model. A session runs one operation at a time, off the JS thread.
#pragma once

#include <napi.h>
#include <ggml-cpu.h>
#include <llama.h>

#include "common.h"
#include "sequence.h"

#include <atomic>
#include <vector>

namespace sr3 {

class ModelWrap;

// The run statistics as JS sees them ({ promptTokens, generatedTokens, decodeCalls, promptMs, generateMs }).
Napi::Object StatsObject(Napi::Env env, const GenStats & stats);
// Reads the sampling fields of a request object (maxTokens, temperature, topK, topP, minP, seed,
// stopTokens, stopStrings, logprobs, ignoreEog) into r; `v` is `o` as a value, for error messages.
void ParseSampling(const Napi::Object & o, const Napi::Value & v, GenRequest & r);

// The ggml CPU thread pools a context computes on, kept for the context's lifetime, as llama.cpp's
// own tools keep theirs: a context without them starts and joins its worker threads on every
// llama_decode, which costs single-sequence generation several percent (one decode per token).
struct CpuThreadPools {
  ggml_threadpool * gen = nullptr;    // single-token decodes (n_threads)
  ggml_threadpool * batch = nullptr;  // multi-token decodes (n_threads_batch); == gen when equal
  // Creates the pools and attaches them to ctx; throws NativeError if ggml cannot.
  void Attach(llama_context * ctx, int32_t threads, int32_t threads_batch);
  // Call after llama_free (or llama_detach_threadpool) of the context they were attached to.
  void Free();
};

class LoraWrap : public Napi::ObjectWrap<LoraWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // loadLora(model, path) -> Promise<LoraWrap>
  static Napi::Value Load(const Napi::CallbackInfo & info);
  explicit LoraWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<LoraWrap>(info) {}
  ~LoraWrap() override;

  llama_adapter_lora * adapter = nullptr;
  ModelWrap * owner = nullptr;
  Napi::ObjectReference model_ref;
  std::atomic<int> attached{0};

 private:
  Napi::Value Meta(const Napi::CallbackInfo & info);
  Napi::Value Dispose(const Napi::CallbackInfo & info);
  void Free();
};

class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // createSession(model, { sequences, contextSize, batchSize, threads, threadsBatch, kvUnified }) -> Promise<SessionWrap>
  static Napi::Value Create(const Napi::CallbackInfo & info);
  explicit SessionWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<SessionWrap>(info) {}
  ~SessionWrap() override;

  llama_context * ctx = nullptr;
  ModelWrap * owner = nullptr;
  Napi::ObjectReference model_ref;
  CpuThreadPools pools;
  OperationGate gate;

  // Marks the session busy or throws ERR_BUSY / ERR_DISPOSED.
  void Acquire(Napi::Env env);
  // Called on the JS thread when an operation ends: hands back the slots it borrowed, frees the
  // sequences disposed meanwhile, and frees the context if dispose() came meanwhile.
  void Release();

  // One per sequence slot of the context. A slot is open (held by a continuing sequence), borrowed
  // (used by the running run/evaluate, which empty it again), or free (its memory is empty).
  struct SeqSlot {
    bool open = false;
    bool borrowed = false;
    bool free_pending = false;  // disposed while an operation ran; freed by Release()
    SeqState state;             // touched by a running seqRun's worker for its items only
  };
  std::vector<SeqSlot> seqs;
  // Slots neither open nor borrowed, marked borrowed; ERR_BUSY when there is none.
  std::vector<llama_seq_id> BorrowFreeSlots(Napi::Env env, const char * what);

 private:
  Napi::Value Run(const Napi::CallbackInfo & info);
  Napi::Value Evaluate(const Napi::CallbackInfo & info);
  Napi::Value SetLoras(const Napi::CallbackInfo & info);
  Napi::Value Abort(const Napi::CallbackInfo & info);
  Napi::Value Info(const Napi::CallbackInfo & info);
  // Continuing sequences (session_seq.cc).
  Napi::Value SeqOpen(const Napi::CallbackInfo & info);
  Napi::Value SeqFork(const Napi::CallbackInfo & info);
  Napi::Value SeqFree(const Napi::CallbackInfo & info);
  Napi::Value SeqRun(const Napi::CallbackInfo & info);
  void FreeSlot(llama_seq_id id);
  llama_seq_id OpenSlot(Napi::Env env);
  SeqSlot & OpenSeq(Napi::Env env, const Napi::Value & v, const char * name);
  Napi::Value Dispose(const Napi::CallbackInfo & info);
  void Free();

  std::vector<LoraWrap *> loras_;
  std::vector<Napi::ObjectReference> lora_refs_;
};

}  // namespace sr3

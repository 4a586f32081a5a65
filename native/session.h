// SessionWrap: one llama_context with n parallel sequences on a model; LoraWrap: one adapter file
// loaded against a model. A session runs one operation at a time, off the JS thread.
#pragma once

#include <napi.h>
#include <llama.h>

#include "common.h"

#include <atomic>
#include <vector>

namespace sr3 {

class ModelWrap;

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
  OperationGate gate;

  // Marks the session busy or throws ERR_BUSY / ERR_DISPOSED.
  void Acquire(Napi::Env env);
  // Called on the JS thread when an operation ends; frees the context if dispose() came meanwhile.
  void Release();

 private:
  Napi::Value Run(const Napi::CallbackInfo & info);
  Napi::Value Evaluate(const Napi::CallbackInfo & info);
  Napi::Value SetLoras(const Napi::CallbackInfo & info);
  Napi::Value Abort(const Napi::CallbackInfo & info);
  Napi::Value Info(const Napi::CallbackInfo & info);
  Napi::Value Dispose(const Napi::CallbackInfo & info);
  void Free();

  std::vector<LoraWrap *> loras_;
  std::vector<Napi::ObjectReference> lora_refs_;
};

}  // namespace sr3

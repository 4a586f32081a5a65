// TrainerWrap: the JS face of a Trainer (train/trainer.h). One operation at a time, off the JS
// thread; misuse (disposed, concurrent) is a typed error, and dispose() during an operation asks
// it to stop and frees once it has.
#pragma once

#include "common.h"
#include "train/trainer.h"

#include <napi.h>

#include <atomic>
#include <memory>

namespace sr3 {

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // createTrainer(path, { threads, rank, alpha, modules, seed }) -> Promise<TrainerWrap>
  static Napi::Value Create(const Napi::CallbackInfo & info);
  explicit TrainerWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<TrainerWrap>(info) {}

  std::unique_ptr<Trainer> trainer;
  OperationGate gate;

  void Acquire(Napi::Env env);
  void Release();

 private:
  Napi::Value Info(const Napi::CallbackInfo & info);
  Napi::Value Forward(const Napi::CallbackInfo & info);
  Napi::Value Accumulate(const Napi::CallbackInfo & info);
  Napi::Value Step(const Napi::CallbackInfo & info);
  Napi::Value GetTensors(const Napi::CallbackInfo & info);
  Napi::Value SetTensors(const Napi::CallbackInfo & info);
  Napi::Value SetStep(const Napi::CallbackInfo & info);
  Napi::Value ZeroGrads(const Napi::CallbackInfo & info);
  Napi::Value Abort(const Napi::CallbackInfo & info);
  Napi::Value Dispose(const Napi::CallbackInfo & info);
  // Synchronous access is refused while an operation runs.
  void CheckIdle(Napi::Env env);
};

}  // namespace sr3

// Per-environment state of the addon (one per Node main thread or worker thread).
#pragma once

#include <napi.h>

namespace sr3 {

struct AddonData {
  Napi::FunctionReference model_ctor;
  Napi::FunctionReference lora_ctor;
  Napi::FunctionReference session_ctor;
  Napi::FunctionReference trainer_ctor;
};

AddonData * GetAddonData(Napi::Env env);

}  // namespace sr3

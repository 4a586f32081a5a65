// Module entry: registers the native classes and functions typed in src/native.ts.
#include <napi.h>
#include <llama.h>
#include <ggml-backend.h>

#include "addon_data.h"
#include "common.h"
#include "model.h"
#include "session.h"
#include "store/vector_kernels.h"
#include "train/trainer_wrap.h"

#include <mutex>

namespace sr3 {

AddonData * GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

static Napi::Value SystemInfo(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("system", llama_print_system_info());
  o.Set("gpuOffload", llama_supports_gpu_offload());
  o.Set("mmap", llama_supports_mmap());
  o.Set("maxDevices", (double)llama_max_devices());
#ifdef SEARCH_R3_CUDA
  o.Set("cuda", true);
#else
  o.Set("cuda", false);
#endif
  // Every backend device ggml registered (CPU, and each GPU in a CUDA build with a driver).
  Napi::Array devices = Napi::Array::New(env);
  for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    size_t free_b = 0, total_b = 0;
    ggml_backend_dev_memory(dev, &free_b, &total_b);
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", ggml_backend_dev_name(dev));
    d.Set("description", ggml_backend_dev_description(dev));
    const char * type = "other";
    switch (ggml_backend_dev_type(dev)) {
      case GGML_BACKEND_DEVICE_TYPE_CPU: type = "cpu"; break;
      case GGML_BACKEND_DEVICE_TYPE_GPU: type = "gpu"; break;
      default: break;
    }
    d.Set("type", type);
    d.Set("memoryTotal", (double)total_b);
    d.Set("memoryFree", (double)free_b);
    devices.Set((uint32_t)devices.Length(), d);
  }
  o.Set("devices", devices);
  return o;
}

static Napi::Value SetLogLevelJs(const Napi::CallbackInfo & info) {
  SetLogLevel((int)GetInt(info[0], "level", 0, 4));
  return info.Env().Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  static std::once_flag once;
  std::call_once(once, [] {
    InstallLogCapture();
    llama_backend_init();
  });
  auto * data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted by Node when this environment exits
  Napi::Function model = ModelWrap::Define(env);
  Napi::Function lora = LoraWrap::Define(env);
  Napi::Function session = SessionWrap::Define(env);
  data->model_ctor = Napi::Persistent(model);
  data->lora_ctor = Napi::Persistent(lora);
  data->session_ctor = Napi::Persistent(session);
  data->trainer_ctor = Napi::Persistent(TrainerWrap::Define(env));
  exports.Set("loadModel", Napi::Function::New<ModelWrap::Load>(env, "loadModel"));
  exports.Set("loadLora", Napi::Function::New<LoraWrap::Load>(env, "loadLora"));
  exports.Set("createSession", Napi::Function::New<SessionWrap::Create>(env, "createSession"));
  exports.Set("createTrainer", Napi::Function::New<TrainerWrap::Create>(env, "createTrainer"));
  exports.Set("systemInfo", Napi::Function::New<SystemInfo>(env, "systemInfo"));
  exports.Set("setLogLevel", Napi::Function::New<SetLogLevelJs>(env, "setLogLevel"));
  InitVectorKernels(env, exports);
  return exports;
}

}  // namespace sr3

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return sr3::Init(env, exports); }

NODE_API_MODULE(search_r3, InitModule)

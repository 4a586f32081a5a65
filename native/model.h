// ModelWrap: one llama_model (weights + vocabulary). Owns the model; sessions and adapters made from
// it keep a JS reference to it, so the weights outlive everything that uses them.
#pragma once

#include <napi.h>
#include <llama.h>

#include <atomic>

namespace sr3 {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // loadModel(path, { gpuLayers, mmap, vocabOnly }) -> Promise<ModelWrap>
  static Napi::Value Load(const Napi::CallbackInfo & info);

  explicit ModelWrap(const Napi::CallbackInfo & info);
  ~ModelWrap() override;

  llama_model * model() const { return model_; }
  const llama_vocab * vocab() const { return llama_model_get_vocab(model_); }
  // Throws ERR_DISPOSED when the model was disposed.
  llama_model * Checked(Napi::Env env) const;
  // Sessions alive on this model; dispose() refuses while any is.
  std::atomic<int> users{0};

 private:
  friend class LoadModelWorker;
  Napi::Value Metadata(const Napi::CallbackInfo & info);
  Napi::Value Tokenize(const Napi::CallbackInfo & info);
  Napi::Value Detokenize(const Napi::CallbackInfo & info);
  Napi::Value TokenPieces(const Napi::CallbackInfo & info);
  Napi::Value MetaValue(const Napi::CallbackInfo & info);
  Napi::Value ApplyChatTemplate(const Napi::CallbackInfo & info);
  Napi::Value Dispose(const Napi::CallbackInfo & info);

  llama_model * model_ = nullptr;
};

}  // namespace sr3

#include "model.h"

#include "addon_data.h"
#include "common.h"

#include <string>
#include <vector>

namespace sr3 {

namespace {

struct LoadArgs {
  std::string path;
  int32_t gpu_layers = 0;
  bool mmap = true;
  bool vocab_only = false;
};

}  // namespace

class LoadModelWorker : public PromiseWorker {
 public:
  LoadModelWorker(Napi::Env env, LoadArgs args) : PromiseWorker(env), args_(std::move(args)) {}

 protected:
  void Run() override {
    llama_model_params p = llama_model_default_params();
    p.n_gpu_layers = args_.gpu_layers;
    if (!args_.mmap) p.load_mode = LLAMA_LOAD_MODE_NONE;  // default: llama.cpp picks (mmap where it can)
    p.vocab_only = args_.vocab_only;
    ClearRecentLlamaErrors();
    model_ = llama_model_load_from_file(args_.path.c_str(), p);
    if (!model_) {
      std::string why = RecentLlamaErrors();
      throw NativeError("ERR_MODEL", "llama.cpp could not load " + args_.path + (why.empty() ? "" : ": " + why));
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object obj = GetAddonData(env)->model_ctor.New({});
    ModelWrap::Unwrap(obj)->model_ = model_;
    model_ = nullptr;
    return obj;
  }

  ~LoadModelWorker() override {
    if (model_) llama_model_free(model_);  // loaded, but the Promise could not be resolved
  }

 private:
  LoadArgs args_;
  llama_model * model_ = nullptr;
};

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeModel", {
      InstanceMethod<&ModelWrap::Metadata>("metadata"),
      InstanceMethod<&ModelWrap::Tokenize>("tokenize"),
      InstanceMethod<&ModelWrap::Detokenize>("detokenize"),
      InstanceMethod<&ModelWrap::TokenPieces>("tokenPieces"),
      InstanceMethod<&ModelWrap::MetaValue>("metaValue"),
      InstanceMethod<&ModelWrap::ApplyChatTemplate>("applyChatTemplate"),
      InstanceMethod<&ModelWrap::Dispose>("dispose"),
  });
}

Napi::Value ModelWrap::Load(const Napi::CallbackInfo & info) {
  LoadArgs a;
  a.path = GetString(info[0], "path");
  Napi::Object o = GetObject(info[1], "options");
  a.gpu_layers = (int32_t)OptInt(o, "gpuLayers", 0, -1, 100000);
  a.mmap = OptBool(o, "mmap", true);
  a.vocab_only = OptBool(o, "vocabOnly", false);
  auto * w = new LoadModelWorker(info.Env(), std::move(a));
  w->Queue();
  return w->Promise();
}

ModelWrap::ModelWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<ModelWrap>(info) {}

ModelWrap::~ModelWrap() {
  // At environment teardown finalizers run in no fixed order: a model whose sessions or adapters
  // are still alive is left to the process exit rather than freed under them.
  if (model_ && users.load() == 0) llama_model_free(model_);
}

llama_model * ModelWrap::Checked(Napi::Env env) const {
  if (!model_) throw MakeError(env, "ERR_DISPOSED", "the model was disposed");
  return model_;
}

static std::string MetaString(const llama_model * m, const char * key) {
  std::vector<char> buf(256);
  int32_t n = llama_model_meta_val_str(m, key, buf.data(), buf.size());
  if (n < 0) return "";
  if ((size_t)n >= buf.size()) {
    buf.resize(n + 1);
    llama_model_meta_val_str(m, key, buf.data(), buf.size());
  }
  return std::string(buf.data());
}

Napi::Value ModelWrap::Metadata(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  llama_model * m = Checked(env);
  const llama_vocab * v = vocab();
  Napi::Object o = Napi::Object::New(env);
  char desc[256];
  llama_model_desc(m, desc, sizeof desc);
  o.Set("description", desc);
  o.Set("architecture", MetaString(m, "general.architecture"));
  o.Set("name", MetaString(m, "general.name"));
  o.Set("nEmbd", llama_model_n_embd(m));
  o.Set("nLayer", llama_model_n_layer(m));
  // A vocabulary-only model has no layers, and llama.cpp aborts when asked for their head counts.
  const bool has_layers = llama_model_n_layer(m) > 0;
  o.Set("nHead", has_layers ? llama_model_n_head(m) : 0);
  o.Set("nHeadKv", has_layers ? llama_model_n_head_kv(m) : 0);
  o.Set("nVocab", llama_vocab_n_tokens(v));
  o.Set("contextLength", llama_model_n_ctx_train(m));
  o.Set("sizeBytes", (double)llama_model_size(m));
  o.Set("parameters", (double)llama_model_n_params(m));
  o.Set("hasEncoder", llama_model_has_encoder(m));
  o.Set("isRecurrent", llama_model_is_recurrent(m));
  const char * tmpl = llama_model_chat_template(m, nullptr);
  o.Set("chatTemplate", tmpl ? Napi::Value(Napi::String::New(env, tmpl)) : env.Null());
  o.Set("bos", llama_vocab_bos(v));
  o.Set("eos", llama_vocab_eos(v));
  o.Set("eot", llama_vocab_eot(v));
  o.Set("addBos", llama_vocab_get_add_bos(v));
  o.Set("addEos", llama_vocab_get_add_eos(v));
  return o;
}

// tokenize(text, addSpecial, parseSpecial) -> Int32Array
Napi::Value ModelWrap::Tokenize(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  Checked(env);
  std::string text = GetString(info[0], "text");
  bool add_special = GetBool(info[1], "addSpecial");
  bool parse_special = GetBool(info[2], "parseSpecial");
  if (text.size() > (size_t)INT32_MAX / 2) throw Napi::RangeError::New(env, "text is too long to tokenize");
  std::vector<llama_token> out(text.size() + 8);
  int32_t n = llama_tokenize(vocab(), text.data(), (int32_t)text.size(), out.data(), (int32_t)out.size(), add_special, parse_special);
  if (n < 0) {
    out.resize(-n);
    n = llama_tokenize(vocab(), text.data(), (int32_t)text.size(), out.data(), (int32_t)out.size(), add_special, parse_special);
  }
  if (n < 0) throw MakeError(env, "ERR_NATIVE", "tokenization failed");
  Napi::Int32Array arr = Napi::Int32Array::New(env, n);
  std::copy(out.begin(), out.begin() + n, arr.Data());
  return arr;
}

static void CheckTokens(Napi::Env env, const llama_vocab * v, const std::vector<int32_t> & t, const char * name) {
  const int32_t n = llama_vocab_n_tokens(v);
  for (size_t i = 0; i < t.size(); i++) {
    if (t[i] < 0 || t[i] >= n) {
      throw Napi::RangeError::New(env, std::string("Expected token ids in [0, ") + std::to_string(n) + ") for " + name +
                                           " but element " + std::to_string(i) + " is " + std::to_string(t[i]));
    }
  }
}

// detokenize(tokens, removeSpecial, unparseSpecial) -> string
Napi::Value ModelWrap::Detokenize(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  Checked(env);
  std::vector<int32_t> tokens = GetInt32Array(info[0], "tokens");
  bool remove_special = GetBool(info[1], "removeSpecial");
  bool unparse_special = GetBool(info[2], "unparseSpecial");
  CheckTokens(env, vocab(), tokens, "tokens");
  std::string out(tokens.size() * 8 + 16, '\0');
  int32_t n = llama_detokenize(vocab(), tokens.data(), (int32_t)tokens.size(), out.data(), (int32_t)out.size(), remove_special, unparse_special);
  if (n < 0) {
    out.resize(-n);
    n = llama_detokenize(vocab(), tokens.data(), (int32_t)tokens.size(), out.data(), (int32_t)out.size(), remove_special, unparse_special);
  }
  if (n < 0) throw MakeError(env, "ERR_NATIVE", "detokenization failed");
  out.resize(n);
  return Napi::String::New(env, out);
}

// tokenPieces(tokens, special) -> string[]: the text of each token (special: render control tokens).
Napi::Value ModelWrap::TokenPieces(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  Checked(env);
  std::vector<int32_t> tokens = GetInt32Array(info[0], "tokens");
  bool special = GetBool(info[1], "special");
  CheckTokens(env, vocab(), tokens, "tokens");
  Napi::Array arr = Napi::Array::New(env, tokens.size());
  std::vector<char> buf(256);
  for (size_t i = 0; i < tokens.size(); i++) {
    int32_t n = llama_token_to_piece(vocab(), tokens[i], buf.data(), (int32_t)buf.size(), 0, special);
    if (n < 0) {
      buf.resize(-n);
      n = llama_token_to_piece(vocab(), tokens[i], buf.data(), (int32_t)buf.size(), 0, special);
    }
    arr.Set(i, Napi::String::New(env, buf.data(), n < 0 ? 0 : n));
  }
  return arr;
}

// metaValue(key) -> string | null
Napi::Value ModelWrap::MetaValue(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  llama_model * m = Checked(env);
  std::string key = GetString(info[0], "key");
  char probe[1];
  if (llama_model_meta_val_str(m, key.c_str(), probe, 1) < 0) return env.Null();
  return Napi::String::New(env, MetaString(m, key.c_str()));
}

// applyChatTemplate(messages: {role, content}[], addAssistant) -> string | null
// null when the model has no chat template or llama.cpp does not recognise it.
Napi::Value ModelWrap::ApplyChatTemplate(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  llama_model * m = Checked(env);
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "Expected array for messages");
  Napi::Array arr = info[0].As<Napi::Array>();
  bool add_assistant = GetBool(info[1], "addAssistant");
  const char * tmpl = llama_model_chat_template(m, nullptr);
  if (!tmpl) return env.Null();
  std::vector<std::string> roles, contents;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object msg = GetObject(arr.Get(i), "messages[i]");
    roles.push_back(GetString(msg.Get("role"), "role"));
    contents.push_back(GetString(msg.Get("content"), "content"));
  }
  std::vector<llama_chat_message> chat;
  size_t total = 0;
  for (size_t i = 0; i < roles.size(); i++) {
    chat.push_back({roles[i].c_str(), contents[i].c_str()});
    total += roles[i].size() + contents[i].size();
  }
  std::vector<char> buf(total * 2 + 512);
  int32_t n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), add_assistant, buf.data(), (int32_t)buf.size());
  if (n < 0) return env.Null();
  if ((size_t)n > buf.size()) {
    buf.resize(n);
    n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), add_assistant, buf.data(), (int32_t)buf.size());
  }
  return Napi::String::New(env, buf.data(), n);
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo & info) {
  Napi::Env env = info.Env();
  if (users.load() > 0) throw MakeError(env, "ERR_BUSY", "the model still has open sessions; dispose them first");
  if (model_) {
    llama_model_free(model_);
    model_ = nullptr;
  }
  return env.Undefined();
}

}  // namespace sr3

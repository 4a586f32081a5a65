#include "common.h"

#include <llama.h>

#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <mutex>

namespace sr3 {

Napi::Error MakeError(Napi::Env env, const std::string & code, const std::string & message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

static std::string TypeName(const Napi::Value & v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return "object";
    case napi_function: return "function";
    case napi_bigint: return "bigint";
    default: return "value";
  }
}

[[noreturn]] static void ThrowType(const Napi::Value & v, const char * what, const char * name) {
  throw Napi::TypeError::New(v.Env(), std::string("Expected ") + what + " for " + name + " but received a value of type " + TypeName(v));
}

std::string GetString(const Napi::Value & v, const char * name) {
  if (!v.IsString()) ThrowType(v, "string", name);
  return v.As<Napi::String>().Utf8Value();
}

double GetNumber(const Napi::Value & v, const char * name) {
  if (!v.IsNumber()) ThrowType(v, "number", name);
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::isnan(d)) ThrowType(v, "number (not NaN)", name);
  return d;
}

int64_t GetInt(const Napi::Value & v, const char * name, int64_t min, int64_t max) {
  double d = GetNumber(v, name);
  if (d != std::floor(d) || d < (double)min || d > (double)max) {
    throw Napi::RangeError::New(v.Env(), std::string("Expected integer between ") + std::to_string(min) + " and " +
                                             std::to_string(max) + " for " + name + " but received " + std::to_string(d));
  }
  return (int64_t)d;
}

static std::string FormatNumber(double d) {
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";  // as JS prints it
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", d);
  return buf;
}

double GetNumberIn(const Napi::Value & v, const char * name, double min, double max, bool min_open, bool max_open) {
  double d = GetNumber(v, name);
  bool below = min_open ? !(d > min) : !(d >= min);
  bool above = max_open ? !(d < max) : !(d <= max);
  if (below || above || !std::isfinite(d)) {
    throw Napi::RangeError::New(v.Env(), std::string("Expected a finite number in ") + (min_open ? "(" : "[") + FormatNumber(min) + ", " +
                                             FormatNumber(max) + (max_open ? ")" : "]") + " for " + name + " but received " + FormatNumber(d));
  }
  return d;
}

bool GetBool(const Napi::Value & v, const char * name) {
  if (!v.IsBoolean()) ThrowType(v, "boolean", name);
  return v.As<Napi::Boolean>().Value();
}

Napi::Object GetObject(const Napi::Value & v, const char * name) {
  if (!v.IsObject() || v.IsArray()) ThrowType(v, "object", name);
  return v.As<Napi::Object>();
}

std::vector<int32_t> GetInt32Array(const Napi::Value & v, const char * name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) ThrowType(v, "Int32Array", name);
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

std::vector<float> GetFloat32Array(const Napi::Value & v, const char * name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) ThrowType(v, "Float32Array", name);
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

double OptNumber(const Napi::Object & o, const char * key, double def) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? def : GetNumber(v, key);
}

int64_t OptInt(const Napi::Object & o, const char * key, int64_t def, int64_t min, int64_t max) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? def : GetInt(v, key, min, max);
}

bool OptBool(const Napi::Object & o, const char * key, bool def) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? def : GetBool(v, key);
}

void PromiseWorker::Execute() {
  try {
    Run();
  } catch (const NativeError & e) {
    code_ = e.code;
    SetError(e.what());
  } catch (const std::bad_alloc &) {
    code_ = "ERR_NATIVE";
    SetError("out of memory");
  } catch (const std::exception & e) {
    code_ = "ERR_NATIVE";
    SetError(e.what());
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Finally();
  try {
    deferred_.Resolve(Result(env));
  } catch (const Napi::Error & e) {
    deferred_.Reject(e.Value());
  }
}

void PromiseWorker::OnError(const Napi::Error & e) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Finally();
  deferred_.Reject(MakeError(env, code_, e.Message()).Value());
}

void OperationGate::Acquire(Napi::Env env, bool alive, const char * what) {
  if (!alive || dispose_pending_) throw MakeError(env, "ERR_DISPOSED", std::string("the ") + what + " was disposed");
  bool expected = false;
  if (!busy_.compare_exchange_strong(expected, true)) {
    throw MakeError(env, "ERR_BUSY", std::string("the ") + what + " is already running an operation; await it first");
  }
  abort_flag.store(false);
}

bool OperationGate::Release() {
  busy_.store(false);
  return dispose_pending_;
}

bool OperationGate::RequestDispose() {
  if (!busy_.load()) return true;
  dispose_pending_ = true;
  abort_flag.store(true);
  return false;
}

// ---- log capture -------------------------------------------------------------------------------

static std::mutex g_log_mutex;
static int g_log_level = 1;
static std::deque<std::string> g_recent;
static std::string g_partial;

static void LogCallback(ggml_log_level level, const char * text, void *) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  int rank = level == GGML_LOG_LEVEL_ERROR ? 1 : level == GGML_LOG_LEVEL_WARN ? 2 : level == GGML_LOG_LEVEL_INFO ? 3
           : level == GGML_LOG_LEVEL_CONT ? 3 : 4;
  if (rank <= g_log_level) fputs(text, stderr);
  if (rank <= 2 || level == GGML_LOG_LEVEL_CONT) {
    g_partial += text;
    size_t nl;
    while ((nl = g_partial.find('\n')) != std::string::npos) {
      std::string line = g_partial.substr(0, nl);
      g_partial.erase(0, nl + 1);
      if (!line.empty()) g_recent.push_back(line);
      if (g_recent.size() > 8) g_recent.pop_front();
    }
  }
}

void InstallLogCapture() { llama_log_set(LogCallback, nullptr); }

void SetLogLevel(int level) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_log_level = level;
}

std::string RecentLlamaErrors() {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::string out;
  for (const auto & l : g_recent) out += (out.empty() ? "" : "; ") + l;
  return out;
}

void ClearRecentLlamaErrors() {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_recent.clear();
  g_partial.clear();
}

}  // namespace sr3

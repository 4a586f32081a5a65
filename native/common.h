// Shared helpers for the addon: typed errors that cross from worker threads to JS, argument
// readers that never trust TypeScript's types, a Promise-returning worker base, and capture of
// llama.cpp's log so that load failures can say what llama.cpp complained about.
#pragma once

#include <napi.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

namespace sr3 {

// An error with a fixed string code (see src/util/errors.ts). Thrown in worker threads,
// recorded by PromiseWorker and turned into a rejected Promise on the JS thread.
struct NativeError : std::runtime_error {
  std::string code;
  NativeError(std::string code, const std::string & message) : std::runtime_error(message), code(std::move(code)) {}
};

// Builds a JS Error carrying `code`.
Napi::Error MakeError(Napi::Env env, const std::string & code, const std::string & message);

// Argument readers: throw a TypeError naming the argument when the JS value has the wrong type.
std::string GetString(const Napi::Value & v, const char * name);
double GetNumber(const Napi::Value & v, const char * name);
int64_t GetInt(const Napi::Value & v, const char * name, int64_t min, int64_t max);
// A finite number in the interval from min to max, each end closed or open (RangeError quoting the
// interval otherwise): for values TS resolves and the addon must check, never default.
double GetNumberIn(const Napi::Value & v, const char * name, double min, double max, bool min_open = false, bool max_open = false);
bool GetBool(const Napi::Value & v, const char * name);
Napi::Object GetObject(const Napi::Value & v, const char * name);
std::vector<int32_t> GetInt32Array(const Napi::Value & v, const char * name);
std::vector<float> GetFloat32Array(const Napi::Value & v, const char * name);

// Optional fields of an options object: the default when absent or undefined.
double OptNumber(const Napi::Object & o, const char * key, double def);
int64_t OptInt(const Napi::Object & o, const char * key, int64_t def, int64_t min, int64_t max);
bool OptBool(const Napi::Object & o, const char * key, bool def);

// A worker whose result settles a Promise. Subclasses implement Execute() (C++ only, may throw
// NativeError or std::exception) and Result() (on the JS thread, builds the resolved value).
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;
  // Called on the JS thread after success or failure, before the Promise settles.
  virtual void Finally() {}

 private:
  void Execute() final;
  void OnOK() final;
  void OnError(const Napi::Error & e) final;

  Napi::Promise::Deferred deferred_;
  std::string code_ = "ERR_NATIVE";
};

// One operation at a time on a native object (a session, a trainer), and a dispose() that waits
// for the running one instead of freeing under it. Used on the JS thread only, except abort_flag,
// which the running worker polls.
class OperationGate {
 public:
  // Marks the object busy and clears the abort flag, or throws ERR_DISPOSED (when !alive or a
  // dispose is pending) / ERR_BUSY naming `what` ("session", "trainer").
  void Acquire(Napi::Env env, bool alive, const char * what);
  // Ends the operation; true when dispose() came meanwhile, so the owner must free now.
  bool Release();
  // true: nothing runs, free now. false: the running operation is asked to stop and Release()
  // will return true.
  bool RequestDispose();
  bool Busy() const { return busy_.load(); }
  bool DisposePending() const { return dispose_pending_; }

  std::atomic<bool> abort_flag{false};
  // The abort callback llama.cpp and ggml take, with &abort_flag as its data.
  static bool AbortRequested(void * flag) { return static_cast<std::atomic<bool> *>(flag)->load(); }

 private:
  std::atomic<bool> busy_{false};
  bool dispose_pending_ = false;
};

// llama.cpp / ggml log routing. Messages at or above the chosen level go to stderr; the most recent
// warnings and errors are kept so that a failure can quote them.
void InstallLogCapture();
void SetLogLevel(int level);  // 0 none, 1 error, 2 warn, 3 info, 4 debug
std::string RecentLlamaErrors();
void ClearRecentLlamaErrors();

}  // namespace sr3

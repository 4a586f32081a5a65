// Exact top-k over an F32 slab and a streaming sum; see vector_kernels.h for the JS surface.
#include "vector_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SR3_VK_X86 1
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#define SR3_VK_NEON 1
#endif

namespace {

// Below this many floats per thread, starting a thread costs more than the scan it would do.
constexpr int64_t kMinFloatsPerThread = int64_t(1) << 16;
constexpr int kMaxThreads = 256;

using DotFn = double (*)(const float * row, const float * query, int64_t n);
using SumFn = double (*)(const float * data, int64_t n);

// The portable paths widen to double; they agree with a plain double loop to ~dim*2^-52.
double DotScalar(const float * a, const float * q, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += double(a[i]) * double(q[i]);
    s1 += double(a[i + 1]) * double(q[i + 1]);
    s2 += double(a[i + 2]) * double(q[i + 2]);
    s3 += double(a[i + 3]) * double(q[i + 3]);
  }
  for (; i < n; ++i) s0 += double(a[i]) * double(q[i]);
  return (s0 + s1) + (s2 + s3);
}

double SumScalar(const float * p, int64_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < n; ++i) s0 += p[i];
  return double(s0) + s1 + s2 + s3;
}

#ifdef SR3_VK_X86
// F32 multiply-adds in blocks of 64 elements (each lane sums 8 products), each block's partial
// sums widened into double accumulators. This costs about one FMA per 8 floats, so the scan stays
// memory-bound even when other processes share the cores, while the error stays below
// 9*2^-24*sum|a_i q_i| + dim*2^-53 (see kKernelTolerance in src/store/exact-search.ts).
__attribute__((target("avx2,fma"))) double DotAvx2(const float * a, const float * q, int64_t n) {
  __m256d d0 = _mm256_setzero_pd(), d1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m256 s0 = _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(q + i));
    __m256 s1 = _mm256_mul_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(q + i + 8));
    for (int j = 16; j < 64; j += 16) {
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + j), _mm256_loadu_ps(q + i + j), s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + j + 8), _mm256_loadu_ps(q + i + j + 8), s1);
    }
    const __m256 s = _mm256_add_ps(s0, s1);
    d0 = _mm256_add_pd(d0, _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
    d1 = _mm256_add_pd(d1, _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(d0, d1));
  double total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) total += double(a[i]) * double(q[i]);
  return total;
}

__attribute__((target("avx2"))) double SumAvx2(const float * p, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + i + 24));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  double total = 0;
  for (float v : lanes) total += v;
  for (; i < n; ++i) total += p[i];
  return total;
}
#endif

#ifdef SR3_VK_NEON
double DotNeon(const float * a, const float * q, int64_t n) {
  float64x2_t s0 = vdupq_n_f64(0), s1 = vdupq_n_f64(0), s2 = vdupq_n_f64(0), s3 = vdupq_n_f64(0);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t x0 = vld1q_f32(a + i), y0 = vld1q_f32(q + i);
    const float32x4_t x1 = vld1q_f32(a + i + 4), y1 = vld1q_f32(q + i + 4);
    s0 = vfmaq_f64(s0, vcvt_f64_f32(vget_low_f32(x0)), vcvt_f64_f32(vget_low_f32(y0)));
    s1 = vfmaq_f64(s1, vcvt_high_f64_f32(x0), vcvt_high_f64_f32(y0));
    s2 = vfmaq_f64(s2, vcvt_f64_f32(vget_low_f32(x1)), vcvt_f64_f32(vget_low_f32(y1)));
    s3 = vfmaq_f64(s3, vcvt_high_f64_f32(x1), vcvt_high_f64_f32(y1));
  }
  double total = vaddvq_f64(vaddq_f64(vaddq_f64(s0, s1), vaddq_f64(s2, s3)));
  for (; i < n; ++i) total += double(a[i]) * double(q[i]);
  return total;
}

double SumNeon(const float * p, int64_t n) {
  float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0), s2 = vdupq_n_f32(0), s3 = vdupq_n_f32(0);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = vaddq_f32(s0, vld1q_f32(p + i));
    s1 = vaddq_f32(s1, vld1q_f32(p + i + 4));
    s2 = vaddq_f32(s2, vld1q_f32(p + i + 8));
    s3 = vaddq_f32(s3, vld1q_f32(p + i + 12));
  }
  double total = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; ++i) total += p[i];
  return total;
}
#endif

struct Isa {
  const char * name;
  DotFn dot;
  SumFn sum;
};

// Chosen once per process from what the CPU reports, so one binary runs on any x86-64.
const Isa & PickIsa() {
  static const Isa isa = []() -> Isa {
#ifdef SR3_VK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {"avx2", DotAvx2, SumAvx2};
#endif
#ifdef SR3_VK_NEON
    return {"neon", DotNeon, SumNeon};
#endif
    return {"scalar", DotScalar, SumScalar};
  }();
  return isa;
}

int HardwareThreads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

// Threads actually used: the request (0 = all hardware threads), but never so many that a
// thread gets less than kMinFloatsPerThread of work.
int ThreadsFor(int64_t rows, int64_t dim, int requested) {
  const int64_t wanted = requested > 0 ? requested : HardwareThreads();
  const int64_t by_work = std::max<int64_t>(1, rows * dim / kMinFloatsPerThread);
  return int(std::max<int64_t>(1, std::min({wanted, by_work, int64_t(kMaxThreads)})));
}

// Runs body(part, begin, end) over [0, total) split into `parts` contiguous ranges, the last on the
// calling thread. An exception in any part is rethrown here after all threads joined, because an
// exception escaping a std::thread would terminate the process.
template <typename Body>
void ParallelFor(int64_t total, int parts, Body body) {
  std::vector<std::exception_ptr> errors(parts);
  auto run = [&](int part) {
    const int64_t begin = total * part / parts, end = total * (part + 1) / parts;
    try {
      body(part, begin, end);
    } catch (...) {
      errors[part] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(parts - 1);
  for (int p = 0; p + 1 < parts; ++p) pool.emplace_back(run, p);
  run(parts - 1);
  for (auto & t : pool) t.join();
  for (auto & e : errors) if (e) std::rethrow_exception(e);
}

struct Hit {
  double score;
  int64_t row;
};

// Total order used everywhere: higher score first, then lower row, so results never depend on
// how rows were split across threads.
inline bool Better(const Hit & a, const Hit & b) {
  return a.score > b.score || (a.score == b.score && a.row < b.row);
}

// A bounded heap whose front is the worst kept hit.
void Offer(std::vector<Hit> & heap, size_t k, Hit hit) {
  if (heap.size() < k) {
    heap.push_back(hit);
    std::push_heap(heap.begin(), heap.end(), Better);
  } else if (Better(hit, heap.front())) {
    std::pop_heap(heap.begin(), heap.end(), Better);
    heap.back() = hit;
    std::push_heap(heap.begin(), heap.end(), Better);
  }
}

struct TopKJob {
  const float * slab = nullptr;
  int64_t rows = 0;
  int64_t dim = 0;
  std::vector<float> queries;  // nq*dim, copied on the JS thread
  int64_t nq = 0;
  int64_t k = 0;  // already clamped to rows (the output stride)
  int threads = 0;
  const double * versions = nullptr;
  double min_version = -std::numeric_limits<double>::infinity();
  double max_version = std::numeric_limits<double>::infinity();
  // results
  std::vector<int32_t> out_rows;
  std::vector<double> out_scores;
  std::vector<int32_t> counts;
};

void RunTopK(TopKJob & job) {
  const Isa & isa = PickIsa();
  const int parts = ThreadsFor(job.rows, job.dim, job.threads);
  const size_t k = size_t(job.k);
  // heaps[part][query]
  std::vector<std::vector<std::vector<Hit>>> heaps(parts, std::vector<std::vector<Hit>>(job.nq));
  ParallelFor(job.rows, parts, [&](int part, int64_t begin, int64_t end) {
    auto & mine = heaps[part];
    for (auto & h : mine) h.reserve(std::min<size_t>(k, size_t(end - begin)));
    for (int64_t row = begin; row < end; ++row) {
      if (job.versions) {
        const double v = job.versions[row];
        if (!(v >= job.min_version && v <= job.max_version)) continue;
      }
      const float * r = job.slab + row * job.dim;
      for (int64_t q = 0; q < job.nq; ++q) {
        const double s = isa.dot(r, job.queries.data() + q * job.dim, job.dim);
        // NaN has no place in a total order (and would corrupt the heap), so such rows never match.
        if (std::isnan(s)) continue;
        Offer(mine[q], k, Hit{s, row});
      }
    }
  });
  job.out_rows.assign(size_t(job.nq) * k, -1);
  job.out_scores.assign(size_t(job.nq) * k, 0.0);
  job.counts.assign(size_t(job.nq), 0);
  std::vector<Hit> merged;
  for (int64_t q = 0; q < job.nq; ++q) {
    merged.clear();
    for (auto & part : heaps) merged.insert(merged.end(), part[q].begin(), part[q].end());
    const size_t n = std::min(k, merged.size());
    std::partial_sort(merged.begin(), merged.begin() + n, merged.end(), Better);
    for (size_t i = 0; i < n; ++i) {
      job.out_rows[q * k + i] = int32_t(merged[i].row);
      job.out_scores[q * k + i] = merged[i].score;
    }
    job.counts[q] = int32_t(n);
  }
}

double RunSum(const float * data, int64_t count, int threads) {
  const Isa & isa = PickIsa();
  const int parts = ThreadsFor(count, 1, threads);
  std::vector<double> partial(parts, 0.0);
  ParallelFor(count, parts, [&](int part, int64_t begin, int64_t end) {
    partial[part] = isa.sum(data + begin, end - begin);
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

// ---- argument reading (never trust the caller's types) ----

std::string Describe(const Napi::Value & v) {
  if (v.IsNumber()) {
    std::ostringstream shown;
    shown << v.As<Napi::Number>().DoubleValue();
    return shown.str() + " of type number";
  }
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) return "a typed array of another element type";
  return "a value of type " + std::string(v.IsString() ? "string" : v.IsObject() ? "object" : "other");
}

int64_t ReadInt(const Napi::Value & v, const char * name, int64_t min, int64_t max) {
  Napi::Env env = v.Env();
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("Expected integer for ") + name + " but received " + Describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(std::floor(d) == d) || d < double(min) || d > double(max)) {
    throw Napi::RangeError::New(env, std::string("Expected integer between ") + std::to_string(min) + " and " +
                                         std::to_string(max) + " for " + name + " but received " + Describe(v));
  }
  return int64_t(d);
}

double ReadNumber(const Napi::Value & v, const char * name) {
  if (!v.IsNumber() || std::isnan(v.As<Napi::Number>().DoubleValue())) {
    throw Napi::TypeError::New(v.Env(), std::string("Expected number for ") + name + " but received " + Describe(v));
  }
  return v.As<Napi::Number>().DoubleValue();
}

template <typename T>
T ReadTypedArray(const Napi::Value & v, napi_typedarray_type type, const char * name, const char * what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    throw Napi::TypeError::New(v.Env(), std::string("Expected ") + what + " for " + name + " but received " + Describe(v));
  }
  return v.As<T>();
}

// Parses (slab, rows, dim, queries, k, options) into a job; returns the objects to keep alive.
std::unique_ptr<TopKJob> ParseTopK(const Napi::CallbackInfo & info, Napi::Object * slab_out, Napi::Value * versions_out) {
  Napi::Env env = info.Env();
  auto job = std::make_unique<TopKJob>();
  Napi::Float32Array slab = ReadTypedArray<Napi::Float32Array>(info[0], napi_float32_array, "slab", "Float32Array");
  job->rows = ReadInt(info[1], "rows", 0, std::numeric_limits<int32_t>::max());
  job->dim = ReadInt(info[2], "dim", 1, int64_t(1) << 24);
  if (double(job->rows) * double(job->dim) > double(slab.ElementLength())) {
    throw Napi::RangeError::New(env, "Expected slab of at least rows*dim = " + std::to_string(job->rows * job->dim) +
                                         " elements but received " + std::to_string(slab.ElementLength()));
  }
  job->slab = slab.Data();
  Napi::Float32Array queries = ReadTypedArray<Napi::Float32Array>(info[3], napi_float32_array, "queries", "Float32Array");
  const int64_t qlen = int64_t(queries.ElementLength());
  if (qlen == 0 || qlen % job->dim != 0) {
    throw Napi::RangeError::New(env, "Expected queries of a positive multiple of dim = " + std::to_string(job->dim) +
                                         " elements but received " + std::to_string(qlen));
  }
  job->nq = qlen / job->dim;
  job->queries.assign(queries.Data(), queries.Data() + qlen);
  const int64_t k = ReadInt(info[4], "k", 1, std::numeric_limits<int32_t>::max());
  job->k = std::max<int64_t>(1, std::min(k, job->rows));
  *slab_out = slab;
  *versions_out = env.Undefined();
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    if (!info[5].IsObject()) throw Napi::TypeError::New(env, "Expected object for options but received " + Describe(info[5]));
    Napi::Object o = info[5].As<Napi::Object>();
    if (o.Has("threads") && !o.Get("threads").IsUndefined()) job->threads = int(ReadInt(o.Get("threads"), "threads", 0, kMaxThreads));
    if (o.Has("versions") && !o.Get("versions").IsUndefined()) {
      Napi::Float64Array versions = ReadTypedArray<Napi::Float64Array>(o.Get("versions"), napi_float64_array, "versions", "Float64Array");
      if (int64_t(versions.ElementLength()) < job->rows) {
        throw Napi::RangeError::New(env, "Expected versions of at least rows = " + std::to_string(job->rows) +
                                             " elements but received " + std::to_string(versions.ElementLength()));
      }
      job->versions = versions.Data();
      *versions_out = versions;
    }
    if (o.Has("minVersion") && !o.Get("minVersion").IsUndefined()) job->min_version = ReadNumber(o.Get("minVersion"), "minVersion");
    if (o.Has("maxVersion") && !o.Get("maxVersion").IsUndefined()) job->max_version = ReadNumber(o.Get("maxVersion"), "maxVersion");
  }
  return job;
}

Napi::Object TopKToJs(Napi::Env env, const TopKJob & job) {
  Napi::Object out = Napi::Object::New(env);
  auto rows = Napi::Int32Array::New(env, job.out_rows.size());
  std::copy(job.out_rows.begin(), job.out_rows.end(), rows.Data());
  auto scores = Napi::Float64Array::New(env, job.out_scores.size());
  std::copy(job.out_scores.begin(), job.out_scores.end(), scores.Data());
  auto counts = Napi::Int32Array::New(env, job.counts.size());
  std::copy(job.counts.begin(), job.counts.end(), counts.Data());
  out.Set("k", Napi::Number::New(env, double(job.k)));
  out.Set("rows", rows);
  out.Set("scores", scores);
  out.Set("counts", counts);
  return out;
}

// Baton-style worker: the job holds plain C++ values; the typed arrays it points into stay
// referenced until the Promise settles so the garbage collector cannot free them mid-scan.
class TopKWorker : public Napi::AsyncWorker {
 public:
  TopKWorker(Napi::Env env, std::unique_ptr<TopKJob> job, Napi::Object slab, Napi::Value versions)
      : Napi::AsyncWorker(env, "searchR3.vectorTopK"), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)) {
    slab_ = Napi::Persistent(slab);
    if (versions.IsObject()) versions_ = Napi::Persistent(versions.As<Napi::Object>());
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { RunTopK(*job_); }
  void OnOK() override { deferred_.Resolve(TopKToJs(Env(), *job_)); }
  void OnError(const Napi::Error & e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<TopKJob> job_;
  Napi::ObjectReference slab_;
  Napi::ObjectReference versions_;
};

class SumWorker : public Napi::AsyncWorker {
 public:
  SumWorker(Napi::Env env, Napi::Float32Array data, int64_t count, int threads)
      : Napi::AsyncWorker(env, "searchR3.vectorSum"), deferred_(Napi::Promise::Deferred::New(env)),
        data_(data.Data()), count_(count), threads_(threads) {
    ref_ = Napi::Persistent(static_cast<Napi::Object>(data));
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { sum_ = RunSum(data_, count_, threads_); }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), sum_)); }
  void OnError(const Napi::Error & e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  const float * data_;
  int64_t count_;
  int threads_;
  double sum_ = 0;
  Napi::ObjectReference ref_;
};

Napi::Value TopKAsync(const Napi::CallbackInfo & info) {
  Napi::Object slab;
  Napi::Value versions;
  auto job = ParseTopK(info, &slab, &versions);
  auto * worker = new TopKWorker(info.Env(), std::move(job), slab, versions);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value TopKSync(const Napi::CallbackInfo & info) {
  Napi::Object slab;
  Napi::Value versions;
  auto job = ParseTopK(info, &slab, &versions);
  RunTopK(*job);
  return TopKToJs(info.Env(), *job);
}

struct SumArgs {
  Napi::Float32Array data;
  int64_t count;
  int threads;
};

SumArgs ParseSum(const Napi::CallbackInfo & info) {
  Napi::Float32Array data = ReadTypedArray<Napi::Float32Array>(info[0], napi_float32_array, "data", "Float32Array");
  const int64_t count = ReadInt(info[1], "count", 0, int64_t(data.ElementLength()));
  const int threads = info[2].IsUndefined() ? 0 : int(ReadInt(info[2], "threads", 0, kMaxThreads));
  return {data, count, threads};
}

Napi::Value SumAsync(const Napi::CallbackInfo & info) {
  SumArgs a = ParseSum(info);
  auto * worker = new SumWorker(info.Env(), a.data, a.count, a.threads);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value SumSync(const Napi::CallbackInfo & info) {
  SumArgs a = ParseSum(info);
  return Napi::Number::New(info.Env(), RunSum(a.data.Data(), a.count, a.threads));
}

Napi::Value KernelInfo(const Napi::CallbackInfo & info) {
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("isa", PickIsa().name);
  out.Set("hardwareThreads", Napi::Number::New(info.Env(), HardwareThreads()));
  return out;
}

}  // namespace

void InitVectorKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("vectorTopK", Napi::Function::New(env, TopKAsync, "vectorTopK"));
  exports.Set("vectorTopKSync", Napi::Function::New(env, TopKSync, "vectorTopKSync"));
  exports.Set("vectorSum", Napi::Function::New(env, SumAsync, "vectorSum"));
  exports.Set("vectorSumSync", Napi::Function::New(env, SumSync, "vectorSumSync"));
  exports.Set("vectorKernelInfo", Napi::Function::New(env, KernelInfo, "vectorKernelInfo"));
}

// Exact vector search kernels for the vector store (src/store/): batched dot products of F32 rows
// against queries, with per-thread top-k heaps, plus a streaming sum used as the memory-bandwidth
// yardstick in bench/store-bench.js. Mechanism only: which rows, which k and which version window
// are decided in TypeScript.
//
// JS surface added to `exports` (all arguments are checked here; a wrong type throws TypeError,
// an out-of-range value RangeError, never a crash):
//
//   vectorTopK(slab, rows, dim, queries, k, options) -> Promise<TopKResult>
//   vectorTopKSync(slab, rows, dim, queries, k, options) -> TopKResult
//     slab     Float32Array, row-major, at least rows*dim elements; rows 0..rows-1 are scanned
//     queries  Float32Array of nq*dim elements (nq >= 1), used as given (callers normalise)
//     k        best rows kept per query (1..2^31-1); fewer come back when fewer rows qualify
//     options  { threads?: number (0 or absent = hardware threads),
//                versions?: Float64Array (one per row), minVersion?: number, maxVersion?: number }
//              with `versions`, only rows whose version lies in [minVersion, maxVersion] qualify
//     TopKResult { rows: Int32Array(nq*k), scores: Float64Array(nq*k), counts: Int32Array(nq) }
//              query q's hits are rows[q*k .. q*k+counts[q]), best first; order is score
//              descending, then row ascending; unused slots hold row -1
//     Scores are dot products within 10*2^-24*sum|a_i*q_i| + dim*2^-52 of the exact value (AVX2
//     sums blocks of 8 products per lane in F32 and the blocks in double; the other paths work in
//     double); callers that need exact scores rescore the candidates (src/store/exact-search.ts).
//
//   vectorSum(data, count, threads) -> Promise<number>, vectorSumSync(data, count, threads) -> number
//     Sum of data[0..count) read with the same threads and SIMD width as vectorTopK: the honest
//     memory-bandwidth bound for a scan of the same bytes.
//
//   vectorKernelInfo() -> { isa: 'avx2' | 'neon' | 'scalar', hardwareThreads: number }
//
// The asynchronous variants run on libuv's pool and split the scan across std::threads; the
// typed arrays stay referenced until the Promise settles. Callers must not write to the slab while
// a search runs (the store enforces this). Thread-safe: each call owns its buffers.
#pragma once

#include <napi.h>

// Adds the functions above to `exports`. Called once per environment from native/addon.cc.
void InitVectorKernels(Napi::Env env, Napi::Object exports);

#!/usr/bin/env node
// Builds build/Release/search_r3.node with cmake-js.
//   SEARCH_R3_CUDA=1                  also build llama.cpp's CUDA backend (needs nvcc and cuBLAS;
//                                     CUDACXX=/path/to/nvcc when nvcc is not on PATH, as for CMake)
//   SEARCH_R3_CUDA_ARCHITECTURES=90   CUDA architectures (CMAKE_CUDA_ARCHITECTURES), default llama.cpp's list
//   SEARCH_R3_JOBS=N                  parallel compile jobs (default: number of CPUs)
//   SEARCH_R3_BUILD_TYPE=Debug        build type (default Release)
//   SEARCH_R3_OPENMP=0                ggml's own thread pool instead of OpenMP (default: OpenMP, as llama.cpp)
//   SEARCH_R3_LLAMA_BENCH=1           also build llama-bench and llama-batched-bench from the same ggml build
//                                     (into build/llama-bench and build/batched-bench), for bench/engine-bench.js --llama-bin
'use strict';
const { spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const env = process.env;
const truthy = (v) => v !== undefined && /^(1|on|true|yes)$/i.test(v);

const jobs = env.SEARCH_R3_JOBS || String(Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length));
const args = [require.resolve('cmake-js/bin/cmake-js'), 'compile', '--parallel', jobs];
const defs = {};
if (env.LLAMA_CPP_DIR) defs.LLAMA_CPP_DIR = path.resolve(env.LLAMA_CPP_DIR);
if (truthy(env.SEARCH_R3_CUDA)) defs.SEARCH_R3_CUDA = 'ON';
if (truthy(env.SEARCH_R3_LLAMA_BENCH)) defs.SEARCH_R3_LLAMA_BENCH = 'ON';
if (env.SEARCH_R3_OPENMP !== undefined && !truthy(env.SEARCH_R3_OPENMP)) defs.SEARCH_R3_OPENMP = 'OFF';
if (env.SEARCH_R3_CUDA_ARCHITECTURES) defs.CMAKE_CUDA_ARCHITECTURES = env.SEARCH_R3_CUDA_ARCHITECTURES;
if (env.SEARCH_R3_BUILD_TYPE === 'Debug') args.push('--debug');
for (const [k, v] of Object.entries(defs)) args.push(`--CD${k}=${v}`);

// ggml-cuda includes cublas_v2.h; a toolkit without cuBLAS's development files (some slim CUDA
// images) otherwise fails deep inside CMake. nvcc preprocessing one include says it in a second.
function checkCudaToolkit() {
  const nvcc = env.CUDACXX || 'nvcc';
  const probe = spawnSync(nvcc, ['-E', '-x', 'cu', '-', '-o', os.devNull], { input: '#include <cublas_v2.h>\n', encoding: 'utf8' });
  // EPIPE means nvcc ran and exited before reading the probe: its status still tells.
  if (probe.error && probe.status === null) {
    console.error(`search-r3: SEARCH_R3_CUDA=1 needs nvcc, but ${nvcc} could not be run (${probe.error.code}); ` +
      'put the CUDA toolkit\'s bin directory on PATH or set CUDACXX=/path/to/nvcc.');
    process.exit(1);
  }
  if (probe.status !== 0) {
    console.error(`search-r3: SEARCH_R3_CUDA=1 needs cuBLAS, but ${nvcc} cannot find cublas_v2.h. Install the toolkit's ` +
      'cuBLAS development files (NVIDIA\'s libcublas-dev-<version> package, or Debian\'s nvidia-cuda-dev), or put their ' +
      'include directory on CPATH and their library directory on CMAKE_LIBRARY_PATH.');
    process.exit(1);
  }
}
if (truthy(env.SEARCH_R3_CUDA)) checkCudaToolkit();

console.log(`search-r3: building the native addon (${truthy(env.SEARCH_R3_CUDA) ? 'CPU + CUDA' : 'CPU'}, ${jobs} jobs)`);
const res = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (res.status !== 0) {
  console.error('search-r3: the native build failed; see the compiler output above. ' +
    'It needs cmake >= 3.18 and a C++17 compiler (and nvcc with SEARCH_R3_CUDA=1).');
  process.exit(res.status ?? 1);
}

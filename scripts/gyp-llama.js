#!/usr/bin/env node
// Helper of binding.gyp (the node-gyp build path, for tools that only speak node-gyp such as
// desktop-app rebuilders). node-gyp cannot drive llama.cpp's CMake build itself, so this script
// builds llama.cpp's static libraries with cmake into deps/llama-build (outside build/, which
// node-gyp wipes) and prints what gyp needs:
//   --sources   the addon's native/*.cc files (the same list CMakeLists.txt globs)
//   --libs      the static libraries to link, in link order, plus system libraries
// SEARCH_R3_LLAMA_LIBS=DIR reuses libraries already built (e.g. by the cmake-js build in build/).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const mode = process.argv[2];

function walk(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.cc')) out.push(path.relative(root, p).split(path.sep).join('/'));
  }
  return out.sort();
}

function findLib(dir, name) {
  const file = process.platform === 'win32' ? `${name}.lib` : `lib${name}.a`;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop();
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.name === file) return p;
    }
  }
  return null;
}

// OpenMP as in CMakeLists.txt (SEARCH_R3_OPENMP=0 turns it off in both builds).
const openmp = !/^(0|off|false|no)$/i.test(process.env.SEARCH_R3_OPENMP || '');

function buildLlama() {
  const src = process.env.LLAMA_CPP_DIR ? path.resolve(process.env.LLAMA_CPP_DIR) : path.join(root, 'deps', 'llama.cpp');
  const out = path.join(root, 'deps', 'llama-build');
  const cuda = /^(1|on|true|yes)$/i.test(process.env.SEARCH_R3_CUDA || '');
  const configure = [
    '-S', src, '-B', out, '-DCMAKE_BUILD_TYPE=Release', '-DBUILD_SHARED_LIBS=OFF', '-DCMAKE_POSITION_INDEPENDENT_CODE=ON',
    '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_TOOLS=OFF', '-DLLAMA_BUILD_EXAMPLES=OFF', '-DLLAMA_BUILD_SERVER=OFF',
    '-DLLAMA_BUILD_COMMON=OFF', '-DLLAMA_CURL=OFF', `-DGGML_OPENMP=${openmp ? 'ON' : 'OFF'}`, `-DGGML_CUDA=${cuda ? 'ON' : 'OFF'}`,
  ];
  const jobs = String(process.env.SEARCH_R3_JOBS || os.availableParallelism());
  for (const args of [configure, ['--build', out, '--target', 'llama', '--parallel', jobs]]) {
    // stdout is gyp's answer, so cmake's own output goes to stderr.
    const r = spawnSync('cmake', args, { stdio: ['ignore', 2, 2] });
    if (r.status !== 0) {
      console.error('search-r3: building llama.cpp for node-gyp failed');
      process.exit(1);
    }
  }
  return out;
}

if (mode === '--sources') {
  console.log(walk(path.join(root, 'native')).join('\n'));
} else if (mode === '--libs') {
  const dir = process.env.SEARCH_R3_LLAMA_LIBS ? path.resolve(process.env.SEARCH_R3_LLAMA_LIBS) : buildLlama();
  const names = ['llama', 'ggml', 'ggml-cpu', 'ggml-cuda', 'ggml-base'];
  const libs = names.map((n) => findLib(dir, n)).filter(Boolean);
  if (libs.length < 4) {
    console.error(`search-r3: llama.cpp static libraries not found under ${dir}`);
    process.exit(1);
  }
  const sys = process.platform === 'linux' ? ['-lpthread', '-ldl', '-lm', ...(openmp ? ['-fopenmp'] : [])] : [];
  if (libs.some((l) => l.includes('ggml-cuda'))) sys.push('-lcudart_static', '-lcublas_static', '-lcublasLt_static', '-lculibos', '-lcuda', '-lrt');
  console.log([...libs, ...sys].join('\n'));
} else {
  console.error('usage: gyp-llama.js --sources | --libs');
  process.exit(2);
}

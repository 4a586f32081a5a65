#!/usr/bin/env node
// Obtains llama.cpp's source at the pinned commit, offline-capably, into deps/llama.cpp.
//
// Order of sources:
//   1. LLAMA_CPP_DIR=/path/to/checkout  (used in place; its commit is verified when it is a git checkout)
//   2. deps/llama.cpp already present with a matching stamp
//   3. the git bundle that the npm package node-llama-cpp@3.22.1 carries (llama/gitRelease.bundle),
//      fetched with `npm pack` (served from npm's cache when offline) without installing that package.
// Every path ends by checking that HEAD is exactly the pinned commit.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PIN = require('./llama-pin.json');
const root = path.resolve(__dirname, '..');
const dest = path.join(root, 'deps', 'llama.cpp');
const stamp = path.join(root, 'deps', 'llama.cpp.stamp');

function fail(message) {
  console.error(`search-r3: ${message}`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }).trim();
}

function headOf(dir) {
  try {
    return run('git', ['-C', dir, 'rev-parse', 'HEAD']);
  } catch {
    return null;
  }
}

function vendorFromEnv(dir) {
  const abs = path.resolve(dir);
  if (!fs.existsSync(path.join(abs, 'include', 'llama.h'))) {
    fail(`LLAMA_CPP_DIR=${dir} is not a llama.cpp checkout (expected ${path.join(abs, 'include', 'llama.h')})`);
  }
  const head = headOf(abs);
  if (head && head !== PIN.commit && process.env.SEARCH_R3_ALLOW_LLAMA_MISMATCH !== '1') {
    fail(`LLAMA_CPP_DIR=${dir} is at commit ${head}, but search-r3 is pinned to ${PIN.commit}. ` +
      'Check out the pinned commit, or set SEARCH_R3_ALLOW_LLAMA_MISMATCH=1 to build against it anyway.');
  }
  console.log(`search-r3: using llama.cpp from LLAMA_CPP_DIR=${abs}${head ? ` (commit ${head})` : ''}`);
}

function vendorFromBundle() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'search-r3-llama-'));
  try {
    console.log(`search-r3: fetching llama.cpp ${PIN.commit.slice(0, 12)} from ${PIN.npmPackage} (npm pack)`);
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const packed = JSON.parse(run(npm, ['pack', PIN.npmPackage, '--json', '--pack-destination', tmp], { cwd: tmp }));
    const tgz = path.join(tmp, packed[0].filename);
    if (packed[0].shasum !== PIN.npmShasum) {
      fail(`${PIN.npmPackage} has shasum ${packed[0].shasum}, expected ${PIN.npmShasum}`);
    }
    run('tar', ['-xzf', tgz, '-C', tmp, `package/${PIN.bundlePath}`]);
    const bundle = path.join(tmp, 'package', PIN.bundlePath);
    const staging = `${dest}.partial`;
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    run('git', ['clone', '--quiet', bundle, staging]);
    const head = headOf(staging);
    if (head !== PIN.commit) fail(`the llama.cpp bundle is at ${head}, expected the pinned ${PIN.commit}`);
    fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(staging, dest);
    fs.writeFileSync(stamp, `${PIN.commit}\n`);
    console.log(`search-r3: llama.cpp ${PIN.commit} vendored into ${path.relative(root, dest)}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function main() {
  if (process.env.LLAMA_CPP_DIR) return vendorFromEnv(process.env.LLAMA_CPP_DIR);
  const stamped = fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim();
  if (stamped === PIN.commit && headOf(dest) === PIN.commit) {
    console.log(`search-r3: llama.cpp ${PIN.commit.slice(0, 12)} already vendored`);
    return;
  }
  vendorFromBundle();
}

try {
  main();
} catch (err) {
  fail(`could not vendor llama.cpp: ${err.stderr || err.message}`);
}

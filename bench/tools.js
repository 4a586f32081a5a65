// Helpers shared by the benchmarks in bench/: logging, medians, synthetic token ids, building
// llama.cpp's tools from the vendored tree, and running a child process while measuring its peak RSS.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function log(msg) {
  process.stderr.write(`${msg}\n`);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function randomTokens(n, nVocab, seed) {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return 1000 + (s % (nVocab - 2000));
  });
}

/**
 * The cmake configure flags of the llama.cpp tools build: llama.cpp's own Release defaults, as its
 * users build it (OpenMP on, native CPU flags), changing only what an offline static build needs
 * (no curl, no shared libraries, no tests or server). Not the addon's GGML_OPENMP=OFF: the reference
 * must not be handicapped by our choices.
 */
function llamaToolsConfigureArgs(build) {
  return ['-S', path.join(root, 'deps', 'llama.cpp'), '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-DBUILD_SHARED_LIBS=OFF',
    '-DLLAMA_CURL=OFF', '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_SERVER=OFF'];
}

/**
 * The directory holding the llama.cpp tools `targets`: `llamaBin` when given, else
 * deps/llama-tools-defaults-build/bin (a new name, so tools built earlier with the addon's flags in
 * deps/llama-tools-build are never reused), built from deps/llama.cpp (once) when any target is missing there.
 */
function ensureLlamaTools({ llamaBin, targets, parallel = os.availableParallelism() }) {
  if (llamaBin) return path.resolve(llamaBin);
  const build = path.join(root, 'deps', 'llama-tools-defaults-build');
  const bin = path.join(build, 'bin');
  if (targets.some((t) => !fs.existsSync(path.join(bin, t)))) {
    log(`building ${targets.join(' and ')} from deps/llama.cpp (once)…`);
    for (const a of [llamaToolsConfigureArgs(build), ['--build', build, '--target', ...targets, '--parallel', String(parallel)]]) {
      const r = spawnSync('cmake', a, { stdio: 'inherit' });
      if (r.status !== 0) throw new Error('building llama.cpp tools failed');
    }
  }
  return bin;
}

/** GNU time (for its "Maximum resident set size"), or null. */
const GNU_TIME = (() => {
  const p = '/usr/bin/time';
  if (!fs.existsSync(p)) return null;
  const r = spawnSync(p, ['-V'], { encoding: 'utf8' });
  return /GNU/.test(`${r.stdout}${r.stderr}`) ? p : null;
})();

function readVmHwmKb(pid) {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // gone
  }
}

/**
 * Runs `cmd args` to completion and measures its peak resident set size: with GNU time's `-v`
 * report (written to a file, so the child's own stderr stays clean) when /usr/bin/time is GNU time,
 * else by polling /proc/PID/status VmHWM every 20 ms (the last poll before exit can miss a late peak).
 * `onStderr(chunk, tMs)` sees the child's stderr as it arrives, tMs from process.hrtime, so callers
 * can timestamp progress lines.
 * Resolves { code, signal, stdout, stderr, wallMs, peakRssKb, rssMethod }.
 */
function runMeasured(cmd, args, { onStderr, env, cwd, forceProcPoll = false } = {}) {
  const timeFile = GNU_TIME && !forceProcPoll ? path.join(os.tmpdir(), `bench-time-${process.pid}-${Date.now()}.txt`) : null;
  const [file, argv] = timeFile ? [GNU_TIME, ['-v', '-o', timeFile, cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(file, argv, { env: env ?? process.env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let hwm = 0;
    const poll = timeFile ? null : setInterval(() => {
      hwm = Math.max(hwm, readVmHwmKb(child.pid));
    }, 20);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      if (onStderr) onStderr(d, Number(process.hrtime.bigint() - t0) / 1e6);
    });
    child.on('error', (err) => {
      if (poll) clearInterval(poll);
      reject(err);
    });
    child.on('close', (code, signal) => {
      const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      let peakRssKb = hwm;
      if (poll) clearInterval(poll);
      if (timeFile) {
        const report = fs.existsSync(timeFile) ? fs.readFileSync(timeFile, 'utf8') : '';
        fs.rmSync(timeFile, { force: true });
        const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(report);
        peakRssKb = m ? Number(m[1]) : 0;
        // GNU time exits with the child's status, or 128+N (and reports it) when a signal killed it.
        const sig = /Command terminated by signal (\d+)/.exec(report);
        if (sig) signal = Object.keys(os.constants.signals).find((k) => os.constants.signals[k] === Number(sig[1])) ?? `signal ${sig[1]}`;
      }
      resolve({ code, signal, stdout, stderr, wallMs, peakRssKb, rssMethod: timeFile ? 'GNU time -v' : '/proc VmHWM polling' });
    });
  });
}

module.exports = { root, log, median, randomTokens, llamaToolsConfigureArgs, ensureLlamaTools, runMeasured, GNU_TIME };

#!/usr/bin/env node
// Busy-machine benchmark: throughput of training, corpus encoding and generation with default
// settings (no --threads), idle and while other work holds the CPU, side by side.
//
//   node bench/busy-bench.js [--model FILE] [--seconds S] [--rounds N] [--json FILE]
//
// Loads (each bounded: it runs only while one measurement runs, then is killed):
//   idle      nothing else running
//   spin      one busy loop (a child `node` spinning), i.e. one core taken
//   twin      a second search-r3 process encoding beside it with its own defaults
//   session   a second session in the same process encoding beside it (a server's two sessions)
// Each case runs in a fresh child process (so a load never meets a warmed-up pool); rounds
// alternate the order of loads, and the table gives the median of the rounds and % of idle.
// --model default: .bench-out/tiny.gguf (make-model preset tiny, seed 1), the shape of the
// package's tests, where per-op synchronisation dominates and a stalled thread shows most.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { root, log, median } = require('./tools.js');

const dist = path.join(root, 'dist', 'index.js');
const CASES = ['train', 'encode', 'generate'];
const LOADS = ['idle', 'spin', 'twin', 'session'];
const TEXT = 'the quick brown fox jumps over the lazy dog while the sun sets over quiet hills';

/**
 * One measurement in this process: `kind` for `seconds`, default threads, timed from after the
 * model is loaded (and the trainer opened), so a large model's set-up is not counted as throughput.
 * Prints one JSON line.
 */
/**
 * A second session in this process evaluating a prompt in a loop, on `loaded` (or a model of its
 * own): resolves once it runs, with a function that stops it and frees what it made.
 */
async function besideSession(lib, model, loaded) {
  const m = loaded ?? (await lib.Model.load(model));
  const s = await m.createSession({ sequences: 1 });
  const toks = m.tokenize(TEXT.repeat(2));
  let stop = false;
  const loop = (async () => {
    while (!stop) await s.evaluate(toks);
  })();
  return async () => {
    stop = true;
    await loop;
    s.dispose();
    if (!loaded) m.dispose();
  };
}

async function measure(kind, model, seconds, beside) {
  const lib = require(dist);
  let loaded = null;
  let units = 0;
  let threads = null;
  let run;
  let done;
  if (kind === 'train') {
    const t = await lib.LoraTrainer.open(model, { lora: { rank: 8 } });
    threads = t.info.threads ?? null;
    const tokens = Int32Array.from({ length: 64 }, (_, i) => 1 + (i * 7) % 200);
    const targets = new Uint8Array(64).fill(1);
    targets[0] = 0;
    run = async () => {
      await t.accumulate([{ tokens, targets }], { sft: { weight: 1 } });
      await t.step({ lr: 1e-4 });
      units += 64;
    };
    done = () => t.dispose();
  } else {
    const m = await lib.Model.load(model);
    loaded = m;
    const s = await m.createSession({ sequences: 1 });
    threads = s.info?.threads ?? null;
    const text = TEXT;
    const toks = m.tokenize(text.repeat(2));
    run = async () => {
      if (kind === 'encode') {
        await s.evaluate(toks);
        units += toks.length;
      } else {
        const r = await s.generate([text], { maxTokens: 32, temperature: 0, seed: 1 });
        units += r[0].tokens.length;
      }
    };
    done = () => {
      s.dispose();
      m.dispose();
    };
  }
  const stopBeside = beside === 'session' ? await besideSession(lib, model, loaded) : null;
  const until = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  while (Date.now() < until) await run();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await stopBeside?.();
  done();
  process.stdout.write(`${JSON.stringify({ kind, tokensPerSecond: units / secs, threads })}\n`);
}

function startLoad(load, model, seconds) {
  const life = seconds + 30; // outlives the measurement, and is killed right after it
  if (load === 'spin') return spawn(process.execPath, ['-e', `const end = Date.now() + ${life * 1000}; while (Date.now() < end) {}`], { stdio: 'ignore' });
  if (load === 'twin') return spawn(process.execPath, [__filename, '--child', 'encode', '--model', model, '--seconds', String(life)], { stdio: 'ignore' });
  return null;
}

function runChild(kind, model, seconds, load) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [__filename, '--child', kind, '--model', model, '--seconds', String(seconds), ...(load === 'session' ? ['--beside', 'session'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${kind} child exited ${code}`))));
  });
}

async function main() {
  const { values: a } = parseArgs({
    options: { child: { type: 'string' }, beside: { type: 'string' }, model: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, json: { type: 'string' } },
  });
  const seconds = Number(a.seconds ?? 4);
  if (a.child) return measure(a.child, a.model, seconds, a.beside);
  const rounds = Number(a.rounds ?? 3);
  let model = a.model && path.resolve(a.model);
  if (!model) {
    model = path.join(root, '.bench-out', 'tiny.gguf');
    if (!fs.existsSync(model)) {
      fs.mkdirSync(path.dirname(model), { recursive: true });
      await require(dist).makeModel({ out: model, preset: 'tiny', seed: 1 });
    }
  }
  log(`busy-bench: ${model}, ${os.availableParallelism()} hardware threads, ${seconds} s per case, ${rounds} rounds; load before: ${os.loadavg()[0].toFixed(2)}`);
  const results = {};
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? LOADS : [...LOADS].reverse();
    for (const load of order) {
      for (const kind of CASES) {
        const loader = startLoad(load, model, seconds);
        if (loader) await new Promise((res) => setTimeout(res, 500)); // let the load get going
        try {
          const m = await runChild(kind, model, seconds, load);
          (results[`${kind}/${load}`] ??= []).push(m);
          log(`round ${r + 1} ${kind.padEnd(8)} ${load.padEnd(5)} ${m.tokensPerSecond.toFixed(0)} t/s (threads ${m.threads})`);
        } finally {
          loader?.kill('SIGKILL');
        }
      }
    }
  }
  const rows = CASES.map((kind) => {
    const idle = median(results[`${kind}/idle`].map((m) => m.tokensPerSecond));
    const row = { case: kind, threads: results[`${kind}/idle`][0].threads };
    for (const load of LOADS) {
      const t = median(results[`${kind}/${load}`].map((m) => m.tokensPerSecond));
      row[load] = Math.round(t);
      if (load !== 'idle') row[`${load}%`] = Math.round((100 * t) / idle);
    }
    return row;
  });
  log(`load after: ${os.loadavg()[0].toFixed(2)}`);
  console.log('case      threads   idle t/s   spin t/s (%)   twin t/s (%)   session t/s (%)');
  for (const r of rows) {
    const cell = (load) => `${r[load]} (${r[`${load}%`]}%)`.padStart(load === 'session' ? 17 : 14);
    console.log(`${r.case.padEnd(9)} ${String(r.threads).padStart(7)} ${String(r.idle).padStart(10)} ${cell('spin')} ${cell('twin')} ${cell('session')}`);
  }
  if (a.json) fs.writeFileSync(a.json, `${JSON.stringify({ model, seconds, rounds, rows, results }, null, 2)}\n`);
}

main().catch((e) => {
  console.error(e.stack ?? String(e));
  process.exitCode = 1;
});

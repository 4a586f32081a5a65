#!/usr/bin/env node
// Server benchmark: one-text POST /v1/embeddings requests under autocannon at several
// concurrencies, against the library called in-process (EmbedQueue.embed from as many concurrent
// callers), on the same GGUF with the same sequences and threads.
//
//   node bench/server-bench.js [--model FILE] [--seconds S] [--concurrency 1,8,32] [--sequences N]
//                              [--threads N] [--rounds N] [--mode direct|reason] [--budget N] [--json FILE]
//
// The server is the real `search-r3 serve` in a child process; the library side is another child
// process holding the same embedder, idle while the server is measured and the other way round.
// Each round measures every concurrency on both sides, alternating which side goes first; the
// table gives medians over rounds. "vs 1" is the throughput against concurrency 1 on the same
// side, i.e. against serving the requests one at a time.
// --mode reason sends `max_reasoning_tokens: --budget` (default 16): generation, where shared
// batches pay most on a CPU; direct requests are prompt processing, already compute-bound per text.
// --model default: .bench-out/qwen2.5-0.5b-q8_0.gguf (make-model preset qwen2.5-0.5b, Q8_0, seed 1).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { parseArgs } = require('node:util');
const { root, log, median } = require('./tools.js');

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' }, seconds: { type: 'string' }, concurrency: { type: 'string' }, sequences: { type: 'string' },
    threads: { type: 'string' }, rounds: { type: 'string' }, json: { type: 'string' }, 'child-library': { type: 'boolean' },
    mode: { type: 'string' }, budget: { type: 'string' },
  },
});
const seconds = Number(args.seconds ?? 10);
const levels = (args.concurrency ?? '1,8,32').split(',').map(Number);
const sequences = Number(args.sequences ?? 8);
const rounds = Number(args.rounds ?? 1);
const mode = args.mode ?? 'direct';
if (mode !== 'direct' && mode !== 'reason') throw new Error(`Expected direct or reason for --mode but received ${mode}`);
const budget = Number(args.budget ?? 16);
/** The per-request options, the same on both sides. */
const callOptions = mode === 'reason' ? { mode, maxReasoningTokens: budget } : {};
const bodyOptions = mode === 'reason' ? { mode, max_reasoning_tokens: budget } : {};
for (const [name, v] of [['seconds', seconds], ['sequences', sequences], ['rounds', rounds], ['budget', budget], ...levels.map((l) => ['concurrency', l])]) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`Expected a positive integer for --${name} but received ${v}`);
}

/** 64 distinct one-line queries, cycled by both sides. */
const TOPICS = ['rivers', 'granite', 'oil lamps', 'lunar orbits', 'maple trees', 'copper wire', 'winter storms', 'quiet towns'];
const TEXTS = Array.from({ length: 64 }, (_, i) => `what is known about ${TOPICS[i % 8]} and ${TOPICS[(i * 3 + 1) % 8]}, question ${i}`);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

/** The library side (child process): answers "C S" lines with one JSON line {rps, p50, p99}. */
async function libraryChild() {
  const lib = require(path.join(root, 'dist', 'index.js'));
  const model = await lib.Model.load(args.model);
  const embedder = await lib.Embedder.create(model, { sequences, threads: args.threads ? Number(args.threads) : undefined });
  const queue = lib.EmbedQueue.create(embedder);
  await queue.embed(TEXTS.slice(0, 2), callOptions);
  process.stdout.write('ready\n');
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const [c, s] = line.split(' ').map(Number);
    const latencies = [];
    let next = 0;
    const until = Date.now() + s * 1000;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: c }, async () => {
      while (Date.now() < until) {
        const t = process.hrtime.bigint();
        await queue.embed([TEXTS[next++ % TEXTS.length]], callOptions);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }));
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(`${JSON.stringify({ rps: latencies.length / elapsed, p50: pct(latencies, 50), p99: pct(latencies, 99) })}\n`);
  }
  embedder.dispose();
  model.dispose();
}

/** Resolves with the first stdout line of `child` that matches `re`. */
function lineMatching(child, re) {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout });
    const onLine = (l) => {
      const m = re.exec(l);
      if (m) { rl.off('line', onLine); rl.close(); resolve(m); }
    };
    rl.on('line', onLine);
    child.once('exit', (code) => reject(new Error(`child exited with ${code} before printing ${re}`)));
  });
}

async function ensureModel() {
  if (args.model) return path.resolve(args.model);
  const file = path.join(root, '.bench-out', 'qwen2.5-0.5b-q8_0.gguf');
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    log('generating the qwen2.5-0.5b-shaped Q8_0 model (once)…');
    await require(path.join(root, 'dist', 'index.js')).makeModel({ out: file, preset: 'qwen2.5-0.5b', type: 'q8_0', seed: 1 });
  }
  return file;
}

/** autocannon at `connections` for `s` seconds: one-text requests cycling through TEXTS. */
async function loadServer(url, connections, s) {
  const autocannon = require('autocannon');
  let next = 0;
  const result = await autocannon({
    url: `${url}/v1/embeddings`, connections, duration: s, method: 'POST', headers: { 'content-type': 'application/json' }, timeout: 600,
    requests: [{ setupRequest: (req) => ({ ...req, body: JSON.stringify({ model: 'bench', input: TEXTS[next++ % TEXTS.length], encoding_format: 'float', ...bodyOptions }) }) }],
  });
  // autocannon stops counting at the deadline, not the server working: let the requests it left settle.
  for (;;) {
    const { queue } = await (await fetch(`${url}/health`)).json();
    if (queue.pending + queue.running === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx answers and ${result.errors} errors at ${connections} connections`);
  return { rps: result.requests.total / (result.duration || s), p50: result.latency.p50, p99: result.latency.p99 };
}

async function main() {
  const model = await ensureModel();
  const common = ['--sequences', String(sequences), ...(args.threads ? ['--threads', args.threads] : [])];
  log(`model ${model}; ${mode} mode${mode === 'reason' ? ` (budget ${budget})` : ''}; ${seconds} s per point; concurrency ${levels.join(', ')}; ${sequences} sequences; load average ${os.loadavg()[0].toFixed(1)}`);
  const server = spawn(process.execPath, [path.join(root, 'bin', 'search-r3.js'), 'serve', '--model', model, '--port', '0', ...common], { stdio: ['ignore', 'pipe', 'inherit'] });
  const library = spawn(process.execPath, [__filename, '--child-library', '--model', model, '--sequences', String(sequences), '--mode', mode, '--budget', String(budget),
    ...(args.threads ? ['--threads', args.threads] : [])], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const [, url] = await lineMatching(server, /listening on (\S+)/);
    await lineMatching(library, /^ready$/);
    await loadServer(url, 1, 1); // warm-up
    const measured = { library: {}, server: {} };
    for (let round = 0; round < rounds; round++) {
      for (const c of levels) {
        const sides = round % 2 === 0 ? ['library', 'server'] : ['server', 'library'];
        for (const side of sides) {
          let r;
          if (side === 'server') {
            r = await loadServer(url, c, seconds);
          } else {
            const answer = lineMatching(library, /^(\{.*\})$/);
            library.stdin.write(`${c} ${seconds}\n`);
            r = JSON.parse((await answer)[1]);
          }
          (measured[side][c] ??= []).push(r);
          log(`round ${round + 1} ${side} c=${c}: ${r.rps.toFixed(1)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms`);
        }
      }
    }
    const med = (side, c, k) => median(measured[side][c].map((r) => r[k]));
    const rows = levels.map((c) => ({
      concurrency: c,
      library: { rps: med('library', c, 'rps'), p50: med('library', c, 'p50'), p99: med('library', c, 'p99') },
      server: { rps: med('server', c, 'rps'), p50: med('server', c, 'p50'), p99: med('server', c, 'p99') },
    }));
    const base = rows[0];
    const lines = [
      '| concurrency | library req/s | server req/s | server / library | server vs 1 | library p50 / p99 (ms) | server p50 / p99 (ms) |',
      '|---:|---:|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.concurrency} | ${r.library.rps.toFixed(1)} | ${r.server.rps.toFixed(1)} | ${(r.server.rps / r.library.rps).toFixed(2)}× | ${(r.server.rps / base.server.rps).toFixed(2)}× | ${r.library.p50.toFixed(0)} / ${r.library.p99.toFixed(0)} | ${r.server.p50.toFixed(0)} / ${r.server.p99.toFixed(0)} |`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    log(`load average after: ${os.loadavg()[0].toFixed(1)}`);
    if (args.json) fs.writeFileSync(args.json, `${JSON.stringify({ model, mode, budget, seconds, sequences, rounds, rows, measured }, null, 2)}\n`);
  } finally {
    library.stdin.end();
    server.kill('SIGTERM');
    library.kill('SIGTERM');
  }
}

if (args['child-library']) libraryChild().catch((e) => { log(e.stack); process.exit(1); });
else main().catch((e) => { log(e.stack); process.exitCode = 1; });

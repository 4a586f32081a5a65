#!/usr/bin/env node
// Batch-window benchmark: the sizes of the batches the server's EmbedQueue forms under closed-loop
// HTTP clients, for several maxBatchDelayMs (`serve --batch-delay`). The server (createServer over
// an EmbedQueue whose embedder records each call's size) runs in this process; autocannon runs in
// a child process, as a real client would, and sends one-text reason-mode requests.
//
//   node bench/batch-window.js [--model FILE] [--delays 0,5,50] [--seconds 30] [--concurrency 8]
//                              [--sequences 8] [--budget 16] [--json FILE]
//
// --model default: .bench-out/qwen2.5-0.5b-q8_0.gguf (make-model preset qwen2.5-0.5b, Q8_0, seed 1).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { root, log } = require('./tools.js');

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' }, delays: { type: 'string' }, seconds: { type: 'string' }, concurrency: { type: 'string' },
    sequences: { type: 'string' }, budget: { type: 'string' }, json: { type: 'string' }, 'child-load': { type: 'string' },
  },
});
const seconds = Number(args.seconds ?? 30);
const concurrency = Number(args.concurrency ?? 8);
const sequences = Number(args.sequences ?? 8);
const budget = Number(args.budget ?? 16);
const delays = (args.delays ?? '0,5,50').split(',').map(Number);
for (const [name, v] of [['seconds', seconds], ['concurrency', concurrency], ['sequences', sequences], ['budget', budget]]) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`Expected a positive integer for --${name} but received ${v}`);
}
for (const d of delays) if (!(d >= 0)) throw new Error(`Expected non-negative numbers for --delays but received ${args.delays}`);
const body = (i) => JSON.stringify({ model: 'bench', input: `what is known about rivers and granite, question ${i}`, encoding_format: 'float', mode: 'reason', max_reasoning_tokens: budget });

/** The child: autocannon against the URL, printing requests per second. */
async function load(url) {
  const autocannon = require('autocannon');
  let next = 0;
  const r = await autocannon({
    url: `${url}/v1/embeddings`, connections: concurrency, duration: seconds, method: 'POST', headers: { 'content-type': 'application/json' }, timeout: 600,
    requests: [{ setupRequest: (req) => ({ ...req, body: body(next++) }) }],
  });
  process.stdout.write(`${JSON.stringify({ rps: r.requests.total / (r.duration || seconds), non2xx: r.non2xx, errors: r.errors })}\n`);
}

async function main() {
  const lib = require(path.join(root, 'dist', 'index.js'));
  const file = args.model ?? path.join(root, '.bench-out', 'qwen2.5-0.5b-q8_0.gguf');
  if (!fs.existsSync(file)) throw new Error(`no model at ${file}: make it with search-r3 make-model --preset qwen2.5-0.5b --type q8_0 --seed 1 --out ${file}`);
  const model = await lib.Model.load(file);
  const embedder = await lib.Embedder.create(model, { mode: 'reason', maxReasoningTokens: budget, sequences });
  const sizes = [];
  const embed = embedder.embed.bind(embedder);
  embedder.embed = (texts, o) => { sizes.push(texts.length); return embed(texts, o); };
  log(`model ${file}; reason mode (budget ${budget}); ${seconds} s per delay; concurrency ${concurrency}; ${sequences} sequences; load average ${os.loadavg()[0].toFixed(1)}`);
  const rows = [];
  for (const delay of delays) {
    const queue = lib.EmbedQueue.create(embedder, { maxBatchDelayMs: delay });
    const server = lib.createServer({ queue, port: 0, log: () => {} });
    const url = await server.listen();
    sizes.length = 0;
    const child = spawn(process.execPath, [__filename, '--child-load', url, '--seconds', String(seconds), '--concurrency', String(concurrency), '--budget', String(budget)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    await server.close();
    if (code !== 0) throw new Error(`the load child exited ${code}`);
    const { rps, non2xx, errors } = JSON.parse(out);
    if (non2xx > 0 || errors > 0) throw new Error(`${non2xx} non-2xx answers and ${errors} errors at delay ${delay}`);
    const hist = {};
    for (const s of sizes) hist[s] = (hist[s] ?? 0) + 1;
    const full = sizes.filter((s) => s >= concurrency).length / Math.max(1, sizes.length);
    rows.push({ delayMs: delay, rps, batches: hist, fullShare: full });
    log(`delay ${delay} ms: ${rps.toFixed(2)} req/s; batch sizes ${JSON.stringify(hist)}; ${(100 * full).toFixed(0)}% of batches hold all ${concurrency} clients`);
  }
  log(`load average after: ${os.loadavg()[0].toFixed(1)}`);
  embedder.dispose();
  model.dispose();
  if (args.json) fs.writeFileSync(args.json, `${JSON.stringify({ model: file, seconds, concurrency, sequences, budget, rows }, null, 2)}\n`);
}

(args['child-load'] ? load(args['child-load']) : main()).catch((e) => {
  log(e.stack ?? String(e));
  process.exit(1);
});

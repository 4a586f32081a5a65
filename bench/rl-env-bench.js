#!/usr/bin/env node
// What the stage-2 RL environment itself costs per step, apart from the encoder: a corpus of N
// random unit vectors (D wide), and per step a batch of Q·G query vectors whose top-k plus Q
// positives are "touched" (the shape of one GRPO step). The encoder is a fake that returns random
// unit vectors and is timed on its own, so the table separates the environment's bookkeeping
// (choosing rows, writing them, staleness) from encoding, which a real model dominates.
//
//   node bench/rl-env-bench.js [--n 10000] [--dim 896] [--steps 20] [--queries 8] [--group 4] [--k 10] [--json FILE]
//
// Requires the compiled package (npm run build); the native vector kernel is used when built.
'use strict';
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { CorpusEnvironment, parseRefresh } = require('../dist/index.js');
const { log, median } = require('./tools.js');

const POLICIES = ['touched', 'budget=0.02', 'full'];

function xorshift(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 2147483648 - 1;
  };
}

function unitVector(rand, dim) {
  const v = new Float32Array(dim);
  let n = 0;
  for (let i = 0; i < dim; i++) n += (v[i] = rand()) ** 2;
  for (let i = 0; i < dim; i++) v[i] /= Math.sqrt(n);
  return v;
}

async function runPolicy(spec, a) {
  const rand = xorshift(7);
  const docs = Array.from({ length: a.n }, (_, i) => ({ id: `doc${i}`, text: `text ${i}` }));
  let encodeSeconds = 0;
  const encode = async (texts) => {
    const t = performance.now();
    const out = texts.map(() => unitVector(rand, a.dim));
    encodeSeconds += (performance.now() - t) / 1000;
    return out;
  };
  const env = await CorpusEnvironment.create({ docs, dim: a.dim, encode, policy: parseRefresh(spec) });
  const rows = { search: [], refresh: [], bookkeeping: [], share: [] };
  let last;
  for (let step = 1; step <= a.steps; step++) {
    const queries = Array.from({ length: a.queries * a.group }, () => unitVector(rand, a.dim));
    let t = performance.now();
    const top = await env.search(queries, a.k);
    rows.search.push(performance.now() - t);
    const touched = new Set(top.flat());
    for (let q = 0; q < a.queries; q++) touched.add(docs[Math.floor((rand() + 1) / 2 * a.n)].id);
    encodeSeconds = 0;
    last = await env.refresh(step, touched);
    rows.refresh.push(last.seconds * 1000);
    rows.bookkeeping.push((last.seconds - encodeSeconds) * 1000);
    rows.share.push(last.share);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rl-env-bench-'));
  const t = performance.now();
  await env.save(dir);
  const saveMs = performance.now() - t;
  rmSync(dir, { recursive: true, force: true });
  return {
    policy: spec, searchMs: median(rows.search), refreshMs: median(rows.refresh), bookkeepingMs: median(rows.bookkeeping),
    shareMedian: median(rows.share), staleMax: last.staleMax, staleMean: last.staleMean, saveMs,
  };
}

async function main() {
  const { values } = parseArgs({ options: {
    n: { type: 'string', default: '10000' }, dim: { type: 'string', default: '896' }, steps: { type: 'string', default: '20' },
    queries: { type: 'string', default: '8' }, group: { type: 'string', default: '4' }, k: { type: 'string', default: '10' }, json: { type: 'string' },
  } });
  const a = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, k === 'json' ? v : Number(v)]));
  const results = [];
  for (const spec of POLICIES) {
    log(`policy ${spec}: ${a.steps} steps on ${a.n} x ${a.dim}`);
    results.push(await runPolicy(spec, a));
  }
  const f = (x, d = 2) => x.toFixed(d);
  console.log(`corpus ${a.n} x ${a.dim}, ${a.queries} queries x ${a.group} rollouts, top-${a.k}, ${a.steps} steps (medians per step)`);
  console.log('policy        search ms  refresh ms  of it not encoding ms  re-encoded  stale max/mean after  save ms');
  for (const r of results) {
    console.log(`${r.policy.padEnd(12)}  ${f(r.searchMs).padStart(9)}  ${f(r.refreshMs).padStart(10)}  ${f(r.bookkeepingMs).padStart(21)}  ${(f(r.shareMedian * 100, 2) + '%').padStart(10)}  ${`${r.staleMax}/${f(r.staleMean)}`.padStart(20)}  ${f(r.saveMs, 1).padStart(7)}`);
  }
  if (a.json) writeFileSync(a.json, JSON.stringify({ args: a, results }, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

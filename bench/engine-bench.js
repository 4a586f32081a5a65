#!/usr/bin/env node
// Engine benchmark: search-r3 against llama.cpp's own tools built from the same vendored tree, on
// the same GGUF and thread count, and against node-llama-cpp's embedding API.
//
//   node bench/engine-bench.js [--model FILE] [--threads N] [--gpu-layers N] [--llama-bin DIR] [--rounds N] [--reps N] [--skip-nlc] [--single-only] [--json FILE]
//
// --model      default: .bench-out/qwen2.5-0.5b-q8_0.gguf, generated with the qwen2.5-0.5b preset (Q8_0)
// --llama-bin  a directory with llama-bench and llama-batched-bench; default: built from deps/llama.cpp
//              into deps/llama-tools-defaults-build with llama.cpp's own CMake defaults (OpenMP on)
// --skip-nlc   skip node-llama-cpp (otherwise installed on demand, pinned, into .bench-out/nlc)
// --rounds     single-sequence rounds (default 10): each runs llama-bench and ours (--reps each,
//              default 2), alternating which goes first, because this VM's speed drifts between
//              minutes; the table gives the median round's t/s and the median of the rounds' ratios.
//              The batched rows take the median of 3 runs per side.
// --gpu-layers layers offloaded to the GPU on both sides (-ngl for llama.cpp's tools; -1 = all); needs a
//              CUDA build of ours and of the tools (SEARCH_R3_LLAMA_BENCH=ON builds them with the addon)
// --single-only  measure only the single-sequence rows (prompt processing and generation)
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { root, log, median, randomTokens, ensureLlamaTools: ensureTools } = require('./tools.js');
const { Model, makeModel, buildEmbedPrompt, DEFAULT_EMBED_TEMPLATE, systemInfo } = require(path.join(root, 'dist', 'index.js'));

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' }, threads: { type: 'string' }, 'llama-bin': { type: 'string' },
    'skip-nlc': { type: 'boolean' }, json: { type: 'string' }, reps: { type: 'string' }, rounds: { type: 'string' },
    'single-only': { type: 'boolean' }, 'gpu-layers': { type: 'string' },
  },
});
function countArg(name, fallback) {
  const v = args[name] === undefined ? fallback : Number(args[name]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(args[name])}`);
  return v;
}
const threads = countArg('threads', os.availableParallelism());
const reps = countArg('reps', 2);
const rounds = countArg('rounds', 10);
const gpuLayers = args['gpu-layers'] === undefined ? 0 : Number(args['gpu-layers']);
if (!Number.isInteger(gpuLayers) || gpuLayers < -1) throw new Error(`--gpu-layers must be an integer >= -1, got ${JSON.stringify(args['gpu-layers'])}`);
// llama.cpp's tools take a layer count; 999 offloads every layer as our -1 does.
const ngl = String(gpuLayers === -1 ? 999 : gpuLayers);
const batchedReps = 3;
const out = path.join(root, '.bench-out');
fs.mkdirSync(out, { recursive: true });
const PP = 128;
const TG = 32;
const NPL = [1, 4, 16];
const NLC_VERSION = '3.22.1';

async function ensureModel() {
  if (args.model) return path.resolve(args.model);
  const file = path.join(out, 'qwen2.5-0.5b-q8_0.gguf');
  if (!fs.existsSync(file)) {
    log('generating the qwen2.5-0.5b-shaped Q8_0 model (once)…');
    await makeModel({ out: file, preset: 'qwen2.5-0.5b', type: 'q8_0', seed: 1 });
  }
  return file;
}

// Built from deps/llama.cpp into deps/llama-tools-defaults-build (shared with bench/train-bench.js) unless --llama-bin.
function ensureLlamaTools() {
  return ensureTools({ llamaBin: args['llama-bin'], targets: ['llama-bench', 'llama-batched-bench'] });
}

async function oursSingle(model) {
  const session = await model.createSession({ threads, contextSize: 1024, batchSize: 512 });
  const nVocab = model.info.nVocab;
  await session.run([{ prompt: randomTokens(16, nVocab, 9), maxTokens: 4, ignoreEog: true }]); // warm-up
  const pp = [];
  const tg = [];
  for (let r = 0; r < reps; r++) {
    let t0 = process.hrtime.bigint();
    await session.run([{ prompt: randomTokens(PP, nVocab, r), maxTokens: 0 }]);
    pp.push(PP / (Number(process.hrtime.bigint() - t0) / 1e9));
    // Generation: one prompt token, then TG tokens decoded one at a time (llama-bench's tg test).
    t0 = process.hrtime.bigint();
    const { stats } = await session.run([{ prompt: randomTokens(1, nVocab, r + 100), maxTokens: TG, ignoreEog: true }]);
    const wall = Number(process.hrtime.bigint() - t0) / 1e6;
    // The first token comes from the prompt's decode; the rest each cost one decode + sampling.
    tg.push((stats.generatedTokens - 1) / ((wall - stats.promptMs) / 1000));
  }
  session.dispose();
  return { pp: median(pp), tg: median(tg) };
}

async function oursBatched(model, npl) {
  const session = await model.createSession({ threads, sequences: npl, contextSize: npl * 256, batchSize: 2048 });
  const nVocab = model.info.nVocab;
  const rates = [];
  for (let r = 0; r < batchedReps; r++) {
    const reqs = Array.from({ length: npl }, (_, i) => ({ prompt: randomTokens(PP, nVocab, r * 100 + i), maxTokens: TG, ignoreEog: true }));
    const t0 = process.hrtime.bigint();
    const { stats } = await session.run(reqs);
    const wall = Number(process.hrtime.bigint() - t0) / 1e6;
    // S_TG as llama-batched-bench reports it: generated tokens over the time after the prompts.
    rates.push(stats.generatedTokens / ((wall - stats.promptMs) / 1000));
  }
  session.dispose();
  return median(rates);
}

function llamaBench(bin, modelPath) {
  const json = execFileSync(path.join(bin, 'llama-bench'), ['-m', modelPath, '-p', String(PP), '-n', String(TG), '-t', String(threads), '-ngl', ngl, '-r', String(reps), '-o', 'json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const rows = JSON.parse(json);
  return { pp: rows.find((r) => r.n_prompt === PP && r.n_gen === 0).avg_ts, tg: rows.find((r) => r.n_gen === TG && r.n_prompt === 0).avg_ts };
}

// One run per sequence count: in a single run llama-batched-bench sizes its context (and its KV
// streams) for the largest -npl, which slows its small-npl rows; ours is sized per run too.
function llamaBatchedBench(bin, modelPath) {
  const speeds = {};
  for (const n of NPL) {
    // It has no repetition flag: run it `reps` times and keep the median, as for ours.
    const runs = [];
    for (let r = 0; r < batchedReps; r++) {
      const txt = execFileSync(path.join(bin, 'llama-batched-bench'), ['-m', modelPath, '-c', String(n * 256), '-b', '2048', '-ub', '512',
        '-npp', String(PP), '-ntg', String(TG), '-npl', String(n), '-t', String(threads), '-ngl', ngl, '--output-format', 'jsonl'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      runs.push(txt.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((x) => x.pl === n).speed_tg);
    }
    speeds[n] = median(runs);
  }
  return speeds;
}

function embedTexts(n) {
  const words = ['river', 'mountain', 'history', 'engine', 'protein', 'market', 'music', 'island', 'climate', 'language', 'theorem', 'harvest'];
  return Array.from({ length: n }, (_, i) => Array.from({ length: 12 + (i % 7) }, (_, k) => words[(i * 7 + k * 5) % words.length]).join(' '));
}

async function oursEmbed(model, texts) {
  const { Embedder } = require(path.join(root, 'dist', 'index.js'));
  const emb = await Embedder.create(model, { threads, sequences: 16, contextPerSequence: 128 });
  await emb.embed(texts.slice(0, 4));
  const t0 = process.hrtime.bigint();
  await emb.embed(texts);
  const rate = texts.length / (Number(process.hrtime.bigint() - t0) / 1e9);
  emb.dispose();
  return rate;
}

function nlcEmbed(modelPath, prompts) {
  const dir = path.join(out, 'nlc');
  if (!fs.existsSync(path.join(dir, 'node_modules', 'node-llama-cpp'))) {
    log(`installing node-llama-cpp@${NLC_VERSION} into ${dir} (once, from the npm registry)…`);
    fs.mkdirSync(dir, { recursive: true });
    const r = spawnSync('npm', ['install', '--no-save', '--ignore-scripts', '--prefix', dir, `node-llama-cpp@${NLC_VERSION}`], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm install node-llama-cpp failed');
  }
  // A file, not -e: node-llama-cpp forks a test process that inherits execArgv.
  const script = `
    const { getLlama } = await import(${JSON.stringify(path.join(dir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js'))});
    const prompts = JSON.parse(process.argv[2]);
    const llama = await getLlama({ gpu: false, build: 'never' });
    const model = await llama.loadModel({ modelPath: ${JSON.stringify(modelPath)} });
    const ctx = await model.createEmbeddingContext({ threads: ${threads}, contextSize: 128 });
    for (const p of prompts.slice(0, 4)) await ctx.getEmbeddingFor(p);
    const t0 = process.hrtime.bigint();
    for (const p of prompts) await ctx.getEmbeddingFor(p);
    console.log(JSON.stringify({ rate: prompts.length / (Number(process.hrtime.bigint() - t0) / 1e9) }));
  `;
  const file = path.join(out, 'nlc-embed.mjs');
  fs.writeFileSync(file, script);
  const r = spawnSync(process.execPath, [file, JSON.stringify(prompts)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node-llama-cpp failed: ${r.stderr.slice(-1500)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()).rate;
}

async function main() {
  const modelPath = await ensureModel();
  const bin = ensureLlamaTools();
  const model = await Model.load(modelPath, { gpuLayers });
  const gpu = systemInfo().devices.find((d) => d.type === 'gpu');
  if (gpuLayers !== 0 && !gpu) throw new Error('--gpu-layers needs a CUDA build of the addon on a machine with a GPU');
  log(`model ${path.basename(modelPath)} (${model.info.description}), ${threads} threads, gpu layers ${gpuLayers}${gpu ? ` on ${gpu.description}` : ''}, ${rounds} rounds of ${reps} reps`);
  const results = { model: path.basename(modelPath), threads, gpuLayers, gpu: gpuLayers !== 0 ? gpu.description : null, cpu: os.cpus()[0].model, date: new Date().toISOString() };

  // Single sequence: rounds alternate which side goes first; each round yields its own ratio.
  results.singleRounds = [];
  for (let r = 0; r < rounds; r++) {
    const round = {};
    for (const side of r % 2 === 0 ? ['llama', 'ours'] : ['ours', 'llama']) {
      log(`round ${r + 1}/${rounds}: ${side === 'llama' ? 'llama-bench' : 'search-r3 single sequence'}…`);
      round[side] = side === 'llama' ? llamaBench(bin, modelPath) : await oursSingle(model);
    }
    round.ppRatio = round.ours.pp / round.llama.pp;
    round.tgRatio = round.ours.tg / round.llama.tg;
    results.singleRounds.push(round);
  }
  // The round whose ratio is the median one supplies the t/s shown beside that ratio.
  const medianRound = (key) => results.singleRounds.find((x) => x[key] === median(results.singleRounds.map((y) => y[key])));
  const ppRound = medianRound('ppRatio');
  const tgRound = medianRound('tgRatio');
  results.ours = { pp: ppRound.ours.pp, tg: tgRound.ours.tg };
  results.llamaBench = { pp: ppRound.llama.pp, tg: tgRound.llama.tg };
  results.ppRatio = ppRound.ppRatio;
  results.tgRatio = tgRound.tgRatio;
  if (!args['single-only']) {
    log('llama-batched-bench…');
    results.llamaBatched = llamaBatchedBench(bin, modelPath);
    results.oursBatched = {};
    for (const n of NPL) {
      log(`search-r3 ${n} sequences…`);
      results.oursBatched[n] = await oursBatched(model, n);
    }
    const texts = embedTexts(64);
    log('search-r3 direct embeddings…');
    results.oursEmbedPerSec = await oursEmbed(model, texts);
    if (args.json) fs.writeFileSync(args.json, JSON.stringify(results, null, 2));
    if (!args['skip-nlc']) {
      log('node-llama-cpp embeddings…');
      const prompts = texts.map((t) => model.detokenize(buildEmbedPrompt(model, DEFAULT_EMBED_TEMPLATE, 'query', t), { renderSpecial: true }));
      try {
        results.nlcEmbedPerSec = nlcEmbed(modelPath, prompts);
      } catch (err) {
        results.nlcError = err.message;
        log(`node-llama-cpp not measured: ${err.message}`);
      }
    }
  }
  model.dispose();

  const roundRatios = (key) => ` (rounds: ${results.singleRounds.map((x) => x[key].toFixed(2)).join(', ')})`;
  const rows = [
    ['prompt processing (t/s)', results.ours.pp, results.llamaBench.pp, 0.97, results.ppRatio, roundRatios('ppRatio')],
    ['generation (t/s)', results.ours.tg, results.llamaBench.tg, 0.97, results.tgRatio, roundRatios('tgRatio')],
  ];
  if (results.oursBatched) rows.push(...NPL.map((n) => [`aggregate generation, ${n} seq (t/s)`, results.oursBatched[n], results.llamaBatched[n], 0.95]));
  if (results.nlcEmbedPerSec) rows.push(['direct embeddings (texts/s) vs node-llama-cpp', results.oursEmbedPerSec, results.nlcEmbedPerSec, 1.5]);
  console.log(`\n| measure | search-r3 | reference | ratio | goal |\n|---|---:|---:|---:|---:|`);
  for (const [name, ours, ref, goal, ratio = ours / ref, note = ''] of rows) {
    console.log(`| ${name} | ${ours.toFixed(1)} | ${ref.toFixed(1)} | ${ratio.toFixed(2)}×${note} | ≥ ${goal}× |`);
  }
  if (args.json) fs.writeFileSync(args.json, JSON.stringify(results, null, 2));
}

main().catch((err) => {
  console.error(`engine-bench: ${err.stack || err.message}`);
  process.exit(1);
});

#!/usr/bin/env node
// Document-index benchmark: `index build` encoding throughput (tokens/s) against llama.cpp's own
// `llama-bench` prompt processing on the same GGUF and thread count, and the time of an `update`
// with 1% of the documents changed against the full build.
//
//   node bench/index-bench.js [--model FILE] [--docs N] [--words N] [--threads N] [--sequences N] [--llama-bin DIR] [--reps N] [--json FILE]
//
// --model      default: .bench-out/qwen2.5-0.5b-q8_0.gguf, generated with the qwen2.5-0.5b preset (Q8_0), as bench/engine-bench.js
// --docs       documents in the generated folder corpus (default 200), --words words each (default 80)
// --llama-bin  a directory with llama-bench; default: built from deps/llama.cpp into deps/llama-tools-defaults-build
// llama-bench runs before and after the build (prompt lengths 128 and 512, --reps repetitions each,
// default 2), because this VM's speed drifts between minutes; the reference is the mean of the two.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { root, log, ensureLlamaTools } = require('./tools.js');
const { Model, Embedder, DocumentIndex, makeModel } = require(path.join(root, 'dist', 'index.js'));

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' }, docs: { type: 'string' }, words: { type: 'string' }, threads: { type: 'string' }, sequences: { type: 'string' },
    'llama-bin': { type: 'string' }, reps: { type: 'string' }, json: { type: 'string' },
  },
});
function countArg(name, fallback) {
  const v = args[name] === undefined ? fallback : Number(args[name]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(args[name])}`);
  return v;
}
const threads = countArg('threads', os.availableParallelism());
const sequences = countArg('sequences', 8);
const nDocs = countArg('docs', 200);
const nWords = countArg('words', 80);
const reps = countArg('reps', 2);
const PROMPTS = [128, 512];
const out = path.join(root, '.bench-out');
fs.mkdirSync(out, { recursive: true });

async function ensureModel() {
  if (args.model) return path.resolve(args.model);
  const file = path.join(out, 'qwen2.5-0.5b-q8_0.gguf');
  if (!fs.existsSync(file)) {
    log('generating the qwen2.5-0.5b-shaped Q8_0 model (once)…');
    await makeModel({ out: file, preset: 'qwen2.5-0.5b', type: 'q8_0', seed: 1 });
  }
  return file;
}

const WORDS = ('river mountain history engine protein market music island climate language theorem harvest forest ocean city '
  + 'village winter summer bridge castle letter garden planet signal doctor school window station harbor memory silver copper '
  + 'desert valley thunder journey festival museum library kitchen orchard factory railway machine lantern compass glacier').split(' ');

/** A folder of `n` .txt notes of `words` seeded-random words each: what a desktop app indexes. */
function writeCorpus(dir, n, words, seed = 1) {
  let s = seed >>> 0;
  const next = () => (s = (s * 1664525 + 1013904223) >>> 0);
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const text = Array.from({ length: words }, () => WORDS[next() % WORDS.length]).join(' ');
    fs.writeFileSync(path.join(dir, `note-${String(i).padStart(5, '0')}.txt`), `${text}.\n`);
  }
}

function llamaBench(bin, modelPath) {
  const json = execFileSync(path.join(bin, 'llama-bench'), ['-m', modelPath, '-p', PROMPTS.join(','), '-n', '0', '-t', String(threads), '-r', String(reps), '-o', 'json'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const rows = JSON.parse(json);
  return Object.fromEntries(PROMPTS.map((p) => [p, rows.find((r) => r.n_prompt === p && r.n_gen === 0).avg_ts]));
}

async function main() {
  const modelPath = await ensureModel();
  const bin = ensureLlamaTools({ llamaBin: args['llama-bin'], targets: ['llama-bench'] });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'search-r3-index-bench-'));
  const corpus = path.join(work, 'notes');
  writeCorpus(corpus, nDocs, nWords);
  const commands = [`llama-bench -m ${modelPath} -p ${PROMPTS.join(',')} -n 0 -t ${threads} -r ${reps} -o json`];
  log(commands[0]);
  const before = llamaBench(bin, modelPath);
  const model = await Model.load(modelPath);
  const embedder = await Embedder.create(model, { threads, sequences, contextPerSequence: 512 + 64 + 128 });
  try {
    await embedder.embedDocuments(['warm-up text for the thread pools']);
    log(`index build: ${nDocs} documents of ${nWords} words, ${threads} threads, ${sequences} sequences…`);
    let t = process.hrtime.bigint();
    const index = await DocumentIndex.build(path.join(work, 'index'), corpus, { embedder });
    const buildSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    const build = index.lastReport;
    // 1% of the notes edited (at least one).
    const changed = Math.max(1, Math.round(nDocs / 100));
    for (let i = 0; i < changed; i++) fs.appendFileSync(path.join(corpus, `note-${String(i * 97 % nDocs).padStart(5, '0')}.txt`), 'edited today.\n');
    log(`index update: ${changed} documents changed…`);
    t = process.hrtime.bigint();
    const update = await index.update(corpus);
    const updateSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    const after = llamaBench(bin, modelPath);
    const reference = Object.fromEntries(PROMPTS.map((p) => [p, (before[p] + after[p]) / 2]));
    const encodeTps = build.encodedTokens / build.encodeSeconds;
    const buildTps = build.encodedTokens / buildSeconds;
    const results = {
      model: modelPath, threads, sequences, docs: nDocs, wordsPerDoc: nWords, promptTokens: build.encodedTokens,
      meanPromptTokens: build.encodedTokens / nDocs, build: { seconds: buildSeconds, encodeSeconds: build.encodeSeconds, encodeTokensPerSecond: encodeTps, tokensPerSecond: buildTps },
      update: { changed: update.changed, seconds: updateSeconds, report: update }, llamaBench: { before, after, reference },
      ratios: Object.fromEntries(PROMPTS.map((p) => [`pp${p}`, { encode: encodeTps / reference[p], build: buildTps / reference[p] }])),
      updateVsBuild: updateSeconds / buildSeconds, loadavg: os.loadavg(), cpu: os.cpus()[0]?.model, commands,
    };
    const f = (x, d = 1) => x.toFixed(d);
    console.log(`| measure | search-r3 | reference | ratio | goal |\n|---|---:|---:|---:|---:|`);
    for (const p of PROMPTS) {
      console.log(`| index build, encoding only (t/s) vs llama-bench pp${p} | ${f(encodeTps)} | ${f(reference[p])} | **${f(encodeTps / reference[p], 2)}×** | ≥ 0.9× |`);
      console.log(`| index build, whole build (t/s) vs llama-bench pp${p} | ${f(buildTps)} | ${f(reference[p])} | ${f(buildTps / reference[p], 2)}× | |`);
    }
    console.log(`| index update, ${changed} of ${nDocs} documents changed (s) vs the build | ${f(updateSeconds, 2)} | ${f(buildSeconds, 2)} | ${f(updateSeconds / buildSeconds, 3)}× | |`);
    console.log(`\n${build.encodedTokens} prompt tokens (${f(build.encodedTokens / nDocs)} per document); llama-bench before ${PROMPTS.map((p) => f(before[p])).join('/')}, after ${PROMPTS.map((p) => f(after[p])).join('/')} t/s; load average ${os.loadavg().map((x) => f(x, 2)).join(' ')}`);
    if (args.json) fs.writeFileSync(args.json, `${JSON.stringify(results, null, 1)}\n`);
  } finally {
    embedder.dispose();
    model.dispose();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

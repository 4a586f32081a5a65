#!/usr/bin/env node
// Continuing sequences against re-reading: a multi-turn transcript (a prompt, then per turn an
// appended block, as retrieved documents are, and a sampled reply) advanced either by continuing one
// sequence (session.step: each turn prefills only its new block) or by re-reading the whole
// transcript every turn (session.run on a fresh sequence, what the engine did before sequences).
// Reports the prefill tokens each way, the tokens saved, and the wall time (median of --reps).
//
//   node bench/sequence-bench.js [--model FILE] [--threads N] [--turns 4] [--prompt 256] [--block 96]
//                                [--gen 32] [--reps 3] [--exact] [--json FILE]
//
// --model default: .bench-out/qwen2.5-0.5b-q8_0.gguf (make-model preset qwen2.5-0.5b, Q8_0, seed 1),
// as bench/engine-bench.js. Tokens are synthetic ids (randomTokens) and replies are greedy with
// end-of-generation ignored, so both ways decode the same number of tokens. --exact: f32 KV cache
// and flash attention off, under which both ways give bit-identical replies (the default f16 cache
// and CPU flash attention round differently depending on how tokens are batched).
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { root, log, median, randomTokens } = require('./tools.js');
const { Model, makeModel } = require(path.join(root, 'dist', 'index.js'));

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' }, threads: { type: 'string' }, turns: { type: 'string' }, prompt: { type: 'string' },
    block: { type: 'string' }, gen: { type: 'string' }, reps: { type: 'string' }, json: { type: 'string' }, exact: { type: 'boolean' },
  },
});
function countArg(name, fallback) {
  const v = args[name] === undefined ? fallback : Number(args[name]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(args[name])}`);
  return v;
}
const threads = countArg('threads', os.availableParallelism());
const turns = countArg('turns', 4);
const promptLen = countArg('prompt', 256);
const blockLen = countArg('block', 96);
const gen = countArg('gen', 32);
const reps = countArg('reps', 3);
const out = path.join(root, '.bench-out');

async function ensureModel() {
  if (args.model) return path.resolve(args.model);
  const file = path.join(out, 'qwen2.5-0.5b-q8_0.gguf');
  if (!fs.existsSync(file)) {
    fs.mkdirSync(out, { recursive: true });
    log('generating the qwen2.5-0.5b-shaped Q8_0 model (once)…');
    await makeModel({ out: file, preset: 'qwen2.5-0.5b', type: 'q8_0', seed: 1 });
  }
  return file;
}

const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

/** Every turn re-reads the transcript so far on a fresh sequence. */
async function reread(session, prompt, blocks) {
  let transcript = prompt;
  let prefill = 0;
  const replies = [];
  const t0 = process.hrtime.bigint();
  for (const block of blocks) {
    transcript = Int32Array.from([...transcript, ...block]);
    const { results, stats } = await session.run([{ prompt: transcript, maxTokens: gen, ignoreEog: true }]);
    prefill += stats.promptTokens;
    replies.push(results[0].tokens);
    transcript = Int32Array.from([...transcript, ...results[0].tokens]);
  }
  return { prefill, seconds: seconds(t0), replies };
}

/** One sequence continues: each turn appends its block and samples, in one step. */
async function continued(session, prompt, blocks) {
  let prefill = 0;
  const replies = [];
  const t0 = process.hrtime.bigint();
  const seq = session.openSequence();
  for (const [i, block] of blocks.entries()) {
    const append = i === 0 ? Int32Array.from([...prompt, ...block]) : block;
    const { results, stats } = await session.step([{ sequence: seq, append, maxTokens: gen, ignoreEog: true }]);
    prefill += stats.promptTokens;
    replies.push(results[0].tokens);
  }
  const time = seconds(t0);
  seq.dispose();
  return { prefill, seconds: time, replies };
}

async function main() {
  const modelPath = await ensureModel();
  const model = await Model.load(modelPath);
  const nVocab = model.info.nVocab;
  const total = promptLen + turns * (blockLen + gen);
  const exact = args.exact ? { cacheType: 'f32', flashAttention: 'off' } : {};
  const session = await model.createSession({ threads, contextSize: Math.ceil((total + 64) / 256) * 256, ...exact });
  log(`model ${path.basename(modelPath)}, ${threads} threads, ${turns} turns: prompt ${promptLen}, blocks ${blockLen}, replies ${gen} tokens`);
  const prompt = randomTokens(promptLen, nVocab, 1);
  const blocks = Array.from({ length: turns }, (_, i) => randomTokens(blockLen, nVocab, 100 + i));
  await session.run([{ prompt: randomTokens(32, nVocab, 9), maxTokens: 4, ignoreEog: true }]); // warm-up
  const runs = { reread: [], continued: [] };
  for (let r = 0; r < reps; r++) {
    // Alternate the order so neither way always runs on a warmer machine.
    for (const way of r % 2 === 0 ? ['reread', 'continued'] : ['continued', 'reread']) {
      runs[way].push(await (way === 'reread' ? reread : continued)(session, prompt, blocks));
    }
  }
  const sameReplies = runs.reread[0].replies.every((t, i) => t.length === runs.continued[0].replies[i].length &&
    t.every((x, k) => x === runs.continued[0].replies[i][k]));
  const result = {
    model: path.basename(modelPath), exact: Boolean(args.exact), threads, turns, prompt: promptLen, block: blockLen, gen, reps, cpu: os.cpus()[0].model,
    date: new Date().toISOString(),
    prefill: { reread: runs.reread[0].prefill, continued: runs.continued[0].prefill },
    seconds: { reread: median(runs.reread.map((x) => x.seconds)), continued: median(runs.continued.map((x) => x.seconds)) },
    sameReplies,
  };
  result.prefillSaved = 1 - result.prefill.continued / result.prefill.reread;
  result.speedup = result.seconds.reread / result.seconds.continued;
  session.dispose();
  model.dispose();
  console.log(`| way | prefill tokens | time (s, median of ${reps}) |`);
  console.log('|---|---:|---:|');
  console.log(`| re-read the transcript every turn | ${result.prefill.reread} | ${result.seconds.reread.toFixed(2)} |`);
  console.log(`| continue one sequence | ${result.prefill.continued} | ${result.seconds.continued.toFixed(2)} |`);
  console.log(`prefill saved ${(100 * result.prefillSaved).toFixed(1)}%, ${result.speedup.toFixed(2)}x faster; ` +
    `replies ${sameReplies ? 'identical' : 'differ (float rounding depends on how tokens are batched; see --exact)'}`);
  if (args.json) fs.writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

#!/usr/bin/env node
// Training benchmark: tokens/s and peak RSS of a search-r3 LoRA step (LoraTrainer) beside llama.cpp's
// own llama-finetune (full fine-tune, cross-entropy, AdamW) built from the same vendored tree, on the
// same token windows, thread count and context length.
//
//   node bench/train-bench.js [--model FILE]... [--preset SPEC]... [--threads N] [--ctx N] [--steps N]
//                             [--rounds N] [--llama-bin DIR] [--skip-ours] [--skip-llama] [--lean-memory]
//                             [--json FILE]
//
// --model      an existing F32 GGUF (repeatable)
// --preset     a generated F32 model (repeatable): tiny, qwen2.5-0.5b, or qwen2.5-0.5b:L<layers> (the
//              0.5B shape cut to fewer blocks); written once into .bench-out/ with the package's
//              makeModel (seed 1). Default (when neither --model nor --preset is given): tiny,
//              stories260K (the shared fixture, when present), qwen2.5-0.5b:L4, qwen2.5-0.5b:L6,
//              qwen2.5-0.5b:L8 and qwen2.5-0.5b.
// --ctx        tokens per training window = llama-finetune's -c, -b and -ub (one optimizer step per
//              window); a multiple of 256, default 256
// --steps      measured steps per side (default 4); one more warm-up step runs first and is excluded
// --rounds     runs per side (default 1), alternating which side goes first; the table gives the
//              median run's tokens/s and the median of the rounds' ratios
// --lean-memory  ours without the transposed weight copies (LoraTrainer's transposedWeights: false):
//              the slower out_prod backward, one copy of the weights less
// --llama-bin  a directory with llama-finetune; default: built from deps/llama.cpp into
//              deps/llama-tools-defaults-build with llama.cpp's own CMake defaults (OpenMP on)
//
// How tokens/s is computed, on both sides, is ctx / median(step time):
// - llama-finetune: a text file is cut so that llama-finetune's dataset (windows of ctx tokens at a
//   stride of ctx/2, -val-split 0, -epochs 1) holds exactly steps + 2 windows. Before each optimizer
//   step llama.cpp logs "epoch 0 lr=…" with a microsecond timestamp of its own clock; the interval
//   between two consecutive such lines is one full step (graph build + allocation + forward +
//   backward + AdamW). The first interval (warm-up window 0) is dropped, which leaves `steps`
//   intervals, for windows 1…steps; the last window only closes the final interval.
// - ours: a child process opens LoraTrainer on the same file, runs accumulate + step on window 0
//   (warm-up) and then on windows 1…steps, each the same ctx token ids llama-finetune trains on, with
//   every position but the first as a target, and times accumulate + step.
// Peak RSS is the whole process's, per side (GNU time -v, else /proc/PID/status VmHWM polling); ours
// includes Node itself (about 40-50 MB).
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { root, log, median, ensureLlamaTools, runMeasured } = require('./tools.js');

const dist = path.join(root, 'dist', 'index.js');
const out = path.join(root, '.bench-out');
const STORIES = '/work/shared/fixtures/models/stories260K.gguf';
const DEFAULT_PRESETS = ['tiny', 'stories260K', 'qwen2.5-0.5b:L4', 'qwen2.5-0.5b:L6', 'qwen2.5-0.5b:L8', 'qwen2.5-0.5b'];
const LORA = { rank: 8, alpha: 16, targets: ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down'] };
const GOAL = 1.5;

// ---------------------------------------------------------------------------------------------
// Child mode: our side, in its own process so that its peak RSS is its own.

async function oursChild(specFile) {
  const spec = JSON.parse(fs.readFileSync(specFile, 'utf8'));
  const lib = require(dist);
  if (typeof lib.LoraTrainer !== 'function') {
    process.stdout.write(`${JSON.stringify({ error: 'LoraTrainer is not exported by dist/index.js (the trainer API is not built yet)' })}\n`);
    return;
  }
  const t = await lib.LoraTrainer.open(spec.model, { threads: spec.threads, lora: LORA, transposedWeights: !spec.leanMemory });
  const { weightBytes, transposedBytes } = t.info;
  const stepMs = [];
  const losses = [];
  try {
    for (let i = 0; i < spec.windows.length; i++) {
      const tokens = Int32Array.from(spec.windows[i]);
      const targets = new Uint8Array(tokens.length).fill(1);
      targets[0] = 0; // position 0 has no previous token to be predicted from
      const t0 = process.hrtime.bigint();
      // accumulate(sequences[], losses): dist/train/trainer.d.ts (an array, not { sequences }).
      const stats = await t.accumulate([{ tokens, targets }], { sft: { weight: 1 } });
      await t.step({ lr: 1e-4 });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (i > 0) stepMs.push(ms); // window 0 is the warm-up
      losses.push(stats?.loss ?? null);
    }
  } finally {
    t.dispose();
  }
  process.stdout.write(`${JSON.stringify({ stepMs, losses, weightBytes, transposedBytes })}\n`);
}

// ---------------------------------------------------------------------------------------------
// Parent mode.

function parseCli() {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', multiple: true }, preset: { type: 'string', multiple: true }, threads: { type: 'string' },
      ctx: { type: 'string' }, steps: { type: 'string' }, rounds: { type: 'string' }, 'llama-bin': { type: 'string' }, json: { type: 'string' },
      'skip-ours': { type: 'boolean' }, 'skip-llama': { type: 'boolean' }, 'lean-memory': { type: 'boolean' },
    },
  });
  const intArg = (v, name, def, min) => {
    const n = v === undefined ? def : Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}`);
    return n;
  };
  const ctx = intArg(values.ctx, 'ctx', 256, 256);
  // llama.cpp pads a context to a multiple of 256 (llama-context.cpp), and llama-finetune trains on
  // windows of the padded size: any other --ctx would give it longer windows than ours.
  if (ctx % 256 !== 0) throw new Error('--ctx must be a multiple of 256 (llama.cpp pads its context to one)');
  for (const p of values.preset ?? []) {
    if (p !== 'stories260K' && !PRESET_SPEC.test(p)) throw new Error(`unknown --preset ${JSON.stringify(p)} (tiny, qwen2.5-0.5b, qwen2.5-0.5b:L<layers>, stories260K)`);
  }
  return {
    models: values.model ?? [],
    presets: values.preset ?? (values.model ? [] : DEFAULT_PRESETS),
    threads: intArg(values.threads, 'threads', os.availableParallelism(), 1),
    ctx,
    steps: intArg(values.steps, 'steps', 4, 1),
    rounds: intArg(values.rounds, 'rounds', 1, 1),
    llamaBin: values['llama-bin'],
    json: values.json,
    skipOurs: Boolean(values['skip-ours']),
    skipLlama: Boolean(values['skip-llama']),
    leanMemory: Boolean(values['lean-memory']),
  };
}

const PRESET_SPEC = /^(tiny|qwen2\.5-0\.5b)(?::L(\d+))?$/;

/** { name, path } for a preset spec, generating the model once. */
async function ensurePresetModel(spec) {
  if (spec === 'stories260K') {
    if (!fs.existsSync(STORIES)) return null;
    return { name: 'stories260K', path: STORIES };
  }
  const m = PRESET_SPEC.exec(spec);
  const { makeModel } = require(dist);
  const layers = m[2] ? Number(m[2]) : undefined;
  const name = `${m[1]}${layers ? `-l${layers}` : ''}-f32`;
  const file = path.join(out, `${name}.gguf`);
  if (!fs.existsSync(file)) {
    log(`generating ${name} (once)…`);
    await makeModel({ out: file, preset: m[1], type: 'f32', seed: 1, ...(layers ? { layers } : {}) });
  }
  return { name: spec, path: file };
}

// Deterministic plain-English-looking text: the same file for every run.
const WORDS = ('the a of and to in is was for on with as by at from that this it he she they we you his her their ' +
  'river mountain village market teacher farmer garden winter summer morning evening story letter window road ' +
  'bridge forest ocean island castle kitchen library station harbor engine museum school child friend brother ' +
  'sister mother father king queen soldier sailor doctor painter baker old young small large quiet bright dark ' +
  'green golden cold warm early late slowly quickly often never always carried found built wrote opened closed ' +
  'walked watched remembered believed crossed followed painted planted sold bought answered asked told gave took ' +
  'made saw heard loved lost kept left brought every many some few one two three first last long short').split(' ');

function makeText(nWords, seed = 12345) {
  let s = seed >>> 0;
  const rnd = (n) => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s % n;
  };
  const parts = [];
  let sentence = 0;
  let w = 0;
  while (w < nWords) {
    const len = Math.min(6 + rnd(9), nWords - w);
    const words = Array.from({ length: len }, () => WORDS[rnd(WORDS.length)]);
    words[0] = words[0][0].toUpperCase() + words[0].slice(1);
    parts.push(`${words.join(' ')}.`);
    w += len;
    if (++sentence % 6 === 0) parts.push('\n\n');
  }
  // No trailing newline: llama.cpp's -f drops one, which would change the token count.
  return parts.join(' ').replace(/ \n\n /g, '\n\n').trimEnd();
}

/**
 * A text whose tokenization (as llama-finetune does it: the model's tokenizer, special tokens added)
 * gives exactly `windows` llama-finetune windows of ctx tokens at stride ctx/2; and its tokens.
 */
function makeTrainingText(vocabModel, ctx, windows) {
  const stride = ctx / 2;
  const ndata = (nTok) => Math.floor((nTok - ctx - 1) / stride);
  const tok = (nWords) => vocabModel.tokenize(makeText(nWords));
  let hi = 64;
  while (ndata(tok(hi).length) < windows) hi *= 2;
  let lo = 1;
  while (lo < hi) { // smallest word count with enough windows
    const mid = (lo + hi) >> 1;
    if (ndata(tok(mid).length) >= windows) hi = mid;
    else lo = mid + 1;
  }
  const text = makeText(lo);
  const tokens = vocabModel.tokenize(text);
  if (ndata(tokens.length) !== windows) throw new Error(`could not cut the text to ${windows} windows (got ${ndata(tokens.length)})`);
  return { text, tokens };
}

const shellQuote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);

// "M.SS.mmm.uuu I epoch 0 lr=1e-05": common_log's timestamp (minutes, seconds, ms, µs since start).
const LR_LINE = /(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) I epoch \S+ lr=/g;

async function llamaFinetune(bin, model, textFile, cfg, windows) {
  const exe = path.join(bin, 'llama-finetune');
  const outFile = path.join(out, 'train-bench-finetuned.gguf');
  const args = ['-m', model.path, '-f', textFile, '-c', String(cfg.ctx), '-b', String(cfg.ctx), '-ub', String(cfg.ctx),
    '-t', String(cfg.threads), '-epochs', '1', '-val-split', '0', '-o', outFile];
  const command = [exe, ...args].map(shellQuote).join(' ');
  log(`  $ ${command}`);
  const r = await runMeasured(exe, args);
  fs.rmSync(outFile, { force: true });
  const res = { command, peakRssKb: r.peakRssKb, rssMethod: r.rssMethod, wallMs: r.wallMs, exitCode: r.code, signal: r.signal };
  const text = r.stderr.replace(/\r/g, '\n');
  if (r.code !== 0 || r.signal) {
    const lines = text.split('\n');
    res.error = lines.find((l) => /GGML_ASSERT|GGML_ABORT|error:|failed/i.test(l))?.trim()
      ?? `exit ${r.code ?? r.signal}: ${lines.filter(Boolean).slice(-3).join(' | ')}`;
    res.error = res.error.replace(/^.*?\/deps\/llama\.cpp\//, 'deps/llama.cpp/');
    return res;
  }
  const stamps = [...text.matchAll(LR_LINE)].map((m) => Number(m[1]) * 60e3 + Number(m[2]) * 1e3 + Number(m[3]) + Number(m[4]) / 1e3);
  const data = [...text.matchAll(/train: \[[^\]]*\] data=(\d+)\/(\d+) loss=([\d.]+|nan)/g)];
  res.windows = data.length ? Number(data[data.length - 1][2]) : null;
  if (res.windows !== windows) res.note = `expected ${windows} windows, llama-finetune made ${res.windows}`;
  if (stamps.length < 3) {
    res.error = `found ${stamps.length} timestamped "lr=" lines in llama-finetune's log; cannot time its steps`;
    return res;
  }
  res.stepMs = stamps.slice(1).map((t, i) => t - stamps[i]).slice(1); // drop the warm-up interval
  res.stepMsMedian = median(res.stepMs);
  res.tokPerSec = cfg.ctx / (res.stepMsMedian / 1000);
  res.loss = data.length ? Number(data[data.length - 1][3]) : null; // llama-finetune's running mean over the epoch
  return res;
}

async function ours(model, tokens, cfg) {
  const stride = cfg.ctx / 2;
  const spec = {
    model: model.path, threads: cfg.threads, leanMemory: cfg.leanMemory,
    windows: Array.from({ length: cfg.steps + 1 }, (_, i) => Array.from(tokens.subarray(i * stride, i * stride + cfg.ctx))),
  };
  const specFile = path.join(out, `train-bench-ours-${path.basename(model.path, '.gguf')}-c${cfg.ctx}-t${cfg.threads}${cfg.leanMemory ? '-lean' : ''}.json`);
  fs.writeFileSync(specFile, JSON.stringify(spec));
  const args = [__filename, '--child-ours', specFile];
  const command = `node bench/train-bench.js --child-ours ${path.relative(root, specFile)}`;
  const r = await runMeasured(process.execPath, args);
  const res = { command, peakRssKb: r.peakRssKb, rssMethod: r.rssMethod, wallMs: r.wallMs };
  const last = r.stdout.trim().split('\n').pop();
  let parsed = null;
  try {
    parsed = JSON.parse(last);
  } catch {
    parsed = null;
  }
  if (r.code !== 0 || r.signal || !parsed) {
    const lines = r.stderr.trim().split('\n');
    res.error = `our trainer failed (exit ${r.code ?? r.signal}): ${(lines.find((l) => /Error|GGML_ASSERT|abort/i.test(l)) ?? lines.slice(-3).join(' | ')).trim()}`;
    return res;
  }
  if (parsed.error) {
    res.error = parsed.error;
    return res;
  }
  res.stepMs = parsed.stepMs;
  res.stepMsMedian = median(parsed.stepMs);
  res.tokPerSec = cfg.ctx / (res.stepMsMedian / 1000);
  res.losses = parsed.losses;
  res.weightBytes = parsed.weightBytes;
  res.transposedBytes = parsed.transposedBytes;
  return res;
}

const mib = (kb) => (kb ? `${(kb / 1024).toFixed(0)} MiB` : '–');

/**
 * row.llama / row.ours: the run with the median tokens/s (or the first error) plus every run's
 * tokens/s; row.ratio: the median over rounds of ours / llama-finetune within the round.
 */
function summarize(row, runs) {
  for (const side of ['llama', 'ours']) {
    const ok = runs[side].filter((r) => !r.error);
    if (runs[side].length === 0) continue;
    if (ok.length === 0) {
      row[side] = runs[side][0];
      continue;
    }
    const sorted = [...ok].sort((a, b) => a.tokPerSec - b.tokPerSec);
    row[side] = { ...sorted[Math.floor(sorted.length / 2)], runsTokPerSec: ok.map((r) => r.tokPerSec) }; // median()'s pick
  }
  const n = Math.min(runs.llama.length, runs.ours.length);
  const ratios = [];
  for (let i = 0; i < n; i++) {
    if (!runs.llama[i].error && !runs.ours[i].error) ratios.push(runs.ours[i].tokPerSec / runs.llama[i].tokPerSec);
  }
  if (ratios.length > 0) {
    row.ratios = ratios;
    row.ratio = median(ratios);
  }
}

async function main() {
  if (process.argv[2] === '--child-ours') return oursChild(process.argv[3]);
  const cfg = parseCli();
  fs.mkdirSync(out, { recursive: true });
  const lib = require(dist);
  const haveTrainer = typeof lib.LoraTrainer === 'function';
  if (!cfg.skipOurs && !haveTrainer) log('note: dist/index.js exports no LoraTrainer yet; the "ours" rows are not measured');
  const bin = cfg.skipLlama ? null : ensureLlamaTools({ llamaBin: cfg.llamaBin, targets: ['llama-finetune'] });

  const models = [];
  for (const p of cfg.models) models.push({ name: path.basename(p, '.gguf'), path: path.resolve(p) });
  for (const spec of cfg.presets) {
    const m = await ensurePresetModel(spec);
    if (m) models.push(m);
    else log(`skipping ${spec}: ${STORIES} not found`);
  }

  const windows = cfg.steps + 2; // warm-up + measured steps + one that only closes the last interval
  const results = {
    threads: cfg.threads, ctx: cfg.ctx, steps: cfg.steps, rounds: cfg.rounds, lora: LORA, leanMemory: cfg.leanMemory, cpu: os.cpus()[0].model, cores: os.availableParallelism(),
    date: new Date().toISOString(), loadavgAtStart: os.loadavg(), models: [],
  };
  if (os.loadavg()[0] > 0.5) log(`note: 1-minute load average ${os.loadavg()[0].toFixed(2)} before the start; other work on the machine skews both sides`);
  const save = () => cfg.json && fs.writeFileSync(cfg.json, JSON.stringify(results, null, 2));
  for (const model of models) {
    const info = await lib.ggufInfo(model.path);
    log(`${model.name}: ${info.architecture}, ${info.nLayer} layers, n_embd ${info.nEmbd}, vocab ${info.nVocab}; ctx ${cfg.ctx}, ${cfg.threads} threads`);
    const vocab = await lib.Model.load(model.path, { vocabOnly: true });
    const { text, tokens } = makeTrainingText(vocab, cfg.ctx, windows);
    vocab.dispose();
    const textFile = path.join(out, `train-text-${path.basename(model.path, '.gguf')}-c${cfg.ctx}-w${windows}.txt`);
    fs.writeFileSync(textFile, text);
    const row = { loadavg: os.loadavg()[0], model: model.name, path: model.path, arch: info.architecture, layers: info.nLayer, embd: info.nEmbd, vocab: info.nVocab, textFile, textTokens: tokens.length };
    results.models.push(row);
    if (!cfg.skipOurs && !haveTrainer) row.ours = { error: 'LoraTrainer is not exported by dist/index.js (the trainer API is not built yet)' };
    const runs = { llama: [], ours: [] };
    const sides = {
      llama: async () => {
        log('  llama-finetune…');
        const r = await llamaFinetune(bin, model, textFile, cfg, windows);
        log(r.error ? `  llama-finetune: ${r.error}` : `  llama-finetune: ${r.tokPerSec.toFixed(1)} t/s, peak RSS ${mib(r.peakRssKb)}`);
        return r;
      },
      ours: async () => {
        log('  search-r3 LoRA…');
        const r = await ours(model, tokens, cfg);
        log(r.error ? `  ours: ${r.error}` : `  ours: ${r.tokPerSec.toFixed(1)} t/s, peak RSS ${mib(r.peakRssKb)}`);
        return r;
      },
    };
    // Rounds alternate which side goes first, so that a drift in machine speed falls on both.
    for (let round = 0; round < cfg.rounds; round++) {
      const order = round % 2 === 0 ? ['llama', 'ours'] : ['ours', 'llama'];
      for (const side of order) {
        if (side === 'llama' && (cfg.skipLlama || runs.llama[0]?.error)) continue; // an abort is not retried
        if (side === 'ours' && (cfg.skipOurs || !haveTrainer || runs.ours[0]?.error)) continue;
        runs[side].push(await sides[side]());
        summarize(row, runs);
        save();
      }
    }
  }

  console.log(`\ntraining, ctx ${cfg.ctx}, ${cfg.threads} threads, median of ${cfg.steps} steps after 1 warm-up, ${cfg.rounds} round(s) ` +
    `(t/s: the median round; ratio: the median of the rounds' ratios); ${os.cpus()[0].model}`);
  console.log('\n| model | llama-finetune (full FT) t/s | its peak RSS | search-r3 LoRA t/s | our peak RSS | ratio | goal |\n|---|---:|---:|---:|---:|---:|---:|');
  for (const r of results.models) {
    const l = r.llama;
    const o = r.ours;
    const lt = !l ? 'skipped' : l.error ? `aborted: ${l.error}` : l.tokPerSec.toFixed(1);
    const ot = !o ? 'skipped' : o.error ? `not measured: ${o.error}` : o.tokPerSec.toFixed(1);
    const ratio = r.ratio ? `${r.ratio.toFixed(2)}×` : '–';
    const lm = !l ? '–' : l.error ? `${mib(l.peakRssKb)} at the abort` : mib(l.peakRssKb);
    console.log(`| ${r.model} (${r.layers}L, n_embd ${r.embd}) | ${lt} | ${lm} | ${ot} | ${o && !o.error ? mib(o.peakRssKb) : '–'} | ${ratio} | ≥ ${GOAL}× |`);
  }
  console.log('\ncommands (each run under GNU time -v, or with /proc/PID/status VmHWM polling):');
  for (const r of results.models) {
    if (r.llama) console.log(`  ${r.llama.command}`);
    if (r.ours?.command) console.log(`  ${r.ours.command}`);
  }
  save();
}

main().catch((err) => {
  console.error(`train-bench: ${err.stack || err.message}`);
  process.exit(1);
});

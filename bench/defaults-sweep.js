#!/usr/bin/env node
// Stage-1 defaults sweep: trains `trainStage1` with a few candidate settings on generated retrieval
// tasks the package never saw, on several models, and prints held-out nDCG@10 before and after.
// This is the evidence behind stage 1's default loss weights, balancing, learning rate and LoRA
// rank (README, Training).
//
//   nice -n 10 node bench/defaults-sweep.js [--models tiny,wide,stories] [--tasks LIST] [--settings LIST]
//                                           [--steps 300] [--threads 1] [--json FILE]
//
// --models   tiny: the `tiny` preset (2 layers, width 64, random weights); wide: a generated qwen2
//            model of width 256, 4 layers (random weights); stories: the shared stories260K fixture
//            (a trained llama model, width 64) with <|embed_token|> added. Made once into .bench-out/.
// --tasks    synth:SEED:DOCS:QUERIES (makeRetrievalTask: one-hop people/invention/town queries) or
//            catalog:SEED:ITEMS (makeCatalogTask: the differently built product-catalogue generator
//            the test holds out). Default: synth:11:100:60,synth:23:200:120,synth:37:60:40
// --settings names from SETTINGS below. Default: all of them.
// --steps    optimizer steps of every run (default 300); every other option is the setting's or
//            the package default, so `defaults` is exactly what `search-r3 train sft` does.
// Runs are deterministic (data order and LoRA init are seeded), so a busy machine changes only how
// long the sweep takes, not its figures.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { root, log } = require('./tools.js');

const lib = require(path.join(root, 'dist', 'index.js'));
const out = path.join(root, '.bench-out', 'defaults-sweep');
const STORIES = path.resolve(root, '..', 'shared', 'fixtures', 'models', 'stories260K.gguf');

// The defaults before this sweep, spelled out so the comparison stays meaningful after they change.
const OLD = { lr: 1e-4, clipNorm: 1, lora: { rank: 8 }, losses: { sft: 1, kl: 0.1, infonce: 1, triplet: 0.5 } };

/** Candidate settings: overrides of trainStage1's options (an empty object = today's defaults). */
const SETTINGS = {
  defaults: {},
  old: OLD,
  'old-infonce-only': { ...OLD, losses: { sft: 0, kl: 0, infonce: 1, triplet: 0 } },
  'old-lr1e-3-sft0.1': { ...OLD, lr: 1e-3, losses: { sft: 0.1, kl: 0, infonce: 1, triplet: 0 } },
  'old-lr1.6e-3': { ...OLD, lr: 1.6e-3 },
  'lr1.6e-3-infonce-only': { ...OLD, lr: 1.6e-3, losses: { sft: 0, kl: 0, infonce: 1, triplet: 0 } },
  'lr1.6e-3-cap0.5': { ...OLD, lr: 1.6e-3, tokenGradCap: 0.5 },
  'lr1.6e-3-cap0.1': { ...OLD, lr: 1.6e-3, tokenGradCap: 0.1 },
  'lr1.6e-3-cap0.1-kl0': { ...OLD, lr: 1.6e-3, tokenGradCap: 0.1, losses: { sft: 1, kl: 0, infonce: 1, triplet: 0.5 } },
  'lr4e-4-infonce-only': { ...OLD, lr: 4e-4, losses: { sft: 0, kl: 0, infonce: 1, triplet: 0 } },
  'lr3.2e-3-infonce-only': { ...OLD, lr: 3.2e-3, losses: { sft: 0, kl: 0, infonce: 1, triplet: 0 } },
  'lr6.4e-3-infonce-only': { ...OLD, lr: 6.4e-3, losses: { sft: 0, kl: 0, infonce: 1, triplet: 0 } },
  'lr1.6e-3-r16-infonce-only': { ...OLD, lr: 1.6e-3, lora: { rank: 16 }, losses: { sft: 0, kl: 0, infonce: 1, triplet: 0 } },
  'lr1.6e-3-r32-infonce-only': { ...OLD, lr: 1.6e-3, lora: { rank: 32 }, losses: { sft: 0, kl: 0, infonce: 1, triplet: 0 } },
  'lr1.6e-3-triplet': { ...OLD, lr: 1.6e-3, losses: { sft: 0, kl: 0, infonce: 1, triplet: 0.5 } },
  'lr1.6e-3-r64-infonce-only': { ...OLD, lr: 1.6e-3, lora: { rank: 64 }, losses: { sft: 0, kl: 0, infonce: 1, triplet: 0 } },
};

function parseTask(spec) {
  const [kind, ...nums] = spec.split(':');
  const n = nums.map(Number);
  if (kind === 'synth') return { spec, task: lib.makeRetrievalTask({ seed: n[0], docs: n[1], queries: n[2] }) };
  if (kind === 'catalog') return { spec, task: lib.makeCatalogTask({ seed: n[0], items: n[1] }) };
  throw new Error(`unknown task ${spec}`);
}

async function model(name) {
  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, `${name}.gguf`);
  if (fs.existsSync(file)) return file;
  if (name === 'tiny') await lib.makeModel({ out: file, preset: 'tiny', seed: 7, type: 'f32' });
  else if (name === 'wide') await lib.makeModel({ out: file, preset: 'tiny', seed: 7, type: 'f32', embd: 256, heads: 8, kvHeads: 2, ff: 512, layers: 4 });
  else if (name === 'stories') await lib.addEmbedToken(STORIES, file);
  else throw new Error(`unknown model ${name}`);
  return file;
}

async function main() {
  const { values } = parseArgs({
    options: {
      models: { type: 'string', default: 'tiny,wide,stories' },
      tasks: { type: 'string', default: 'synth:11:100:60,synth:23:200:120,synth:37:60:40' },
      settings: { type: 'string', default: Object.keys(SETTINGS).join(',') },
      steps: { type: 'string', default: '300' },
      threads: { type: 'string', default: '1' },
      json: { type: 'string' },
    },
  });
  const steps = Number(values.steps);
  const threads = Number(values.threads);
  const rows = [];
  for (const m of values.models.split(',')) {
    const file = await model(m);
    for (const t of values.tasks.split(',')) {
      const { task } = parseTask(t);
      for (const s of values.settings.split(',')) {
        if (!SETTINGS[s]) throw new Error(`unknown setting ${s}; one of ${Object.keys(SETTINGS).join(', ')}`);
        const started = Date.now();
        const logs = [];
        const r = await lib.trainStage1({
          model: file, train: task.train, eval: task.heldOut, out: path.join(out, `run-${process.pid}.lora.gguf`), steps, threads,
          progress: false, checkpointEvery: steps, ...SETTINGS[s],
        }, { onStep: (l) => logs.push(l) });
        const mean = (xs, k) => xs.reduce((a, l) => a + (l.parts[k] ?? 0), 0) / xs.length;
        const row = {
          model: m, task: t, setting: s, steps, train: task.train.length, before: r.evalBefore.ndcg10, after: r.evalAfter.ndcg10,
          infonceFirst: mean(logs.slice(0, 10), 'infonce'), infonceLast: mean(logs.slice(-10), 'infonce'),
          sftLast: mean(logs.slice(-10), 'sft'), seconds: (Date.now() - started) / 1000,
        };
        rows.push(row);
        log(JSON.stringify(row));
        if (values.json) fs.writeFileSync(values.json, `${JSON.stringify(rows, null, 1)}\n`);
      }
    }
  }
  process.stdout.write('| model | task | setting | nDCG@10 before | after | InfoNCE first→last 10 steps |\n|---|---|---|---|---|---|\n');
  for (const r of rows) {
    process.stdout.write(`| ${r.model} | ${r.task} | ${r.setting} | ${r.before.toFixed(3)} | ${r.after.toFixed(3)} | ${r.infonceFirst.toFixed(2)} → ${r.infonceLast.toFixed(2)} |\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack ?? e}\n`);
  process.exit(1);
});

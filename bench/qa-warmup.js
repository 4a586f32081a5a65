#!/usr/bin/env node
// Search-R1 warm-up demonstration: supervised steps on rule-written trajectories (src/agent/warmup.ts)
// over synthetic multi-hop QA, then one greedy first turn of a held-out question with the adapter.
// Shows that the trajectories are valid training input and that they teach the tags; it is not the
// Search-R1 training loop (that waits for continuing sequences).
//
//   node bench/qa-warmup.js [--model FILE] [--steps N] [--batch N] [--lr X] [--threads N] [--json FILE]
//
// --model  default: a tiny generated model (the `tiny` preset, seed 7, F32) in a temporary directory
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const lib = require('../dist/index.js');
const { makeModel } = require('../dist/gguf/index.js');

const { values } = parseArgs({
  options: {
    model: { type: 'string' }, steps: { type: 'string', default: '30' }, batch: { type: 'string', default: '4' },
    lr: { type: 'string', default: '1e-2' }, threads: { type: 'string', default: '2' }, json: { type: 'string' },
  },
});

async function main() {
  const steps = Number(values.steps);
  const batch = Number(values.batch);
  const lr = Number(values.lr);
  const threads = Number(values.threads);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qa-warmup-'));
  const modelPath = values.model ?? path.join(dir, 'tiny.gguf');
  if (!values.model) await makeModel({ preset: 'tiny', seed: 7, type: 'f32', out: modelPath });
  const qa = lib.syntheticQa(lib.makeSyntheticDataset({ seed: 5, docs: 80, queries: 40, multiHopFraction: 0.5 }));
  const index = new lib.Bm25Index();
  const contents = new Map();
  for (const d of qa.corpus) {
    index.add(d.id, d.contents);
    contents.set(d.id, d.contents);
  }
  const { trajectories, skipped } = await lib.warmupTrajectories(qa.questions.train, { retriever: new lib.Bm25Retriever({ index, contents }), contents });
  const model = await lib.Model.load(modelPath);
  const seqs = lib.warmupSequences(trajectories, (s, first) => model.tokenize(s, { addSpecial: first, parseSpecial: false }));
  const targets = seqs.reduce((n, s) => n + s.targets.reduce((a, b) => a + b, 0), 0);
  const tokens = seqs.reduce((n, s) => n + s.tokens.length, 0);
  console.log(`${trajectories.length} trajectories (${skipped.length} questions skipped), ${tokens} tokens, ${targets} of them model-written targets`);
  const trainer = await lib.LoraTrainer.open(modelPath, { lora: { rank: 8, seed: 1 }, threads });
  const losses = [];
  const t0 = process.hrtime.bigint();
  for (let step = 0; step < steps; step++) {
    const at = (step * batch) % seqs.length;
    const r = await trainer.accumulate(seqs.slice(at, at + batch), { sft: {} });
    await trainer.step({ lr });
    losses.push(r.loss);
    if (step % 5 === 0 || step === steps - 1) console.log(`step ${step}: sft loss ${r.loss.toFixed(3)}`);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const adapter = path.join(dir, 'warmup.lora.gguf');
  await trainer.saveAdapter(adapter);
  trainer.dispose();
  const session = await model.createSession({ sequences: 1, contextSize: 2048, threads });
  const q = qa.questions.test[0];
  const prompt = lib.buildAgentPrompt(q.question);
  const [before] = await session.generate(prompt, { maxTokens: 24, stop: [...lib.ACTION_STOPS] });
  session.setLoras([{ adapter: await model.loadLora(adapter), scale: 1 }]);
  const [after] = await session.generate(prompt, { maxTokens: 24, stop: [...lib.ACTION_STOPS] });
  console.log(`first turn before: ${JSON.stringify(before.text)}`);
  console.log(`first turn after:  ${JSON.stringify(after.text)}`);
  console.log(`${steps} steps in ${seconds.toFixed(1)} s`);
  const result = { trajectories: trajectories.length, skipped: skipped.length, tokens, targets, steps, batch, lr, seconds, losses, before: before.text, after: after.text };
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  session.dispose();
  model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e.message);
  process.exitCode = 1;
});

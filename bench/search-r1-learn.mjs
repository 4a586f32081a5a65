#!/usr/bin/env node
// Search-R1 learning experiment (not a test: minutes on 2 cores): a tiny generated model, untied,
// its output matrix scaled by SCALE so it can peak its distribution; WARM warm-up SFT steps, then
// STEPS GRPO steps; held-out agent EM, valid-format share and em-format reward after each, and the
// direct/RAG baselines of the base model with BASE=1. MODEL=FILE trains that GGUF instead (no
// scaling), e.g. the stories260K fixture; MAXTT is the turn budget in tokens (24: a byte-level
// vocabulary such as stories260K's needs about 80); TARGETS=attn_q,…,output the adapter's LoRA
// targets (default every layer's projections; add output for the output head). Settings by
// environment variable:
//
//   DOCS=60 QUERIES=80 SCALE=10 WARM=40 STEPS=10 LR=2e-2 RANK=8 SAMPLE_T=1 Q=2 REWARD=em-format BASE=1 node bench/search-r1-learn.mjs
//   MODEL=../shared/fixtures/models/stories260K.gguf MAXTT=80 WARM=100 STEPS=0 LR=1e-2 RANK=16 BASE=1 node bench/search-r1-learn.mjs
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
const require = createRequire(import.meta.url);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const lib = require(join(root, 'dist', 'index.js'));
const gguf = require(join(root, 'dist', 'gguf', 'index.js'));
const { trainSearchR1, syntheticQa, makeSyntheticDataset, Model, Agent, agentMethod, directMethod, ragMethod, Bm25Retriever, exactMatch, scoreQa } = lib;
const { Bm25Index } = require(join(root, 'dist', 'store', 'bm25.js'));
// Settings are read from the environment (see the header).
const dir = mkdtempSync(join(tmpdir(), 'search-r1-learn-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const modelPath = process.env.MODEL ? resolve(process.env.MODEL) : join(dir, 'tiny.gguf');
const basePath = join(dir, 'base.gguf');
if (!process.env.MODEL) {
  await gguf.makeModel({ preset: 'tiny', seed: 7, type: 'f32', tieEmbeddings: false, out: basePath });
  const info = await gguf.readGguf(basePath);
  const K = Number(process.env.SCALE ?? 10);
  const tensors = await Promise.all(info.tensors.map(async (t) => {
    let data = await gguf.readTensorBytes(info, t.name);
    if (t.name === 'output.weight') { const f = new Float32Array(data.slice().buffer); for (let i = 0; i < f.length; i++) f[i] *= K; data = new Uint8Array(f.buffer); }
    return { name: t.name, type: t.type.id, dims: t.dims, data };
  }));
  await gguf.writeGguf(modelPath, { metadata: info.metadata, tensors });
}
const qa = syntheticQa(makeSyntheticDataset({ seed: 1, docs: Number(process.env.DOCS ?? 60), queries: Number(process.env.QUERIES ?? 80), multiHopFraction: 0.5 }));
const index = new Bm25Index(); const contents = new Map();
for (const d of qa.corpus) { index.add(d.id, d.contents); contents.set(d.id, d.contents); }
const retriever = new Bm25Retriever({ index, contents });
const train = qa.questions.train, test = qa.questions.test;
console.log('train', train.length, 'test', test.length);
const W = Number(process.env.WARM ?? 40), S = Number(process.env.STEPS ?? 10);
const common = { model: modelPath, train, retriever, corpus: qa.corpus, topk: 2, maxTurns: 2, maxTurnTokens: Number(process.env.MAXTT ?? 24), contextPerSequence: 1024, threads: 2, progress: false, lr: Number(process.env.LR ?? 2e-3), warmupBatch: 8, questionsPerStep: Number(process.env.Q ?? 2), group: 4, reward: process.env.REWARD ?? 'em-format', loraRank: Number(process.env.RANK ?? 8), loraTargets: process.env.TARGETS ? process.env.TARGETS.split(',') : undefined, temperature: Number(process.env.SAMPLE_T ?? 1), seed: 1, force: true };
async function evalEm(adapterPath, label) {
  const model = await Model.load(modelPath);
  const lora = adapterPath ? await model.loadLora(adapterPath) : undefined;
  const agent = await Agent.create(model, { retriever, topk: 2, maxTurns: 2, maxTurnTokens: Number(process.env.MAXTT ?? 24), contextPerSequence: 1024, sequences: 16, threads: 2, lora });
  const ts = await agent.run(test.map((q) => q.question)); const outs = ts.map(lib.trajectoryOutput); const valid = ts.filter((t) => lib.isValidFormat(lib.responseText(t)).valid).length / ts.length; const fr = lib.QA_REWARDS['em-format'](ts.map((t, i) => ({ response: lib.responseText(t), goldenAnswers: test[i].goldenAnswers }))); console.log(label, 'valid', valid, 'em-format reward', fr.reduce((a, b) => a + b, 0) / fr.length, 'answered', ts.filter((t) => t.answer !== null).length);
  const em = outs.map((o, i) => (o.answer !== null && exactMatch(o.answer, test[i].goldenAnswers) ? 1 : 0));
  console.log(label, 'agent EM', em.reduce((a, b) => a + b, 0) / test.length, 'sample', JSON.stringify(outs[0].response.slice(0, 300)));
  agent.dispose();
  if (!adapterPath) {
    const session = await model.createSession({ sequences: 16, contextSize: 16 * 1024, threads: 2 });
    for (const m of [directMethod({ session, maxTokens: 32 }), ragMethod({ session, retriever, topk: 2, maxTokens: 32 })]) {
      const o = await m.answer(test);
      const e = o.map((x, i) => (x.answer !== null && exactMatch(x.answer, test[i].goldenAnswers) ? 1 : 0));
      console.log(m.name, 'EM', e.reduce((a, b) => a + b, 0) / test.length);
    }
    session.dispose();
  }
  lora?.dispose(); model.dispose();
}
if (process.env.BASE) await evalEm(null, 'base');
let t0 = Date.now();
const w = await trainSearchR1({ ...common, out: join(dir, 'warm.gguf'), warmupSft: W, steps: 0 }, { onStep: (l) => { if (l.step % 10 === 0) console.log('warm', l.step, l.loss.toFixed(3), l.seconds.toFixed(2)); } });
console.log('warm done', (Date.now() - t0) / 1000, 's', w.warmupTrajectories, 'traj', w.warmupSkipped, 'skipped');
await evalEm(w.adapter, 'warm');
t0 = Date.now();
const g = await trainSearchR1({ ...common, out: join(dir, 'grpo.gguf'), warmupSft: W, steps: S }, { onStep: (l) => { if (l.phase === 'grpo') console.log('grpo', l.step, 'r', l.reward.toFixed(3), 'em', l.em.toFixed(3), 'valid', l.validFormat.toFixed(2), 'len', l.responseLength.toFixed(1), 'H', l.entropy.toFixed(2), 'kl', l.kl.toFixed(4), l.logpOld, l.logpDiff.max.toFixed(4), l.seconds.toFixed(2)); } });
console.log('grpo done', (Date.now() - t0) / 1000, 's');
await evalEm(g.adapter, 'grpo');

#!/usr/bin/env node
// Stage-2 benchmark: where a GRPO step's time goes, what the rollouts cost against plain
// generation, and what the RL environment saves against re-encoding the corpus.
//
//   node bench/stage2-bench.js [--threads N] [--steps N] [--docs N] [--compare-docs N] [--compare-steps N]
//                              [--parts steps,rollouts,compare] [--refresh SPEC] [--rounds N] [--rollout-tokens N] [--json FILE]
//
// On the package's tiny generated model (seed 7, as the tests), from a 30-step stage-1 adapter on
// makeRetrievalTask({ seed: 1 }), 8 queries × 2 samples per step, 8 reasoning tokens:
// 1. steps: `--steps` (default 10) GRPO steps with `--refresh` (default 'budget=0.02', the training default) over a corpus of `--docs`
//    (default 10000) documents: the task's training documents plus synthetic documents of other
//    seeds; per-phase median time (rollout, reward, refresh, update, hand-over), rows re-encoded per
//    step against the corpus size, and the reward agreement against a full re-encode (at the last step).
// 2. rollouts: the loop's rollout call against `session.generate` of the same shape (same prompts,
//    copies, budget, sampling, log-probs) on one session, `--rounds` (default 5) rounds each,
//    alternating; generated tokens per second, median round; `--rollout-tokens` sets this part's
//    reasoning budget (default 8, as the other parts). (A rollout also decodes the appended
//    `<|embed_token|>` when the budget runs out, one step more than generate's; that is its job.)
// 3. --refresh vs full: `--compare-steps` (default 30) steps with refresh `--refresh` (default 'budget=0.02') and with 'full' on
//    a corpus of `--compare-docs` (default 1000) documents; final held-out reason-mode nDCG@10 and
//    wall time of each. `--refresh` may list several policies (comma-separated: touched,budget=0.02);
//    `--seeds 1,2,3` repeats the comparison on the task of each seed (each with its own model seed
//    and stage-1 adapter) and reports, per policy, the mean difference to `full` and its range.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const lib = require('../dist/index.js');
const gguf = require('../dist/gguf/index.js');
const { sampleRollouts, rolloutContext } = require('../dist/train/stage2-rollout.js');

const { values: a } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' }, steps: { type: 'string', default: '10' }, docs: { type: 'string', default: '10000' },
    'compare-docs': { type: 'string', default: '1000' }, 'compare-steps': { type: 'string', default: '30' }, json: { type: 'string' },
    parts: { type: 'string', default: 'steps,rollouts,compare' }, 'rollout-tokens': { type: 'string', default: '8' }, refresh: { type: 'string', default: 'budget=0.02' }, rounds: { type: 'string', default: '5' },
    seeds: { type: 'string', default: '1' },
  },
});
const threads = Number(a.threads);
const parts = new Set(a.parts.split(','));
const median = (v) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];
const mean = (v) => v.reduce((x, y) => x + y, 0) / v.length;
const SHAPE = { queriesPerStep: 8, group: 2, maxReasoningTokens: 8, temperature: 1, topP: 1, maxTokens: 256 };

/** The task's training documents, then synthetic documents of other seeds until `n`. */
function corpusOf(task, n) {
  const texts = [...new Set(task.train.flatMap((r) => [r.positive, ...r.negatives]))];
  const docs = texts.map((text, i) => ({ id: `t${i}`, text }));
  for (let seed = 101; docs.length < n; seed++) {
    for (const d of lib.makeSyntheticDataset({ seed, docs: 1000, queries: 20 }).corpus) {
      if (docs.length >= n) break;
      docs.push({ id: `s${seed}-${d.id}`, title: d.title, text: d.text });
    }
  }
  return docs;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'search-r3-stage2-bench-'));
  const seeds = a.seeds.split(',').map(Number);
  const report = { threads, shape: SHAPE };
  // Seed 1 is the tests' setting: model seed 7, task seed 1; seed s uses model seed 6 + s.
  for (const [i, seed] of seeds.entries()) {
    const model = path.join(dir, `tiny-${seed}.gguf`);
    await gguf.makeModel({ preset: 'tiny', seed: 6 + seed, type: 'f32', out: model });
    const task = lib.makeRetrievalTask({ seed });
    const s1 = await lib.trainStage1({ model, train: task.train, out: path.join(dir, `stage1-${seed}.gguf`), steps: 30, threads, progress: false });
    // 1. A step's phases and the environment's saving on a large corpus (first seed only).
    if (i === 0 && parts.has('steps')) await stepsPart(model, task, s1, report);
    if (i === 0 && parts.has('rollouts')) await rolloutsPart(model, task, s1, report);
    if (parts.has('compare')) await comparePart(model, task, s1, report, dir, seed);
  }
  if (parts.has('compare') && seeds.length > 1) summariseCompare(report);
  if (a.json) fs.writeFileSync(a.json, `${JSON.stringify(report, null, 2)}\n`);
  fs.rmSync(dir, { recursive: true, force: true });
}

async function stepsPart(model, task, s1, report) {
  const dir = path.dirname(s1.adapter);
  const big = corpusOf(task, Number(a.docs));
  const logs = [];
  const t = performance.now();
  const steps = Number(a.steps);
  await lib.trainStage2({
    model, lora: s1.adapter, train: task.train, corpus: big, out: path.join(dir, 'big.gguf'), steps, evalEvery: steps, refresh: a.refresh, threads, progress: false, ...SHAPE,
  }, { onStep: (l) => logs.push(l) });
  const phases = Object.fromEntries(['rollout', 'reward', 'refresh', 'update', 'handover'].map((k) => [k, median(logs.map((l) => l.times[k]))]));
  report.steps = {
    refresh: a.refresh, corpus: big.length, steps, wallSeconds: (performance.now() - t) / 1000, medianSeconds: phases,
    reencodedPerStep: mean(logs.map((l) => l.reencoded)), sharePerStep: mean(logs.map((l) => l.share)),
    staleMax: logs.at(-1).staleMax, staleMean: logs.at(-1).staleMean, agreement: logs.at(-1).agreement,
    logpDiffMax: Math.max(...logs.map((l) => l.logpDiff.max)), logpDiffMean: mean(logs.map((l) => l.logpDiff.mean)),
  };
  console.log(JSON.stringify({ steps: report.steps }));
}

// 2. Rollouts against plain generation of the same shape.
async function rolloutsPart(model, task, s1, report) {
  const shape = { ...SHAPE, maxReasoningTokens: Number(a['rollout-tokens']) };
  const m = await lib.Model.load(model);
  const R = SHAPE.queriesPerStep * SHAPE.group;
  const session = await m.createSession({ sequences: R, contextSize: rolloutContext(shape) * R, threads, cacheType: 'f32' });
  const adapter = await m.loadLora(s1.adapter);
  session.setLoras([{ adapter, scale: 1 }]);
  const template = { ...lib.DEFAULT_EMBED_TEMPLATE };
  const queries = task.train.slice(0, SHAPE.queriesPerStep).map((r) => r.query);
  const prompts = queries.map((q) => lib.buildEmbedPrompt(m, template, 'reason', q));
  const ours = [];
  const plain = [];
  for (let round = 0; round < Number(a.rounds); round++) {
    const runOurs = async () => {
      const r = await sampleRollouts(session, m, template, queries, 1, round, shape);
      ours.push(r.generated / r.seconds);
    };
    const runPlain = async () => {
      const t0 = performance.now();
      const g = await session.generate(prompts, { copies: shape.group, maxTokens: shape.maxReasoningTokens, temperature: 1, topP: 1, seed: round, logprobs: true });
      plain.push(g.reduce((n, x) => n + x.tokens.length, 0) / ((performance.now() - t0) / 1000));
    };
    if (round % 2 === 0) { await runOurs(); await runPlain(); } else { await runPlain(); await runOurs(); }
  }
  session.setLoras([]);
  adapter.dispose();
  session.dispose();
  m.dispose();
  report.rollouts = { reasoningTokens: shape.maxReasoningTokens, oursTokensPerSecond: median(ours), generateTokensPerSecond: median(plain), ratio: median(ours) / median(plain) };
  console.log(JSON.stringify({ rollouts: report.rollouts }));
}

// 3. touched against full refresh.
async function comparePart(model, task, s1, report, dir, seed) {
  const mid = corpusOf(task, Number(a['compare-docs']));
  const row = { seed, corpus: mid.length, steps: Number(a['compare-steps']) };
  // The --refresh policies (default 'budget=0.02') against re-encoding everything every step.
  for (const refresh of [...new Set([...a.refresh.split(','), 'full'])]) {
    const t = performance.now();
    const r = await lib.trainStage2({
      model, lora: s1.adapter, train: task.train, corpus: mid, eval: task.heldOut, out: path.join(dir, `${seed}-${refresh.replace(/[^a-z0-9.]/g, '-')}.gguf`), steps: Number(a['compare-steps']),
      refresh, threads, progress: false, ...SHAPE,
    });
    row[refresh] = { ndcg10Before: r.evalBefore.ndcg10, ndcg10After: r.evalAfter.ndcg10, wallSeconds: (performance.now() - t) / 1000 };
    console.log(JSON.stringify({ seed, [refresh]: row[refresh] }));
  }
  if (report.compare === undefined) Object.assign(report, { compare: row, compareBySeed: [row] });
  else report.compareBySeed.push(row);
}

/** Per policy: the mean over seeds of (policy − full) final nDCG@10, with its smallest and largest. */
function summariseCompare(report) {
  const rows = report.compareBySeed;
  report.compareSummary = {};
  for (const refresh of Object.keys(rows[0]).filter((k) => rows[0][k]?.ndcg10After !== undefined)) {
    const diffs = rows.map((r) => r[refresh].ndcg10After - r.full.ndcg10After);
    report.compareSummary[refresh] = {
      meanAfter: mean(rows.map((r) => r[refresh].ndcg10After)), meanBefore: mean(rows.map((r) => r[refresh].ndcg10Before)),
      meanDiffToFull: mean(diffs), minDiff: Math.min(...diffs), maxDiff: Math.max(...diffs), meanWallSeconds: mean(rows.map((r) => r[refresh].wallSeconds)),
    };
  }
  console.log(JSON.stringify({ summary: report.compareSummary }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

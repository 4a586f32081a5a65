// Stage 2 (GRPO with the RL corpus environment): it learns on the synthetic task from a stage-1
// adapter, a run killed at any point of its checkpoint protocol resumes to the same adapter bit for
// bit, and bad input gets a clear error before any work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lib, root, tempDir, tinyModel } from './helpers/models.mjs';

const { trainStage1, trainStage2, makeRetrievalTask } = lib;
const child = join(root, 'test', 'helpers', 'train-child.mjs');
const cli = join(root, 'bin', 'search-r3.js');

// One stage-1 adapter for every test: short, so reason mode has room to improve.
let setup;
async function common() {
  if (!setup) {
    const dir = mkdtempSync(join(tempDir(), 'stage2-'));
    const task = makeRetrievalTask({ seed: 1 });
    const model = await tinyModel();
    const s1 = await trainStage1({ model, train: task.train, out: join(dir, 'stage1.gguf'), steps: 30, threads: 2, progress: false });
    // The corpus is every training document; the positives are found in it by text.
    const texts = [...new Set(task.train.flatMap((r) => [r.positive, ...r.negatives]))];
    const corpus = texts.map((text, i) => ({ id: `d${i}`, text }));
    const pairs = join(dir, 'pairs.jsonl');
    writeFileSync(pairs, task.train.map((r) => JSON.stringify({ query: r.query, positive: r.positive, negatives: r.negatives })).join('\n'));
    const corpusFile = join(dir, 'corpus.jsonl');
    writeFileSync(corpusFile, corpus.map((d) => JSON.stringify({ _id: d.id, title: '', text: d.text })).join('\n'));
    setup = { dir, task, model, lora: s1.adapter, corpus, pairs, corpusFile };
  }
  return setup;
}

const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;

test('trainStage2: GRPO raises held-out reason-mode nDCG@10 above the stage-1 adapter and the training reward rises', async () => {
  const { dir, task, model, lora, corpus } = await common();
  const steps = [];
  const r = await trainStage2({
    model, lora, train: task.train, corpus, eval: task.heldOut, out: join(dir, 'learn.gguf'), steps: 30, queriesPerStep: 8, group: 2,
    maxReasoningTokens: 8, evalEvery: 15, threads: 2, progress: false,
  }, { onStep: (l) => steps.push(l) });
  const first = mean(steps.slice(0, 8).map((l) => l.reward));
  const last = mean(steps.slice(-8).map((l) => l.reward));
  console.log(`stage 2 reason-mode nDCG@10 ${r.evalBefore.ndcg10.toFixed(4)} -> ${r.evalAfter.ndcg10.toFixed(4)}; mean reward steps 1-8 ${first.toFixed(3)} -> 23-30 ${last.toFixed(3)}`);
  assert.ok(r.evalAfter.ndcg10 >= r.evalBefore.ndcg10 + 0.08, `reason-mode nDCG@10 ${r.evalBefore.ndcg10} -> ${r.evalAfter.ndcg10}`);
  assert.ok(last >= first + 0.2, `mean reward ${first} -> ${last}`);
  // Every step's line reports the environment and the loss, and the log on disk has the same lines.
  for (const l of steps) {
    assert.ok(l.reencoded > 0 && l.reencoded <= corpus.length && Math.abs(l.share - l.reencoded / corpus.length) < 1e-12, JSON.stringify(l));
    assert.ok(Number.isFinite(l.kl) && l.kl >= 0 && l.clipFraction >= 0 && l.clipFraction <= 1);
    assert.ok(l.zeroVarianceGroups >= 0 && l.zeroVarianceGroups <= 8);
    assert.equal(l.finish.embed + l.finish.budget + l.finish.stopped, 16);
    for (const k of ['rollout', 'reward', 'update', 'handover', 'refresh']) assert.ok(l.times[k] >= 0, k);
  }
  // The engine's and the trainer's log-probs of the sampled tokens agree closely (README, Stage 2).
  assert.ok(Math.max(...steps.map((l) => l.logpDiff.max)) < 0.01, `logp diff ${Math.max(...steps.map((l) => l.logpDiff.max))}`);
  const evals = steps.filter((l) => l.eval);
  assert.deepEqual(evals.map((l) => l.step), [15, 30]);
  for (const l of evals) assert.ok(l.agreement >= 0 && l.agreement <= 1);
  const onDisk = readFileSync(r.log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(onDisk.map((l) => l.step), steps.map((l) => l.step));
  assert.deepEqual(readdirSync(`${r.adapter}.env`), ['step-30'], 'only the last checkpoint of the store is kept');
});

test('trainStage2: the rows a step\'s rewards read are re-encoded by the adapter that sampled it, before the rewards', async () => {
  const { dir, task, model, lora, corpus } = await common();
  const steps = [];
  await trainStage2({
    model, lora, train: task.train, corpus, out: join(dir, 'lazy.gguf'), steps: 3, queriesPerStep: 2, group: 2,
    maxReasoningTokens: 2, refresh: 'touched', threads: 2, progress: false,
  }, { onStep: (l) => steps.push(l) });
  // Step 1 samples with the adapter that encoded the store (version 0): nothing is stale, and under
  // `touched` nothing is re-encoded after the update either. Steps 2 and 3 sample with newer adapters,
  // so what their rewards read (2 queries' positives and hard negatives, 4 rollouts' top-10) is.
  assert.equal(steps[0].reencoded, 0, JSON.stringify(steps[0]));
  for (const l of steps.slice(1)) assert.ok(l.reencoded > 0 && l.reencoded <= 2 * 2 + 4 * 10, JSON.stringify(l));
});

function spawnRun(args) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
const run2 = (options, killAt) => spawnRun([child, JSON.stringify({ options, killAt, stage: 2 })]);

test('trainStage2: a run SIGKILLed inside its checkpoint writes resumes to the same adapter, bit for bit', async () => {
  const { dir, model, lora, pairs, corpusFile } = await common();
  const options = {
    model, lora, train: pairs, corpus: corpusFile, steps: 4, checkpointEvery: 2, queriesPerStep: 2, group: 2, maxReasoningTokens: 4,
    threads: 2, progress: false,
  };
  const straight = join(dir, 'straight.gguf');
  const r = await run2({ ...options, out: straight });
  assert.equal(r.code, 0, r.stderr);
  const adapter = readFileSync(straight);
  // 'adapter' of step 4: the adapter is new, the store and the state are step 2's; 'log' of step 3:
  // past a checkpoint, mid-way to the next.
  for (const killAt of [{ phase: 'adapter', step: 4 }, { phase: 'log', step: 3 }]) {
    const out = join(dir, `killed-${killAt.phase}.gguf`);
    const killed = await run2({ ...options, out }, killAt);
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.ok(existsSync(`${out}.state`));
    const resumed = await run2({ ...options, out, resume: true });
    assert.equal(resumed.code, 0, resumed.stderr);
    const result = JSON.parse(resumed.stdout.trim().split('\n').at(-1)).result;
    assert.equal(result.resumedFrom, 2, JSON.stringify(killAt));
    assert.ok(readFileSync(out).equals(adapter), `${JSON.stringify(killAt)}: the resumed adapter differs from the uninterrupted run's`);
    const steps = readFileSync(`${out}.log.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    assert.deepEqual(steps, [1, 2, 3, 4]);
  }
});

test('trainStage2: clear errors for a model without <|embed_token|>, an empty corpus, a missing positive id and bad options', async () => {
  const { dir, task, model, lora, corpus } = await common();
  const base = { model, train: task.train, corpus, steps: 1, threads: 2, progress: false };
  const out = (name) => join(dir, `${name}.gguf`);
  const plain = await tinyModel({ embedToken: false });
  await assert.rejects(trainStage2({ ...base, model: plain, out: out('plain') }), { code: 'ERR_MODEL', message: /has no <\|embed_token\|> token; add it with "search-r3 add-embed-token/ });
  const empty = join(dir, 'empty-corpus.jsonl');
  writeFileSync(empty, '\n');
  await assert.rejects(trainStage2({ ...base, corpus: empty, out: out('empty') }), { code: 'ERR_FORMAT', message: `corpus ${empty} has no documents; stage 2 ranks rollouts against a corpus` });
  const withIds = join(dir, 'ids.jsonl');
  writeFileSync(withIds, [
    JSON.stringify({ query: 'q one', positive: corpus[0].text, positive_id: corpus[0].id }),
    JSON.stringify({ query: 'q two', positive: 'p', positive_id: 'nope' }),
  ].join('\n'));
  await assert.rejects(trainStage2({ ...base, train: withIds, out: out('ids') }), { code: 'ERR_FORMAT', message: `${withIds}:2: positive_id "nope" is not a document of the corpus` });
  await assert.rejects(trainStage2({ ...base, out: out('qg'), queriesPerStep: 100, group: 3 }), { name: 'RangeError', message: /queriesPerStep 100 × group 3 = 300 rollouts per step; at most 256/ });
  await assert.rejects(trainStage2({ ...base, out: out('group'), group: 1 }), { name: 'RangeError', message: /for group but received 1/ });
  await assert.rejects(trainStage2({ ...base, out: out('w'), lossWeights: { grpo: 0, infonce: 0 } }), { name: 'RangeError', message: /grpo and infonce are both 0/ });
  await assert.rejects(trainStage2({ ...base, out: out('key'), queries: 3 }), { name: 'TypeError', message: /Unknown option "queries"/ });
  // Nothing of a refused run was written.
  for (const name of ['plain', 'empty', 'ids', 'qg', 'group', 'w', 'key']) assert.equal(existsSync(out(name)) || existsSync(`${out(name)}.state`), false, name);
});

test('trainStage2: a diverging run stops with ERR_TRAIN naming its last good checkpoint, the step its state holds', async () => {
  const { dir, task, model, corpus } = await common();
  const out = join(dir, 'diverge.gguf');
  const options = { model, train: task.train, corpus, out, steps: 6, lr: 10, checkpointEvery: 1, queriesPerStep: 2, group: 2, maxReasoningTokens: 2, threads: 2, progress: false };
  const err = await trainStage2(options).then(() => null, (e) => e);
  assert.ok(err, 'lr 10 diverges within 6 steps');
  assert.equal(err.code, 'ERR_TRAIN', err.message);
  const m = /^step (\d+): .*The last good checkpoint is step (\d+) \(/.exec(err.message);
  assert.ok(m, err.message);
  assert.equal(Number(m[2]), Number(m[1]) - 1);
  const state = await lib.readTrainState(`${out}.state`);
  assert.equal(state.state.step, Number(m[2]));
});

test('trainStage2: a positive absent from the corpus is added to it, and one named by positive_id is used as it is', async () => {
  const { dir, model, lora, corpus } = await common();
  const train = join(dir, 'mixed.jsonl');
  writeFileSync(train, [
    JSON.stringify({ query: 'first query', positive: 'some other wording', positive_id: corpus[1].id }),
    JSON.stringify({ query: 'second query', positive: 'a passage the corpus lacks' }),
    JSON.stringify({ query: 'third query', positive: corpus[2].text }),
  ].join('\n'));
  const r = await trainStage2({ model, lora, train, corpus, out: join(dir, 'mixed.gguf'), steps: 1, queriesPerStep: 3, group: 2, maxReasoningTokens: 2, threads: 2, progress: false });
  assert.equal(r.corpusSize, corpus.length + 1);
  assert.equal(r.addedPositives, 1);
});

test('search-r3 train grpo: --json prints each step and the result; a missing --corpus is a usage error', async () => {
  const { dir, model, lora, pairs, corpusFile } = await common();
  const out = join(dir, 'cli.gguf');
  const r = spawnSync(process.execPath, [cli, 'train', 'grpo', '--model', model, '--lora', lora, '--train', pairs, '--corpus', corpusFile, '--out', out,
    '--steps', '2', '--queries-per-step', '2', '--group', '2', '--max-reasoning-tokens', '2', '--refresh', 'budget=0.1', '--hard-negatives', '0', '--infonce-temperature', '0.1', '--threads', '2', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.slice(0, 2).map((l) => l.step), [1, 2]);
  assert.equal(lines[2].result.steps, 2);
  assert.ok(existsSync(out) && existsSync(`${out}.state`));
  const again = spawnSync(process.execPath, [cli, 'train', 'grpo', '--model', model, '--train', pairs, '--corpus', corpusFile, '--out', out], { encoding: 'utf8' });
  assert.equal(again.status, 1);
  assert.match(again.stderr, /exists from an earlier run; continue that run with --resume or replace it with --force/);
  // The two InfoNCE flags reach the run: resuming with their defaults is refused, naming both.
  const resumed = spawnSync(process.execPath, [cli, 'train', 'grpo', '--model', model, '--lora', lora, '--train', pairs, '--corpus', corpusFile, '--out', out,
    '--steps', '2', '--queries-per-step', '2', '--group', '2', '--max-reasoning-tokens', '2', '--refresh', 'budget=0.1', '--threads', '2', '--resume'], { encoding: 'utf8' });
  assert.equal(resumed.status, 1, resumed.stderr);
  assert.match(resumed.stderr, /hardNegatives: saved 0, now 1/);
  assert.match(resumed.stderr, /infonceTemperature: saved 0\.1, now 0\.05/);
  const badHard = spawnSync(process.execPath, [cli, 'train', 'grpo', '--model', model, '--train', pairs, '--corpus', corpusFile, '--out', join(dir, 'y.gguf'), '--hard-negatives', '-1'], { encoding: 'utf8' });
  assert.equal(badHard.status, 2);
  assert.match(badHard.stderr, /hard-negatives/);
  const missing = spawnSync(process.execPath, [cli, 'train', 'grpo', '--model', model, '--train', pairs, '--out', out], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /missing --corpus; usage: search-r3 train grpo/);
  const badRefresh = spawnSync(process.execPath, [cli, 'train', 'grpo', '--model', model, '--train', pairs, '--corpus', corpusFile, '--out', join(dir, 'x.gguf'), '--refresh', 'sometimes'], { encoding: 'utf8' });
  assert.notEqual(badRefresh.status, 0);
  assert.match(badRefresh.stderr, /sometimes/);
});

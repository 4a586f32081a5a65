// Search-R1 training: the retrieved-token mask, the collapse rule, a run killed mid-checkpoint
// resuming bit for bit, clear errors for bad records, and (last) that it learns on synthetic QA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { lib, root, tempDir, tinyModel, track } from './helpers/models.mjs';

const { main } = createRequire(import.meta.url)('../dist/cli/main.js');
const {
  LoraTrainer, Model, newTrajectory, addSegment, finishTrajectory, tokenizeTrajectory, buildAgentPrompt, informationBlock, accumulateTrajectories,
  collapseCheck, trainSearchR1, syntheticQa, makeSyntheticDataset, writeSyntheticQa, SEARCH_R1_DEFAULTS,
} = lib;
const child = join(root, 'test', 'helpers', 'train-child.mjs');
const GRPO = { clipLow: 0.2, clipHigh: 0.28, kl: 0.01 };

/** A two-turn trajectory: search, the retrieved documents, then an answer (or, with `infoLast`, the documents end it). */
function trajectory(docs, tokenize, infoLast = false) {
  const t = newTrajectory('who invented the loom', buildAgentPrompt('who invented the loom'));
  addSegment(t, 'model', '<think>I should look it up.</think>\n<search> loom inventor </search>');
  addSegment(t, 'information', informationBlock(docs));
  addSegment(t, 'model', '<think>Found it.</think>\n<answer> Ada </answer>');
  if (infoLast) {
    // Move the documents to the end: the model turns come first, then what was retrieved.
    const [prompt, search, info, answer] = t.segments;
    t.segments = [prompt, search, answer, info];
  }
  finishTrajectory(t, 'answer');
  return tokenizeTrajectory(t, tokenize);
}

test('the mask: changing only the retrieved tokens changes neither the loss nor any gradient, and they are not targets', async () => {
  const path = await tinyModel();
  const model = track(await Model.load(path));
  const tokenize = (s, first) => model.tokenize(s, { addSpecial: first, parseSpecial: first });
  const trainer = track(await LoraTrainer.open(path, { lora: { rank: 4, seed: 3 }, threads: 2 }));
  // B = 0 in a fresh adapter gives A no gradient; a random start makes every LoRA tensor's gradient non-zero.
  trainer.setTensors('params', trainer.tensors('params').map((t, i) => ({ name: t.name, data: t.data.map((_, j) => Math.sin(i * 7919 + j) * 0.05) })));
  const docs = [{ contents: '"Loom"\nThe loom was invented by Ada in Lux.' }, { contents: '"Ada"\nAda was born in Lux.' }];
  const adv = Float32Array.from([1.5, -0.5]);
  // Other ids in the same number of positions, so the batch's layout (and its float sums) stays the same.
  const swap = (t) => {
    const info = t.segments.find((s) => s.origin === 'information');
    info.tokens = info.tokens.map((x) => 100 + ((x * 31 + 17) % 50000));
    return t;
  };
  const pass = async (swapped, infoLast) => {
    const first = trajectory(docs, tokenize, infoLast);
    const ts = [swapped ? swap(first) : first, trajectory(docs, tokenize, infoLast)];
    trainer.zeroGrads();
    const p = await accumulateTrajectories(trainer, ts, adv, GRPO);
    return { p, ts, grads: trainer.tensors('grads').map((t) => Float32Array.from(t.data)) };
  };
  for (const infoLast of [true, false]) {
    const a = await pass(false, infoLast);
    const b = await pass(true, infoLast);
    const infoA = a.ts[0].segments.find((s) => s.origin === 'information').tokens;
    const infoB = b.ts[0].segments.find((s) => s.origin === 'information').tokens;
    assert.notDeepEqual([...infoA], [...infoB], 'the retrieved text must really differ');
    // The policy's targets are exactly its written tokens: the log-probs the trainer returns per sequence.
    const written = a.ts[0].segments.filter((s) => s.origin === 'model').reduce((n, s) => n + s.tokens.length, 0);
    assert.equal(a.p.result.logp[0].length, written);
    assert.equal(b.p.result.logp[0].length, written);
    const before = a.ts[0].segments[1].tokens.length;
    // The search turn precedes the documents: its log-probs cannot depend on them.
    assert.deepEqual([...a.p.result.logp[0].slice(0, before)], [...b.p.result.logp[0].slice(0, before)]);
    if (infoLast) {
      // Nothing the model wrote reads the documents, so the loss and every gradient are bit-identical.
      assert.equal(a.p.result.loss, b.p.result.loss);
      assert.equal(a.p.result.parts.grpoKl, b.p.result.parts.grpoKl);
      a.grads.forEach((g, i) => assert.ok(g.every((v, j) => Object.is(v, b.grads[i][j])), `gradient ${i} differs`));
      assert.ok(a.grads.some((g) => g.some((v) => v !== 0)), 'the pass must produce gradients');
    }
  }
});

test('collapseCheck: stops only after patience steps of a fallen reward with exploding invalid rate or length', () => {
  const rule = { ...SEARCH_R1_DEFAULTS.collapse, window: 2, patience: 2 };
  const good = { reward: 0.8, invalidRate: 0.1, responseLength: 20 };
  const bad = { reward: 0.1, invalidRate: 0.9, responseLength: 20 };
  const long = { reward: 0.1, invalidRate: 0, responseLength: 45 };
  // window 2: averages 0.8, 0.8, 0.45 (fell: 0.45 ≤ 0.4? no), 0.1 (yes), 0.1 (yes).
  const one = collapseCheck([good, good, bad, bad], rule);
  assert.deepEqual([one.collapsed, one.streak], [false, 1], 'one fallen step is not yet collapse');
  const h = [good, good, bad, bad, bad];
  const s = collapseCheck(h, rule);
  assert.equal(s.collapsed, true);
  assert.equal(s.streak, 2);
  assert.equal(s.best, 0.8);
  assert.match(s.reason, /^training collapsed: the reward's 2-step average fell to 0\.100 from its best 0\.800 \(GRPO step 2\) for 2 steps while the invalid-action rate is 0\.90/);
  assert.equal(collapseCheck([good, good, long, long, long], rule).collapsed, true, 'length ≥ 2 × its value at the best');
  const quiet = { reward: 0.1, invalidRate: 0.1, responseLength: 20 };
  assert.equal(collapseCheck([good, good, quiet, quiet, quiet], rule).collapsed, false, 'a lower reward with healthy outputs is not collapse');
  const never = { reward: 0.01, invalidRate: 1, responseLength: 100 };
  assert.equal(collapseCheck([never, never, never, never], rule).collapsed, false, 'a run that never learned cannot collapse');
});

// Synthetic multi-hop QA files for the run tests.
let qaSetup;
function qaFiles() {
  if (!qaSetup) {
    const dir = mkdtempSync(join(tempDir(), 'search-r1-'));
    const qa = syntheticQa(makeSyntheticDataset({ seed: 1, docs: 60, queries: 80, multiHopFraction: 0.5 }));
    qaSetup = writeSyntheticQa(dir, qa).then(() => ({ dir, qa, train: join(dir, 'train.jsonl'), corpus: join(dir, 'corpus.jsonl') }));
  }
  return qaSetup;
}

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
const runChild = (options, killAt) => spawnRun([child, JSON.stringify({ options, killAt, stage: 'search-r1' })]);

test('trainSearchR1: a run SIGKILLed inside its checkpoint writes resumes to the same adapter, bit for bit', async () => {
  const { dir, train, corpus } = await qaFiles();
  const options = {
    model: await tinyModel(), train, corpus, warmupSft: 2, steps: 2, checkpointEvery: 2, questionsPerStep: 2, group: 2, maxTurns: 2, maxTurnTokens: 6,
    contextPerSequence: 1024, warmupBatch: 2, threads: 2, progress: false,
  };
  const straight = join(dir, 'straight.gguf');
  const r = await runChild({ ...options, out: straight });
  assert.equal(r.code, 0, r.stderr);
  const adapter = readFileSync(straight);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.slice(0, -1).map((l) => l.phase), ['warmup', 'warmup', 'grpo', 'grpo']);
  for (const key of ['reward', 'em', 'entropy', 'responseLength', 'searches', 'invalidRate', 'kl', 'validFormat']) {
    assert.ok(Number.isFinite(lines[2][key]), `${key} is logged: ${JSON.stringify(lines[2])}`);
  }
  // Rollouts attend as the trainer's forward does (F32 cache, no flash attention), so their
  // log-probs agree with the trainer's to float rounding (about 7e-4 with flash attention) and
  // serve as logp_old (README, Search-R1 training).
  for (const l of lines.slice(2, 4)) assert.ok(l.logpOld === 'engine' && l.logpDiff.max < 1e-4, JSON.stringify({ logpOld: l.logpOld, logpDiff: l.logpDiff }));
  // 'adapter' of step 4: a GRPO step's adapter is new and the state is step 2's (after the warm-up);
  // 'log' of step 3: the first GRPO step is logged, not checkpointed.
  for (const killAt of [{ phase: 'adapter', step: 4 }, { phase: 'log', step: 3 }]) {
    const out = join(dir, `killed-${killAt.phase}.gguf`);
    const killed = await runChild({ ...options, out }, killAt);
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.ok(existsSync(`${out}.state`));
    const resumed = await runChild({ ...options, out, resume: true });
    assert.equal(resumed.code, 0, resumed.stderr);
    const result = JSON.parse(resumed.stdout.trim().split('\n').at(-1)).result;
    assert.equal(result.resumedFrom, 2, JSON.stringify(killAt));
    assert.ok(readFileSync(out).equals(adapter), `${JSON.stringify(killAt)}: the resumed adapter differs from the uninterrupted run's`);
    const steps = readFileSync(`${out}.log.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    assert.deepEqual(steps, [1, 2, 3, 4]);
  }
});

test('trainSearchR1: the template reaches the warm-up, and a resume with another template is refused', async () => {
  const { dir, train, corpus } = await qaFiles();
  const options = { model: await tinyModel(), train, corpus, warmupSft: 1, steps: 0, maxTurns: 2, contextPerSequence: 1024, warmupBatch: 2, threads: 2, progress: false };
  const template = 'Answer with <search> query </search> and <answer> answer </answer>.\nQuestion: {question}\n';
  const losses = [];
  for (const [name, extra] of [['default', {}], ['custom', { template }]]) {
    const r = await trainSearchR1({ ...options, ...extra, out: join(dir, `template-${name}.gguf`) });
    const lines = readFileSync(r.log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    losses.push(lines[0].loss);
  }
  // The same trajectories after another prompt: the model-written tokens are read in another context.
  assert.notEqual(losses[0], losses[1]);
  await assert.rejects(trainSearchR1({ ...options, steps: 1, resume: true, out: join(dir, 'template-custom.gguf') }), { code: 'ERR_TRAIN', message: /settings differ \(template: saved "Answer with/ });
  await assert.rejects(trainSearchR1({ ...options, template: `Q: {question}`, steps: 1, resume: true, out: join(dir, 'template-default.gguf') }), { code: 'ERR_TRAIN', message: /settings differ \(template: saved undefined, now "Q: \{question\}"/ });
});

test('trainSearchR1 and train search-r1: clear errors for bad records and bad options', async () => {
  const { dir, corpus } = await qaFiles();
  const model = await tinyModel();
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"question": "a?", "golden_answers": ["x"]}\n{"question": "b?", "golden_answers": []}\n');
  const base = { model, train: bad, corpus, out: join(dir, 'bad.gguf'), progress: false };
  await assert.rejects(trainSearchR1(base), { code: 'ERR_FORMAT', message: new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: expected "golden_answers" to be a non-empty array`) });
  const empty = join(dir, 'empty-corpus.jsonl');
  writeFileSync(empty, '');
  const good = join(dir, 'good.jsonl');
  writeFileSync(good, '{"question": "a?", "golden_answers": ["x"]}\n');
  await assert.rejects(trainSearchR1({ ...base, train: good, corpus: empty }), { code: 'ERR_FORMAT' });
  await assert.rejects(trainSearchR1({ ...base, train: good, reward: 'f1' }), { name: 'TypeError', message: /for reward but received "f1"/ });
  await assert.rejects(trainSearchR1({ ...base, train: good, questionsPerStep: 100, group: 4 }), { name: 'RangeError', message: /questionsPerStep 100 × group 4 = 400 rollouts per step/ });
  await assert.rejects(trainSearchR1({ ...base, train: good, template: 'Answer: question' }), { name: 'RangeError', message: 'Expected template to contain {question} but it does not' });
  await assert.rejects(trainSearchR1({ model, train: good, out: base.out }), { name: 'TypeError', message: 'Expected corpus (searched by BM25) or retriever but received neither' });
  const sink = { text: '', write(s) { this.text += s; return true; } };
  const err = { text: '', write(s) { this.text += s; return true; } };
  assert.equal(await main(['train', 'search-r1', '--model', model, '--train', good, '--out', base.out], sink, err), 2);
  assert.match(err.text, /missing --corpus/);
  const err2 = { text: '', write(s) { this.text += s; return true; } };
  assert.equal(await main(['train', 'search-r1', '--model', model, '--train', good, '--corpus', corpus, '--out', base.out, '--reward', 'f1'], sink, err2), 2);
  assert.match(err2.text, /Expected em or em-format for --reward but received "f1"/);
});

test('search-r3 train search-r1 --json: one line per step (warm-up, then GRPO with its collapse signals) and the result; --help lists the flags', async () => {
  const { dir, train, corpus } = await qaFiles();
  const out = join(dir, 'cli.gguf');
  const sink = { text: '', write(s) { this.text += s; return true; } };
  const err = { text: '', write(s) { this.text += s; return true; } };
  const code = await main([
    'train', 'search-r1', '--model', await tinyModel(), '--train', train, '--corpus', corpus, '--out', out, '--warmup-sft', '1', '--steps', '1',
    '--questions-per-step', '1', '--group', '2', '--max-turns', '1', '--max-turn-tokens', '4', '--context', '1024', '--warmup-batch', '2',
    '--reward', 'em-format', '--threads', '2', '--json',
  ], sink, err);
  assert.equal(code, 0, err.text);
  const lines = sink.text.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.slice(0, 2).map((l) => [l.step, l.phase]), [[1, 'warmup'], [2, 'grpo']]);
  const g = lines[1];
  assert.equal(g.stops['turn-limit'] + (g.stops.answer ?? 0) + (g.stops['no-action'] ?? 0) + (g.stops['context-budget'] ?? 0), 2);
  assert.ok(g.entropy > 0 && g.responseLength > 0 && g.responseLength <= 4, JSON.stringify(g));
  const { result } = lines[2];
  assert.equal(result.warmupSteps, 1);
  assert.equal(result.grpoSteps, 1);
  assert.equal(result.probe, null);
  assert.ok(existsSync(out) && existsSync(`${out}.state`) && existsSync(`${out}.log.jsonl`));
  // A second run without --resume or --force refuses to replace the first one's outputs.
  const again = { text: '', write(s) { this.text += s; return true; } };
  assert.equal(await main(['train', 'search-r1', '--model', await tinyModel(), '--train', train, '--corpus', corpus, '--out', out, '--json'], sink, again), 1);
  assert.match(again.text, /exists/);
  const help = { text: '', write(s) { this.text += s; return true; } };
  assert.equal(await main(['train', 'search-r1', '--help'], help, err), 0);
  for (const flag of ['--warmup-sft', '--reward', '--group', '--retriever', '--no-collapse-stop', '--resume']) assert.ok(help.text.includes(flag), flag);
});

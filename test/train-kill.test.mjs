// Checkpoints are consistent as a whole: a stage-1 run killed at any instant (exact points of the
// checkpoint protocol through the fault-injection hook, and SIGKILL from outside at varied moments)
// and then resumed ends with the same adapter, bit for bit, as an uninterrupted run, and a resume
// never reports success over stale files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lib, root, tempDir, tinyModel } from './helpers/models.mjs';

const child = join(root, 'test', 'helpers', 'train-child.mjs');
const cli = join(root, 'bin', 'search-r3.js');

function spawnRun(args, { killAfterStep, delayMs = 0 } = {}) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let armed = killAfterStep !== undefined;
    p.stdout.on('data', (d) => {
      stdout += d;
      const seen = stdout.split('\n').some((l) => l.startsWith('{"step":') && JSON.parse(l).step >= killAfterStep);
      if (armed && seen) {
        armed = false;
        setTimeout(() => p.kill('SIGKILL'), delayMs);
      }
    });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const train = (options, extra = {}) => spawnRun([child, JSON.stringify({ options, killAt: extra.killAt })], extra);
const resultOf = (r) => JSON.parse(r.stdout.trim().split('\n').at(-1)).result;
const logOf = (out) => readFileSync(`${out}.log.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

let setup;
async function common() {
  if (!setup) {
    const dir = mkdtempSync(join(tempDir(), 'kill-'));
    const pairs = join(dir, 'pairs.jsonl');
    const task = lib.makeRetrievalTask({ seed: 2 });
    writeFileSync(pairs, task.train.map((r) => JSON.stringify({ query: r.query, positive: r.positive, negatives: r.negatives })).join('\n'));
    // 4 steps with a checkpoint every 2: steps with and without a checkpoint, and a final one.
    const options = { model: await tinyModel(), train: pairs, steps: 4, batch: 4, lr: 1e-3, maxTokens: 64, checkpointEvery: 2, threads: 2, progress: false };
    const out = join(dir, 'straight.gguf');
    const r = await train({ ...options, out });
    assert.equal(r.code, 0, r.stderr);
    setup = { dir, options, adapter: readFileSync(out), losses: logOf(out).map((l) => l.loss), finalLoss: resultOf(r).finalLoss };
  }
  return setup;
}

/** Resumes a killed run (or starts it over where it never reached a checkpoint) and checks it against the uninterrupted run. */
async function resumeAndCompare(out, what) {
  const { options, adapter, losses, finalLoss } = await common();
  let r;
  const hadState = existsSync(`${out}.state`);
  if (hadState) {
    r = await train({ ...options, out, resume: true });
  } else {
    const refused = await train({ ...options, out, resume: true });
    assert.equal(refused.code, 1, `${what}: --resume without a state must fail`);
    assert.match(refused.stderr, /--resume: no state file .*\.state; the run never reached a checkpoint; start over with --force/, what);
    r = await train({ ...options, out, force: true });
  }
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  assert.equal(resultOf(r).finalLoss, finalLoss, `${what}: final loss`);
  assert.ok(readFileSync(out).equals(adapter), `${what}: the adapter differs from the uninterrupted run's`);
  assert.deepEqual(logOf(out).map((l) => l.step), [1, 2, 3, 4], `${what}: log steps`);
  assert.deepEqual(logOf(out).map((l) => l.loss), losses, `${what}: log losses`);
  return { ...resultOf(r), hadState };
}

const POINTS = [
  { phase: 'log', step: 1 }, // before the first checkpoint
  { phase: 'step', step: 2, torn: true }, // a log line cut short, checkpoint due
  { phase: 'log', step: 2 }, // logged, checkpoint not written
  { phase: 'adapter', step: 2 }, // adapter ahead of the state
  { phase: 'state', step: 2 }, // committed
  { phase: 'step', step: 3, torn: true },
  { phase: 'log', step: 4 }, // the final step logged, its checkpoint not written
  { phase: 'adapter', step: 4 }, // the final adapter written, its state not
  { phase: 'state', step: 4 }, // everything written, the result never reported
];

test('trainStage1 killed at each phase of the checkpoint protocol resumes to the uninterrupted adapter, bit for bit', async () => {
  const { dir, options } = await common();
  for (const killAt of POINTS) {
    const what = `killed at ${killAt.phase} of step ${killAt.step}${killAt.torn ? ' (torn log line)' : ''}`;
    const out = join(dir, `${killAt.phase}-${killAt.step}.gguf`);
    const killed = await train({ ...options, out }, { killAt });
    assert.equal(killed.signal, 'SIGKILL', `${what}: ${killed.stderr}`);
    const r = await resumeAndCompare(out, what);
    // The last committed checkpoint: this step's if the kill came after its state, else the one before.
    const committed = killAt.phase === 'state' ? killAt.step : 2 * Math.floor((killAt.step - 1) / 2);
    assert.equal(r.hadState, committed > 0, `${what}: a state exists`);
    assert.equal(r.resumedFrom, committed, `${what}: resumedFrom`);
    // A kill between the adapter and the state leaves an adapter the state does not vouch for.
    assert.equal(r.adapterRepaired, killAt.phase === 'adapter' && committed > 0, `${what}: adapterRepaired`);
  }
});

test('trainStage1 SIGKILLed from outside at varied moments, then resumed, gives the uninterrupted adapter', async () => {
  const { dir, options } = await common();
  // Kill a given number of milliseconds after a step's line is printed; where the kill lands
  // (inside a step, a log write, an adapter or state write) varies with the machine, and every
  // landing must resume to the same bytes. A run that finished first is checked all the same.
  const moments = [[1, 0], [1, 40], [2, 0], [2, 15], [3, 5], [3, 60]];
  let kills = 0;
  for (const [step, delayMs] of moments) {
    const what = `killed ${delayMs} ms after step ${step}`;
    const out = join(dir, `outside-${step}-${delayMs}.gguf`);
    const killed = await train({ ...options, out }, { killAfterStep: step, delayMs });
    assert.ok(killed.signal === 'SIGKILL' || killed.code === 0, `${what}: ${killed.stderr}`);
    if (killed.signal === 'SIGKILL') kills++;
    await resumeAndCompare(out, what);
  }
  assert.ok(kills > 0, 'no run was killed');
});

test('search-r3 train sft --resume of a finished run with a stale adapter rewrites it and reports the real final loss', async () => {
  const { dir, options, adapter, finalLoss } = await common();
  // The state at the end, the adapter from an earlier checkpoint: what a kill between the two
  // writes of an older protocol (state first) left, and what copying files around can leave.
  const early = join(dir, 'early.gguf');
  assert.equal((await train({ ...options, out: early, steps: 4 }, { killAt: { phase: 'state', step: 2 } })).signal, 'SIGKILL');
  const out = join(dir, 'stale.gguf');
  assert.equal((await train({ ...options, out })).code, 0);
  copyFileSync(early, out);
  const args = ['train', 'sft', '--model', options.model, '--train', options.train, '--out', out, '--steps', '4', '--batch', '4', '--lr', '1e-3',
    '--max-tokens', '64', '--checkpoint-every', '2', '--threads', '2', '--resume'];
  const r = await spawnRun([cli, ...args]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /repaired  the adapter on disk was not the checkpoint's \(step 4\); rewritten from the state/);
  assert.match(r.stdout, new RegExp(`steps     4 -> 4, final loss ${finalLoss.toFixed(4)},`));
  assert.ok(readFileSync(out).equals(adapter), 'the stale adapter was not rewritten');
  // Resuming again finds everything in step and changes nothing.
  const again = await spawnRun([cli, ...args]);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stdout, /repaired/);
  assert.ok(readFileSync(out).equals(adapter));
});

test('trainStage1 with force killed before its first checkpoint leaves no state of the run it replaced', async () => {
  const { dir, options } = await common();
  const out = join(dir, 'replaced.gguf');
  assert.equal((await train({ ...options, out })).code, 0);
  const killed = await train({ ...options, out, force: true, steps: 3, checkpointEvery: 3 }, { killAt: { phase: 'log', step: 2 } });
  assert.equal(killed.signal, 'SIGKILL');
  // Resuming must not continue the earlier 4-step run over the new run's log.
  assert.ok(!existsSync(`${out}.state`), 'the replaced run\'s state is still there');
  assert.deepEqual(logOf(out).map((l) => l.step), [1, 2]);
  const r = await train({ ...options, out, steps: 3, checkpointEvery: 3, resume: true });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no state file .*replaced\.gguf\.state; the run never reached a checkpoint; start over with --force/);
});

test('trainStage1: an aborted signal stops between steps with ERR_ABORTED, and the run resumes from its last checkpoint', async () => {
  const { dir, options, adapter } = await common();
  const out = join(dir, 'aborted.gguf');
  const ac = new AbortController();
  const run = { ...options, out, train: readFileSync(options.train, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) };
  await assert.rejects(lib.trainStage1(run, { signal: ac.signal, onStep: (l) => { if (l.step === 2) ac.abort(); } }),
    { code: 'ERR_ABORTED', message: /^aborted after step 2; the last checkpoint is step 2 \(.*aborted\.gguf\.state\), continue with --resume$/ });
  assert.deepEqual(logOf(out).map((l) => l.step), [1, 2]);
  const r = await lib.trainStage1({ ...run, resume: true });
  assert.equal(r.resumedFrom, 2);
  assert.ok(readFileSync(out).equals(adapter));
});

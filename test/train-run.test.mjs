// The run scaffold (src/train/run.ts) on its own, with a real trainer and steps made up by the
// test: the order of a step's writes, what a checkpoint keeps, and the message of a failed step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lib, root, tempDir, tinyModel, track } from './helpers/models.mjs';

const { TrainRun, runFiles } = await import(join(root, 'dist', 'train', 'run.js'));
const { SearchR3Error } = lib;

async function openRun(trainer, out, more = {}) {
  return TrainRun.open({
    stage: 'test-run', files: runFiles(out), trainer, fingerprint: { seed: 1 }, steps: 4, checkpointEvery: 2, resume: false,
    adapterMetadata: (step) => ({ 'test.steps': step }), progress: { label: 'test', fields: ['loss'], show: false }, ...more,
  });
}
const fakeStep = (step) => ({ step: step + 1, loss: 1 / (step + 1), tokens: 10, seconds: 0.5 });

test('TrainRun.loop: log line, then adapter, then state on checkpoint steps; resume restores step, extra and loss', async () => {
  const trainer = track(await lib.LoraTrainer.open(await tinyModel(), { threads: 2 }));
  const out = join(mkdtempSync(join(tempDir(), 'run-')), 'a.gguf');
  const phases = [];
  const run = await openRun(trainer, out, { onPhase: (phase, step) => phases.push(`${phase}@${step}`), extra: { before: 0.25 } });
  const seen = [];
  const summary = await run.loop(async (step) => fakeStep(step), (l) => ({ loss: l.loss.toFixed(2) }), (l) => seen.push(l.step));
  assert.deepEqual(phases, ['step@1', 'log@1', 'step@2', 'log@2', 'adapter@2', 'state@2', 'step@3', 'log@3', 'step@4', 'log@4', 'adapter@4', 'state@4']);
  assert.deepEqual(seen, [1, 2, 3, 4]);
  assert.deepEqual(summary, { resumedFrom: 0, finalLoss: 0.25, tokensPerSecond: 20 });
  const log = readFileSync(`${out}.log.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(log.map((l) => [l.step, l.checkpoint ?? false]), [[1, false], [2, true], [3, false], [4, true]]);
  assert.equal((await lib.readLoraAdapter(out)).metadata['test.steps'], 4);

  const again = await openRun(trainer, out, { resume: true });
  assert.equal(again.start, 4);
  assert.equal(again.adapterRepaired, false);
  assert.deepEqual(again.extra, { before: 0.25 });
  assert.deepEqual(await again.loop(async () => assert.fail('nothing is left to run'), () => ({})), { resumedFrom: 4, finalLoss: 0.25, tokensPerSecond: 0 });

  await assert.rejects(openRun(trainer, out, { resume: true, fingerprint: { seed: 2 } }), { code: 'ERR_TRAIN', message: /settings differ \(seed: saved 1, now 2\)/ });
  await assert.rejects(openRun(trainer, out, { resume: true, stage: 'other' }), { code: 'ERR_FILE', message: /a\.gguf\.state is not a other training state/ });
});

test('TrainRun.loop: a step failing with ERR_TRAIN names the last good checkpoint and how to go on', async () => {
  const trainer = track(await lib.LoraTrainer.open(await tinyModel(), { threads: 2 }));
  const dir = mkdtempSync(join(tempDir(), 'run-'));
  const diverge = (at) => async (step) => {
    if (step + 1 === at) throw new SearchR3Error('ERR_TRAIN', 'loss is not finite (NaN)');
    return fakeStep(step);
  };
  let run = await openRun(trainer, join(dir, 'late.gguf'));
  await assert.rejects(run.loop(diverge(3), () => ({})), {
    code: 'ERR_TRAIN',
    message: /^step 3: loss is not finite \(NaN\)\. The last good checkpoint is step 2 \(.*late\.gguf\.state\): continue from it with --resume, or start over with a lower --lr and --force$/,
  });
  run = await openRun(trainer, join(dir, 'early.gguf'));
  await assert.rejects(run.loop(diverge(1), () => ({})), {
    code: 'ERR_TRAIN', message: /^step 1: loss is not finite \(NaN\)\. No checkpoint was written; start over with a lower --lr and --force$/,
  });
  // Other errors pass through untouched.
  run = await openRun(trainer, join(dir, 'other.gguf'));
  await assert.rejects(run.loop(async () => { throw new RangeError('bad batch'); }, () => ({})), { name: 'RangeError', message: 'bad batch' });
});

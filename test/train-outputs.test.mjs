// A training run never destroys what it did not make: an output that is an input is refused, an
// earlier run's adapter, state or log is continued only with --resume and replaced only with
// --force, and the refusal comes before any work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lib, root, tempDir, tinyModel } from './helpers/models.mjs';

const cli = join(root, 'bin', 'search-r3.js');

function runCli(args) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function setup() {
  const dir = mkdtempSync(join(tempDir(), 'outputs-'));
  const pairs = join(dir, 'pairs.jsonl');
  const task = lib.makeRetrievalTask({ seed: 2 });
  writeFileSync(pairs, task.train.slice(0, 16).map((r) => JSON.stringify({ query: r.query, positive: r.positive, negatives: r.negatives })).join('\n'));
  // A model of its own, so overwriting it could not hurt other tests.
  const model = join(dir, 'm.gguf');
  copyFileSync(await tinyModel(), model);
  const sft = (out, ...more) => runCli(['train', 'sft', '--model', model, '--train', pairs, '--out', out, '--batch', '4', '--max-tokens', '64',
    '--threads', '2', '--checkpoint-every', '1', '--json', ...more]);
  return { dir, pairs, model, sft };
}

const snapshot = (...paths) => paths.map((p) => (existsSync(p) ? readFileSync(p).toString('base64') : null));
const logSteps = (out) => readFileSync(`${out}.log.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);

test('search-r3 train sft: an --out that is one of the inputs is refused, by inode, before anything is written', async () => {
  const { dir, pairs, model, sft } = await setup();
  const before = snapshot(model, pairs);
  let r = await sft(model, '--steps', '2');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^search-r3 train: the run's adapter .*m\.gguf is the model .*m\.gguf; give --out a path of its own so no input is overwritten\n$/);
  r = await sft(pairs, '--steps', '2');
  assert.match(r.stderr, /the run's adapter .*pairs\.jsonl is the train .*pairs\.jsonl/);
  // Other spellings of the same file: a symbolic link, a hard link, a path through '..'.
  symlinkSync(model, join(dir, 'sym.gguf'));
  linkSync(model, join(dir, 'hard.gguf'));
  for (const out of [join(dir, 'sym.gguf'), join(dir, 'hard.gguf'), `${dir}/./m.gguf`]) {
    r = await sft(out, '--steps', '2');
    assert.equal(r.code, 1, out);
    assert.match(r.stderr, /is the model /, out);
  }
  // The state and the log beside --out count too.
  r = await runCli(['train', 'sft', '--model', model, '--train', join(dir, 'x.gguf.log.jsonl'), '--out', join(dir, 'x.gguf')]);
  assert.match(r.stderr, /the run's log .*x\.gguf\.log\.jsonl is the train /);
  assert.deepEqual(snapshot(model, pairs), before, 'an input changed');
  assert.ok(!existsSync(`${model}.state`) && !existsSync(`${model}.log.jsonl`));
  // The library refuses the same way.
  await assert.rejects(lib.trainStage1({ model, train: pairs, out: join(dir, 'hard.gguf'), steps: 1, progress: false }), { code: 'ERR_FILE', message: /is the model / });
});

test('search-r3 train sft: an earlier run is continued only with --resume and replaced only with --force', async () => {
  const { dir, sft } = await setup();
  const out = join(dir, 'run.gguf');
  let r = await sft(out, '--steps', '3');
  assert.equal(r.code, 0, r.stderr);
  const files = [out, `${out}.state`, `${out}.log.jsonl`];
  const before = snapshot(...files);

  // Refused before any work: a missing model would otherwise be the error.
  r = await runCli(['train', 'sft', '--model', join(dir, 'missing.gguf'), '--train', join(dir, 'pairs.jsonl'), '--out', out, '--steps', '2']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^search-r3 train: .*run\.gguf exists from an earlier run; continue that run with --resume or replace it with --force\n$/);
  assert.deepEqual(snapshot(...files), before, 'a refused run changed the earlier run');

  // Any one of the three files is enough to refuse (here only the log is left).
  const logOnly = join(dir, 'log-only.gguf');
  writeFileSync(`${logOnly}.log.jsonl`, readFileSync(`${out}.log.jsonl`));
  r = await sft(logOnly, '--steps', '2');
  assert.match(r.stderr, /log-only\.gguf\.log\.jsonl exists from an earlier run; continue that run with --resume or replace it with --force/);
  r = await sft(logOnly, '--steps', '2', '--resume');
  assert.match(r.stderr, /--resume: no state file .*log-only\.gguf\.state; the run never reached a checkpoint; start over with --force/);

  r = await sft(out, '--steps', '2', '--resume', '--force');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--resume and --force contradict each other/);
  await assert.rejects(lib.trainStage1({ model: 'm.gguf', train: [], out, resume: true, force: true }), RangeError);

  r = await sft(out, '--steps', '5', '--resume');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(logSteps(out), [1, 2, 3, 4, 5]);

  // --force starts over: a 2-step run replaces the 5-step one, state and log included.
  r = await sft(out, '--steps', '2', '--force');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(logSteps(out), [1, 2]);
  const state = await lib.readTrainState(`${out}.state`);
  assert.equal(state.state.step, 2);
  assert.equal((await lib.readLoraAdapter(out)).metadata['search_r3.steps'], 2);
});

// The trainer's seam: TS (src/train/defaults.ts) is the one home of the policy defaults and always
// passes every value; the addon has no defaults, so a value missing at the seam is a clear error,
// and a value out of its mathematical range is a RangeError. The LoRA module list is TS's
// LORA_MODULES; the addon receives names and checks each against the modules it can train.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import os from 'node:os';
import { lib, root, storiesPath, track } from './helpers/models.mjs';

const require = createRequire(import.meta.url);
const { binding } = require(`${root}/dist/native.js`);
const { LOSS_DEFAULTS, LORA_DEFAULTS, STEP_DEFAULTS } = require(`${root}/dist/train/defaults.js`);
const { lossSpec, packBatch } = require(`${root}/dist/train/batch.js`);
const { LoraTrainer, LORA_MODULES, LORA_TARGETS } = lib;

const createOptions = () => ({ rank: 2, alpha: 4, targets: ['attn_q', 'ffn_down'], seed: 1, threads: 1, transposedWeights: false });
const stepOptions = () => ({ lr: 1e-3, ...STEP_DEFAULTS });
const without = (o, key) => { const c = { ...o }; delete c[key]; return c; };
const missing = (key, type = 'number') => ({ name: 'TypeError', message: `Expected ${type} for ${key} but received a value of type undefined` });

// One sequence of three tokens, two of them targets, with an embed row: enough for every loss.
const packed = packBatch([{ tokens: Int32Array.from([1, 2, 3]), targets: Uint8Array.from([0, 1, 1]), embedAt: 2 }]);
const grpo = () => ({ weight: 1, rowWeights: new Float32Array(2).fill(0.5), advantages: new Float32Array(2), logpOld: new Float32Array(2), epsLow: 0.2, epsHigh: 0.28, klCoef: 0 });

describe('native trainer seam: every value required, none defaulted', () => {
  it('createTrainer requires targets (names from LORA_MODULES) and transposedWeights', async () => {
    const b = binding();
    await assert.rejects(async () => b.createTrainer(storiesPath, without(createOptions(), 'targets')),
      { name: 'TypeError', message: 'Expected a non-empty array of module names for targets' });
    // The addon's list of trainable modules is exactly TS's table, in its order.
    await assert.rejects(async () => b.createTrainer(storiesPath, { ...createOptions(), targets: ['attn_q', 'attn_x'] }),
      { name: 'RangeError', message: `Expected one of ${LORA_TARGETS.join(', ')} for targets[1] but received 'attn_x'` });
    await assert.rejects(async () => b.createTrainer(storiesPath, { ...createOptions(), targets: ['ffn_up', 'ffn_up'] }),
      { name: 'RangeError', message: "Expected each module once in targets but received 'ffn_up' twice" });
    await assert.rejects(async () => b.createTrainer(storiesPath, without(createOptions(), 'transposedWeights')), missing('transposedWeights', 'boolean'));
    const t = track(await b.createTrainer(storiesPath, { ...createOptions(), targets: [...LORA_MODULES] }));
    const adapted = new Set(t.getTensors('params').map((x) => /^blk\.\d+\.(\w+)\.weight\.lora_[ab]$/.exec(x.name)[1]));
    assert.deepEqual([...adapted], [...LORA_MODULES]);
  });

  it('step requires lr, beta1, beta2, eps, weightDecay and clipNorm, each in range', async () => {
    const t = track(await binding().createTrainer(storiesPath, createOptions()));
    for (const key of Object.keys(stepOptions())) assert.throws(() => t.step(without(stepOptions(), key)), missing(key), key);
    const range = (key, value, interval) => assert.throws(() => t.step({ ...stepOptions(), [key]: value }),
      { name: 'RangeError', message: `Expected a finite number in ${interval} for ${key} but received ${value}` });
    range('beta1', 1, '[0, 1)');
    range('beta2', -0.5, '[0, 1)');
    range('eps', 0, '(0, Infinity)');
    range('weightDecay', -1, '[0, Infinity)');
    range('clipNorm', Infinity, '[0, Infinity)');
    range('lr', -0.001, '[0, Infinity)');
  });

  it('accumulate requires each loss\'s temperature, margin, epsLow, epsHigh and klCoef, each in range', async () => {
    const t = track(await binding().createTrainer(storiesPath, createOptions()));
    const b = packed.native;
    for (const key of ['epsLow', 'epsHigh', 'klCoef']) assert.throws(() => t.accumulate(b, { grpo: without(grpo(), key) }), missing(`grpo.${key}`), key);
    assert.throws(() => t.accumulate(b, { grpo: { ...grpo(), epsLow: 1 } }),
      { name: 'RangeError', message: 'Expected a finite number in [0, 1) for grpo.epsLow but received 1' });
    assert.throws(() => t.accumulate(b, { grpo: { ...grpo(), klCoef: -0.1 } }),
      { name: 'RangeError', message: 'Expected a finite number in [0, Infinity) for grpo.klCoef but received -0.1' });
    const infonce = { weight: 1, queries: Int32Array.of(0), candidates: Int32Array.of(0), labels: Int32Array.of(0) };
    assert.throws(() => t.accumulate(b, { infonce }), missing('infonce.temperature'));
    assert.throws(() => t.accumulate(b, { infonce: { ...infonce, temperature: 0 } }),
      { name: 'RangeError', message: 'Expected a finite number in (0, Infinity) for infonce.temperature but received 0' });
    const triplet = { weight: 1, anchors: Int32Array.of(0), positives: Int32Array.of(0), negatives: Int32Array.of(0) };
    assert.throws(() => t.accumulate(b, { triplet }), missing('triplet.margin'));
  });

  it('forward requires each of its flags', async () => {
    const t = track(await binding().createTrainer(storiesPath, createOptions()));
    const flags = { lora: true, logits: false, hidden: false, logp: true };
    for (const key of Object.keys(flags)) assert.throws(() => t.forward(packed.native, without(flags, key)), missing(key, 'boolean'), key);
  });
});

describe('LoraTrainer defaults come from src/train/defaults.ts', () => {
  it('the tables are frozen', () => {
    for (const table of [STEP_DEFAULTS, LOSS_DEFAULTS, LORA_DEFAULTS]) assert.equal(Object.isFrozen(table), true);
  });

  it('lossSpec fills every omitted loss value from LOSS_DEFAULTS', () => {
    const spec = lossSpec(packed, {
      infonce: { queries: [0], candidates: [0], labels: [0] },
      triplet: { anchors: [0], positives: [0], negatives: [0] },
      grpo: { advantages: [1], logpOld: [new Float32Array(2)] },
    });
    assert.equal(spec.infonce.temperature, LOSS_DEFAULTS.temperature);
    assert.equal(spec.triplet.margin, LOSS_DEFAULTS.margin);
    assert.deepEqual([spec.grpo.epsLow, spec.grpo.epsHigh, spec.grpo.klCoef], [LOSS_DEFAULTS.epsLow, LOSS_DEFAULTS.epsHigh, LOSS_DEFAULTS.klCoef]);
    for (const part of ['infonce', 'triplet', 'grpo']) assert.equal(spec[part].weight, LOSS_DEFAULTS.weight, part);
  });

  it('open and step without options equal the native calls given the tables\' values', async () => {
    const trainer = track(await LoraTrainer.open(storiesPath, { threads: 1 }));
    const info = trainer.info;
    assert.deepEqual([info.rank, info.alpha, info.targets, info.threads], [LORA_DEFAULTS.rank, LORA_DEFAULTS.alphaPerRank * LORA_DEFAULTS.rank, [...LORA_MODULES], 1]);
    // Without `threads`, every hardware thread (what busy-bench reports for the default).
    const all = track(await LoraTrainer.open(storiesPath));
    assert.equal(all.info.threads, os.availableParallelism());
    const native = track(await binding().createTrainer(storiesPath, {
      rank: LORA_DEFAULTS.rank, alpha: LORA_DEFAULTS.alphaPerRank * LORA_DEFAULTS.rank, targets: [...LORA_MODULES], seed: LORA_DEFAULTS.seed,
      threads: 1, transposedWeights: LORA_DEFAULTS.transposedWeights,
    }));
    const params = (tensors) => tensors.map((x) => Array.from(x.data));
    assert.deepEqual(params(native.getTensors('params')), params(trainer.tensors('params')), 'open defaults differ from LORA_DEFAULTS');
    const seqs = [{ tokens: Int32Array.from([1, 5, 9, 13]), targets: Uint8Array.from([0, 1, 1, 1]) }];
    // Two steps, so the moments (beta1, beta2, eps) and the clip (a large lr's first step) all act.
    for (let s = 0; s < 2; s++) {
      const a = await trainer.accumulate(seqs, { sft: {} });
      const n = await native.accumulate(packBatch(seqs).native, lossSpec(packBatch(seqs), { sft: {} }));
      assert.equal(a.loss, n.total);
      const sa = await trainer.step({ lr: 0.05 });
      const sn = await native.step({ lr: 0.05, ...STEP_DEFAULTS });
      assert.deepEqual(sa, sn);
    }
    assert.deepEqual(params(trainer.tensors('params')), params(native.getTensors('params')), 'step defaults differ from STEP_DEFAULTS');
  });
});

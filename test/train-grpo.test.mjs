// A toy GRPO problem on the real stories260K model: for each prompt, sample G next tokens from
// the policy, reward 1 for any token other than the untrained model's favourite, and update with
// group-normalised advantages. The expected reward (computed exactly from the logits) must rise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib, storiesPath, track } from './helpers/models.mjs';
import { rng } from './helpers/random.mjs';

const { LoraTrainer, Model } = lib;

function softmax(logits) {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  const p = logits.map((x) => Math.exp(x - max));
  const s = p.reduce((a, b) => a + b, 0);
  return p.map((x) => x / s);
}

function sample(p, random) {
  let u = random();
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u <= 0) return i;
  }
  return p.length - 1;
}

test('GRPO on a toy reward raises the mean reward', async () => {
  const model = track(await Model.load(storiesPath, { vocabOnly: true }));
  const prompts = ['Once upon a time', 'The little dog', 'She was very', 'They went to the'].map((t) => model.tokenize(t, { addSpecial: true }));
  const trainer = track(await LoraTrainer.open(storiesPath, { lora: { rank: 8, seed: 1 }, threads: 2 }));
  const nVocab = trainer.info.nVocab;
  const next = async () => {
    const r = await trainer.forward(prompts.map((tokens) => {
      const targets = new Uint8Array(tokens.length + 1);
      targets[tokens.length] = 1;
      return { tokens: Int32Array.from([...tokens, 0]), targets };
    }), { logits: true });
    return prompts.map((_, i) => softmax(r.logits.subarray(i * nVocab, (i + 1) * nVocab)));
  };
  const initial = await next();
  const favourite = initial.map((p) => p.indexOf(Math.max(...p)));
  const expectedReward = (dists) => dists.reduce((a, p, i) => a + (1 - p[favourite[i]]), 0) / dists.length;
  const before = expectedReward(initial);
  assert.ok(before < 0.8, `the toy needs room to improve (expected reward ${before})`);

  const random = rng(3);
  const G = 8;
  for (let step = 0; step < 12; step++) {
    const dists = await next();
    const sequences = [];
    const rewards = [];
    dists.forEach((p, i) => {
      for (let g = 0; g < G; g++) {
        const token = sample(p, random);
        const targets = new Uint8Array(prompts[i].length + 1);
        targets[prompts[i].length] = 1;
        sequences.push({ tokens: Int32Array.from([...prompts[i], token]), targets });
        rewards.push(token === favourite[i] ? 0 : 1);
      }
    });
    // Group-relative advantages: (r - mean) / (std + eps) within each prompt's group.
    const advantages = rewards.map((r, k) => {
      const group = rewards.slice(Math.floor(k / G) * G, Math.floor(k / G) * G + G);
      const mean = group.reduce((a, b) => a + b, 0) / G;
      const std = Math.sqrt(group.reduce((a, b) => a + (b - mean) ** 2, 0) / G);
      return (r - mean) / (std + 1e-4);
    });
    const old = (await trainer.forward(sequences, { logp: true })).logp;
    await trainer.accumulate(sequences, { grpo: { advantages, logpOld: old, klCoef: 0.01 } });
    await trainer.step({ lr: 5e-3 });
  }
  const after = expectedReward(await next());
  assert.ok(after > 0.8 && after > before + 0.2, `expected reward ${before} -> ${after}`);
});

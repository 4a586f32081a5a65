// Every loss's LoRA gradients against central finite differences of the loss itself, on a tiny
// F32 model, plus the GRPO loss against a hand computation from the graph's own log-probs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib, tinyModel, track } from './helpers/models.mjs';
import { rng } from './helpers/random.mjs';

const { LoraTrainer, LORA_MODULES } = lib;
const T = 8;
const B = 4;

async function openPerturbed(seed, modelOptions = {}, targets = undefined) {
  const trainer = track(await LoraTrainer.open(await tinyModel(modelOptions), { lora: { rank: 4, alpha: 8, seed, targets }, threads: 2 }));
  const random = rng(seed);
  // Non-zero B (it starts at zero) so that A's gradients are not trivially zero.
  trainer.setTensors('params', trainer.tensors('params').map((t) => ({ name: t.name, data: t.data.map((x) => x + (random() - 0.5) * 0.2) })));
  return trainer;
}

function batch() {
  return Array.from({ length: B }, (_, b) => {
    const tokens = Int32Array.from({ length: T - (b % 2) }, (_, i) => 100 + ((b * 131 + i * 37) % 900));
    const targets = new Uint8Array(tokens.length).fill(1);
    targets[0] = 0;
    targets[2] = 0; // a masked-out token
    return { tokens, targets, embedAt: tokens.length - 1 };
  });
}

const seqs = batch();
const targetCounts = seqs.map((s) => s.targets.reduce((a, x) => a + x, 0));
const random = rng(5);
const logpOld = targetCounts.map((n) => Float32Array.from({ length: n }, () => -11.93 + (random() - 0.5) * 0.8));
const LOSSES = {
  sft: { sft: {} },
  kl: { kl: {} },
  infonce: { infonce: { temperature: 0.05, queries: [0, 1], candidates: [2, 3, 1], labels: [0, 1] } },
  triplet: { triplet: { margin: 0.5, anchors: [0, 1], positives: [2, 3], negatives: [3, 2] } },
  grpo: { grpo: { advantages: [1.2, -0.7, 0.4, -1.1], logpOld, epsLow: 0.2, epsHigh: 0.28, klCoef: 0.1 } },
};

async function lossAt(trainer, losses) {
  const r = await trainer.accumulate(seqs, losses);
  trainer.zeroGrads();
  return r.loss;
}

async function checkFiniteDifferences(name, losses, modelOptions = {}, targets = undefined, h = 1e-2) {
  const trainer = await openPerturbed(17, modelOptions, targets);
  await trainer.accumulate(seqs, losses);
  const grads = trainer.tensors('grads');
  trainer.zeroGrads();
  const params = trainer.tensors('params');
  // All A and B matrices of layer 0 (seven modules) and the last slot (layer 1's last module, or
  // the output head when it is a target).
  const checked = [...grads.keys()].filter((i) => grads[i].name.startsWith('blk.0.') || i >= grads.length - 2);
  let worst = 0;
  for (const ti of checked) {
    const g = grads[ti].data;
    let at = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[at])) at = i;
    assert.ok(Math.abs(g[at]) > 1e-6, `${grads[ti].name}: gradient is zero everywhere`);
    const orig = params[ti].data[at];
    params[ti].data[at] = orig + h;
    trainer.setTensors('params', params);
    const up = await lossAt(trainer, losses);
    params[ti].data[at] = orig - h;
    trainer.setTensors('params', params);
    const down = await lossAt(trainer, losses);
    params[ti].data[at] = orig;
    trainer.setTensors('params', params);
    const fd = (up - down) / (2 * h);
    const rel = Math.abs(fd - g[at]) / Math.max(Math.abs(fd), Math.abs(g[at]));
    worst = Math.max(worst, rel);
    assert.ok(rel <= 1e-2, `${name}: ${grads[ti].name}[${at}] analytic ${g[at]} vs finite difference ${fd} (relative error ${rel})`);
  }
  assert.ok(worst < 1e-2);
}

for (const [name, losses] of Object.entries(LOSSES)) {
  test(`${name} loss: LoRA gradients of every module match central finite differences`, () => checkFiniteDifferences(name, losses));
}

// qwen3's per-head Q/K RMS norms sit between the attn_q/attn_k LoRA and the attention.
for (const name of ['sft', 'infonce']) {
  test(`qwen3, ${name} loss: LoRA gradients match central finite differences`, () => checkFiniteDifferences(name, LOSSES[name], { arch: 'qwen3' }));
}

// The output head as a target (a model with its own output.weight): its A and B are the last slot,
// and every loss that reads logits reaches them; InfoNCE (hidden states only) must leave them at 0.
// Under KL, B's gradient spreads over 151,936 vocabulary columns (largest entry about 3e-6), so its
// step is larger: at 1e-2 the float32 loss's rounding is a few percent of the difference. (GRPO
// keeps 1e-2: a larger step crosses its clip's kinks.)
for (const name of ['sft', 'kl', 'grpo']) {
  test(`output head target, ${name} loss: its LoRA gradients match central finite differences`, () =>
    checkFiniteDifferences(name, LOSSES[name], { tieEmbeddings: false }, [...LORA_MODULES, 'output'], name === 'kl' ? 5e-2 : 1e-2));
}

test('output head target: named output.weight.lora_a/b, last; untouched by a hidden-state loss', async () => {
  const trainer = await openPerturbed(17, { tieEmbeddings: false }, ['attn_q', 'output']);
  const names = trainer.tensors('params').map((t) => t.name);
  assert.deepEqual(names.slice(-2), ['output.weight.lora_a', 'output.weight.lora_b']);
  assert.deepEqual(trainer.info.targets, ['attn_q', 'output']);
  await trainer.accumulate(seqs, LOSSES.infonce);
  const head = trainer.tensors('grads').slice(-2);
  assert.ok(head.every((t) => t.data.every((x) => x === 0)), 'InfoNCE reads the final hidden state, before the head');
});

// 8-wide heads and a 40-wide FFN: inner dimensions that ggml's tiled matmul refuses, which the
// trainer reroutes (RewriteForCpu: out_prod below 16, zero-padded copies above) in both passes.
for (const name of ['sft', 'infonce']) {
  test(`8-wide heads and FFN 40, ${name} loss: LoRA gradients match central finite differences`, () =>
    checkFiniteDifferences(name, LOSSES[name], { heads: 8, kvHeads: 4, ff: 40 }));
}

test('grpo loss equals the clipped objective and k3 KL computed by hand from the graph log-probs', async () => {
  const trainer = await openPerturbed(23);
  const current = (await trainer.forward(seqs, { logp: true })).logp;
  const reference = (await trainer.forward(seqs, { logp: true, lora: false })).logp;
  const { advantages, epsLow, epsHigh, klCoef } = LOSSES.grpo.grpo;
  const m = targetCounts.reduce((a, b) => a + b, 0);
  let policy = 0;
  let k3 = 0;
  let clippedTokens = 0;
  current.forEach((lp, b) => lp.forEach((x, j) => {
    const r = Math.exp(x - logpOld[b][j]);
    const a = advantages[b];
    const clipped = Math.min(Math.max(r, 1 - epsLow), 1 + epsHigh);
    if (clipped !== r) clippedTokens++;
    policy -= Math.min(r * a, clipped * a) / m;
    const d = reference[b][j] - x;
    k3 += (Math.exp(d) - d - 1) / m;
  }));
  assert.ok(clippedTokens > 0 && clippedTokens < m, `the test data must exercise both sides of the clip (${clippedTokens} of ${m} clipped)`);
  const r = await trainer.accumulate(seqs, LOSSES.grpo);
  assert.ok(Math.abs(r.parts.grpo - policy) < 1e-5, `policy loss ${r.parts.grpo} vs ${policy}`);
  assert.ok(Math.abs(r.parts.grpoKl - k3) < 1e-6, `k3 ${r.parts.grpoKl} vs ${k3}`);
  assert.ok(Math.abs(r.loss - (policy + klCoef * k3)) < 1e-5);
  assert.deepEqual(r.logp.map((x) => x.length), targetCounts);
});

test('grpo: tokens whose ratio is clipped contribute no gradient', async () => {
  const trainer = await openPerturbed(29);
  // Every ratio far above 1 + epsHigh with positive advantages: the clip is active everywhere.
  const far = targetCounts.map((n) => new Float32Array(n).fill(-40));
  await trainer.accumulate(seqs, { grpo: { advantages: [1, 1, 1, 1], logpOld: far, epsHigh: 0.2 } });
  const norm = Math.hypot(...trainer.tensors('grads').flatMap((t) => Array.from(t.data)));
  assert.equal(norm, 0);
});

test('sequence-mean GRPO weights each sequence equally; token-mean weights each token', async () => {
  const trainer = await openPerturbed(31);
  const lp = (await trainer.forward(seqs, { logp: true })).logp;
  const advantages = [1, 0, 0, 0];
  const tok = await trainer.accumulate(seqs, { grpo: { advantages, logpOld: lp, normalize: 'token' } });
  const seq = await trainer.accumulate(seqs, { grpo: { advantages, logpOld: lp, normalize: 'sequence' } });
  trainer.zeroGrads();
  const m = targetCounts.reduce((a, b) => a + b, 0);
  // At r = 1 the objective is the advantage itself: -(n0 / m) vs -(1 / 4).
  assert.ok(Math.abs(tok.parts.grpo + targetCounts[0] / m) < 1e-5);
  assert.ok(Math.abs(seq.parts.grpo + 1 / B) < 1e-5);
});

// The default backward pass multiplies by stored transposed weights (out_prod nodes rewritten to
// mul_mat, the vocabulary product split into slabs); the other keeps ggml's out_prod. Both must give
// the same gradients: equal on an F32 model, and close on F16 and Q8_0 ones, where the matmul rounds
// the (row-normalized) gradient to F16 or Q8_0 and a Q8_0 model's transposed copies are requantized.
async function gradients(model, transposedWeights, losses) {
  const trainer = track(await LoraTrainer.open(model, { lora: { rank: 4, alpha: 8, seed: 17 }, threads: 2, transposedWeights }));
  const random = rng(17);
  trainer.setTensors('params', trainer.tensors('params').map((t) => ({ name: t.name, data: t.data.map((x) => x + (random() - 0.5) * 0.2) })));
  const r = await trainer.accumulate(seqs, losses);
  const info = trainer.info;
  return { loss: r.loss, grads: trainer.tensors('grads'), info };
}

function relativeError(a, b) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

// embd 128: the output head [128, 151936] is transposed in two bands of source columns (the
// staging holds about 110 columns of 151,936 floats), the second one partial.
const TRANSPOSE_CASES = [{ type: 'f32' }, { type: 'f16' }, { type: 'q8_0' }, { type: 'f32', embd: 128 }, { type: 'q8_0', embd: 128 }];
for (const options of TRANSPOSE_CASES) {
  const { type } = options;
  const label = options.embd ? `${type} model, embd ${options.embd}` : `${type} model`;
  test(`transposed-weight backward gives out_prod's gradients (${label}, every loss)`, async () => {
    const model = await tinyModel(options);
    const tolerance = type === 'f32' ? 1e-4 : 5e-2; // measured: 1e-5 (f32), 1.5e-2 (q8_0)
    for (const [name, losses] of Object.entries(LOSSES)) {
      const fast = await gradients(model, true, losses);
      const plain = await gradients(model, false, losses);
      assert.ok(fast.info.transposedBytes > 0, 'transposed copies were made');
      assert.equal(plain.info.transposedBytes, 0);
      assert.ok(Math.abs(fast.loss - plain.loss) <= 1e-5 * Math.abs(plain.loss), `${type} ${name}: loss ${fast.loss} vs ${plain.loss}`);
      const a = fast.grads.flatMap((t) => Array.from(t.data));
      const b = plain.grads.flatMap((t) => Array.from(t.data));
      const err = relativeError(a, b);
      assert.ok(err <= tolerance, `${type} ${name}: gradients differ by ${err} (relative L2), more than ${tolerance}`);
    }
  });
}

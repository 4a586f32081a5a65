// Learning-rate schedules: exact values at hand-computed steps, and option checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lrAt, resolveLrSchedule } from '../dist/train/schedule.js';

// Values that go through Math.cos or inexact products are compared to 1e-15 relative; the rest exactly.
function near(actual, want) {
  assert.ok(Math.abs(actual - want) <= 1e-15 * Math.abs(want), `${actual} is not ${want}`);
}

test('lrAt: linear warm-up from 0, then cosine down to minLrRatio·lr at totalSteps', () => {
  const o = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, schedule: 'cosine', minLrRatio: 0.1 };
  assert.equal(lrAt(0, o), 0);
  near(lrAt(5, o), 5e-4);
  near(lrAt(9, o), 9e-4);
  near(lrAt(10, o), 1e-3); // progress 0: cos(0) = 1
  near(lrAt(35, o), 1e-3 * (0.1 + 0.9 * (0.5 + Math.SQRT2 / 4))); // progress 1/4: ½(1 + cos(π/4))
  near(lrAt(60, o), 5.5e-4); // progress 1/2: half-way between lr and the floor
  near(lrAt(85, o), 1e-3 * (0.1 + 0.9 * (0.5 - Math.SQRT2 / 4)));
  near(lrAt(110, o), 1e-4);
  near(lrAt(5000, o), 1e-4); // past the end it stays at the floor
  // Monotone after warm-up.
  for (let s = 11; s <= 110; s++) assert.ok(lrAt(s, o) < lrAt(s - 1, o), `step ${s}`);
});

test('lrAt: linear decay, constant, and defaults (no warm-up, cosine to 0)', () => {
  const lin = { lr: 2e-4, totalSteps: 100, schedule: 'linear' };
  assert.equal(lrAt(0, lin), 2e-4);
  assert.equal(lrAt(25, lin), 2e-4 * 0.75);
  assert.equal(lrAt(99, lin), 2e-4 * (1 - 99 / 100));
  assert.equal(lrAt(100, lin), 0);
  assert.equal(lrAt(40, { ...lin, warmupSteps: 20, minLrRatio: 0.5 }), 2e-4 * (0.5 + 0.5 * (1 - 20 / 80)));

  const constant = { lr: 1e-3, totalSteps: 50, warmupSteps: 4, schedule: 'constant', minLrRatio: 0.3 };
  assert.deepEqual([0, 1, 2, 4, 49, 50, 10_000].map((s) => lrAt(s, constant)), [0, 2.5e-4, 5e-4, 1e-3, 1e-3, 1e-3, 1e-3]);

  assert.equal(lrAt(0, { lr: 1, totalSteps: 4 }), 1);
  near(lrAt(1, { lr: 1, totalSteps: 4 }), 0.5 * (1 + Math.SQRT1_2));
  near(lrAt(2, { lr: 1, totalSteps: 4 }), 0.5);
  assert.equal(lrAt(4, { lr: 1, totalSteps: 4 }), 0);
  assert.deepEqual(resolveLrSchedule({ lr: 1e-4, totalSteps: 100 }), { lr: 1e-4, totalSteps: 100, warmupSteps: 0, schedule: 'cosine', minLrRatio: 0 });
});

test('lrAt: warm-up as long as the run ends on the floor instead of dividing by zero', () => {
  const o = { lr: 1, warmupSteps: 10, totalSteps: 10, minLrRatio: 0.5 };
  assert.equal(lrAt(9, o), 0.9);
  assert.equal(lrAt(10, o), 0.5);
  assert.equal(lrAt(11, o), 0.5);
});

test('lrAt: rejects bad steps and options with the house messages', () => {
  const o = { lr: 1e-3, totalSteps: 10 };
  assert.throws(() => lrAt(-1, o), { name: 'RangeError', message: 'Expected integer between 0 and Infinity for step but received -1 of type number' });
  assert.throws(() => lrAt(1.5, o), { name: 'TypeError', message: 'Expected non-negative integer for step but received 1.5 of type number' });
  assert.throws(() => lrAt(0, undefined), { name: 'TypeError', message: 'Expected object { lr, totalSteps } for options but received undefined of type undefined' });
  assert.throws(() => lrAt(0, { ...o, warmupStep: 3 }), { name: 'TypeError', message: 'Unknown option "warmupStep" in options; did you mean "warmupSteps"?' });
  assert.throws(() => lrAt(0, { ...o, lr: 0 }), { name: 'RangeError', message: 'Expected finite number > 0 for options.lr but received 0 of type number' });
  assert.throws(() => lrAt(0, { ...o, lr: Infinity }), { name: 'RangeError', message: 'Expected finite number > 0 for options.lr but received Infinity of type number' });
  assert.throws(() => lrAt(0, { ...o, lr: '1e-3' }), { name: 'TypeError', message: 'Expected number for options.lr but received "1e-3" of type string' });
  assert.throws(() => lrAt(0, { lr: 1e-3 }), { name: 'TypeError', message: 'Expected positive integer for options.totalSteps but received undefined of type undefined' });
  assert.throws(() => lrAt(0, { ...o, schedule: 'cosin' }), { name: 'TypeError', message: 'Expected one of "cosine", "linear", "constant" for options.schedule but received "cosin" of type string' });
  assert.throws(() => lrAt(0, { ...o, minLrRatio: 1.5 }), { name: 'RangeError', message: 'Expected number between 0 and 1 for options.minLrRatio but received 1.5 of type number' });
  assert.throws(() => lrAt(0, { ...o, warmupSteps: 11 }), { name: 'RangeError', message: 'Expected warmupSteps ≤ totalSteps but received warmupSteps 11 and totalSteps 10' });
});

// Stage-2 rewards, reward specs, group advantages and reward agreement against hand-computed values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib } from './helpers/models.mjs';

const {
  REWARD_FUNCTIONS, REWARD_DEFAULTS, parseRewardSpec, computeRewards, groupAdvantages, rewardAgreement,
  dcgReward, mrrReward, recallReward, formatReward,
} = lib;

const rollout = (ranking, relevant, finish = 'embed', reasoningTokens = 8) => ({ ranking, relevant: new Map(Object.entries(relevant)), finish, reasoningTokens });
const close = (actual, wanted, tol = 1e-12) => assert.ok(Math.abs(actual - wanted) <= tol, `${actual} != ${wanted}`);
const tenOthers = (n) => Array.from({ length: n }, (_, i) => `x${i}`);

test('dcg: one binary relevant document earns 1/log2(1 + rank), and 0 past the cutoff', () => {
  const dcg = REWARD_FUNCTIONS.dcg;
  const at = (rank) => rollout([...tenOthers(rank - 1), 'p', ...tenOthers(3).map((x) => `y${x}`)], { p: 1 });
  const got = dcg([at(1), at(2), at(3), at(7), at(10), at(11)]);
  [1, 1 / Math.log2(3), 0.5, 1 / 3, 1 / Math.log2(11), 0].forEach((w, i) => close(got[i], w));
  assert.equal(REWARD_DEFAULTS.cutoff, 10);
  // A smaller cutoff cuts earlier.
  assert.deepEqual(dcgReward(2)([at(2), at(3)]), [1 / Math.log2(3), 0]);
});

test('dcg: graded qrels give DCG/IDCG with gain = grade; several binary positives give binary nDCG', () => {
  // Grades a=2, b=1, ranking [x, b, a]: DCG = 1/log2(3) + 2/log2(4); IDCG = 2/log2(2) + 1/log2(3).
  const [graded] = REWARD_FUNCTIONS.dcg([rollout(['x', 'b', 'a'], { a: 2, b: 1 })]);
  close(graded, (1 / Math.log2(3) + 1) / (2 + 1 / Math.log2(3)));
  // Two binary positives at ranks 1 and 3: (1 + 1/2) / (1 + 1/log2(3)).
  const [binary] = REWARD_FUNCTIONS.dcg([rollout(['a', 'x', 'b'], { a: 1, b: 1 })]);
  close(binary, 1.5 / (1 + 1 / Math.log2(3)));
  // The ideal DCG is cut at the cutoff too: 3 positives, cutoff 2, both top ranks relevant → 1.
  assert.deepEqual(dcgReward(2)([rollout(['a', 'b', 'c'], { a: 1, b: 1, c: 1 })]), [1]);
  // Grades ≤ 0 are not relevant; a query without a relevant document gets 0.
  assert.deepEqual(REWARD_FUNCTIONS.dcg([rollout(['a', 'b'], { a: 0, b: -1 }), rollout(['a'], {})]), [0, 0]);
});

test('dcg: the ranking given is the order (ties are already broken), and a repeated id counts once', () => {
  // Two rollouts whose store scores tied: whatever order the ranking lists is the rank.
  const got = REWARD_FUNCTIONS.dcg([rollout(['a', 'b'], { b: 1 }), rollout(['b', 'a'], { b: 1 })]);
  close(got[0], 1 / Math.log2(3));
  assert.equal(got[1], 1);
  // The positive listed twice is not counted twice (reward would exceed 1).
  assert.deepEqual(REWARD_FUNCTIONS.dcg([rollout(['a', 'a', 'b'], { a: 1 })]), [1]);
});

test('mrr and recall: reciprocal rank of the first relevant, share of relevant within the cutoff', () => {
  const r = [rollout(['x', 'y', 'z', 'a', 'b'], { a: 1, b: 2 }), rollout(tenOthers(10).concat('a'), { a: 1 })];
  assert.deepEqual(REWARD_FUNCTIONS.mrr(r), [0.25, 0]);
  assert.deepEqual(REWARD_FUNCTIONS.recall(r), [1, 0]);
  assert.deepEqual(recallReward(4)(r), [0.5, 0]);
  assert.deepEqual(mrrReward(3)(r), [0, 0]);
  assert.deepEqual(recallReward(2)([rollout(['a', 'b', 'c'], { a: 1, b: 1, c: 1 })]), [2 / 3]);
  assert.deepEqual(REWARD_FUNCTIONS.recall([rollout(['a'], { a: 0 })]), [0]);
});

test('format: a self-emitted <|embed_token|> is not penalised; budget and stopped are', () => {
  const r = ['embed', 'budget', 'stopped', 'direct'].map((f) => rollout(['a'], { a: 1 }, f));
  assert.deepEqual(REWARD_FUNCTIONS.format(r), [0, -REWARD_DEFAULTS.formatPenalty, -REWARD_DEFAULTS.formatPenalty, 0]);
  assert.deepEqual(formatReward(2)(r), [0, -2, -2, 0]);
  assert.equal(REWARD_DEFAULTS.formatPenalty, 0.5);
});

test('parseRewardSpec reads names and weights and refuses anything else naming the spec', () => {
  assert.deepEqual(parseRewardSpec('dcg'), [{ name: 'dcg', weight: 1 }]);
  assert.deepEqual(parseRewardSpec(REWARD_DEFAULTS.spec), [{ name: 'dcg', weight: 1 }, { name: 'format', weight: 1 }]);
  assert.deepEqual(parseRewardSpec(' mrr = 2 ,format=0.5,recall=0'), [{ name: 'mrr', weight: 2 }, { name: 'format', weight: 0.5 }, { name: 'recall', weight: 0 }]);
  for (const [spec, why] of [
    ['ndcg', 'unknown reward "ndcg"'], ['dcg=-1', 'the weight of dcg'], ['dcg=x', 'the weight of dcg'], ['dcg=', 'the weight of dcg'],
    ['dcg=1=2', 'the weight of dcg'], ['dcg,dcg=2', 'dcg is given twice'], ['', 'it is empty'], ['dcg,', 'unknown reward ""'],
    ['dcg=0,format=0', 'every weight is 0'], ['dcg=Infinity', 'the weight of dcg'],
  ]) {
    assert.throws(() => parseRewardSpec(spec), (e) => e instanceof RangeError && e.message.startsWith(`Invalid reward spec ${JSON.stringify(spec)}: ${why}`) && e.message.includes('dcg, mrr, recall, format'), spec);
  }
  assert.throws(() => parseRewardSpec(3), TypeError);
});

test('computeRewards sums weighted terms and keeps each term unweighted', () => {
  const rollouts = [rollout(['p', 'x'], { p: 1 }), rollout(['x', 'y', 'p'], { p: 1 }, 'budget'), rollout(['x'], { p: 1 }, 'stopped')];
  const { total, parts } = computeRewards(parseRewardSpec('dcg=1,format=1'), rollouts);
  assert.ok(total instanceof Float64Array);
  assert.deepEqual(Array.from(total), [1, 0, -0.5]);
  assert.deepEqual(parts, { dcg: [1, 0.5, 0], format: [0, -0.5, -0.5] });
  const weighted = computeRewards(parseRewardSpec('dcg=2,mrr=0.5'), rollouts);
  assert.deepEqual(Array.from(weighted.total), [2.5, 1 + 0.5 / 3, 0]);
  assert.throws(() => computeRewards([{ name: 'nope', weight: 1 }], rollouts), { name: 'RangeError', message: /terms\[0\]\.name/ });
  assert.throws(() => computeRewards(parseRewardSpec('dcg'), [{ ...rollouts[0], finish: 'done' }]), { name: 'TypeError', message: /rollouts\[0\]\.finish/ });
  assert.throws(() => computeRewards(parseRewardSpec('dcg'), [{ ...rollouts[0], relevant: { p: 1 } }]), { name: 'TypeError', message: /rollouts\[0\]\.relevant/ });
});

test('groupAdvantages: (r - mean) / (sample std + eps) per group; zero-variance groups give 0 and are counted', () => {
  // Group [1, 0]: mean 0.5, sample std sqrt(0.5) → ±0.5/sqrt(0.5); group [0.5, 0.5]: zero variance.
  const a = groupAdvantages([1, 0, 0.5, 0.5], 2, 0);
  assert.ok(a.advantages instanceof Float32Array);
  close(a.advantages[0], Math.SQRT1_2, 1e-7);
  close(a.advantages[1], -Math.SQRT1_2, 1e-7);
  assert.deepEqual(Array.from(a.advantages.subarray(2)), [0, 0]);
  assert.equal(a.zeroVarianceGroups, 1);
  // Group of 3 [0, 0, 1]: mean 1/3, sample variance ((1/9)·2 + 4/9) / 2 = 1/3.
  const b = groupAdvantages([0, 0, 1, 0.1, 0.1, 0.1], 3, 0);
  const s = Math.sqrt(1 / 3);
  [-1 / 3 / s, -1 / 3 / s, 2 / 3 / s, 0, 0, 0].forEach((w, i) => close(b.advantages[i], w, 1e-6));
  assert.equal(b.zeroVarianceGroups, 1);
  // The default eps is added to the std.
  close(groupAdvantages([1, 0], 2).advantages[0], 0.5 / (Math.SQRT1_2 + REWARD_DEFAULTS.eps), 1e-7);
  // Groups of one have no variance.
  assert.deepEqual(groupAdvantages(Float64Array.of(1, 2, 3), 1), { advantages: new Float32Array(3), zeroVarianceGroups: 3 });
  assert.throws(() => groupAdvantages([1, 2, 3], 2), { name: 'RangeError', message: 'Expected a multiple of groupSize 2 rewards but received 3' });
  assert.throws(() => groupAdvantages([1, NaN], 2), { name: 'RangeError', message: /rewards\[1\]/ });
  assert.throws(() => groupAdvantages([1, 2], 0), RangeError);
});

test('rewardAgreement is 1 - mean |incremental - full| over rewards in [0, 1]', () => {
  assert.equal(rewardAgreement([1, 0.5], [1, 0.25]), 0.875);
  assert.equal(rewardAgreement([0.3, 0.7], Float64Array.of(0.3, 0.7)), 1);
  assert.equal(rewardAgreement([1, 0], [0, 1]), 0);
  assert.throws(() => rewardAgreement([1], [1, 0]), { name: 'RangeError', message: /as many full rewards as incremental ones \(1\) but received 2/ });
  assert.throws(() => rewardAgreement([], []), RangeError);
  assert.throws(() => rewardAgreement([-0.5], [0]), { name: 'RangeError', message: /incremental\[0\]/ });
});

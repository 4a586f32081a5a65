// The addon sets libgomp's spin count before loading it, unless the user chose an OpenMP wait
// setting (README, Busy machines): checked in fresh processes, since libgomp reads it once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { root } from './helpers/models.mjs';

function envAfterLoad(env) {
  const script = `const lib = require(${JSON.stringify(join(root, 'dist', 'index.js'))}); lib.systemInfo(); console.log(JSON.stringify({ spin: process.env.GOMP_SPINCOUNT ?? null, policy: process.env.OMP_WAIT_POLICY ?? null }));`;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'GOMP_SPINCOUNT' && k !== 'OMP_WAIT_POLICY'));
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...clean, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim());
}

test('loading the addon sets GOMP_SPINCOUNT to 10000 unless GOMP_SPINCOUNT or OMP_WAIT_POLICY is set', () => {
  assert.deepEqual(envAfterLoad({}), { spin: '10000', policy: null });
  assert.deepEqual(envAfterLoad({ GOMP_SPINCOUNT: '300000' }), { spin: '300000', policy: null });
  assert.deepEqual(envAfterLoad({ OMP_WAIT_POLICY: 'active' }), { spin: null, policy: 'active' });
});

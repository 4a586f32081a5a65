import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { main } from '../dist/cli/main.js';
import { main as benchMain } from '../dist/cli/bench.js';
import { parse, numFlag } from '../dist/cli/args.js';

const VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

async function run(fn, args) {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (c) => (o += c));
  err.on('data', (c) => (e += c));
  const code = await fn(args, out, err);
  return { code, out: o, err: e };
}

test('search-r3 --version prints the package.json version', async () => {
  for (const flag of ['--version', '-V']) {
    assert.deepEqual(await run(main, [flag]), { code: 0, out: `search-r3 ${VERSION}\n`, err: '' });
  }
});

test('search-r3-bench --version prints the package.json version', async () => {
  assert.deepEqual(await run(benchMain, ['--version']), { code: 0, out: `search-r3-bench ${VERSION}\n`, err: '' });
});

test('parse: a negative number as a separate value reaches the range check like --flag=-1', () => {
  const opts = { lr: { type: 'string' }, json: { type: 'boolean' } };
  assert.equal(parse(['--lr', '-1'], opts).values.lr, '-1');
  assert.equal(parse(['--lr', '-.5', 'pos'], opts).values.lr, '-.5');
  assert.deepEqual(parse(['--lr', '-1'], opts).values, parse(['--lr=-1'], opts).values);
  const msg = 'Expected a number between 0 and 1 for --lr but received "-1"';
  assert.throws(() => numFlag(parse(['--lr', '-1'], opts).values.lr, 'lr', 0, 1), { message: msg });
  // A boolean flag followed by a dash token is still an unknown short option, not a value.
  assert.throws(() => parse(['--json', '-1'], opts), { name: 'UsageError' });
});

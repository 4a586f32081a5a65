// --log-level and --quiet: llama.cpp's stderr is silent by default and speaks when asked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { root, tinyModel } from './helpers/models.mjs';

const require = createRequire(import.meta.url);
const { takeLogLevel } = require(join(root, 'dist', 'cli', 'log-level.js'));
const bin = join(root, 'bin', 'search-r3.js');
const run = (args) => spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8' });

test('takeLogLevel: every form, anywhere in argv; a bad value names the flag', () => {
  assert.deepEqual(takeLogLevel(['M', '--log-level', 'info', '--json']), { argv: ['M', '--json'], level: 'info' });
  assert.deepEqual(takeLogLevel(['--log-level=warn', 'M']), { argv: ['M'], level: 'warn' });
  assert.deepEqual(takeLogLevel(['M', '--quiet']), { argv: ['M'], level: 'none' });
  assert.deepEqual(takeLogLevel(['M', '--quiet'], { keepQuiet: true }), { argv: ['M', '--quiet'], level: 'none' });
  assert.deepEqual(takeLogLevel(['M']), { argv: ['M'], level: 'none' });
  assert.deepEqual(takeLogLevel(['--', '--quiet']), { argv: ['--', '--quiet'], level: 'none' });
  assert.throws(() => takeLogLevel(['--log-level', 'loud']), { name: 'UsageError', message: 'Expected one of none, error, warn, info, debug for --log-level but received "loud"' });
  assert.throws(() => takeLogLevel(['--log-level']), { message: /received null/ });
});

test('search-r3 generate: no llama.cpp lines by default or with --quiet; --log-level info shows the loader', async () => {
  const model = await tinyModel();
  const args = ['generate', model, '--prompt', 'hello', '--max-tokens', '2'];
  const quietRuns = [run(args), run([...args, '--quiet'])];
  for (const r of quietRuns) {
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
  }
  const loud = run([...args, '--log-level', 'info']);
  assert.equal(loud.status, 0, loud.stderr);
  assert.match(loud.stderr, /llama_model_loader|load_tensors|llama_context/);
  assert.equal(run([...args, '--log-level', 'loud']).status, 2);
});

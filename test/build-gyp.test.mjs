// The node-gyp build path (binding.gyp) compiles the same native sources into a working addon.
// It links llama.cpp's static libraries from the cmake-js build (SEARCH_R3_LLAMA_LIBS), so this
// test costs one compile of native/, not a second llama.cpp build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { root, storiesPath, tempDir } from './helpers/models.mjs';

const require = createRequire(import.meta.url);
const nodeDir = resolve(dirname(process.execPath), '..');
const haveHeaders = existsSync(join(nodeDir, 'include', 'node', 'common.gypi'));

const check = `
  const { Model } = require(${JSON.stringify(join(root, 'dist', 'index.js'))});
  (async () => {
    const model = await Model.load(${JSON.stringify(storiesPath)});
    const session = await model.createSession({ threads: 1 });
    const [g] = await session.generate('Once upon a time', { maxTokens: 10 });
    console.log(JSON.stringify(Array.from(g.tokens)));
    model.dispose();
  })();
`;

function runCheck(env) {
  const r = spawnSync(process.execPath, ['-e', check], { env: { ...process.env, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

test('binding.gyp builds an addon that behaves like the cmake-js build', { skip: !haveHeaders && `no Node headers at ${nodeDir}/include/node`, timeout: 900_000 }, () => {
  const pkg = join(tempDir(), 'gyp-pkg');
  mkdirSync(pkg, { recursive: true });
  for (const f of ['binding.gyp', 'package.json', 'native', 'scripts']) cpSync(join(root, f), join(pkg, f), { recursive: true });
  for (const d of ['node_modules', 'deps']) symlinkSync(join(root, d), join(pkg, d));
  const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
  const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodeDir}`, '-j', '2'], {
    cwd: pkg,
    env: { ...process.env, SEARCH_R3_LLAMA_LIBS: join(root, 'build', 'llama.cpp') },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `node-gyp failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  const built = join(pkg, 'build', 'Release', 'search_r3.node');
  assert.ok(existsSync(built));
  const viaGyp = runCheck({ SEARCH_R3_BINDING: built });
  const viaCmake = runCheck({});
  assert.equal(viaGyp.length, 10);
  assert.deepEqual(viaGyp, viaCmake);
});

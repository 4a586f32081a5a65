// The package as users meet it: `import` and `require` by name, and the `search-r3` command line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as esm from 'search-r3';
import { root, storiesPath, tempDir, tinyModel } from './helpers/models.mjs';

const require = createRequire(import.meta.url);

function cli(...args) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'search-r3.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('require and import of search-r3 expose the same API', () => {
  const cjs = require('search-r3');
  for (const name of ['Model', 'Session', 'Embedder', 'LoraAdapter', 'SearchR3Error', 'makeModel', 'addEmbedToken', 'evaluate', 'validateGguf']) {
    assert.equal(typeof cjs[name], 'function', name);
    assert.equal(esm[name], cjs[name], name);
  }
  assert.equal(esm.default, cjs);
});

test('search-r3 make-model, info, generate and embed', async () => {
  const out = join(tempDir(), 'cli-model.gguf');
  const made = cli('make-model', '--out', out, '--preset', 'tiny', '--layers', '1', '--seed', '3', '--json');
  assert.equal(made.code, 0, made.err);
  assert.equal(JSON.parse(made.out).layers, 1);
  const info = JSON.parse(cli('info', out, '--json').out);
  assert.equal(info.architecture, 'qwen2');
  assert.equal(info.nLayer, 1);
  assert.equal(info.embedTokenId, 151665);
  const gen = cli('generate', storiesPath, '--prompt', 'Once upon a time', '--max-tokens', '8', '--json');
  assert.equal(gen.code, 0, gen.err);
  const g = JSON.parse(gen.out);
  assert.ok(g.text.startsWith(', there was a little girl'));
  assert.equal(g.tokens.length, 8);
  assert.equal(g.logprobs.length, 8);
  const input = join(tempDir(), 'in.jsonl');
  writeFileSync(input, '{"id":"q1","text":"first text"}\n\n{"text":"second"}\n');
  const emb = cli('embed', out, '--input', input, '--json', 'positional text');
  assert.equal(emb.code, 0, emb.err);
  const lines = emb.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.id), ['0', 'q1', '1']);
  assert.equal(lines[0].vector.length, 64);
  assert.equal(lines[0].finish, 'direct');
  assert.deepEqual(lines.map((l) => l.truncated), [false, false, false]);
  // Record 2 of a JSONL input is longer than a sequence: by default it is shortened and marked, not fatal.
  const longInput = join(tempDir(), 'long.jsonl');
  writeFileSync(longInput, `{"id":"a","text":"short"}\n${JSON.stringify({ id: 'b', text: 'word '.repeat(1000) })}\n`);
  const long = cli('embed', out, '--input', longInput, '--json', '--document');
  assert.equal(long.code, 0, long.err);
  assert.deepEqual(long.out.trim().split('\n').map((l) => [JSON.parse(l).id, JSON.parse(l).truncated]), [['a', false], ['b', true]]);
  const reason = JSON.parse(cli('embed', out, '--mode', 'reason', '--max-reasoning-tokens', '3', '--json', 'why').out);
  assert.ok(reason.tokens <= 3);
  assert.ok(['budget', 'stopped', 'embed'].includes(reason.finish));
});

test('search-r3 reports bad input in one line with a non-zero exit code', async () => {
  const model = await tinyModel();
  const cases = [
    [['info', join(tempDir(), 'missing.gguf')], 1, /missing\.gguf: cannot open GGUF file/],
    [['generate', storiesPath], 2, /missing --prompt/],
    [['generate', storiesPath, '--prompt', 'x', '--max-tokens', 'many'], 2, /Expected an integer between 1 and \d+ for --max-tokens but received "many"/],
    [['embed', model, '--mode', 'think', 'x'], 2, /Expected one of direct, reason for --mode/],
    [['embed', storiesPath, 'x'], 1, /has no <\|embed_token\|>.*add-embed-token/],
    [['embed', model, '--maxtokens', '3'], 2, /Unknown option "--maxtokens"/],
    [['frobnicate'], 2, /unknown command "frobnicate"/],
  ];
  for (const [args, code, pattern] of cases) {
    const r = cli(...args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, pattern);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace for user errors');
  }
  const badJsonl = join(tempDir(), 'bad.jsonl');
  writeFileSync(badJsonl, '{"text":"ok"}\n{"txt":"no"}\n');
  const r = cli('embed', model, '--input', badJsonl);
  assert.equal(r.code, 1);
  assert.match(r.err, /bad\.jsonl:2: expected an object with a string "text"/);
});

test('SEARCH_R3_CUDA=1 without a usable nvcc or cuBLAS fails in one line before CMake runs', { skip: process.platform === 'win32' ? 'the fake nvcc is a shell script' : false }, () => {
  const build = (cudacxx) => spawnSync(process.execPath, [join(root, 'scripts', 'build-native.js')], {
    encoding: 'utf8', env: { ...process.env, SEARCH_R3_CUDA: '1', CUDACXX: cudacxx },
  });
  const missing = join(tempDir(), 'no-nvcc');
  let r = build(missing);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `search-r3: SEARCH_R3_CUDA=1 needs nvcc, but ${missing} could not be run (ENOENT); put the CUDA toolkit's bin directory on PATH or set CUDACXX=/path/to/nvcc.\n`);
  // An "nvcc" whose include path has no cublas_v2.h, as a toolkit without cuBLAS's development files.
  const fake = join(tempDir(), 'nvcc');
  writeFileSync(fake, '#!/bin/sh\necho "fatal error: cublas_v2.h: No such file or directory" >&2\nexit 1\n', { mode: 0o755 });
  r = build(fake);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^search-r3: SEARCH_R3_CUDA=1 needs cuBLAS, but .*nvcc cannot find cublas_v2\.h\. Install/);
  assert.equal(r.stdout, '', 'cmake-js never started');
});

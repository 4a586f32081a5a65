// The "Long texts" rule on the command line: record 2 of a JSONL is too long; each --long-text mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { root, tempDir, tinyModel } from './helpers/models.mjs';

const execFileP = promisify(execFile);
const cli = join(root, 'bin', 'search-r3.js');
const long = 'word '.repeat(1000);

async function run(args) {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [cli, ...args], { cwd: root });
    return { code: 0, stdout, stderr };
  } catch (e) {
    if (typeof e.code !== 'number') throw e;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function docs() {
  const file = join(tempDir(), 'docs.jsonl');
  writeFileSync(file, [{ id: 'a', text: 'short one' }, { id: 'b', text: long }, { id: 'c', text: 'short two' }].map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

const base = async (file, ...more) => ['embed', await tinyModel(), '--document', '--input', file, '--threads', '1', '--max-tokens', '256', '--json', ...more];
const ids = (stdout) => stdout.trim().split('\n').map((l) => JSON.parse(l)).map((r) => [r.id, r.truncated]);

test('embed --long-text truncate (default) embeds every record and counts the shortened one on stderr', async () => {
  const r = await run(await base(docs()));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ids(r.stdout), [['a', false], ['b', true], ['c', false]]);
  assert.match(r.stderr, /^search-r3 embed: 1 of 3 texts were shortened to 256 tokens/m);
});

test('embed --long-text error names the record id and FILE:LINE', async () => {
  const file = docs();
  const r = await run(await base(file, '--long-text', 'error'));
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`^search-r3 embed: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: record "b" needs \\d+ tokens, more than the 256 of --max-tokens; shorten it, raise --max-tokens or pass --long-text truncate\\|skip\\n$`));
});

test('embed --long-text skip leaves the record out, reports its id and the count', async () => {
  const file = docs();
  const r = await run(await base(file, '--long-text', 'skip'));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ids(r.stdout), [['a', false], ['c', false]]);
  assert.ok(r.stderr.includes(`skipped record "b" (${file}:2)`), r.stderr);
  assert.match(r.stderr, /1 of 3 texts were skipped/);
});

test('embed --long-text with an unknown mode is a usage error (exit 2)', async () => {
  const r = await run(await base(docs(), '--long-text', 'cut'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /long-text/);
});

test('train sft --long-text error stops before training, naming the record and FILE:LINE; an unknown mode is exit 2', async () => {
  const d = tempDir();
  const file = join(d, 'pairs.jsonl');
  writeFileSync(file, [{ id: 'a', query: 'q one', positive: 'short' }, { id: 'b', query: 'q two', positive: long }].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const args = ['train', 'sft', '--model', await tinyModel(), '--train', file, '--out', join(d, 'a.lora.gguf'), '--steps', '1', '--batch', '2', '--max-tokens', '64', '--threads', '1', '--json'];
  const r = await run([...args, '--long-text', 'error']);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.includes(`${file}:2: record "b" positive needs `), r.stderr);
  const bad = await run([...args, '--long-text', 'cut']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /long-text/);
});

test('embed --input - names a too-long record as stdin:LINE', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [cli, ...(await base('-', '--long-text', 'error'))], { cwd: root });
  let stderr = '';
  child.stderr.on('data', (b) => { stderr += b; });
  child.stdout.resume();
  child.stdin.end(`{"id":"a","text":"short"}\n\n{"id":"b","text":"${long}"}\n`);
  const code = await new Promise((res) => child.on('close', res));
  assert.equal(code, 1);
  assert.match(stderr, /^search-r3 embed: stdin:3: record "b" needs \d+ tokens/);
});

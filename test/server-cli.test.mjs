// `search-r3 serve` as a child process: refusals before the weights load, the API key from the
// environment, and SIGTERM with requests in flight (they are answered, then the process exits 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { lib, root, tempDir, tinyModel } from './helpers/models.mjs';

const bin = join(root, 'bin', 'search-r3.js');
const run = (args, env = {}) => spawnSync(process.execPath, [bin, 'serve', ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });

test('serve refuses a non-loopback host without a key, a missing --model, a bad port (exit 2, before loading anything) and a DIR that is no index', () => {
  const open = run(['--model', 'no-such.gguf', '--host', '0.0.0.0']);
  assert.equal(open.status, 2);
  assert.match(open.stderr, /^search-r3 serve: --host 0\.0\.0\.0 is not a loopback address: give --api-key KEY \(or \$SEARCH_R3_API_KEY\)/);
  const noModel = run([]);
  assert.equal(noModel.status, 2);
  assert.match(noModel.stderr, /missing --model; usage: search-r3 serve \[DIR\] --model M\.gguf/);
  const badPort = run(['--model', 'm.gguf', '--port', '70000']);
  assert.equal(badPort.status, 2);
  assert.match(badPort.stderr, /Expected an integer between 0 and 65535 for --port but received "70000"/);
  const badDelay = run(['--model', 'm.gguf', '--batch-delay', '-1']);
  assert.equal(badDelay.status, 2);
  assert.match(badDelay.stderr, /--batch-delay but received "-1"/);
  const missing = run(['--model', 'no-such.gguf']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no-such\.gguf/);
  const noIndex = run([tempDir(), '--model', 'm.gguf']);
  assert.equal(noIndex.status, 1);
  assert.match(noIndex.stderr, /^search-r3 serve: .*search-r3-test-/);
});

/** Starts `search-r3 serve` and resolves with the child and the URL it printed. */
function startServe(args, env) {
  const child = spawn(process.execPath, [bin, 'serve', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })));
  const url = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    exited.then((e) => reject(new Error(`serve exited early: ${JSON.stringify(e)}`)));
  });
  return { child, url, exited };
}

const corpus = ['tides follow the moon', 'magma rises in volcanoes', 'yeast makes bread rise', 'rivers end in deltas'].map((contents, i) => ({ id: `d${i}`, contents }));

test('serve DIR: the index\'s model, /retrieve as the library; the key from $SEARCH_R3_API_KEY; SIGTERM answers the requests in flight, then exits 0', async () => {
  const model = await lib.Model.load(await tinyModel());
  const embedder = await lib.Embedder.create(model, { sequences: 4, threads: 1 });
  const dir = join(mkdtempSync(join(tempDir(), 'serve-cli-')), 'idx');
  const index = await lib.DocumentIndex.build(dir, corpus, { embedder });
  const want = await index.retriever().retrieve(['moon and tides', 'bread'], { topk: 2 });
  embedder.dispose();
  model.dispose();
  // No --model: the one that encoded the index.
  const { child, url: urlP, exited } = startServe([dir, '--port', '0', '--threads', '1', '--sequences', '4'], { SEARCH_R3_API_KEY: 'k3y' });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    const url = await urlP;
    const post = (body, key = 'k3y') => fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
    assert.equal((await post({ input: 'x' }, 'nope')).status, 401);
    const retrieve = await fetch(`${url}/retrieve`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer k3y' }, body: JSON.stringify({ queries: ['moon and tides', 'bread'], topk: 2 }) });
    assert.deepEqual(await retrieve.json(), { result: want.map((r) => r.docs.map((d) => ({ id: d.id, contents: d.contents }))) });
    const inFlight = [
      ...Array.from({ length: 3 }, (_, i) => post({ input: `reason about ${i}`, mode: 'reason', max_reasoning_tokens: 120 })),
      post({ input: ['direct one', 'direct two'] }),
    ];
    // Wait until the server holds them (the reasoning batch runs for about a second).
    for (;;) {
      const h = await (await fetch(`${url}/health`)).json();
      if (h.queue.running + h.queue.pending >= 3) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGTERM');
    const answers = await Promise.all(inFlight);
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200]);
    const bodies = await Promise.all(answers.map((a) => a.json()));
    assert.deepEqual(bodies.map((b) => b.data.length), [1, 1, 1, 2]);
    assert.ok(bodies[0].data[0].reasoning.length > 0);
    const { code, signal, stderr } = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /SIGTERM: answering the requests in flight, then exiting/);
    await assert.rejects(fetch(`${url}/health`), 'nothing listens after the exit');
  } finally {
    clearTimeout(killer);
    child.kill('SIGKILL');
  }
});

// Nothing a user wrote is ever lost: outputs that exist or are inputs are refused before any work,
// I/O failures are one line naming the user's path, temporary files never outlive a failure, a
// signal or a killed run, and make-model refuses sizes that cannot fit. Runs the real executables.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { root, storiesPath, tempDir } from './helpers/models.mjs';

const require = createRequire(import.meta.url);
const { writeGguf, ggufFileBytes, readGguf, makeModel, MAKE_MODEL_LIMITS, GgufType, GgmlType } = require('../dist/gguf/index.js');
const { writeFileAtomic } = require('../dist/util/fs.js');
const { checkOutputs, checkInputs, formatBytes } = require('../dist/util/output.js');
const { fileError } = require('../dist/util/io-errors.js');
const { reportError } = require('../dist/cli/process.js');
const { UsageError } = require('../dist/cli/args.js');
const execFileP = promisify(execFile);
const cli = join(root, 'bin', 'search-r3.js');
const benchCli = join(root, 'bin', 'search-r3-bench.js');
const NOTES = 'my notes, typed by hand\n';

/** Runs an executable to completion; resolves to { code, stdout, stderr } whatever the exit code. */
async function run(bin, args) {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [bin, ...args], { cwd: root });
    return { code: 0, stdout, stderr };
  } catch (e) {
    if (typeof e.code !== 'number') throw e;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const fresh = () => mkdtempSync(join(tempDir(), 'safety-'));
const temps = (dir) => readdirSync(dir).filter((f) => f.endsWith('.tmp'));
const notes = (dir, name = 'notes.txt') => {
  const p = join(dir, name);
  writeFileSync(p, NOTES);
  return p;
};

function assertOneLine(stderr) {
  assert.equal(stderr.trim().split('\n').length, 1, stderr);
  assert.doesNotMatch(stderr, /unexpected failure|\n\s+at |\.tmp/);
}

test('make-model refuses an existing --out before doing any work; --force replaces it', async () => {
  const dir = fresh();
  const out = notes(dir);
  let r = await run(cli, ['make-model', '--out', out, '--layers', '1']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `search-r3 make-model: --out ${out} already exists; pass --force to replace it\n`);
  assert.equal(readFileSync(out, 'utf8'), NOTES);
  assert.deepEqual(temps(dir), []);
  r = await run(cli, ['make-model', '--out', out, '--layers', '1', '--force', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.fileBytes, statSync(out).size, 'the stated size is the exact size written');
  assert.equal((await readGguf(out)).metadata.get('general.architecture').value, 'qwen2');
});

test('make-model states the exact size it wrote', async () => {
  const dir = fresh();
  const out = join(dir, 'm.gguf');
  const r = await run(cli, ['make-model', '--out', out, '--layers', '1']);
  assert.equal(r.code, 0, r.stderr);
  const size = statSync(out).size;
  assert.match(r.stdout, new RegExp(`, ${formatBytes(size).replace(/[()]/g, '\\$&')}\\n$`));
  assert.match(formatBytes(size), /^\d+\.\d MiB \(\d+ bytes\)$/);
});

test('add-embed-token refuses OUT = IN (./ path, symlink, hard link) even with --force, and an existing OUT without it', async () => {
  const dir = fresh();
  const input = join(dir, 'stock.gguf');
  copyFileSync(storiesPath, input);
  const before = readFileSync(input);
  symlinkSync(input, join(dir, 'link.gguf'));
  linkSync(input, join(dir, 'hard.gguf'));
  for (const out of [input, `${dir}/./stock.gguf`, join(dir, 'link.gguf'), join(dir, 'hard.gguf')]) {
    for (const extra of [[], ['--force']]) {
      const r = await run(cli, ['add-embed-token', input, out, ...extra]);
      assert.equal(r.code, 1, out);
      assert.equal(r.stderr, `search-r3 add-embed-token: OUT ${out} is the same file as IN ${input}; write the output to another file\n`);
    }
  }
  assert.deepEqual(readFileSync(input), before, 'the input is untouched');
  const out = notes(dir);
  let r = await run(cli, ['add-embed-token', input, out]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `search-r3 add-embed-token: OUT ${out} already exists; pass --force to replace it\n`);
  assert.equal(readFileSync(out, 'utf8'), NOTES);
  r = await run(cli, ['add-embed-token', input, out, '--force']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /<\|embed_token\|> = 512 \(extended\)/);
  assert.deepEqual(temps(dir), []);
});

test('search-r3-bench refuses existing --json/--report/--runs files, an output that is the model, and two flags naming one file', async () => {
  const dir = fresh();
  const json = notes(dir, 'bench.json');
  let r = await run(benchCli, ['--retrievers', 'bm25', '--json', json, '--quiet']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `search-r3-bench: --json ${json} already exists; pass --force to replace it\n`);
  assert.equal(r.stdout, '', 'refused before the run');
  const report = notes(dir, 'bench.html');
  r = await run(benchCli, ['--retrievers', 'bm25', '--report', report, '--quiet']);
  assert.equal(r.stderr, `search-r3-bench: --report ${report} already exists; pass --force to replace it\n`);
  const runs = join(dir, 'runs');
  mkdirSync(runs);
  const runFile = notes(runs, 'bm25.run');
  r = await run(benchCli, ['--retrievers', 'bm25', '--runs', runs, '--quiet']);
  assert.equal(r.stderr, `search-r3-bench: --runs ${runFile} already exists; pass --force to replace it\n`);
  const model = join(dir, 'model.gguf');
  copyFileSync(storiesPath, model);
  r = await run(benchCli, ['--retrievers', 'direct', '--model', model, '--json', model, '--force', '--quiet']);
  assert.equal(r.stderr, `search-r3-bench: --json ${model} is the same file as --model ${model}; write the output to another file\n`);
  const both = join(dir, 'both.out');
  r = await run(benchCli, ['--retrievers', 'bm25', '--json', both, '--report', both, '--quiet']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `search-r3-bench: --json ${both} and --report ${both} name the same file\n`);
  for (const f of [json, report, runFile]) assert.equal(readFileSync(f, 'utf8'), NOTES);
});

test('an output into a missing directory is one line naming the user\'s path, from the CLI and from writeGguf', async () => {
  const dir = fresh();
  const out = join(dir, 'no-such-dir', 'm.gguf');
  const r = await run(cli, ['make-model', '--out', out]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `search-r3 make-model: cannot write --out ${out}: directory ${join(dir, 'no-such-dir')} does not exist\n`);
  const contents = { metadata: new Map([['general.architecture', { type: GgufType.STRING, value: 'llama' }]]), tensors: [] };
  await assert.rejects(writeGguf(out, contents), {
    code: 'ERR_FILE', message: `cannot write ${out}: directory ${join(dir, 'no-such-dir')} does not exist`,
  });
  await assert.rejects(writeFileAtomic(out, 'x'), { code: 'ERR_FILE', message: `cannot write ${out}: directory ${join(dir, 'no-such-dir')} does not exist` });
  // An existing directory where the output file should go.
  await assert.rejects(writeFileAtomic(dir, 'x'), { code: 'ERR_FILE', message: `cannot write ${dir}: it is a directory, expected a file` });
  assert.deepEqual(temps(join(dir, '..')).filter((f) => f.startsWith(`.${basename(dir)}.`)), [], 'no temp file left beside it');
});

test('a directory given where a file is expected is one line naming the flag', async () => {
  const dir = fresh();
  const r = await run(cli, ['embed', 'model.gguf', '--input', dir]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `search-r3 embed: --input ${dir} is a directory, expected a file\n`);
  const out = await run(cli, ['make-model', '--out', dir]);
  assert.equal(out.code, 1);
  assert.equal(out.stderr, `search-r3 make-model: cannot write --out ${dir}: it is a directory, expected a file\n`);
  await assert.rejects(checkInputs([{ path: join(dir, 'gone.jsonl'), name: '--train' }]), { code: 'ERR_FILE', message: `--train ${join(dir, 'gone.jsonl')} does not exist` });
  await assert.rejects(checkInputs([{ path: notes(dir), name: '--eval', kind: 'directory' }]), { message: `--eval ${join(dir, 'notes.txt')} is not a directory` });
  await checkInputs([{ path: dir, name: '--train', kind: 'file or directory' }]);
});

test('stdout closed by the reader (| head) exits 0 with no message', async () => {
  const dir = fresh();
  // 3,000 queries with -q print about 2.7 MB, far more than a pipe holds, so writes continue after the close.
  let qrels = '';
  let runText = '';
  for (let q = 0; q < 3000; q++) {
    qrels += `${q} 0 d${q} 1\n`;
    for (let j = 0; j < 5; j++) runText += `${q} Q0 d${q + j} ${j + 1} ${10 - j} run\n`;
  }
  writeFileSync(join(dir, 'qrels'), qrels);
  writeFileSync(join(dir, 'run'), runText);
  const child = spawn(process.execPath, [cli, 'eval', '-q', join(dir, 'qrels'), join(dir, 'run')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.stdout.destroy(); // what head does after its first lines
  const code = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(stderr, '');
  assert.equal(code, 0);
});

test('make-model refuses shapes over the limits, stating the size and the limit, before writing anything', async () => {
  const dir = fresh();
  const out = join(dir, 'big.gguf');
  let r = await run(cli, ['make-model', '--out', out, '--embd', '65536', '--heads', '1024', '--ff', '262144', '--layers', '512']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Expected an integer between 1 and 256 for --layers but received "512"/);
  r = await run(cli, ['make-model', '--out', out, '--embd', '8192', '--heads', '64', '--ff', '32768', '--layers', '200']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'search-r3 make-model: make-model would write at least 707.8 GiB (759973462016 bytes), more than the 32.0 GiB (34359738368 bytes) limit; choose a smaller shape\n');
  assert.deepEqual(readdirSync(dir), []);
  await assert.rejects(makeModel({ out, embd: MAKE_MODEL_LIMITS.embd * 2, heads: 64 }), RangeError);
});

test('make-model refuses a file larger than the free space of the output\'s file system (tiny tmpfs)', async (t) => {
  const dir = fresh();
  const mnt = join(dir, 'small');
  mkdirSync(mnt);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]).status === 0;
  if (!mounted) return t.skip('needs root to mount a 1 MiB tmpfs; the ENOSPC mapping is covered by the injected-errno test');
  try {
    const out = join(mnt, 'm.gguf');
    const r = await run(cli, ['make-model', '--out', out]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `search-r3 make-model: cannot write ${out}: it needs 43.0 MiB (45125312 bytes) but only 1.0 MiB (1048576 bytes) is free in ${mnt}\n`);
    // A write that runs out of space midway (no size known beforehand): one line, no temp file left.
    await assert.rejects(writeFileAtomic(join(mnt, 'x.bin'), Buffer.alloc(2 << 20)), {
      code: 'ERR_FILE', message: `cannot write ${join(mnt, 'x.bin')}: no space left on the device`,
    });
    assert.deepEqual(readdirSync(mnt), []);
  } finally {
    spawnSync('umount', [mnt]);
  }
});

test('ENOSPC while streaming a GGUF names the target, never the temp file, and removes the temp file', async () => {
  const dir = fresh();
  const target = join(dir, 'out.gguf');
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe);
  await probe.close();
  rmSync(join(dir, 'probe'));
  const real = proto.write;
  let calls = 0;
  const m = mock.method(proto, 'write', function write(...args) {
    // The header goes through; the tensor data hits a full disk.
    if (++calls > 1) return Promise.reject(Object.assign(new Error(`ENOSPC: no space left on device, write`), { code: 'ENOSPC', errno: -28, syscall: 'write' }));
    return real.apply(this, args);
  });
  try {
    const contents = {
      metadata: new Map([['general.architecture', { type: GgufType.STRING, value: 'llama' }]]),
      tensors: [{ name: 'w', type: GgmlType.F32, dims: [4], data: new Uint8Array(16) }],
    };
    await assert.rejects(writeGguf(target, contents), { code: 'ERR_FILE', message: `cannot write ${target}: no space left on the device` });
  } finally {
    m.mock.restore();
  }
  assert.deepEqual(readdirSync(dir), []);
});

test('errno errors map to one line; only a real bug prints "unexpected failure"', () => {
  const errno = (code, syscall, path) => Object.assign(new Error(`${code}: x, ${syscall}`), { code, syscall, ...(path ? { path } : {}) });
  assert.equal(fileError(errno('EACCES', 'open', '/x/.m.gguf.1.a.tmp'), 'm.gguf', 'write', '--out').message, 'cannot write --out m.gguf: permission denied');
  assert.equal(fileError(errno('EISDIR', 'read'), 'docs', 'read', '--input').message, 'cannot read --input docs: it is a directory, expected a file');
  const plain = new Error('bug');
  assert.equal(fileError(plain, 'm.gguf', 'write'), plain);
  const lines = [];
  const err = { write: (s) => { lines.push(s); return true; } };
  assert.equal(reportError('search-r3 x', errno('EISDIR', 'read'), err), 1);
  assert.equal(lines.pop(), 'search-r3 x: cannot read: it is a directory, expected a file\n');
  assert.equal(reportError('search-r3 x', errno('EROFS', 'open', '/ro/f'), err), 1);
  assert.equal(lines.pop(), 'search-r3 x: cannot write /ro/f: the file system is read-only\n');
  assert.equal(reportError('search-r3 x', new UsageError('bad flag'), err), 2);
  assert.equal(lines.pop(), 'search-r3 x: bad flag\n');
  assert.equal(reportError('search-r3 x', plain, err), 1);
  assert.match(lines.pop(), /^search-r3 x: unexpected failure: Error: bug\n\s+at /);
});

test('temp files of killed runs (pid no longer alive) are removed by the next write into their directory', async () => {
  const dir = fresh();
  const dead = spawnSync(process.execPath, ['-e', '']).pid; // has exited: its pid is free
  const orphan = join(dir, `.m.gguf.${dead}.mx0abc.tmp`);
  const live = join(dir, `.other.gguf.${process.pid}.mx0abc.tmp`); // this test process is alive
  const unrelated = join(dir, '.hidden.tmp');
  for (const f of [orphan, live, unrelated]) writeFileSync(f, 'partial');
  const r = await run(cli, ['make-model', '--out', join(dir, 'm.gguf'), '--layers', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(orphan), false, 'the orphan is removed');
  assert.equal(existsSync(live), true, 'a live writer\'s temp file is kept');
  assert.equal(existsSync(unrelated), true, 'files that are not ours are kept');
});

for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]]) {
  test(`${signal} during a large make-model exits ${code} and leaves no temp file`, async () => {
    const dir = fresh();
    const out = join(dir, 'big.gguf');
    // The 0.5B shape is 1.9 GiB as f32: the child is still writing when the temp file appears.
    const child = spawn(process.execPath, [cli, 'make-model', '--out', out, '--preset', 'qwen2.5-0.5b'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', (c, s) => resolve({ code: c, signal: s })));
    await new Promise((resolve) => {
      const poll = setInterval(() => { if (temps(dir).length > 0) { clearInterval(poll); resolve(); } }, 20);
    });
    child.kill(signal);
    assert.deepEqual(await exited, { code, signal: null });
    assert.deepEqual(readdirSync(dir), []);
  });
}

test('checkOutputs: API checks for the train commands (inputs by inode, force, missing directory)', async () => {
  const dir = fresh();
  const model = join(dir, 'm.gguf');
  copyFileSync(storiesPath, model);
  const inputs = [{ path: model, name: '--model' }, { path: join(dir, 'pairs.jsonl'), name: '--train' }];
  await assert.rejects(checkOutputs([{ path: model, name: '--out' }], { inputs, force: true }), {
    code: 'ERR_FILE', message: `--out ${model} is the same file as --model ${model}; write the output to another file`,
  });
  await checkOutputs([{ path: join(dir, 'adapter.gguf'), name: '--out' }], { inputs });
  assert.deepEqual(readdirSync(dir), ['m.gguf'], 'checking writes nothing');
  assert.equal(ggufFileBytes({ metadata: new Map(), tensors: [{ name: 'w', type: GgmlType.F32, dims: [4], data: new Uint8Array(16) }] }), 96);
});

// --help on every command: the help names exactly the flags the parser accepts, with their defaults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { root } from './helpers/models.mjs';

const require = createRequire(import.meta.url);
const { COMMAND_SPECS } = require(join(root, 'dist', 'cli', 'main.js'));
const { parse } = require(join(root, 'dist', 'cli', 'args.js'));
const { takeLogLevel } = require(join(root, 'dist', 'cli', 'log-level.js'));
const { resolveStage1 } = require(join(root, 'dist', 'train', 'stage1-config.js'));
const cli = (bin, args) => spawnSync(process.execPath, [join(root, 'bin', bin), ...args], { cwd: root, encoding: 'utf8' });

// Every command and subcommand of both CLIs (the declared ones).
const COMMANDS = ['info', 'generate', 'embed', 'make-model', 'add-embed-token', 'train sft', 'train grpo', 'index build', 'index update', 'index info', 'search', 'serve', 'agent', 'train search-r1'];
const GLOBAL = ['log-level', 'quiet', 'help'];
/** The `--flag` names a help text lists at the start of its option lines. */
const helpFlags = (text) => [...text.matchAll(/^\s+(?:-\w, )?--([a-z][a-z-]*)/gm)].map((m) => m[1]);

test('the declarations cover every command of search-r3', () => {
  assert.deepEqual(COMMAND_SPECS.map((c) => c.name), COMMANDS);
});

for (const name of COMMANDS) {
  test(`search-r3 ${name} --help and -h: exit 0, every flag the parser accepts and nothing else`, () => {
    const spec = COMMAND_SPECS.find((c) => c.name === name);
    const r = cli('search-r3.js', [...name.split(' '), '--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, new RegExp(`^usage: search-r3 ${name} `));
    const listed = helpFlags(r.stdout);
    const accepted = Object.keys(spec.options);
    // Both directions: the parser's flags (and the globals) are all in the help, and no more.
    assert.deepEqual([...listed].sort(), [...new Set([...accepted, ...GLOBAL])].sort());
    for (const [flag, f] of Object.entries(spec.flags)) {
      const lineOf = r.stdout.split('\n').find((l) => l.startsWith(`  --${flag} `) || l === `  --${flag}`);
      assert.ok(lineOf, `--${flag} has a line`);
      if (f.type === 'string') assert.ok(lineOf.startsWith(`  --${flag} ${f.value}`), `--${flag} shows its value name: ${lineOf}`);
      assert.ok(lineOf.includes(f.help), `--${flag} shows its help`);
      if (f.default !== undefined) assert.ok(lineOf.includes(`(default ${f.default})`), `--${flag} shows its default: ${lineOf}`);
    }
    // Each flag in the help, passed alone, is accepted (the globals by takeLogLevel, the rest by the command's parser).
    for (const flag of listed) {
      const argv = spec.options[flag]?.type === 'string' || flag === 'log-level' ? [`--${flag}`, 'none'] : [`--${flag}`];
      const rest = takeLogLevel(argv).argv;
      assert.doesNotThrow(() => parse(rest, spec.options), `--${flag}`);
    }
    const short = cli('search-r3.js', [...name.split(' '), '-h']);
    assert.equal(short.status, 0, short.stderr);
    assert.equal(short.stdout, r.stdout);
  });
}

test('a flag the help does not name is refused by the command, with a suggestion', () => {
  const r = cli('search-r3.js', ['make-model', '--out', 'x.gguf', '--layer', '2']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Unknown option "--layer".*did you mean "--layers"/);
});

test('train sft --help shows the defaults stage 1 resolves, and those that follow the model say so', () => {
  const d = resolveStage1({ model: 'm.gguf', train: [], out: 'a.gguf' });
  const text = cli('search-r3.js', ['train', 'sft', '--help']).stdout;
  for (const [flag, value] of [['steps', d.steps], ['batch', d.batch], ['lora-rank', d.lora.rank], ['temperature', d.temperature], ['margin', d.margin], ['max-tokens', d.maxTokens], ['checkpoint-every', d.checkpointEvery]]) {
    assert.match(text, new RegExp(`--${flag} .*\\(default ${value}\\)`));
  }
  assert.match(text, /--lr X .*\(default 0\.4\/n_embd clamped to \[0\.0001, 0\.004\], from the model\)/);
  assert.match(text, /--loss-weights .*\(default sft=0,kl=0,infonce=1,triplet=0\.5,reasoning=1\)/);
  const train = cli('search-r3.js', ['train', '--help']);
  assert.equal(train.status, 0);
  assert.ok(train.stdout.includes(text));
});

test('search-r3 eval and search-r3-bench keep their own --help; the top-level help points to each command', () => {
  for (const [bin, args, head] of [['search-r3.js', ['eval', '--help'], /search-r3 eval/], ['search-r3-bench.js', ['--help'], /^usage: search-r3-bench/], ['search-r3-bench.js', ['-h'], /^usage: search-r3-bench/], ['search-r3.js', ['--help'], /search-r3 <command> --help/]]) {
    const r = cli(bin, args);
    assert.equal(r.status, 0, `${bin} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, head);
  }
  const top = cli('search-r3.js', ['--help']).stdout;
  for (const c of COMMAND_SPECS) assert.ok(top.includes(c.usageLine), c.name);
});

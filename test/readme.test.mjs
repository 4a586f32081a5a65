// The README's code runs as written: every ```js block, and every `search-r3 …` line of the ```sh
// blocks that can run offline, in a temporary directory where `require('search-r3')` and
// `import … from 'search-r3'` resolve to this package (a node_modules/search-r3 link to the repo)
// and every model file a block names is a model generated with the package's own make-model.
// A ```js fragment block is an illustration, skipped and counted; a `sh` line that cannot run here
// is in SKIPPED with the reason, and an entry that no longer matches a README line fails the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gguf, root, tempDir } from './helpers/models.mjs';

const README = readFileSync(join(root, 'README.md'), 'utf8');

/** `sh` lines not run, with why: each must still be a line of the README. */
const SKIPPED = new Map([
  ['npm install', 'vendors and rebuilds the native addon (minutes; the tests run on the built one)'],
  ['npx search-r3-bench', 'the full benchmark takes minutes; test/bench.test.mjs runs it on a small set'],
  ['npm test', 'the suite this test is part of'],
  ['SEARCH_R3_CUDA=1 npm install', 'needs the CUDA toolkit'],
  ['SEARCH_R3_CUDA=1 SEARCH_R3_CUDA_ARCHITECTURES=90 npm install', 'needs the CUDA toolkit'],
  ['search-r3 info MODEL [--json]', 'synopsis (placeholders and [optional] flags)'],
  ['search-r3 generate MODEL --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--lora FILE] [--threads N] [--json]', 'synopsis'],
  ['search-r3 embed MODEL [--mode direct|reason] [--max-reasoning-tokens N] [--lora FILE] [--document] [--template default|search-r3.0] [--sequences N] [--threads N] [--max-tokens N] [--long-text truncate|error|skip] [--input FILE.jsonl|-] [--json] [TEXT…]', 'synopsis'],
  ['search-r3 make-model --out FILE [--preset tiny|qwen2.5-0.5b] [--arch qwen2|llama|qwen3] [--layers N] [--embd N] [--heads N] [--kv-heads N] [--ff N] [--seed S] [--type f32|f16|q8_0] [--force]', 'synopsis'],
  ['search-r3 add-embed-token IN OUT [--force]', 'synopsis'],
  ['search-r3 eval QRELS RUN [--json] [-m measure…] [-q]', 'synopsis'],
  ['search-r3 train sft --model M.gguf --train FILE --out ADAPTER.gguf [...]', 'synopsis'],
  ['search-r3 agent MODEL --corpus CORPUS [--retriever bm25|dense|hybrid|URL] [...] "question"', 'synopsis'],
  ['search-r3 train sft --model base-embed.gguf --train pairs.jsonl --out stage1.lora.gguf [--eval BEIR_DIR] [--steps 100] [--batch 8] [--accumulate 1] [--lr 1e-4] [--warmup N] [--schedule cosine] [--lora-rank 8] [--lora-alpha 16] [--lora-targets attn_q,attn_k,…] [--loss-weights sft=1,kl=0.1,infonce=1,triplet=0.5] [--temperature 0.05] [--margin 0.2] [--hard-negatives 1] [--template default|search-r3.0] [--max-tokens 256] [--checkpoint-every 50] [--lean-memory] [--resume | --force] [--json]', 'synopsis'],
  ['search-r3 embed base-embed.gguf --lora stage1.lora.gguf "a query"', 'needs the adapter of the synopsis line above (train-run tests train one)'],
  ['search-r3 index build --model embed.gguf --corpus notes --out notes.index', 'needs a notes folder of your files; test/cli-index.test.mjs runs these commands on a generated one'],
  ['search-r3 search notes.index "when is the tax return due"', 'needs the index of the line above'],
  ['search-r3 search notes.index --hybrid --topk 5 "tax return"', 'needs the index of the line above'],
  ['search-r3 index update notes.index --corpus notes', 'needs the index of the line above'],
  ['search-r3 index info notes.index', 'needs the index of the line above'],
  ['search-r3 index build --model M.gguf [--lora A.gguf] [--template NAME] --corpus CORPUS --out DIR [--hnsw] [--mode direct|reason] [--max-reasoning-tokens N] [--sequences N] [--threads N] [--force] [--json]', 'synopsis'],
  ['search-r3 index update DIR --corpus CORPUS [--lora A.gguf] [--sequences N] [--threads N] [--json]', 'synopsis'],
  ['search-r3 index info DIR [--json]', 'synopsis'],
  ['search-r3 search DIR [--mode direct|reason] [--hybrid] [--topk 10] [--threads N] [--json] "query" …', 'synopsis'],
  ['search-r3 serve [DIR] --model M.gguf [...]', 'synopsis'],
  ['search-r3 serve notes.index', 'a server runs until stopped; test/server-cli.test.mjs serves an index and stops it'],
  [`curl -s localhost:8080/retrieve -H 'content-type: application/json' -d '{"queries": ["tax return"], "topk": 3}'`, 'needs the server of the line above'],
  [`curl -s localhost:8080/v1/embeddings -H 'content-type: application/json' -d '{"input": "tax return"}'`, 'needs the server of the line above'],
  ['search-r3 serve [DIR] --model M.gguf [--lora A.gguf] [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--timeout 120] [--body-limit 1048576] [--max-queue 1024] [--batch-delay 50] [--sequences 8] [--max-tokens 512] [--threads N]', 'synopsis (a server runs until stopped; test/server-cli.test.mjs runs it)'],
  ['search-r3 train grpo --model M.gguf --train FILE --corpus CORPUS --out ADAPTER.gguf [...]', 'synopsis'],
  ['search-r3 train search-r1 --model M.gguf --train QA.jsonl --corpus CORPUS --out ADAPTER.gguf [...]', 'synopsis'],
  ['search-r3 train search-r1 --model M.gguf [--lora A.gguf] --train QA.jsonl --corpus CORPUS --out A.gguf [--retriever bm25|dense|hybrid|URL] [--topk 3] [--max-turns 4] [--max-turn-tokens 500] [--context 4096] [--steps 50] [--questions-per-step 4] [--group 4] [--temperature 1] [--top-p 1] [--reward em|em-format] [--warmup-sft N|auto] [--warmup-batch 8] [--warmup-lr X] [--lr X] [--kl 0.001] [--clip-low 0.2] [--clip-high 0.28] [--collapse-window 5] [--collapse-patience 3] [--no-collapse-stop] [--checkpoint-every 25] [--seed S] [--threads N] [--resume | --force] [--json]', 'synopsis'],
  ['search-r3 train grpo --model base-embed.gguf --lora stage1.lora.gguf --train pairs.jsonl --corpus BEIR_DIR --out stage2.lora.gguf [--eval BEIR_DIR] [--steps 50] [--queries-per-step 8] [--group 4] [--max-reasoning-tokens 32] [--temperature 1] [--top-p 1] [--lr X] [--kl 0.01] [--clip-low 0.2] [--clip-high 0.28] [--loss-weights grpo=1,infonce=1] [--hard-negatives 1] [--infonce-temperature 0.05] [--reward dcg=1,format=1] [--refresh touched|budget=F|full] [--full-refresh-every K] [--top-k 10] [--checkpoint-every 50] [--eval-every N] [--seed S] [--threads N] [--resume | --force] [--json]', 'synopsis'],
]);

/** Every fenced block: its language, its tag (```js fragment) and its text. */
function blocks(md) {
  const out = [];
  const re = /^```([^\s`]*)[ \t]*([^\n`]*)\n([\s\S]*?)^```[ \t]*$/gm;
  for (let m; (m = re.exec(md)); ) out.push({ lang: m[1], tag: m[2].trim(), text: m[3], line: md.slice(0, m.index).split('\n').length });
  return out;
}

/** The commands of a sh block: continuations joined, comments and blank lines dropped. */
function shLines(text) {
  // A synopsis wraps its [optional] flags onto indented lines that start with '['.
  return text.replace(/\\\n\s*/g, ' ').replace(/\n\s+(?=\[)/g, ' ')
    .split('\n').map((l) => l.replace(/(^|\s)#.*$/, '').replace(/\s+/g, ' ').trim()).filter(Boolean);
}

/** Splits a command line like a shell does for these plain lines (double quotes only). */
function words(line) {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

/** A fresh directory where `search-r3` resolves to this package. */
function sandbox() {
  const dir = mkdtempSync(join(tempDir(), 'readme-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'search-r3'), 'dir');
  return dir;
}

async function makeModelAt(dir, name, embedToken = true) {
  const out = join(dir, name);
  if (!existsSync(out)) await gguf.makeModel({ preset: 'tiny', seed: 7, out, embedToken });
}

function failure(what, text, r) {
  return `${what} failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}${r.error ? `, ${r.error.message}` : ''}):\n${text}\n--- stderr ---\n${r.stderr}\n--- stdout ---\n${r.stdout}`;
}

const all = blocks(README);
const jsBlocks = all.filter((b) => b.lang === 'js');
const shBlocks = all.filter((b) => b.lang === 'sh');

test('the README has code to check, and only known fence tags', () => {
  assert.ok(jsBlocks.length >= 2, `found ${jsBlocks.length} js blocks`);
  assert.ok(shBlocks.length >= 4, `found ${shBlocks.length} sh blocks`);
  for (const b of [...jsBlocks, ...shBlocks]) assert.ok(b.tag === '' || (b.lang === 'js' && b.tag === 'fragment'), `README.md:${b.line}: unknown fence tag "${b.tag}"`);
  const fragments = jsBlocks.filter((b) => b.tag === 'fragment').length;
  assert.ok(fragments <= 2, `${fragments} js fragment blocks: make them runnable`);
});

for (const b of jsBlocks) {
  test(`README.md:${b.line} js block runs as written`, { skip: b.tag === 'fragment' && 'js fragment' }, async () => {
    const dir = sandbox();
    // Models the block reads (Model.load / LoraTrainer.open / …open('x.gguf')); files it writes are left to it.
    for (const m of b.text.matchAll(/\b(?:load|open)\(\s*'([^']+\.gguf)'/g)) await makeModelAt(dir, m[1]);
    const esm = /^\s*import\s/m.test(b.text);
    const file = join(dir, esm ? 'block.mjs' : 'block.js');
    writeFileSync(file, b.text);
    const r = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, failure(`README.md:${b.line} js block`, b.text, r));
    // The files the block says it writes exist afterwards.
    for (const m of b.text.matchAll(/\bsave\w*\(\s*'([^']+)'/g)) assert.ok(existsSync(join(dir, m[1])), `README.md:${b.line}: ${m[1]} was not written`);
  });
}

// A block whose require line says how to write it in an ES module ("// or, in an ES module: import …")
// runs that way too, so the claim is checked, not just the CommonJS form.
for (const b of jsBlocks) {
  const m = /^(const .*= require\('search-r3'\);) *\/\/ or, in an ES module: (import .* from 'search-r3')$/m.exec(b.text);
  if (!m) continue;
  test(`README.md:${b.line} js block runs as an ES module with the import its comment gives`, async () => {
    const dir = sandbox();
    for (const g of b.text.matchAll(/\b(?:load|open)\(\s*'([^']+\.gguf)'/g)) await makeModelAt(dir, g[1]);
    const text = b.text.replace(m[0], `${m[2]};`);
    writeFileSync(join(dir, 'block.mjs'), text);
    const r = spawnSync(process.execPath, [join(dir, 'block.mjs')], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, failure(`README.md:${b.line} js block as an ES module`, text, r));
  });
}

test('README sh blocks: every search-r3 line runs offline on generated models, or is skipped with a reason', async () => {
  const lines = shBlocks.flatMap((b) => shLines(b.text).map((line) => ({ line, block: b })));
  for (const skipped of SKIPPED.keys()) {
    assert.ok(lines.some((l) => l.line === skipped), `SKIPPED lists a line the README no longer has: ${skipped}`);
  }
  let ran = 0;
  for (const b of shBlocks) {
    const run = shLines(b.text).filter((l) => !SKIPPED.has(l));
    if (run.length === 0) continue;
    const dir = sandbox();
    for (const line of run) {
      const argv = words(line);
      assert.equal(argv[0], 'search-r3', `README.md:${b.line}: "${line}" is neither a search-r3 line nor in SKIPPED`);
      // Inputs named by the line that no earlier line made: generated. add-embed-token's input is a
      // stock model (no <|embed_token|>), its output is the command's to write.
      const outputs = new Set();
      if (argv[1] === 'add-embed-token') outputs.add(argv[3]);
      for (const [i, a] of argv.entries()) {
        if (!a.endsWith('.gguf') || outputs.has(a) || argv[i - 1] === '--out') continue;
        await makeModelAt(dir, a, !(argv[1] === 'add-embed-token' && i === 2));
      }
      const r = spawnSync(process.execPath, [join(root, 'bin', 'search-r3.js'), ...argv.slice(1)], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, failure(`README.md:${b.line} sh line`, line, r));
      ran++;
    }
  }
  assert.ok(ran >= 2, `ran ${ran} sh lines`);
});

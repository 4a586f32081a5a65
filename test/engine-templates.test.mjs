// Named embedding templates: `default` and `search-r3.0` (the released checkpoint's prompts),
// resolved in one place and selectable in the Embedder, stage 1 and the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { lib, root, tempDir, tinyModel, track } from './helpers/models.mjs';

const { Model, Embedder, EMBED_TEMPLATES, DEFAULT_EMBED_TEMPLATE, resolveEmbedTemplate, trainStage1, makeRetrievalTask } = lib;
const execFileP = promisify(execFile);
const cli = join(root, 'bin', 'search-r3.js');

// The texts, verbatim.
const EMBEDDING = 'You are a helpful AI assistant. Your task is to analyze input text and create a high-quality semantic vector embedding, which represents key concepts, relationships, and semantic meaning.';
const REASONING = 'You are a helpful AI assistant. Your task is to enrich user input for more effective embedding representation by adding semantic depth.\n\nFor each input, briefly enhance the content by:\n1. Identifying core concepts and their relationships.\n2. Including key terminology with essential definitions.\n3. Adding contextually relevant synonyms and related terms.\n4. Connecting to related topics and common applications without excessive elaboration.\n\nTo represent the final embedding, you MUST end every response with <|embed_token|>.';

async function run(args) {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [cli, ...args], { cwd: root });
    return { code: 0, stdout, stderr };
  } catch (e) {
    if (typeof e.code !== 'number') throw e;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('resolveEmbedTemplate: names, overrides, and errors that list the names', () => {
  assert.deepEqual(Object.keys(EMBED_TEMPLATES), ['default', 'search-r3.0']);
  assert.deepEqual(resolveEmbedTemplate(undefined), DEFAULT_EMBED_TEMPLATE);
  assert.deepEqual(resolveEmbedTemplate('default'), DEFAULT_EMBED_TEMPLATE);
  assert.deepEqual(resolveEmbedTemplate('search-r3.0'), {
    querySystem: EMBEDDING, documentSystem: EMBEDDING, reasonSystem: REASONING, directAssistant: '<|embed_token|>',
  });
  assert.deepEqual(resolveEmbedTemplate({ querySystem: 'Q' }), { ...DEFAULT_EMBED_TEMPLATE, querySystem: 'Q' });
  assert.throws(() => resolveEmbedTemplate('search-r3'), {
    name: 'RangeError', message: 'Expected one of the template names default, search-r3.0 for template but received "search-r3" of type string',
  });
  // Names are looked up as own keys only: a prototype property is not a template.
  assert.throws(() => resolveEmbedTemplate('toString'), RangeError);
  assert.throws(() => resolveEmbedTemplate({ querySys: 'x' }), { name: 'TypeError', message: /Unknown option "querySys" in template/ });
  assert.throws(() => resolveEmbedTemplate({ reasonSystem: 3 }), { name: 'TypeError', message: /template\.reasonSystem/ });
  assert.throws(() => resolveEmbedTemplate(7), TypeError);
});

test('Embedder with template search-r3.0: every prompt carries the released texts', async () => {
  const model = track(await Model.load(await tinyModel()));
  const embedder = track(await Embedder.create(model, { template: 'search-r3.0', threads: 1 }));
  const render = (side) => model.detokenize(embedder.promptFor('hello', side), { renderSpecial: true });
  assert.equal(render('query'), `<|im_start|>system\n${EMBEDDING}<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n<|embed_token|>`);
  assert.equal(render('document'), render('query'));
  assert.equal(render('reason'), `<|im_start|>system\n${REASONING}<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n`);
  // The reasoning prompt names <|embed_token|>, and that mention is the token itself (parsed as special).
  assert.equal(embedder.promptFor('hello', 'reason').filter((t) => t === model.info.embedTokenId).length, 1);
  await assert.rejects(Embedder.create(model, { template: 'r3' }), { name: 'RangeError', message: /template names default, search-r3\.0 for template/ });
});

test('search-r3 embed --template search-r3.0 embeds with those prompts; an unknown name is a usage error', async () => {
  const modelPath = await tinyModel();
  const r = await run(['embed', modelPath, 'hello', '--template', 'search-r3.0', '--threads', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const cliVector = JSON.parse(r.stdout).vector;
  const model = track(await Model.load(modelPath));
  const [named] = await track(await Embedder.create(model, { template: 'search-r3.0', threads: 1 })).embed(['hello']);
  const [plain] = await track(await Embedder.create(model, { threads: 1 })).embed(['hello']);
  const diff = (a, b) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
  assert.ok(diff(cliVector, Array.from(named.vector)) < 1e-5, 'the CLI vector is the search-r3.0 embedding');
  assert.ok(diff(cliVector, Array.from(plain.vector)) > 1e-3, 'and not the default template\'s');

  const bad = await run(['embed', modelPath, 'hello', '--template', 'r3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Expected one of default, search-r3\.0 for --template but received "r3"/);
  const help = await run(['embed', '--help']);
  assert.match(help.stdout, /--template default\|search-r3\.0/);
  const sft = await run(['train', 'sft', '--model', modelPath, '--train', 'x.jsonl', '--out', join(tempDir(), 'never.gguf'), '--template', 'r3']);
  assert.equal(sft.code, 2);
  assert.match(sft.stderr, /for --template but received "r3"/);
  const benchCli = join(root, 'bin', 'search-r3-bench.js');
  const b = await execFileP(process.execPath, [benchCli, '--template', 'nope', '--retrievers', 'bm25']).catch((e) => e);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /Expected one of default, search-r3\.0 for --template but received "nope"/);
  await assert.rejects(lib.runBench({ template: 'nope', retrievers: ['bm25'] }), { name: 'TypeError', message: /options\.template/ });
});

test('search-r3 train sft --template: the template is part of the resume fingerprint', async () => {
  const dir = tempDir();
  const task = makeRetrievalTask({ seed: 2 });
  const pairs = join(dir, 'tpl-pairs.jsonl');
  (await import('node:fs')).writeFileSync(pairs, task.train.map((r) => JSON.stringify({ query: r.query, positive: r.positive })).join('\n'));
  const out = join(dir, 'tpl.gguf');
  const common = ['train', 'sft', '--model', await tinyModel(), '--train', pairs, '--out', out, '--batch', '2', '--max-tokens', '96', '--threads', '1', '--json'];
  const first = await run([...common, '--steps', '1', '--template', 'search-r3.0']);
  assert.equal(first.code, 0, first.stderr);
  const again = await run([...common, '--steps', '2', '--resume']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /settings differ \(template: saved \{"querySystem":"You are a helpful AI assistant\. Your task is to analyze/);
  const same = await run([...common, '--steps', '2', '--resume', '--template', 'search-r3.0']);
  assert.equal(same.code, 0, same.stderr);
  // In code, the name resolves the same way.
  await assert.rejects(trainStage1({ model: 'm.gguf', train: task.train, out: join(dir, 'x.gguf'), template: 'nope' }), RangeError);
});

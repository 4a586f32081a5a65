#!/usr/bin/env node
// Search-R1 agent rollouts against plain batched generation. Q questions × G samples run as
// parallel continuing sequences: every turn the model thinks, then searches; the documents come
// back from a BM25 retriever and are appended; until the turn limit. Reports
//   - rollout throughput: tokens the model wrote per second of the whole run (prefill, retrieval
//     pauses and appends included), against plain batched generation of the same length (the same
//     Q × G sequences writing as many tokens each in one session.run, end-of-generation ignored);
//   - the same against plain generation that also reads as many prompt tokens per sequence as a
//     rollout decodes as prompt (its documents), which isolates the cost of the agent's turns;
//   - prefill: the tokens the rollouts decoded as prompt (each prompt once per question, then only
//     what each turn appends) against re-reading every transcript every turn (as a stateless
//     engine must: each sample reads its prompt, and each turn re-reads all before it).
//
//   node bench/agent-bench.js [--questions 4] [--group 4] [--turns 4] [--think 40] [--topk 3]
//                             [--layers 4] [--embd 128] [--threads N] [--reps 3] [--json FILE]
//
// The model is generated (make-model preset tiny, widened by --layers/--embd, F32) and scripted as
// test/helpers/scripted-model.mjs does: each token's successor is fixed, so every turn writes
// --think filler tokens, then `<search>\n paris</search>\n`; the weights are still all multiplied,
// so decode cost is the model's. Tiny random models cannot write tags; this one can.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { root, log, median } = require('./tools.js');
const lib = require(path.join(root, 'dist', 'index.js'));

const { values: args } = parseArgs({
  options: {
    questions: { type: 'string' }, group: { type: 'string' }, turns: { type: 'string' }, think: { type: 'string' }, topk: { type: 'string' },
    layers: { type: 'string' }, embd: { type: 'string' }, threads: { type: 'string' }, reps: { type: 'string' }, json: { type: 'string' },
  },
});
function countArg(name, fallback) {
  const v = args[name] === undefined ? fallback : Number(args[name]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(args[name])}`);
  return v;
}
const Q = countArg('questions', 4);
const G = countArg('group', 4);
const turns = countArg('turns', 4);
const think = countArg('think', 40);
const topk = countArg('topk', 3);
const layers = countArg('layers', 4);
const embd = countArg('embd', 128);
const threads = countArg('threads', os.availableParallelism());
const reps = countArg('reps', 3);
const out = path.join(root, '.bench-out');

/** The scripted model: prompt end → filler × think → search; documents' end → the same again. */
async function buildModel() {
  fs.mkdirSync(out, { recursive: true });
  const base = path.join(out, `agent-base-${layers}x${embd}.gguf`);
  if (!fs.existsSync(base)) {
    log(`generating the ${layers}-layer, ${embd}-wide base model (once)…`);
    await lib.makeModel({ out: base, preset: 'tiny', layers, embd, ff: 4 * embd, heads: 4, kvHeads: 2, tieEmbeddings: false, type: 'f32', seed: 7 });
  }
  const probe = await lib.Model.load(base, { vocabOnly: true });
  const tok = (s) => [...probe.tokenize(s, { addSpecial: false, parseSpecial: false })];
  const search = tok('<search>\n paris</search>\n');
  const used = new Set(search);
  // Filler: plain word tokens, distinct, none of the search turn's.
  const filler = [];
  for (let id = 10000; filler.length < think; id++) if (!used.has(id)) filler.push(id);
  const { chain, scriptedModel } = await import('../test/helpers/scripted-model.mjs');
  const t = new Map();
  const promptEnd = tok(lib.buildAgentPrompt('q')).at(-1);
  const infoEnd = tok(lib.informationBlock([{ contents: '"a"\nb' }])).at(-1);
  chain(t, promptEnd, [...filler, ...search]);
  chain(t, infoEnd, filler.slice(0, 1));
  probe.dispose();
  if (t.size > embd) throw new Error(`--think ${think} needs more than --embd ${embd} scripted tokens`);
  const file = path.join(out, `agent-scripted-${layers}x${embd}-${think}.gguf`);
  await scriptedModel(t, base, file);
  return file;
}

/** A BM25 retriever over documents that all mention the query word, so every search returns topk. */
function retriever() {
  const index = new lib.Bm25Index();
  const contents = new Map();
  for (let i = 0; i < 200; i++) {
    const text = `"Place ${i}"\nParis district ${i} lies on bank ${i % 2 === 0 ? 'left' : 'right'} of the river, with ${i} bridges.`;
    index.add(`d${i}`, text);
    contents.set(`d${i}`, text);
  }
  return new lib.Bm25Retriever({ index, contents });
}

const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

async function agentRun(agent, questions) {
  let prefill = 0;
  let retrieveMs = 0;
  let decodeMs = 0;
  const t0 = process.hrtime.bigint();
  const ts = await agent.run(questions, {
    group: G,
    onTurn: (e) => {
      prefill += e.prefillTokens;
      if (e.phase === 'retrieve') retrieveMs += e.ms;
      else decodeMs += e.ms;
    },
  });
  const time = seconds(t0);
  const generated = ts.reduce((n, t) => n + t.segments.filter((s) => s.origin === 'model').reduce((m, s) => m + s.tokens.length, 0), 0);
  // A stateless engine re-reads, before every turn, everything the transcript holds so far.
  let reread = 0;
  for (const t of ts) {
    let before = 0;
    for (const s of t.segments) {
      if (s.origin === 'model') reread += before;
      before += s.tokens.length;
    }
  }
  return { ts, time, prefill, reread, generated, retrieveSeconds: retrieveMs / 1000, decodeSeconds: decodeMs / 1000 };
}

async function plainRun(session, prompts, length, copies = G) {
  const t0 = process.hrtime.bigint();
  const { results } = await session.run(prompts.map((prompt) => ({ prompt, copies, maxTokens: length, ignoreEog: true })));
  const time = seconds(t0);
  return { time, generated: results.reduce((n, r) => n + r.tokens.length, 0) };
}

async function main() {
  const file = await buildModel();
  const model = await lib.Model.load(file);
  const questions = Array.from({ length: Q }, (_, i) => `where is district ${i} of the city`);
  const sequences = Q * G;
  const agent = await lib.Agent.create(model, { retriever: retriever(), topk, maxTurns: turns, maxTurnTokens: think + 16, sequences, threads, contextPerSequence: 2048 });
  const plain = await model.createSession({ sequences, contextSize: sequences * 2048, kvUnified: true, threads });
  log(`${path.basename(file)}: ${Q} questions × ${G} samples = ${sequences} sequences, ${turns} turns of ${think} + 7 tokens, top-${topk} BM25, ${threads} threads`);
  const first = await agentRun(agent, questions); // warm-up, and the length plain generation matches
  const length = first.generated / sequences;
  if (!first.ts.every((t) => t.stop === 'turn-limit' && t.searches.length === turns)) throw new Error('the scripted model did not search every turn');
  const prompts = questions.map((q) => model.tokenize(lib.buildAgentPrompt(q), { addSpecial: true, parseSpecial: true }));
  await plainRun(plain, prompts, 4);
  // The same work without the agent's turns: every sequence reads as many prompt tokens as a
  // rollout decodes as prompt (its share of the prompt, its documents, its turns' last tokens), then writes.
  const readEach = Math.round(first.prefill / sequences);
  const { randomTokens } = require('./tools.js');
  const longPrompts = Array.from({ length: sequences }, (_, i) => randomTokens(readEach, model.info.nVocab, 50 + i));
  const runs = { agent: [], plain: [], same: [] };
  const run = { agent: () => agentRun(agent, questions), plain: () => plainRun(plain, prompts, length), same: () => plainRun(plain, longPrompts, length, 1) };
  for (let r = 0; r < reps; r++) {
    const order = ['agent', 'plain', 'same'];
    for (const way of r % 2 === 0 ? order : order.reverse()) runs[way].push(await run[way]());
  }
  const a = runs.agent[0];
  const agentSeconds = median(runs.agent.map((x) => x.time));
  const plainSeconds = median(runs.plain.map((x) => x.time));
  const result = {
    model: path.basename(file), layers, embd, questions: Q, group: G, sequences, turns, think, topk, threads, reps,
    cpu: os.cpus()[0].model, date: new Date().toISOString(),
    tokensPerSequence: length,
    agent: { seconds: agentSeconds, tokensPerSecond: a.generated / agentSeconds, retrieveSeconds: median(runs.agent.map((x) => x.retrieveSeconds)),
      decodeSeconds: median(runs.agent.map((x) => x.decodeSeconds)), allSeconds: runs.agent.map((x) => x.time) },
    plain: { seconds: plainSeconds, tokensPerSecond: runs.plain[0].generated / plainSeconds, allSeconds: runs.plain.map((x) => x.time) },
    sameWork: { promptTokensEach: readEach, seconds: median(runs.same.map((x) => x.time)), allSeconds: runs.same.map((x) => x.time) },
    prefill: { continued: a.prefill, reread: a.reread },
  };
  result.sameWork.tokensPerSecond = runs.same[0].generated / result.sameWork.seconds;
  result.ratioSameWork = result.agent.tokensPerSecond / result.sameWork.tokensPerSecond;
  result.ratio = result.agent.tokensPerSecond / result.plain.tokensPerSecond;
  result.prefillSaved = 1 - a.prefill / a.reread;
  agent.dispose();
  plain.dispose();
  model.dispose();
  console.log(`| run (${sequences} sequences × ${length} tokens) | time (s, median of ${reps}) | generated tokens/s |`);
  console.log('|---|---:|---:|');
  console.log(`| agent rollouts (${turns} turns, ${turns - 1} batched retrievals) | ${agentSeconds.toFixed(2)} | ${result.agent.tokensPerSecond.toFixed(0)} |`);
  console.log(`| plain batched generation | ${plainSeconds.toFixed(2)} | ${result.plain.tokensPerSecond.toFixed(0)} |`);
  console.log(`| plain, reading ${readEach} prompt tokens each (what a rollout decodes as prompt) | ${result.sameWork.seconds.toFixed(2)} | ${result.sameWork.tokensPerSecond.toFixed(0)} |`);
  console.log(`agent/plain throughput ${result.ratio.toFixed(2)}x, ${result.ratioSameWork.toFixed(2)}x against the same tokens read and written (of the agent's run: ${result.agent.decodeSeconds.toFixed(2)} s in shared decodes, ` +
    `${result.agent.retrieveSeconds.toFixed(3)} s retrieving); ` +
    `prefill ${a.prefill} tokens continuing vs ${a.reread} re-reading (${(100 * result.prefillSaved).toFixed(1)}% saved)`);
  if (args.json) fs.writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

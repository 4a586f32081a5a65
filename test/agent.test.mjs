// The Search-R1 agent: rollouts on continuing sequences with a scripted retriever. The model side
// is a scripted bigram model (test/helpers/scripted-model.mjs) that writes the tags greedily, and the
// random tiny model for batch-independence (its turns are free text, so invalid actions).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { lib, tempDir, tinyModel, track, writeRandomLora } from './helpers/models.mjs';
import { chain, scriptedModel } from './helpers/scripted-model.mjs';

const { main } = createRequire(import.meta.url)('../dist/cli/main.js');
const { Model, Agent, agentMethod, SearchR3Error, INVALID_ACTION_MESSAGE, buildAgentPrompt, informationBlock, trajectorySequence, transcriptText } = lib;

const DOC = { id: 'd1', contents: '"Paris"\nParis is the capital of France.', score: 1 };
const SEARCH = '<search>\n paris</search>\n';
const ANSWER = ' <answer> Paris </answer>';

/** A retriever that answers every query with DOC and records each call's queries. */
function scriptedRetriever() {
  const calls = [];
  return {
    calls,
    name: 'scripted',
    async retrieve(queries, options) {
      calls.push({ queries: [...queries], topk: options.topk });
      return queries.map(() => ({ docs: [DOC] }));
    },
  };
}

let scripted;
let tok;
let probe;
after(() => probe?.dispose());
before(async () => {
  // Token ids come from the real Qwen2 tokenizer of the generated model.
  probe = await Model.load(await tinyModel({ tieEmbeddings: false }));
  tok = (s) => [...probe.tokenize(s, { addSpecial: false, parseSpecial: false })];
  const last = (s) => tok(s).at(-1);
  const eos = probe.info.eos;
  const t = new Map();
  // The search turn: `<` `search` `>\n` ` paris` `</` `search` `>\n`, after the default prompt's `?\n`.
  const [lt, search, gtnl] = tok('<search>\n');
  chain(t, last(buildAgentPrompt('q')), [lt, search, gtnl, ...tok(' paris'), ...tok('</'), search, gtnl]);
  // The answer turn, after the information block and after the corrective message.
  const answer = [...tok(' <answer>'), ...tok(' Paris'), ...tok(' </answer>')];
  chain(t, last(informationBlock([DOC])), answer);
  chain(t, last(INVALID_ACTION_MESSAGE), answer.slice(0, 1));

  // Free text forever after ` hmm` (invalid turns), an end-of-generation token after ` there`.
  chain(t, last('a hmm'), [last('a hmm')]);
  chain(t, last('a there'), [eos]);
  scripted = await scriptedModel(t, await tinyModel({ tieEmbeddings: false }), join(tempDir(), 'scripted.gguf'));
});

async function agent(options = {}, modelPath = scripted) {
  const model = track(await Model.load(modelPath));
  const retriever = scriptedRetriever();
  const a = track(await Agent.create(model, { retriever, sequences: 4, threads: 1, ...options }));
  return { model, a, retriever };
}

const origins = (t) => t.segments.map((s) => s.origin);
const texts = (t) => t.segments.map((s) => s.text);

test('Agent.run: search, information, answer — the transcript, the searches, the mask and the log-probs', async () => {
  const { model, a, retriever } = await agent({ logprobs: true });
  const [t] = await a.run(['capital of France']);
  const prompt = buildAgentPrompt('capital of France');
  assert.deepEqual(origins(t), ['prompt', 'model', 'information', 'model']);
  assert.deepEqual(texts(t), [prompt, SEARCH, informationBlock([DOC]), ANSWER]);
  assert.deepEqual(t.searches, ['paris']);
  assert.equal(t.answer, 'Paris');
  assert.equal(t.stop, 'answer');
  assert.equal(t.turns, 2);
  assert.deepEqual(retriever.calls, [{ queries: ['paris'], topk: 3 }]);
  // Tokens: the prompt as tokenized, the documents tokenized without special tokens, the model's own samples.
  assert.deepEqual([...t.segments[0].tokens], [...model.tokenize(prompt, { addSpecial: true, parseSpecial: true })]);
  assert.deepEqual([...t.segments[2].tokens], tok(informationBlock([DOC])));
  assert.equal(model.detokenize(t.segments[1].tokens), SEARCH);
  // Only what the model wrote is a target.
  const { tokens, targets } = trajectorySequence(t);
  const lengths = t.segments.map((s) => s.tokens.length);
  const expected = t.segments.flatMap((s, i) => new Array(lengths[i]).fill(s.origin === 'model' ? 1 : 0));
  assert.deepEqual([...targets], expected);
  assert.equal(tokens.length, lengths.reduce((x, y) => x + y));
  for (const s of t.segments) {
    if (s.origin !== 'model') assert.equal(s.logprobs, undefined);
    else {
      assert.equal(s.logprobs.length, s.tokens.length);
      // The script's successor has logit 80 against 0 for every other token.
      for (const lp of s.logprobs) assert.ok(lp <= 0 && lp > -1e-3, `log-prob ${lp}`);
    }
  }
});

test('Agent.run: the retriever is called once per turn with every waiting query, question-major, in waves', async () => {
  const { a, retriever } = await agent({ sequences: 8 });
  const qs = ['capital of France', 'seat of the French government?', 'largest city in France'];
  const ts = await a.run(qs, { group: 2 });
  assert.equal(ts.length, 6);
  assert.deepEqual(ts.map((t) => t.question), [qs[0], qs[0], qs[1], qs[1], qs[2], qs[2]]);
  for (const t of ts) assert.equal(t.stop, 'answer');
  assert.deepEqual(retriever.calls.map((c) => c.queries.length), [6]);
  // Four slots hold two questions × 2 samples: two waves, one retrieval each.
  const small = await agent({ sequences: 4 });
  const events = [];
  const again = await small.a.run(qs, { group: 2, onTurn: (e) => events.push(e) });
  assert.deepEqual(again.map(transcriptText), ts.map(transcriptText));
  assert.deepEqual(small.retriever.calls.map((c) => c.queries.length), [4, 2]);
  assert.deepEqual(events.filter((e) => e.phase === 'retrieve').map((e) => [e.wave, e.queries]), [[0, 4], [1, 2]]);
  // The prompt is prefilled once per question and forked: wave 0 prefills two prompts, not four.
  // A sequence decodes the last token it holds only when it next samples (an append's last token,
  // a turn's last sampled token), so each fork decodes its prompt's last token itself and each
  // sample its turn's last token with the documents; the rest of a prompt is read once per question.
  assert.equal(events.find((e) => e.wave === 0 && e.turn === 0).sequences, 2);
  const wave0 = events.filter((e) => e.wave === 0).reduce((n, e) => n + e.prefillTokens, 0);
  const info = ts[0].segments[2].tokens.length;
  assert.equal(wave0, ts[0].segments[0].tokens.length + ts[2].segments[0].tokens.length + 2 + 4 * (info + 1));
});

test('Agent.run: an invalid action gets the corrective message, then the model goes on', async () => {
  const { a, retriever } = await agent({ template: '{question} hmm', maxTurnTokens: 8 });
  const [t] = await a.run(['capital of France']);
  assert.deepEqual(origins(t), ['prompt', 'model', 'correction', 'model']);
  assert.deepEqual(texts(t).slice(1), [' hmm'.repeat(8), INVALID_ACTION_MESSAGE, ANSWER]);
  assert.equal(t.invalidActions, 1);
  assert.equal(t.stop, 'answer');
  assert.deepEqual(retriever.calls, []);
  const { targets } = trajectorySequence(t);
  const n = t.segments.map((s) => s.tokens.length);
  // The corrective text's tokens are out of the loss; the turns on either side are in.
  assert.deepEqual([...targets.subarray(n[0] + n[1], n[0] + n[1] + n[2])], new Array(n[2]).fill(0));
  assert.equal(targets[n[0]], 1);
  assert.equal(targets[targets.length - 1], 1);
});

test('Agent.run: the turn limit, an end-of-generation without an action, and the context budget end trajectories with their reason', async () => {
  const limited = await agent({ template: '{question} hmm', maxTurnTokens: 3, maxTurns: 1 });
  const [t1] = await limited.a.run(['q']);
  assert.equal(t1.stop, 'turn-limit');
  assert.deepEqual(origins(t1), ['prompt', 'model']);
  const eog = await agent({ template: '{question} there' });
  const [t2] = await eog.a.run(['q']);
  assert.equal(t2.stop, 'no-action');
  assert.equal(t2.turns, 1);
  // The documents do not fit after the search: the trajectory ends before reading them.
  const promptLength = eog.model.tokenize(buildAgentPrompt('q'), { addSpecial: true, parseSpecial: true }).length;
  const tight = await agent({ contextPerSequence: promptLength + 7 + 3 });
  const [t3] = await tight.a.run(['q']);
  assert.equal(t3.stop, 'context-budget');
  assert.deepEqual(origins(t3), ['prompt', 'model']);
  assert.deepEqual(t3.searches, ['paris']);
  // A turn cut by the budget (not by maxTurnTokens) ends there too.
  const short = eog.model.tokenize(buildAgentPrompt('q', '{question} hmm'), { addSpecial: true, parseSpecial: true }).length;
  const cut = await agent({ template: '{question} hmm', contextPerSequence: short + 16, maxTurnTokens: 20 });
  const [t4] = await cut.a.run(['q']);
  assert.equal(t4.stop, 'context-budget');
  assert.deepEqual(origins(t4), ['prompt', 'model']);
  assert.equal(t4.segments[1].tokens.length, 16);
  // A prompt longer than the budget ends before any turn.
  const none = await agent({ contextPerSequence: 16 });
  const [t5] = await none.a.run(['q']);
  assert.equal(t5.stop, 'context-budget');
  assert.equal(t5.turns, 0);
});

test('Agent.run: a batch of questions × group equals running each question alone (greedy, random model)', async () => {
  const path = await tinyModel();
  const { a, retriever } = await agent({ sequences: 6, maxTurns: 3, maxTurnTokens: 6, template: 'Q: {question}' }, path);
  const qs = ['alpha beta', 'gamma delta epsilon', 'zeta'];
  const all = await a.run(qs, { group: 2 });
  assert.equal(all.length, 6);
  for (const [i, q] of qs.entries()) {
    const alone = await a.run([q], { group: 2 });
    for (const g of [0, 1]) {
      const batch = all[i * 2 + g];
      assert.deepEqual(batch.segments.map((s) => [s.origin, [...s.tokens]]), alone[g].segments.map((s) => [s.origin, [...s.tokens]]), `question ${i} sample ${g}`);
      assert.equal(batch.stop, alone[g].stop);
    }
  }
  // Free text is never an action: every turn was corrected until the limit.
  for (const t of all) assert.ok(t.stop === 'turn-limit' || t.stop === 'no-action', t.stop);
  assert.deepEqual(retriever.calls, []);
});

test('Agent.run: every sequence is released after a run, an abort and a failing retriever', async () => {
  const { model, a } = await agent({ sequences: 4 });
  const slotsFree = () => {
    const open = Array.from({ length: 4 }, () => a.session.openSequence());
    assert.throws(() => a.session.openSequence(), (e) => e instanceof SearchR3Error && e.code === 'ERR_BUSY');
    for (const s of open) s.dispose();
  };
  for (let i = 0; i < 5; i++) await a.run(['q1', 'q2'], { group: 2 });
  slotsFree();
  const ac = new AbortController();
  await assert.rejects(a.run(['q1', 'q2'], { group: 2, signal: ac.signal, onTurn: (e) => { if (e.turn === 1) ac.abort(); } }),
    (e) => e instanceof SearchR3Error && e.code === 'ERR_ABORTED');
  slotsFree();
  const failing = track(await Agent.create(model, {
    retriever: { name: 'down', async retrieve() { throw new SearchR3Error('ERR_REMOTE', 'retriever down'); } }, sequences: 2, threads: 1,
  }));
  await assert.rejects(failing.run(['q'], { group: 2 }), /retriever down/);
  for (const s of [failing.session.openSequence(), failing.session.openSequence()]) s.dispose();
});

test('Agent.create and run: options are checked with errors that name them', async () => {
  const model = track(await Model.load(scripted));
  const retriever = scriptedRetriever();
  await assert.rejects(Agent.create(model, {}), /options\.retriever/);
  await assert.rejects(Agent.create(model, { retriever, topk: 0 }), RangeError);
  await assert.rejects(Agent.create(model, { retriever, template: 'no slot' }), /\{question\}/);
  await assert.rejects(Agent.create(model, { retriever, topK: 3 }), /topK/);
  await assert.rejects(Agent.create(model, { retriever, cacheType: 'q8_0' }), /options\.cacheType/);
  await assert.rejects(Agent.create(model, { retriever, flashAttention: true }), /options\.flashAttention/);
  const a = track(await Agent.create(model, { retriever, sequences: 2, threads: 1 }));
  await assert.rejects(a.run(['q'], { group: 3 }), /options\.group/);
  await assert.rejects(a.run(['']), /questions\[0\]/);
  await assert.rejects(a.run('q'), TypeError);
  a.dispose();
  await assert.rejects(a.run(['q']), (e) => e.code === 'ERR_DISPOSED');
});

async function cli(...argv) {
  let stdout = '';
  let stderr = '';
  const out = { write: (x) => { stdout += x; return true; } };
  const err = { write: (x) => { stderr += x; return true; } };
  const code = await main(argv, out, err);
  return { code, stdout, stderr };
}

test('search-r3 agent: the trajectory, the answer and the searches, over a FlashRAG corpus with BM25', async () => {
  const corpus = join(tempDir(), 'agent-corpus.jsonl');
  writeFileSync(corpus, [DOC, { id: 'd2', contents: '"Rome"\nRome is the capital of Italy.' }, { id: 'd3', contents: '"Louvre"\nA museum in Paris.' }].map((d) => JSON.stringify({ id: d.id, contents: d.contents })).join('\n') + '\n');
  const json = await cli('agent', scripted, '--corpus', corpus, '--threads', '1', '--json', 'capital of France');
  assert.equal(json.code, 0, json.stderr);
  const r = JSON.parse(json.stdout);
  assert.equal(r.answer, 'Paris');
  assert.deepEqual(r.searches, ['paris']);
  assert.equal(r.stop, 'answer');
  assert.deepEqual(r.segments.map((s) => s.origin), ['prompt', 'model', 'information', 'model']);
  // BM25 ranked the Paris document first for the model's query.
  assert.match(r.segments[2].text, /^\n\n<information>Doc 1\(Title: "Paris"\) Paris is the capital of France\.\nDoc 2\(Title: "Louvre"\)/);
  const text = await cli('agent', scripted, '--corpus', corpus, '--threads', '1', '--topk', '1', 'capital of France');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /\[retrieved\] <information>Doc 1\(Title: "Paris"\)[^\n]*<\/information>\n/);
  assert.doesNotMatch(text.stdout, /Louvre/);
  assert.match(text.stdout, /^answer: Paris$/m);
  assert.match(text.stdout, /^searches: "paris"$/m);
  assert.match(text.stdout, /^turns: 2, stopped: answer$/m);
  // Usage errors: exit 2 with one line naming the problem.
  for (const [argv, re] of [
    [['agent', scripted, 'q'], /missing --corpus/],
    [['agent', scripted, '--corpus', corpus], /missing the question/],
    [['agent', scripted, '--corpus', corpus, '--retriever', 'dense', 'q'], /needs --corpus to be an index directory/],
    [['agent', scripted, '--corpus', corpus, '--retriever', 'tfidf', 'q'], /--retriever/],
    [['agent', scripted, '--corpus', corpus, '--topk', '0', 'q'], /--topk/],
  ]) {
    const r2 = await cli(...argv);
    assert.equal(r2.code, 2, `${argv.join(' ')}: ${r2.stderr}`);
    assert.match(r2.stderr, re);
  }
});

test('agentMethod: the agent as the QA bench method — answer, searches, and tokens written vs read', async () => {
  const { a } = await agent();
  const [out] = await agentMethod(a).answer([{ id: 'q1', question: 'capital of France', goldenAnswers: ['Paris'] }]);
  const [t] = await a.run(['capital of France']);
  const n = t.segments.map((s) => s.tokens.length);
  assert.deepEqual(out, {
    response: SEARCH + informationBlock([DOC]) + ANSWER, answer: 'Paris', searches: 1,
    generatedTokens: n[1] + n[3], promptTokens: n[0] + n[2],
  });
  assert.deepEqual(await agentMethod(a).answer([]), []);
  assert.throws(() => agentMethod({}), TypeError);
});

test('Agent.run: sampled rollouts draw per sample and per turn, the same on every run; a lora is attached to the session', async () => {
  const path = await tinyModel();
  const { model, a } = await agent({ sequences: 4, maxTurns: 2, maxTurnTokens: 6, template: 'Q: {question}', temperature: 1, seed: 3 }, path);
  const ts = await a.run(['alpha beta'], { group: 4 });
  const turns = ts.map((t) => t.segments.filter((s) => s.origin === 'model').map((s) => [...s.tokens].join(',')));
  // Four samples of one prompt, and two turns of one sample, each drew their own tokens.
  assert.ok(new Set(turns.map((t) => t[0])).size > 1, 'the samples all drew the same first turn');
  assert.notEqual(turns[0][0], turns[0][1]);
  const again = await a.run(['alpha beta'], { group: 4 });
  assert.deepEqual(again.map((t) => t.segments.map((s) => [...s.tokens].join(','))), ts.map((t) => t.segments.map((s) => [...s.tokens].join(','))));
  const lora = track(await model.loadLora(await writeRandomLora(path, join(tempDir(), 'agent-lora.gguf'))));
  const withLora = track(await Agent.create(model, { retriever: scriptedRetriever(), lora, sequences: 1, threads: 1 }));
  assert.equal(withLora.session.loras.length, 1);
  assert.equal(withLora.session.loras[0].adapter, lora);
  await assert.rejects(Agent.create(model, { retriever: scriptedRetriever(), lora: {} }), /options\.lora/);
});

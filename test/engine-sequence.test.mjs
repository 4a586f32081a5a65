// Continuing sequences: memory kept between calls, append/generate/fork/dispose, batched steps,
// stop strings whose text and tokens agree, slots and memory released, errors for misuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lib, maxAbsDiff, tinyModel, track } from './helpers/models.mjs';

const { Model, SearchR3Error } = lib;

// f32 KV cache and no flash attention (whose CPU kernel rounds through f16, so its results depend on
// how tokens are batched): a continued sequence then computes bit for bit what one call computes.
async function setup(sessionOptions = {}) {
  const model = track(await Model.load(await tinyModel()));
  const session = track(await model.createSession({ sequences: 4, threads: 1, cacheType: 'f32', flashAttention: 'off', ...sessionOptions }));
  return { model, session };
}

const cat = (...parts) => Int32Array.from(parts.flatMap((p) => [...p]));

function rejectsWith(code, re) {
  return (err) => {
    assert.ok(err instanceof SearchR3Error, `expected SearchR3Error, got ${err}`);
    assert.equal(err.code, code);
    if (re) assert.match(err.message, re);
    return true;
  };
}

test('a conversation continued over three calls gives the tokens and log-probs of one call over the whole text', async () => {
  const { model, session } = await setup();
  const turns = ['User: what is the capital of France?', '\nUser: and of Spain?', '\nUser: thanks, and Italy?'].map((t, i) =>
    model.tokenize(t, { addSpecial: i === 0 }));
  const seq = session.openSequence();
  const parts = [];
  let transcript = new Int32Array(0);
  for (const turn of turns) {
    const before = cat(transcript, turn);
    await seq.append(turn);
    const g = await seq.generate({ maxTokens: 6, logprobs: true });
    // One call over the whole text so far, on a fresh (run) sequence of the same session.
    const [whole] = await session.generate(before, { maxTokens: 6, logprobs: true });
    assert.deepEqual(g.tokens, whole.tokens);
    assert.deepEqual(g.logprobs, whole.logprobs, `log-probs differ by ${maxAbsDiff(g.logprobs, whole.logprobs)}`);
    transcript = cat(before, g.tokens);
    parts.push(g);
    assert.equal(seq.length, transcript.length);
    assert.equal(g.length, transcript.length);
  }
  assert.deepEqual(seq.tokens, transcript);
});

test('the log-probs of a continued sequence are the log-softmax of a full forward pass', async () => {
  const { model, session } = await setup();
  const seq = session.openSequence();
  await seq.append('alpha beta gamma');
  await seq.generate({ maxTokens: 3 });
  await seq.append(' delta');
  const g = await seq.generate({ maxTokens: 4, logprobs: true });
  const all = seq.tokens;
  const { logits } = await session.evaluate(all, { logits: true });
  const n = model.info.nVocab;
  const start = all.length - g.tokens.length;
  for (let i = 0; i < g.tokens.length; i++) {
    const row = logits.subarray((start - 1 + i) * n, (start + i) * n);
    let mx = -Infinity;
    for (const x of row) mx = Math.max(mx, x);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - mx);
    assert.ok(Math.abs(g.logprobs[i] - (row[g.tokens[i]] - mx - Math.log(sum))) < 1e-4, `token ${i}`);
    // Greedy: the sampled token is the row's argmax.
    assert.equal(row.indexOf(mx), g.tokens[i]);
  }
});

test('a fork equals a fresh sequence with the same prefix, and leaves its parent unchanged', async () => {
  const { model, session } = await setup({ sequences: 5 });
  const parent = session.openSequence();
  await parent.append('Sharing a prefix between samples');
  await parent.generate({ maxTokens: 3 });
  const forks = parent.fork(2);
  assert.equal(forks.length, 2);
  for (const f of forks) assert.deepEqual(f.tokens, parent.tokens);
  const fresh = session.openSequence();
  await fresh.append(parent.tokens);
  const got = [];
  for (const [i, seq] of [parent, ...forks].entries()) {
    const opts = { maxTokens: 5, temperature: 1.2, seed: 40 + (i % 2), logprobs: true };
    const g = await seq.generate(opts);
    const [probe] = fresh.fork(1);
    const want = await probe.generate(opts);
    probe.dispose();
    assert.deepEqual(g.tokens, want.tokens, `sequence ${i}`);
    assert.deepEqual(g.logprobs, want.logprobs);
    got.push(g.tokens);
  }
  // Same seed, same sample; another seed, another sample: each fork samples on its own.
  assert.deepEqual(got[0], got[2]);
  assert.notDeepEqual(got[0], got[1]);
  assert.equal(model.detokenize(fresh.tokens), model.detokenize(forks[0].tokens.subarray(0, fresh.length)));
});

test('step advances many sequences in shared decodes, as each alone would, prefilling only what is new', async () => {
  const { model, session } = await setup();
  const prompts = ['one two three', 'the cat sat on the mat', 'x'];
  const seqs = prompts.map(() => session.openSequence());
  const first = await session.step(seqs.map((sequence, i) => ({ sequence, append: prompts[i], maxTokens: 4 + i })));
  const promptLens = prompts.map((p) => model.tokenize(p, { addSpecial: true }).length);
  assert.equal(first.stats.promptTokens, promptLens.reduce((a, b) => a + b, 0));
  // One decode carries all three: 1 prefill + 3..5 sampling steps, not one run per sequence.
  assert.ok(first.stats.decodeCalls <= 6, `decodeCalls ${first.stats.decodeCalls}`);
  const second = await session.step(seqs.map((sequence) => ({ sequence, append: ' more', maxTokens: 3, logprobs: true })));
  const more = model.tokenize(' more', { addSpecial: false }).length;
  // Each continuing sequence re-decodes its last sampled token, then the new text.
  assert.equal(second.stats.promptTokens, 3 * (1 + more));
  for (const [i, seq] of seqs.entries()) {
    const [alone] = await session.generate(seq.tokens.subarray(0, seq.length - 3), { maxTokens: 3, logprobs: true });
    assert.deepEqual(second.results[i].tokens, alone.tokens, `sequence ${i}`);
    assert.deepEqual(second.results[i].logprobs, alone.logprobs);
  }
});

test('a stop string ends generation on a token boundary: text, tokens and memory agree', async () => {
  const { model, session } = await setup();
  const ref = session.openSequence();
  await ref.append('Once upon a time');
  const n = 16;
  const free = await ref.generate({ maxTokens: n, ignoreEog: true });
  const pieces = model.tokenPieces(free.tokens);
  // A stop string that starts inside token k and ends inside token k + 2: the cut must split neither.
  const ascii = (p) => p !== undefined && p.length >= 2 && !/[\uD800-\uDFFF\uFFFD]/.test(p);
  const stopAt = (k) => pieces[k].slice(1) + pieces[k + 1] + pieces[k + 2].slice(0, 1);
  const k = pieces.findIndex((p, i) => i >= 1 && ascii(p) && ascii(pieces[i + 1]) && ascii(pieces[i + 2]) &&
    !pieces.slice(0, i + 2).join('').includes(stopAt(i)));
  assert.ok(k >= 0, `no usable pieces in ${JSON.stringify(pieces)}`);
  const stop = stopAt(k);
  const seq = session.openSequence();
  await seq.append('Once upon a time');
  const g = await seq.generate({ maxTokens: n, ignoreEog: true, stop: ['never appears \u0001', stop] });
  assert.equal(g.finish, 'stop');
  assert.equal(g.stop, stop);
  assert.deepEqual(g.tokens, free.tokens.subarray(0, k + 3));
  assert.equal(g.text, pieces.slice(0, k + 3).join(''));
  assert.equal(g.text, model.detokenize(g.tokens));
  assert.ok(g.text.includes(stop));
  assert.deepEqual(seq.tokens.subarray(seq.length - g.tokens.length), g.tokens);
  // The memory holds exactly what was returned: continuing gives what the unstopped run gave next.
  const rest = await seq.generate({ maxTokens: n - (k + 3), ignoreEog: true });
  assert.deepEqual(cat(g.tokens, rest.tokens), free.tokens);
});

test('memory and slots are released: 200 open/append/generate/fork/dispose rounds on two slots', async () => {
  const { session } = await setup({ sequences: 2 });
  for (let i = 0; i < 200; i++) {
    const seq = session.openSequence();
    await seq.append(`round ${i} of the loop`);
    await seq.generate({ maxTokens: 2 });
    const [f] = seq.fork(1);
    assert.ok(session.info.cachedTokens > 0);
    seq.dispose();
    f.dispose();
    assert.equal(session.info.openSequences, 0);
    assert.equal(session.info.cachedTokens, 0, `round ${i}`);
  }
  // run/generate/evaluate empty the slots they borrow too.
  await session.generate(['a b', 'c d'], { maxTokens: 2 });
  await session.evaluate(Int32Array.from([1, 2, 3]));
  assert.equal(session.info.cachedTokens, 0);
});

test('a sequence disposed while its step runs is freed when the step ends', async () => {
  const { session } = await setup({ sequences: 1 });
  const seq = session.openSequence();
  const running = seq.append('some words to prefill while we dispose');
  seq.dispose();
  await running;
  assert.equal(session.info.openSequences, 0);
  assert.equal(session.info.cachedTokens, 0);
  session.openSequence(); // the slot is free again
});

test('misuse is a clear error: disposed, empty, too long, no free slot, busy', async () => {
  const { model, session } = await setup({ sequences: 2, contextSize: 128 });
  const per = session.info.contextPerSequence;
  const a = session.openSequence();
  const b = session.openSequence();
  assert.throws(() => session.openSequence(), rejectsWith('ERR_BUSY', /2 of the session's 2 sequences are open/));
  assert.throws(() => a.fork(1), rejectsWith('ERR_BUSY', /no free sequence slot/));
  await assert.rejects(session.generate('hi', { maxTokens: 2 }), rejectsWith('ERR_BUSY', /held by open sequences/));
  await assert.rejects(session.evaluate(Int32Array.from([1, 2])), rejectsWith('ERR_BUSY', /held by open sequences/));
  await assert.rejects(a.generate({ maxTokens: 2 }), rejectsWith('ERR_CONTEXT', /is empty: append a prompt/));

  // Too long (contextPerSequence tokens a sequence). The sequence is unchanged afterwards.
  await a.append('short start');
  const before = a.tokens;
  await assert.rejects(a.append(new Int32Array(per).fill(5)), rejectsWith('ERR_CONTEXT', new RegExp(`would exceed the ${per} tokens`)));
  assert.deepEqual(a.tokens, before);
  assert.equal(a.length, before.length);
  await assert.rejects(a.append([model.info.nVocab + 3]), rejectsWith('ERR_CONTEXT', /outside the vocabulary/));
  assert.deepEqual(a.tokens, before);
  // A sequence that fills up ends generation cleanly, with finish 'context'.
  const g = await a.generate({ maxTokens: per + 10, ignoreEog: true });
  assert.equal(g.finish, 'context');
  assert.equal(a.length, per);
  const full = await a.generate({ maxTokens: 5 });
  assert.equal(full.finish, 'context');
  assert.equal(full.tokens.length, 0);

  // One operation at a time.
  await b.append('x');
  const running = b.generate({ maxTokens: 3 });
  assert.throws(() => b.fork(1), rejectsWith('ERR_BUSY'));
  await assert.rejects(a.generate({ maxTokens: 1 }), rejectsWith('ERR_BUSY'));
  await running;

  // Bad arguments.
  await assert.rejects(b.append(42), TypeError);
  await assert.rejects(b.generate({ maxTokens: -1 }), RangeError);
  await assert.rejects(b.generate({ stop: 'x' }), TypeError);
  await assert.rejects(b.generate({ copies: 2 }), /copies/);
  await assert.rejects(session.step([]), TypeError);
  await assert.rejects(session.step([{ sequence: b }, { sequence: b }]), /appears twice/);
  assert.throws(() => b.fork(0), RangeError);

  // Disposed sequence, then disposed session.
  b.dispose();
  b.dispose(); // idempotent
  await assert.rejects(b.generate({ maxTokens: 1 }), rejectsWith('ERR_DISPOSED', /sequence was disposed/));
  assert.throws(() => b.fork(1), rejectsWith('ERR_DISPOSED'));
  session.openSequence(); // its slot is free again
  session.dispose();
  await assert.rejects(a.append('more'), rejectsWith('ERR_DISPOSED', /session of this sequence was disposed/));
  a.dispose(); // never throws
  assert.ok(a.disposed);
});

test('a step that fails leaves every sequence as it was (shared memory full)', async () => {
  // One KV buffer of 256 cells for all sequences: the per-sequence check passes, the decode cannot.
  const { session } = await setup({ sequences: 3, contextSize: 256, batchSize: 64, kvUnified: true });
  const a = session.openSequence();
  const b = session.openSequence();
  await a.append(Int32Array.from({ length: 200 }, (_, i) => 100 + i));
  await b.append(Int32Array.from({ length: 40 }, (_, i) => 500 + i));
  const [c] = b.fork(1);
  const cached = session.info.cachedTokens;
  const tokens = b.tokens;
  await assert.rejects(b.append(new Int32Array(30).fill(9)), rejectsWith('ERR_CONTEXT', /memory has no room/));
  assert.deepEqual(b.tokens, tokens);
  assert.equal(session.info.cachedTokens, cached);
  // b still continues exactly as its untouched fork does.
  const gb = await b.generate({ maxTokens: 3, logprobs: true });
  const gc = await c.generate({ maxTokens: 3, logprobs: true });
  assert.deepEqual(gb.tokens, gc.tokens);
  assert.deepEqual(gb.logprobs, gc.logprobs);
});

test('an aborted step leaves the sequence as it was, and it continues as its untouched fork does', async () => {
  const { session } = await setup({ sequences: 3 });
  const seq = session.openSequence();
  await seq.append('a prefix that stays');
  const [twin] = seq.fork(1);
  const tokens = seq.tokens;
  const cached = session.info.cachedTokens;
  for (const extra of [{ append: new Int32Array(200).fill(11) }, { maxTokens: 1000, ignoreEog: true }]) {
    const ac = new AbortController();
    const running = session.step([{ sequence: seq, maxTokens: 0, ...extra }], { signal: ac.signal });
    ac.abort(); // the worker checks the flag before its first decode
    await assert.rejects(running, rejectsWith('ERR_ABORTED'));
    assert.deepEqual(seq.tokens, tokens);
    assert.equal(session.info.cachedTokens, cached);
  }
  const a = await seq.generate({ maxTokens: 4, logprobs: true });
  const b = await twin.generate({ maxTokens: 4, logprobs: true });
  assert.deepEqual(a.tokens, b.tokens);
  assert.deepEqual(a.logprobs, b.logprobs);
});

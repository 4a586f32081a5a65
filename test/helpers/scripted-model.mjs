// A generated model whose greedy output we choose: every block's output projections are zero, so
// the residual stream is the current token's embedding and the next token depends on it alone (a
// bigram table). Each scripted source token gets a one-hot embedding and its successor's output
// row points at it, so greedy decoding follows `next` exactly (logit 80 against 0: log-prob ≈ 0).
// Tiny models cannot write Search-R1's tags; this one writes them when the script says so.
import { join } from 'node:path';
import { gguf, tempDir, tinyModel } from './models.mjs';

let count = 0;

/**
 * Builds the model from `transitions`, a Map of token id → next token id, and returns its path.
 * At most 64 source tokens (the tiny model's embedding width).
 */
export async function scriptedModel(transitions) {
  const base = await tinyModel({ tieEmbeddings: false });
  const info = await gguf.readGguf(base);
  const embd = info.tensors.find((t) => t.name === 'token_embd.weight');
  const [width, rows] = embd.dims;
  const sources = [...transitions.keys()];
  if (sources.length > width) throw new Error(`at most ${width} scripted source tokens, got ${sources.length}`);
  const tokenEmbd = new Float32Array((await gguf.readTensorBytes(info, 'token_embd.weight')).slice().buffer);
  const output = new Float32Array(width * rows);
  sources.forEach((src, k) => {
    tokenEmbd.fill(0, src * width, (src + 1) * width);
    tokenEmbd[src * width + k] = 1;
    output[transitions.get(src) * width + k] = 10;
  });
  const tensors = await Promise.all(info.tensors.map(async (t) => {
    let data;
    if (t.name === 'token_embd.weight') data = new Uint8Array(tokenEmbd.buffer);
    else if (t.name === 'output.weight') data = new Uint8Array(output.buffer);
    else if (/attn_output\.weight$|ffn_down\.weight$/.test(t.name)) data = new Uint8Array(gguf.tensorBytes(t.type.id, t.dims));
    else data = await gguf.readTensorBytes(info, t.name);
    return { name: t.name, type: t.type.id, dims: t.dims, data };
  }));
  const out = join(tempDir(), `scripted-${count++}.gguf`);
  await gguf.writeGguf(out, { metadata: info.metadata, tensors });
  return out;
}

/**
 * Adds `from → tokens[0] → tokens[1] → …` to `transitions`; throws if a token already leads
 * elsewhere (a bigram table has one successor per token).
 */
export function chain(transitions, from, tokens) {
  let prev = from;
  for (const t of tokens) {
    const had = transitions.get(prev);
    if (had !== undefined && had !== t) throw new Error(`token ${prev} already leads to ${had}, not ${t}`);
    transitions.set(prev, t);
    prev = t;
  }
  return transitions;
}

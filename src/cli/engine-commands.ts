import { Embedder } from '../engine/embedder';
import { Model } from '../engine/model';
import { ggufInfo } from '../gguf/info';
import { readLines } from '../eval/lines';
import { SearchR3Error } from '../util/errors';
import { checkInputs } from '../util/output';
import { startProgress } from '../util/progress';
import { intFlag, numFlag, oneOfFlag, parse, UsageError } from './args';

type Out = NodeJS.WritableStream;

function modelArg(positionals: string[], usage: string): string {
  const path = positionals[0];
  if (!path) throw new UsageError(`missing MODEL; usage: ${usage}`);
  return path;
}

export async function infoCommand(argv: string[], out: Out): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } });
  const path = modelArg(positionals, 'search-r3 info MODEL [--json]');
  // The header alone answers everything: no weights are loaded, so this is instant on any size.
  const { specialTokens, ...rest } = await ggufInfo(path);
  const info = { ...rest, embedTokenId: specialTokens.embed, bos: specialTokens.bos, eos: specialTokens.eos };
  if (values.json) {
    out.write(`${JSON.stringify(info)}\n`);
  } else {
    for (const [k, v] of Object.entries(info)) out.write(`${k.padEnd(16)} ${v ?? '-'}\n`);
  }
  return 0;
}

export async function generateCommand(argv: string[], out: Out): Promise<number> {
  const usage = 'search-r3 generate MODEL --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--lora FILE] [--threads N] [--json]';
  const { values, positionals } = parse(argv, {
    prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' }, seed: { type: 'string' },
    'top-k': { type: 'string' }, 'top-p': { type: 'string' }, lora: { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' },
  });
  const path = modelArg(positionals, usage);
  if (typeof values.prompt !== 'string') throw new UsageError(`missing --prompt; usage: ${usage}`);
  const model = await Model.load(path);
  try {
    const session = await model.createSession({ threads: intFlag(values.threads, 'threads', 1, 1024) });
    if (typeof values.lora === 'string') session.setLoras([{ adapter: await model.loadLora(values.lora), scale: 1 }]);
    const [g] = await session.generate(values.prompt, {
      maxTokens: intFlag(values['max-tokens'], 'max-tokens', 1, 1 << 20) ?? 128,
      temperature: numFlag(values.temperature, 'temperature', 0, 100) ?? 0,
      seed: intFlag(values.seed, 'seed', 0, 0xffffffff) ?? 0,
      topK: intFlag(values['top-k'], 'top-k', 0) ?? 0,
      topP: numFlag(values['top-p'], 'top-p', 0, 1) ?? 1,
      logprobs: true,
    });
    if (values.json) {
      out.write(`${JSON.stringify({ text: g!.text, tokens: Array.from(g!.tokens), logprobs: Array.from(g!.logprobs ?? []), finish: g!.finish })}\n`);
    } else {
      out.write(`${g!.text}\n`);
    }
  } finally {
    model.dispose();
  }
  return 0;
}

async function readInputs(file: string): Promise<{ id: string; text: string }[]> {
  const items: { id: string; text: string }[] = [];
  // readLines: `-` is stdin, and a missing file is a one-line ERR_FILE.
  const rl = readLines(file, 'input file');
  try {
    for await (const { text: raw, line } of rl) {
      if (raw.trim() === '') continue;
      let rec: unknown;
      try {
        rec = JSON.parse(raw);
      } catch {
        throw new SearchR3Error('ERR_FORMAT', `${file}:${line}: not valid JSON`);
      }
      const r = rec as { id?: unknown; text?: unknown };
      if (typeof rec !== 'object' || rec === null || typeof r.text !== 'string') {
        throw new SearchR3Error('ERR_FORMAT', `${file}:${line}: expected an object with a string "text" (and an optional "id")`);
      }
      items.push({ id: r.id === undefined ? String(items.length) : String(r.id), text: r.text });
    }
  } finally {
    await rl.return(undefined);
  }
  return items;
}

export async function embedCommand(argv: string[], out: Out): Promise<number> {
  const usage = 'search-r3 embed MODEL [--mode direct|reason] [--max-reasoning-tokens N] [--lora FILE] [--document] [--sequences N] [--threads N] [--input FILE.jsonl|-] [--json] [TEXT…]';
  const { values, positionals } = parse(argv, {
    mode: { type: 'string' }, 'max-reasoning-tokens': { type: 'string' }, lora: { type: 'string' }, input: { type: 'string' },
    json: { type: 'boolean' }, sequences: { type: 'string' }, threads: { type: 'string' }, document: { type: 'boolean' },
  });
  const path = modelArg(positionals, usage);
  const items = positionals.slice(1).map((text, i) => ({ id: String(i), text }));
  if (typeof values.input === 'string') {
    // `-` is standard input, not a file to check.
    if (values.input !== '-') await checkInputs([{ path: values.input, name: '--input' }]);
    items.push(...(await readInputs(values.input)));
  }
  if (items.length === 0) throw new UsageError(`nothing to embed: give TEXT arguments or --input FILE.jsonl; usage: ${usage}`);
  const model = await Model.load(path);
  try {
    const lora = typeof values.lora === 'string' ? await model.loadLora(values.lora) : undefined;
    const embedder = await Embedder.create(model, {
      mode: oneOfFlag(values.mode, 'mode', ['direct', 'reason'] as const) ?? 'direct',
      maxReasoningTokens: intFlag(values['max-reasoning-tokens'], 'max-reasoning-tokens', 1, 1 << 20),
      sequences: intFlag(values.sequences, 'sequences', 1, 256),
      threads: intFlag(values.threads, 'threads', 1, 1024),
      lora,
    });
    const progress = startProgress('embed', items.length, { unit: 'texts', silent: items.length < 8 });
    let done = 0;
    const texts = items.map((i) => i.text);
    const onProgress = (n: number): void => { progress.tick(n - done); done = n; };
    const results = values.document ? await embedder.embedDocuments(texts, { onProgress }) : await embedder.embed(texts, { onProgress });
    progress.stop();
    results.forEach((r, i) => {
      const id = items[i]!.id;
      if (values.json) {
        out.write(`${JSON.stringify({ id, vector: Array.from(r.vector), reasoning: r.reasoning, tokens: r.reasoningTokens, finish: r.finish, truncated: r.truncated })}\n`);
      } else {
        const head = Array.from(r.vector.slice(0, 4), (x) => x.toFixed(4)).join(', ');
        out.write(`${id}\t${r.finish}\t${r.reasoningTokens} reasoning tokens\t[${head}, …] (${r.vector.length} dims)\n`);
        if (r.reasoning) out.write(`  reasoning: ${r.reasoning.replace(/\s+/g, ' ').trim()}\n`);
      }
    });
    embedder.dispose();
  } finally {
    model.dispose();
  }
  return 0;
}

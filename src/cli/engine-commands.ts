import { Embedder, EMBEDDER_DEFAULTS } from '../engine/embedder';
import { Model } from '../engine/model';
import { EMBED_TEMPLATE_NAMES, type LongTextPolicy, type PromptSide } from '../engine/templates';
import { ggufInfo } from '../gguf/info';
import { readLines } from '../eval/lines';
import { SearchR3Error } from '../util/errors';
import { checkInputs } from '../util/output';
import { startProgress } from '../util/progress';
import { intFlag, numFlag, oneOfFlag, UsageError } from './args';
import { defineCommand } from './flags';

type Out = NodeJS.WritableStream;

/** The generation defaults of `search-r3 generate` (greedy, so a run repeats). */
const GENERATE_DEFAULTS = { maxTokens: 128, temperature: 0, seed: 0, topK: 0, topP: 1 } as const;

const threadsFlag = { type: 'string', value: 'N', default: 'all hardware threads', help: 'CPU threads' } as const;
const loraFlag = { type: 'string', value: 'FILE', help: 'LoRA adapter GGUF applied at scale 1' } as const;
/** `--template NAME`, shared by `embed` and `train sft` so both name the same table. */
export const templateFlag = { type: 'string', value: EMBED_TEMPLATE_NAMES.join('|'), default: 'default', help: "prompt wording; search-r3.0 = the released checkpoint's prompts" } as const;

/** `search-r3 info`. */
export const INFO = defineCommand({
  name: 'info', usage: 'MODEL', summary: "Prints a GGUF's metadata from its header (no weights are loaded).",
  flags: { json: { type: 'boolean', help: 'one JSON object instead of a table' } },
});

/** `search-r3 generate`. */
export const GENERATE = defineCommand({
  name: 'generate', usage: 'MODEL --prompt TEXT', summary: 'Generates a completion of the prompt.',
  flags: {
    prompt: { type: 'string', value: 'TEXT', help: 'the prompt (required)' },
    'max-tokens': { type: 'string', value: 'N', default: GENERATE_DEFAULTS.maxTokens, help: 'most tokens generated' },
    temperature: { type: 'string', value: 'T', default: GENERATE_DEFAULTS.temperature, help: 'sampling temperature, 0 = greedy' },
    'top-k': { type: 'string', value: 'K', default: GENERATE_DEFAULTS.topK, help: 'sample from the K likeliest tokens, 0 = all' },
    'top-p': { type: 'string', value: 'P', default: GENERATE_DEFAULTS.topP, help: 'nucleus sampling mass' },
    seed: { type: 'string', value: 'S', default: GENERATE_DEFAULTS.seed, help: 'sampling seed' },
    lora: loraFlag,
    threads: threadsFlag,
    json: { type: 'boolean', help: 'text, tokens, logprobs and finish reason as one JSON line' },
  },
});

/** `search-r3 embed`. */
export const EMBED = defineCommand({
  name: 'embed', usage: 'MODEL [TEXT…]', summary: 'Embeds TEXT arguments and/or the records of --input, one line per text.',
  flags: {
    mode: { type: 'string', value: 'direct|reason', default: EMBEDDER_DEFAULTS.mode, help: 'embed at once, or reason first' },
    'max-reasoning-tokens': { type: 'string', value: 'N', default: EMBEDDER_DEFAULTS.maxReasoningTokens, help: 'reasoning budget per text in reason mode' },
    lora: loraFlag,
    document: { type: 'boolean', help: 'embed as documents (the document side of the template)' },
    template: templateFlag,
    sequences: { type: 'string', value: 'N', default: EMBEDDER_DEFAULTS.sequences, help: 'texts decoded in parallel' },
    threads: threadsFlag,
    input: { type: 'string', value: 'FILE.jsonl|-', help: 'JSONL records {"id"?, "text"} to embed; - is stdin' },
    'max-tokens': { type: 'string', value: 'N', default: EMBEDDER_DEFAULTS.contextPerSequence, help: 'token budget per text (its sequence); the engine may round it up' },
    'long-text': { type: 'string', value: 'truncate|error|skip', default: 'truncate', help: 'a text over the budget: shorten it (counted), stop naming FILE:LINE, or leave it out' },
    json: { type: 'boolean', help: 'one JSON line per text with the whole vector' },
  },
});

function modelArg(positionals: string[], usage: string): string {
  const path = positionals[0];
  if (!path) throw new UsageError(`missing MODEL; usage: ${usage}`);
  return path;
}

export async function infoCommand(argv: string[], out: Out): Promise<number> {
  const args = INFO.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  const path = modelArg(positionals, INFO.usageLine);
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
  const usage = GENERATE.usageLine;
  const args = GENERATE.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  const path = modelArg(positionals, usage);
  if (typeof values.prompt !== 'string') throw new UsageError(`missing --prompt; usage: ${usage}`);
  const model = await Model.load(path);
  try {
    const session = await model.createSession({ threads: intFlag(values.threads, 'threads', 1, 1024) });
    if (typeof values.lora === 'string') session.setLoras([{ adapter: await model.loadLora(values.lora), scale: 1 }]);
    const [g] = await session.generate(values.prompt, {
      maxTokens: intFlag(values['max-tokens'], 'max-tokens', 1, 1 << 20) ?? GENERATE_DEFAULTS.maxTokens,
      temperature: numFlag(values.temperature, 'temperature', 0, 100) ?? GENERATE_DEFAULTS.temperature,
      seed: intFlag(values.seed, 'seed', 0, 0xffffffff) ?? GENERATE_DEFAULTS.seed,
      topK: intFlag(values['top-k'], 'top-k', 0) ?? GENERATE_DEFAULTS.topK,
      topP: numFlag(values['top-p'], 'top-p', 0, 1) ?? GENERATE_DEFAULTS.topP,
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

/** One text to embed, with where it came from (`FILE:LINE`, `stdin:LINE`, `argument N`) for messages. */
interface InputItem { id: string; text: string; where: string }

async function readInputs(file: string): Promise<InputItem[]> {
  const items: InputItem[] = [];
  const source = file === '-' ? 'stdin' : file;
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
      items.push({ id: r.id === undefined ? String(items.length) : String(r.id), text: r.text, where: `${source}:${line}` });
    }
  } finally {
    await rl.return(undefined);
  }
  return items;
}

/**
 * The README's "Long texts" rule for records: a text over the per-text budget is shortened
 * (counted on stderr), refused naming its record and line (`error`), or left out and reported
 * (`skip`). Returns the records to embed.
 */
function applyLongText(embedder: Embedder, items: InputItem[], side: PromptSide, policy: LongTextPolicy): InputItem[] {
  const perText = embedder.session.info.contextPerSequence;
  const kept: InputItem[] = [];
  let shortened = 0;
  let budget = perText;
  for (const item of items) {
    const fitted = embedder.fit(item.text, side);
    budget = fitted.budget;
    if (!fitted.truncated) {
      kept.push(item);
      continue;
    }
    const needs = `needs ${fitted.needed + perText - fitted.budget} tokens, more than the ${perText} of --max-tokens`;
    if (policy === 'error') {
      throw new SearchR3Error('ERR_CONTEXT', `${item.where}: record "${item.id}" ${needs}; shorten it, raise --max-tokens or pass --long-text truncate|skip`);
    }
    if (policy === 'skip') {
      process.stderr.write(`search-r3 embed: skipped record "${item.id}" (${item.where}): it ${needs}\n`);
      continue;
    }
    shortened++;
    kept.push(item);
  }
  if (shortened > 0) process.stderr.write(`search-r3 embed: ${shortened} of ${items.length} texts were shortened to ${budget} tokens (see --long-text, --max-tokens)\n`);
  const skipped = items.length - kept.length;
  if (skipped > 0) process.stderr.write(`search-r3 embed: ${skipped} of ${items.length} texts were skipped as too long\n`);
  return kept;
}

export async function embedCommand(argv: string[], out: Out): Promise<number> {
  const usage = EMBED.usageLine;
  const args = EMBED.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  const longText = oneOfFlag(values['long-text'], 'long-text', ['truncate', 'error', 'skip'] as const) ?? 'truncate';
  const maxTokens = intFlag(values['max-tokens'], 'max-tokens', 16, 1 << 20);
  const mode = oneOfFlag(values.mode, 'mode', ['direct', 'reason'] as const) ?? EMBEDDER_DEFAULTS.mode;
  const path = modelArg(positionals, usage);
  const items: InputItem[] = positionals.slice(1).map((text, i) => ({ id: String(i), text, where: `argument ${i + 1}` }));
  if (typeof values.input === 'string') {
    // `-` is stdin (readLines reads it); only a real path is checked up front.
    if (values.input !== '-') await checkInputs([{ path: values.input, name: '--input' }]);
    items.push(...(await readInputs(values.input)));
  }
  if (items.length === 0) throw new UsageError(`nothing to embed: give TEXT arguments or --input FILE.jsonl; usage: ${usage}`);
  const model = await Model.load(path);
  try {
    const lora = typeof values.lora === 'string' ? await model.loadLora(values.lora) : undefined;
    const embedder = await Embedder.create(model, {
      mode,
      maxReasoningTokens: intFlag(values['max-reasoning-tokens'], 'max-reasoning-tokens', 1, 1 << 20),
      sequences: intFlag(values.sequences, 'sequences', 1, 256),
      threads: intFlag(values.threads, 'threads', 1, 1024),
      contextPerSequence: maxTokens,
      template: oneOfFlag(values.template, 'template', EMBED_TEMPLATE_NAMES),
      lora,
    });
    const kept = applyLongText(embedder, items, values.document ? 'document' : mode === 'reason' ? 'reason' : 'query', longText);
    const progress = startProgress('embed', kept.length, { unit: 'texts', silent: kept.length < 8 });
    let done = 0;
    const texts = kept.map((i) => i.text);
    const onProgress = (n: number): void => { progress.tick(n - done); done = n; };
    const results = values.document ? await embedder.embedDocuments(texts, { onProgress }) : await embedder.embed(texts, { onProgress });
    progress.stop();
    results.forEach((r, i) => {
      const id = kept[i]!.id;
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

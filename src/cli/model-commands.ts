import { addEmbedToken } from '../gguf/add-embed-token';
import { MAKE_MODEL_LIMITS as LIMITS, makeModel, planModel, type ModelWeightType } from '../gguf/make-model';
import { MODEL_PRESET_NAMES, type ModelPresetName } from '../gguf/presets';
import { checkOutputs, formatBytes } from '../util/output';
import { intFlag, oneOfFlag, UsageError } from './args';
import { defineCommand } from './flags';

type Out = NodeJS.WritableStream;

// make-model's defaults, as the library resolves them (planning writes nothing).
const PLAN = planModel({ out: 'default.gguf' });
const shapeFlag = (key: 'layers' | 'embd' | 'heads' | 'kvHeads' | 'ff', help: string) =>
  ({ type: 'string', value: 'N', default: `${PLAN.shape[key]}, from --preset`, help: `${help}, at most ${LIMITS[key]}` }) as const;

/** `search-r3 make-model`. */
export const MAKE_MODEL = defineCommand({
  name: 'make-model', usage: '--out FILE', summary: 'Writes a GGUF model with random weights and <|embed_token|>, for tests, demos and benchmarks.',
  flags: {
    out: { type: 'string', value: 'FILE', help: 'the GGUF to write (required)' },
    preset: { type: 'string', value: MODEL_PRESET_NAMES.join('|'), default: PLAN.preset, help: 'named shape; the flags below override it' },
    arch: { type: 'string', value: 'qwen2|llama|qwen3', default: `${PLAN.shape.arch}, from --preset`, help: 'architecture' },
    layers: shapeFlag('layers', 'transformer blocks'),
    embd: shapeFlag('embd', 'hidden width'),
    heads: shapeFlag('heads', 'attention heads'),
    'kv-heads': shapeFlag('kvHeads', 'key/value heads'),
    ff: shapeFlag('ff', 'feed-forward width'),
    seed: { type: 'string', value: 'S', default: PLAN.seed, help: 'weights seed; the same seed writes the same bytes' },
    type: { type: 'string', value: 'f32|f16|q8_0', default: PLAN.type, help: 'storage type of the weight matrices' },
    json: { type: 'boolean', help: 'a JSON summary instead of a sentence' },
    force: { type: 'boolean', help: 'replace FILE if it exists' },
  },
});

/** `search-r3 add-embed-token`. */
export const ADD_EMBED_TOKEN = defineCommand({
  name: 'add-embed-token', usage: 'IN OUT', summary: 'Copies the GGUF IN to OUT with <|embed_token|> added to its vocabulary.',
  flags: {
    json: { type: 'boolean', help: 'a JSON summary instead of a sentence' },
    force: { type: 'boolean', help: 'replace OUT if it exists' },
  },
});

export async function makeModelCommand(argv: string[], out: Out): Promise<number> {
  const usage = MAKE_MODEL.usageLine;
  const args = MAKE_MODEL.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}; usage: ${usage}`);
  if (typeof values.out !== 'string') throw new UsageError(`missing --out FILE; usage: ${usage}`);
  await checkOutputs([{ path: values.out, name: '--out' }], { force: values.force === true });
  const plan = await makeModel({
    out: values.out,
    preset: oneOfFlag(values.preset, 'preset', MODEL_PRESET_NAMES as readonly ModelPresetName[]),
    arch: oneOfFlag(values.arch, 'arch', ['qwen2', 'llama', 'qwen3'] as const),
    layers: intFlag(values.layers, 'layers', 1, LIMITS.layers),
    embd: intFlag(values.embd, 'embd', 1, LIMITS.embd),
    heads: intFlag(values.heads, 'heads', 1, LIMITS.heads),
    kvHeads: intFlag(values['kv-heads'], 'kv-heads', 1, LIMITS.kvHeads),
    ff: intFlag(values.ff, 'ff', 1, LIMITS.ff),
    seed: intFlag(values.seed, 'seed', 0, 0xffffffff),
    type: oneOfFlag(values.type, 'type', ['f32', 'f16', 'q8_0'] as const satisfies readonly ModelWeightType[]),
  });
  const summary = { out: values.out, ...plan.shape, type: plan.type, seed: plan.seed, parameters: plan.parameters, embedTokenId: plan.embedTokenId, fileBytes: plan.fileBytes };
  out.write(values.json ? `${JSON.stringify(summary)}\n` : `wrote ${values.out}: ${plan.shape.arch}, ${plan.shape.layers} layers, n_embd ${plan.shape.embd}, ${plan.type}, ${(plan.parameters / 1e6).toFixed(1)}M parameters, <|embed_token|> = ${plan.embedTokenId}, ${formatBytes(plan.fileBytes)}\n`);
  return 0;
}

export async function addEmbedTokenCommand(argv: string[], out: Out): Promise<number> {
  const usage = ADD_EMBED_TOKEN.usageLine;
  const args = ADD_EMBED_TOKEN.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  if (positionals.length !== 2) throw new UsageError(`expected IN and OUT; usage: ${usage}`);
  await checkOutputs([{ path: positionals[1]!, name: 'OUT' }], { inputs: [{ path: positionals[0]!, name: 'IN' }], force: values.force === true });
  const res = await addEmbedToken(positionals[0]!, positionals[1]!);
  out.write(values.json ? `${JSON.stringify(res)}\n` : `wrote ${positionals[1]}: <|embed_token|> = ${res.tokenId} (${res.mode})\n`);
  return 0;
}

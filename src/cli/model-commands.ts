import { addEmbedToken } from '../gguf/add-embed-token';
import { MAKE_MODEL_LIMITS as LIMITS, makeModel, type ModelWeightType } from '../gguf/make-model';
import { MODEL_PRESET_NAMES, type ModelPresetName } from '../gguf/presets';
import { checkOutputs, formatBytes } from '../util/output';
import { intFlag, oneOfFlag, parse, UsageError } from './args';

type Out = NodeJS.WritableStream;

export async function makeModelCommand(argv: string[], out: Out): Promise<number> {
  const usage = 'search-r3 make-model --out FILE [--arch qwen2|llama|qwen3] [--layers N] [--embd N] [--heads N] [--kv-heads N] [--ff N] [--seed S] [--type f32|f16|q8_0] [--preset NAME] [--force]';
  const { values, positionals } = parse(argv, {
    out: { type: 'string' }, arch: { type: 'string' }, layers: { type: 'string' }, embd: { type: 'string' }, heads: { type: 'string' },
    'kv-heads': { type: 'string' }, ff: { type: 'string' }, seed: { type: 'string' }, type: { type: 'string' }, preset: { type: 'string' },
    json: { type: 'boolean' }, force: { type: 'boolean' },
  });
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
  const usage = 'search-r3 add-embed-token IN OUT [--force]';
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, force: { type: 'boolean' } });
  if (positionals.length !== 2) throw new UsageError(`expected IN and OUT; usage: ${usage}`);
  await checkOutputs([{ path: positionals[1]!, name: 'OUT' }], { inputs: [{ path: positionals[0]!, name: 'IN' }], force: values.force === true });
  const res = await addEmbedToken(positionals[0]!, positionals[1]!);
  out.write(values.json ? `${JSON.stringify(res)}\n` : `wrote ${positionals[1]}: <|embed_token|> = ${res.tokenId} (${res.mode})\n`);
  return 0;
}

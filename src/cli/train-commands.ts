import { LORA_MODULES, LORA_TARGETS } from '../train/trainer';
import { trainStage1 } from '../train/stage1';
import { resolveStage1, STAGE1_LR_RULE, type Stage1LossWeights } from '../train/stage1-config';
import { LR_SCHEDULE_KINDS } from '../train/schedule';
import { intFlag, listFlag, numFlag, oneOfFlag, UsageError } from './args';
import { EMBED_TEMPLATE_NAMES } from '../engine/templates';
import { templateFlag } from './engine-commands';
import { defineCommand } from './flags';
import { TRAIN_GRPO, trainGrpoCommand } from './train-grpo-command';
import { TRAIN_SEARCH_R1, trainSearchR1Command } from './train-search-r1-command';

type Out = NodeJS.WritableStream;

// Stage 1's defaults as the library resolves them; those that follow the model or another flag are said so.
const D = resolveStage1({ model: 'model.gguf', train: [], out: 'adapter.gguf' });
const { perWidth, min: lrMin, max: lrMax } = STAGE1_LR_RULE;
const str = (value: string, dflt: string | number | undefined, help: string) => ({ type: 'string', value, default: dflt, help }) as const;

/** `search-r3 train sft` (stage 1). */
export const TRAIN_SFT = defineCommand({
  name: 'train sft', usage: '--model M.gguf --train FILE|BEIR_DIR --out ADAPTER.gguf',
  summary: 'Stage 1: supervised contrastive LoRA fine-tuning; writes the adapter, a resumable state and a step log beside --out.',
  flags: {
    model: str('M.gguf', undefined, 'base model with <|embed_token|> (required)'),
    train: str('FILE|BEIR_DIR', undefined, 'training pairs: JSONL, or a BEIR directory (train split) (required)'),
    out: str('ADAPTER.gguf', undefined, 'adapter to write (required)'),
    eval: str('BEIR_DIR', undefined, 'held-out split (test) scored by nDCG@10 before, during and after'),
    steps: str('N', D.steps, 'optimizer steps'),
    batch: str('B', D.batch, 'pairs per micro-batch'),
    accumulate: str('K', D.accumulate, 'micro-batches per optimizer step'),
    lr: str('X', `${perWidth}/n_embd clamped to [${lrMin}, ${lrMax}], from the model`, 'peak learning rate'),
    warmup: str('N', `${(D.warmupSteps / D.steps) * 100}% of --steps`, 'linear warm-up steps'),
    schedule: str(LR_SCHEDULE_KINDS.join('|'), D.schedule, 'learning-rate schedule after warm-up'),
    'lora-rank': str('R', D.lora.rank, 'LoRA rank'),
    'lora-alpha': str('A', `${D.lora.alpha / D.lora.rank} × --lora-rank`, 'LoRA scale numerator'),
    'lora-targets': str(LORA_MODULES[0] + ',…', `all of ${LORA_MODULES.join(',')}`, 'adapted matrices; add output for the output head (a model with its own output.weight)'),
    'loss-weights': str('NAME=W,…', Object.entries(D.losses).map(([k, v]) => `${k}=${v}`).join(','), 'loss weights, NAME one of sft, kl, infonce, triplet, reasoning (SFT on traces)'),
    temperature: str('T', D.temperature, 'InfoNCE temperature'),
    margin: str('M', D.margin, 'triplet margin'),
    'hard-negatives': str('N', D.hardNegatives, 'hard negatives per pair from the data'),
    template: templateFlag,
    'max-tokens': str('N', D.maxTokens, 'longest prompt in tokens'),
    'long-text': str('truncate|error|skip', D.longText, 'a text over --max-tokens: shorten it (counted), stop naming FILE:LINE, or leave the record out'),
    'checkpoint-every': str('N', D.checkpointEvery, 'write adapter and state every N steps'),
    'eval-every': str('N', D.evalEvery, 'score --eval every N steps, 0 = only before and after'),
    seed: str('S', D.seed, 'data order and LoRA initialisation seed'),
    threads: str('N', 'all hardware threads', 'CPU threads'),
    'lean-memory': { type: 'boolean', help: 'no transposed weight copies: less memory, slower steps' },
    resume: { type: 'boolean', help: 'continue the run at --out from its state' },
    force: { type: 'boolean', help: "replace an earlier run's adapter, state and log at --out" },
    json: { type: 'boolean', help: 'one JSON line per step and the result, no progress bar' },
  },
});
const SFT_USAGE = TRAIN_SFT.usageLine;

/** `search-r3 train <stage> …`: `sft` (stage 1) or `grpo` (stage 2). */
export async function trainCommand(argv: string[], out: Out): Promise<number> {
  const [stage, ...rest] = argv;
  if (stage === '--help' || stage === '-h') {
    out.write(`search-r3 train STAGE: sft (stage 1), grpo (stage 2) or search-r1.\n\n${TRAIN_SFT.help()}\n${TRAIN_GRPO.help()}\n${TRAIN_SEARCH_R1.help()}`);
    return 0;
  }
  if (stage === 'grpo') return trainGrpoCommand(rest, out);
  if (stage === 'search-r1') return trainSearchR1Command(rest, out);
  if (stage !== 'sft') throw new UsageError(`unknown or missing training stage ${JSON.stringify(stage ?? '')}; usage: ${SFT_USAGE} or ${TRAIN_GRPO.usageLine}`);
  return trainSftCommand(rest, out);
}

function lossWeights(value: unknown): Stage1LossWeights | undefined {
  if (value === undefined) return undefined;
  const weights: Record<string, number> = {};
  for (const item of String(value).split(',')) {
    const m = /^(sft|kl|infonce|triplet|reasoning)=([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)$/.exec(item.trim());
    if (!m) throw new UsageError(`Expected NAME=WEIGHT pairs (NAME one of sft, kl, infonce, triplet, reasoning) for --loss-weights but received ${JSON.stringify(item)}`);
    weights[m[1]!] = Number(m[2]);
  }
  return weights;
}

async function trainSftCommand(argv: string[], out: Out): Promise<number> {
  const args = TRAIN_SFT.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}; usage: ${SFT_USAGE}`);
  for (const flag of ['model', 'train', 'out'] as const) {
    if (typeof values[flag] !== 'string') throw new UsageError(`missing --${flag}; usage: ${SFT_USAGE}`);
  }
  if (values.resume && values.force) {
    throw new UsageError('--resume and --force contradict each other: --resume continues the run at --out, --force replaces it');
  }
  const rank = intFlag(values['lora-rank'], 'lora-rank', 1, 4096);
  const result = await trainStage1({
    model: values.model as string,
    train: values.train as string,
    out: values.out as string,
    eval: values.eval as string | undefined,
    steps: intFlag(values.steps, 'steps', 1),
    batch: intFlag(values.batch, 'batch', 1, 4096),
    accumulate: intFlag(values.accumulate, 'accumulate', 1, 4096),
    lr: numFlag(values.lr, 'lr', 0, 10),
    warmupSteps: intFlag(values.warmup, 'warmup', 0),
    schedule: oneOfFlag(values.schedule, 'schedule', LR_SCHEDULE_KINDS),
    lora: { rank, alpha: numFlag(values['lora-alpha'], 'lora-alpha', 1e-6, 1e6), targets: listFlag(values['lora-targets'], 'lora-targets', LORA_TARGETS) },
    losses: lossWeights(values['loss-weights']),
    temperature: numFlag(values.temperature, 'temperature', 1e-4, 100),
    margin: numFlag(values.margin, 'margin', 0, 2),
    hardNegatives: intFlag(values['hard-negatives'], 'hard-negatives', 0, 64),
    template: oneOfFlag(values.template, 'template', EMBED_TEMPLATE_NAMES),
    maxTokens: intFlag(values['max-tokens'], 'max-tokens', 16),
    longText: oneOfFlag(values['long-text'], 'long-text', ['truncate', 'error', 'skip'] as const),
    checkpointEvery: intFlag(values['checkpoint-every'], 'checkpoint-every', 1),
    evalEvery: intFlag(values['eval-every'], 'eval-every', 0),
    seed: intFlag(values.seed, 'seed', 0, 0xffffffff),
    threads: intFlag(values.threads, 'threads', 1, 1024),
    leanMemory: values['lean-memory'] === true,
    resume: values.resume === true,
    force: values.force === true,
    progress: !values.json,
  }, {
    onStep: values.json ? (log) => out.write(`${JSON.stringify(log)}\n`) : undefined,
  });
  if (values.json) {
    out.write(`${JSON.stringify({ result })}\n`);
  } else {
    out.write(`adapter   ${result.adapter} (state ${result.state}, log ${result.log})\n`);
    if (result.adapterRepaired) out.write(`repaired  the adapter on disk was not the checkpoint's (step ${result.resumedFrom}); rewritten from the state\n`);
    out.write(`steps     ${result.resumedFrom} -> ${result.steps}, final loss ${result.finalLoss.toFixed(4)}, ${result.tokensPerSecond.toFixed(0)} tokens/s\n`);
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
    out.write(`memory    weights ${mib(result.weightBytes)}, transposed copies ${result.transposedBytes ? mib(result.transposedBytes) : 'none (--lean-memory)'}\n`);
    if (result.evalAfter) {
      const before = result.evalBefore ? result.evalBefore.ndcg10.toFixed(4) : '-';
      out.write(`nDCG@10   ${before} -> ${result.evalAfter.ndcg10.toFixed(4)} (recall@10 ${result.evalAfter.recall10.toFixed(4)})\n`);
    }
  }
  return 0;
}

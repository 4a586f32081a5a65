import { LORA_MODULES, type LoraModule } from '../train/trainer';
import { trainStage1 } from '../train/stage1';
import type { Stage1LossWeights } from '../train/stage1-config';
import { LR_SCHEDULE_KINDS } from '../train/schedule';
import { intFlag, numFlag, oneOfFlag, parse, UsageError } from './args';

type Out = NodeJS.WritableStream;

const SFT_USAGE =
  'search-r3 train sft --model M.gguf --train FILE|BEIR_DIR --out ADAPTER.gguf [--eval BEIR_DIR] [--steps N] [--batch B] ' +
  '[--accumulate K] [--lr X] [--warmup N] [--schedule cosine|linear|constant] [--lora-rank R] [--lora-alpha A] ' +
  '[--lora-targets attn_q,…] [--loss-weights sft=1,kl=0.1,infonce=1,triplet=0.5] [--temperature T] [--margin M] ' +
  '[--hard-negatives N] [--max-tokens N] [--long-text truncate|error|skip] [--checkpoint-every N] [--eval-every N] [--seed S] [--threads N] [--lean-memory] ' +
  '[--resume | --force] [--json]';

/** `search-r3 train <stage> …`: only stage 1 (`sft`) exists so far. */
export async function trainCommand(argv: string[], out: Out): Promise<number> {
  const [stage, ...rest] = argv;
  if (stage !== 'sft') throw new UsageError(`unknown or missing training stage ${JSON.stringify(stage ?? '')}; usage: ${SFT_USAGE}`);
  return trainSftCommand(rest, out);
}

function lossWeights(value: unknown): Stage1LossWeights | undefined {
  if (value === undefined) return undefined;
  const weights: Record<string, number> = {};
  for (const item of String(value).split(',')) {
    const m = /^(sft|kl|infonce|triplet)=([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)$/.exec(item.trim());
    if (!m) throw new UsageError(`Expected NAME=WEIGHT pairs (NAME one of sft, kl, infonce, triplet) for --loss-weights but received ${JSON.stringify(item)}`);
    weights[m[1]!] = Number(m[2]);
  }
  return weights;
}

function targets(value: unknown): LoraModule[] | undefined {
  if (value === undefined) return undefined;
  return String(value).split(',').map((t) => oneOfFlag(t.trim(), 'lora-targets', LORA_MODULES)!);
}

async function trainSftCommand(argv: string[], out: Out): Promise<number> {
  const s = { type: 'string' } as const;
  const { values, positionals } = parse(argv, {
    model: s, train: s, out: s, eval: s, steps: s, batch: s, accumulate: s, lr: s, warmup: s, schedule: s, 'lora-rank': s,
    'lora-alpha': s, 'lora-targets': s, 'loss-weights': s, temperature: s, margin: s, 'hard-negatives': s, 'max-tokens': s, 'long-text': s,
    'checkpoint-every': s, 'eval-every': s, seed: s, threads: s, 'lean-memory': { type: 'boolean' }, resume: { type: 'boolean' },
    force: { type: 'boolean' }, json: { type: 'boolean' },
  });
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
    lora: { rank, alpha: numFlag(values['lora-alpha'], 'lora-alpha', 1e-6, 1e6), targets: targets(values['lora-targets']) },
    losses: lossWeights(values['loss-weights']),
    temperature: numFlag(values.temperature, 'temperature', 1e-4, 100),
    margin: numFlag(values.margin, 'margin', 0, 2),
    hardNegatives: intFlag(values['hard-negatives'], 'hard-negatives', 0, 64),
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

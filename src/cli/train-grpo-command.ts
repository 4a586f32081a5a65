import { trainStage2 } from '../train/stage2';
import { STAGE2_DEFAULTS, type Stage2LossWeights } from '../train/stage2-config';
import { STAGE1_LR_RULE } from '../train/stage1-config';
import { intFlag, numFlag, oneOfFlag, UsageError } from './args';
import { defineCommand } from './flags';
import { templateFlag } from './engine-commands';
import { EMBED_TEMPLATE_NAMES } from '../engine/templates';

const D = STAGE2_DEFAULTS;
const str = (value: string, dflt: string | number | undefined, help: string) => ({ type: 'string', value, default: dflt, help }) as const;

/** `search-r3 train grpo` (stage 2). */
export const TRAIN_GRPO = defineCommand({
  name: 'train grpo', usage: '--model M.gguf --train FILE|BEIR_DIR --corpus CORPUS --out ADAPTER.gguf',
  summary: 'Stage 2: GRPO on reason-mode embeddings, rewards ranked against a corpus index kept fresh by re-encoding, before each step\'s rewards, the stale rows they look at.',
  flags: {
    model: str('M.gguf', undefined, 'base model with <|embed_token|> (required)'),
    lora: str('STAGE1.gguf', 'a fresh adapter', 'adapter to start from (its rank and targets are kept); the KL reference is the base model'),
    'lora-rank': str('R', D.loraRank, 'rank of a fresh adapter (without --lora)'),
    train: str('FILE|BEIR_DIR', undefined, 'training queries: JSONL {query, positive, negatives?, positive_id?}, or a BEIR directory (train split) (required)'),
    corpus: str('CORPUS', undefined, 'BEIR corpus.jsonl or BEIR directory the rewards rank against (required)'),
    out: str('ADAPTER.gguf', undefined, 'adapter to write; state, step log and store checkpoint go beside it (required)'),
    eval: str('BEIR_DIR', undefined, 'held-out split (test) scored in reason mode by nDCG@10 before, every --eval-every steps and after'),
    steps: str('N', D.steps, 'optimizer steps'),
    'queries-per-step': str('Q', D.queriesPerStep, 'training queries per step'),
    group: str('G', D.group, 'reasoning samples per query (one shared prompt)'),
    'max-reasoning-tokens': str('N', D.maxReasoningTokens, 'reasoning budget per rollout'),
    temperature: str('T', D.temperature, 'rollout sampling temperature'),
    'top-p': str('P', D.topP, 'rollout nucleus mass'),
    lr: str('X', `${STAGE1_LR_RULE.perWidth}/n_embd clamped to [${STAGE1_LR_RULE.min}, ${STAGE1_LR_RULE.max}], from the model`, 'learning rate (constant)'),
    kl: str('B', D.kl, 'coefficient of the k3 KL to the base model'),
    'clip-low': str('E', D.clipLow, 'ratio clip below 1'),
    'clip-high': str('E', D.clipHigh, 'ratio clip above 1'),
    'loss-weights': str('grpo=W,infonce=W', `grpo=${D.lossWeights.grpo},infonce=${D.lossWeights.infonce}`, 'loss weights'),
    'hard-negatives': str('N', D.hardNegatives, "hard negatives per query from the record's negatives, in InfoNCE"),
    'infonce-temperature': str('T', D.infonceTemperature, 'InfoNCE temperature'),
    reward: str('SPEC', D.reward, 'reward terms and weights, e.g. dcg or dcg=1,format=0.5'),
    refresh: str('touched|budget=F|full', D.refresh, 'what the store re-encodes after each update, beside the stale rows each step\'s rewards look at'),
    'full-refresh-every': str('K', D.fullRefreshEvery, 're-encode the whole corpus every K steps, 0 = never'),
    'top-k': str('K', D.topK, 'retrieved documents per rollout that the rewards read (re-encoded first when stale)'),
    'max-tokens': str('N', D.maxTokens, 'longest query or document prompt in tokens'),
    'checkpoint-every': str('N', D.checkpointEvery, 'write adapter, state and store every N steps'),
    'eval-every': str('N', D.evalEvery, 'score --eval and the reward agreement every N steps, 0 = only before and after'),
    seed: str('S', D.seed, 'query order and sampling seed'),
    template: templateFlag,
    threads: str('N', 'all hardware threads', 'CPU threads'),
    resume: { type: 'boolean', help: 'continue the run at --out from its state' },
    force: { type: 'boolean', help: "replace an earlier run's adapter, state, log and store at --out" },
    json: { type: 'boolean', help: 'one JSON line per step and the result, no progress bar' },
  },
});

function lossWeights(value: unknown): Stage2LossWeights | undefined {
  if (value === undefined) return undefined;
  const weights: Record<string, number> = {};
  for (const item of String(value).split(',')) {
    const m = /^(grpo|infonce)=([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)$/.exec(item.trim());
    if (!m) throw new UsageError(`Expected NAME=WEIGHT pairs (NAME one of grpo, infonce) for --loss-weights but received ${JSON.stringify(item)}`);
    weights[m[1]!] = Number(m[2]);
  }
  return weights;
}

/** Runs `search-r3 train grpo …`; returns the exit code. */
export async function trainGrpoCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const args = TRAIN_GRPO.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  const usage = TRAIN_GRPO.usageLine;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}; usage: ${usage}`);
  for (const flag of ['model', 'train', 'corpus', 'out'] as const) {
    if (typeof values[flag] !== 'string') throw new UsageError(`missing --${flag}; usage: ${usage}`);
  }
  if (values.resume && values.force) {
    throw new UsageError('--resume and --force contradict each other: --resume continues the run at --out, --force replaces it');
  }
  const result = await trainStage2({
    model: values.model as string,
    lora: values.lora as string | undefined,
    loraRank: intFlag(values['lora-rank'], 'lora-rank', 1, 4096),
    train: values.train as string,
    corpus: values.corpus as string,
    out: values.out as string,
    eval: values.eval as string | undefined,
    steps: intFlag(values.steps, 'steps', 1),
    queriesPerStep: intFlag(values['queries-per-step'], 'queries-per-step', 1, 256),
    group: intFlag(values.group, 'group', 2, 256),
    maxReasoningTokens: intFlag(values['max-reasoning-tokens'], 'max-reasoning-tokens', 1, 1 << 16),
    temperature: numFlag(values.temperature, 'temperature', 0, 100),
    topP: numFlag(values['top-p'], 'top-p', 0, 1),
    lr: numFlag(values.lr, 'lr', 0, 10),
    kl: numFlag(values.kl, 'kl', 0, 1e6),
    clipLow: numFlag(values['clip-low'], 'clip-low', 0, 0.999),
    clipHigh: numFlag(values['clip-high'], 'clip-high', 0, 100),
    lossWeights: lossWeights(values['loss-weights']),
    hardNegatives: intFlag(values['hard-negatives'], 'hard-negatives', 0, 64),
    infonceTemperature: numFlag(values['infonce-temperature'], 'infonce-temperature', 1e-4, 100),
    reward: values.reward as string | undefined,
    refresh: values.refresh as string | undefined,
    fullRefreshEvery: intFlag(values['full-refresh-every'], 'full-refresh-every', 0),
    topK: intFlag(values['top-k'], 'top-k', 1, 1000),
    maxTokens: intFlag(values['max-tokens'], 'max-tokens', 16),
    checkpointEvery: intFlag(values['checkpoint-every'], 'checkpoint-every', 1),
    evalEvery: intFlag(values['eval-every'], 'eval-every', 0),
    seed: intFlag(values.seed, 'seed', 0, 0xffffffff),
    threads: intFlag(values.threads, 'threads', 1, 1024),
    template: oneOfFlag(values.template, 'template', EMBED_TEMPLATE_NAMES),
    resume: values.resume === true,
    force: values.force === true,
    progress: !values.json,
  }, {
    onStep: values.json ? (log) => out.write(`${JSON.stringify(log)}\n`) : undefined,
  });
  if (values.json) {
    out.write(`${JSON.stringify({ result })}\n`);
    return 0;
  }
  out.write(`adapter   ${result.adapter} (state ${result.state}, log ${result.log})\n`);
  if (result.adapterRepaired) out.write(`repaired  the adapter on disk was not the checkpoint's (step ${result.resumedFrom}); rewritten from the state\n`);
  out.write(`steps     ${result.resumedFrom} -> ${result.steps}, final loss ${result.finalLoss.toFixed(4)}, rollouts ${result.tokensPerSecond.toFixed(0)} tokens/s\n`);
  out.write(`reward    ${result.firstReward.toFixed(4)} (first step run) -> ${result.lastReward.toFixed(4)} (last)\n`);
  out.write(`corpus    ${result.corpusSize} documents (${result.addedPositives} positives added)\n`);
  if (result.evalAfter) {
    const before = result.evalBefore ? result.evalBefore.ndcg10.toFixed(4) : '-';
    out.write(`nDCG@10   reason mode ${before} -> ${result.evalAfter.ndcg10.toFixed(4)} (recall@10 ${result.evalAfter.recall10.toFixed(4)})\n`);
  }
  return 0;
}

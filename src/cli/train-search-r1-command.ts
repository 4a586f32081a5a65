// `search-r3 train search-r1`: Search-R1 training (warm-up SFT, then GRPO on agent rollouts).
import { QA_REWARD_NAMES, type QaRewardName } from '../agent/rewards';
import type { TextRetriever } from '../retrieval/types';
import { trainSearchR1 } from '../train/search-r1';
import { SEARCH_R1_DEFAULTS } from '../train/search-r1-config';
import { STAGE1_LR_RULE } from '../train/stage1-config';
import { LORA_MODULES, LORA_TARGETS } from '../train/trainer';
import { isIndexDir, openRetriever } from './agent-command';
import { intFlag, listFlag, numFlag, UsageError } from './args';
import { defineCommand } from './flags';

const D = SEARCH_R1_DEFAULTS;
const C = D.collapse;
const str = (value: string, dflt: string | number | undefined, help: string) => ({ type: 'string', value, default: dflt, help }) as const;

/** `search-r3 train search-r1`. */
export const TRAIN_SEARCH_R1 = defineCommand({
  name: 'train search-r1', usage: '--model M.gguf --train QA.jsonl --corpus CORPUS --out ADAPTER.gguf',
  summary: 'Search-R1: GRPO on agent rollouts (search, read, answer) with an exact-match reward and retrieved tokens masked out of the loss, after a supervised warm-up.',
  flags: {
    model: str('M.gguf', undefined, 'base model (required)'),
    lora: str('A.gguf', 'a fresh adapter', 'adapter to start from (its rank and targets are kept)'),
    'lora-rank': str('R', D.loraRank, 'rank of a fresh adapter (without --lora)'),
    'lora-targets': str(LORA_MODULES[0] + ',…', `all of ${LORA_MODULES.join(',')}`, 'what a fresh adapter adapts; add output for the output head (a model with its own output.weight)'),
    train: str('QA.jsonl', undefined, 'training questions, QA JSONL {id?, question, golden_answers} (required)'),
    corpus: str('CORPUS', undefined, 'BEIR corpus.jsonl, FlashRAG JSONL or a folder (bm25), or an index DIR from `search-r3 index build` (any retriever); not needed with a URL'),
    retriever: str('bm25|dense|hybrid|URL', 'bm25', 'how searches are answered; a URL speaks Search-R1\'s POST /retrieve'),
    out: str('ADAPTER.gguf', undefined, 'adapter to write; state and step log go beside it (required)'),
    topk: str('K', D.topk, 'documents per search'),
    'max-turns': str('N', D.maxTurns, 'model turns per trajectory at most'),
    'max-turn-tokens': str('N', D.maxTurnTokens, 'tokens one turn may write'),
    context: str('N', D.contextPerSequence, 'tokens one trajectory may hold'),
    steps: str('N', D.steps, 'GRPO steps (after the warm-up)'),
    'questions-per-step': str('Q', D.questionsPerStep, 'questions per GRPO step'),
    group: str('G', D.group, 'rollouts per question'),
    temperature: str('T', D.temperature, 'rollout sampling temperature'),
    'top-p': str('P', D.topP, 'rollout nucleus mass'),
    reward: str('em|em-format', D.reward, 'exact match, or Search-R1 v0.3\'s format-aware variant'),
    'warmup-sft': str('N|auto', D.warmupSft, `supervised warm-up steps before GRPO; auto: ${D.autoWarmupSteps} when fewer than ${D.probeThreshold * 100}% of greedy rollouts on ${D.probeQuestions} training questions are in the valid format, else 0`),
    'warmup-batch': str('N', D.warmupBatch, 'warm-up trajectories per supervised step'),
    'warmup-lr': str('X', 'the --lr', 'learning rate of the warm-up'),
    lr: str('X', `${STAGE1_LR_RULE.perWidth}/n_embd clamped to [${STAGE1_LR_RULE.min}, ${STAGE1_LR_RULE.max}], from the model`, 'learning rate (constant)'),
    kl: str('B', D.kl, 'coefficient of the k3 KL to the base model'),
    'clip-low': str('E', D.clipLow, 'ratio clip below 1'),
    'clip-high': str('E', D.clipHigh, 'ratio clip above 1'),
    'collapse-window': str('N', C.window, 'collapse rule: steps in the reward\'s moving average'),
    'collapse-patience': str('N', C.patience, 'collapse rule: consecutive collapsing steps that stop the run'),
    'no-collapse-stop': { type: 'boolean', help: 'log the collapse signals but never stop for them' },
    'checkpoint-every': str('N', D.checkpointEvery, 'write adapter and state every N steps'),
    seed: str('S', D.seed, 'question order and sampling seed'),
    threads: str('N', 'all hardware threads', 'CPU threads'),
    resume: { type: 'boolean', help: 'continue the run at --out from its state' },
    force: { type: 'boolean', help: "replace an earlier run's adapter, state and log at --out" },
    json: { type: 'boolean', help: 'one JSON line per step and the result, no progress bar' },
  },
});

function warmupFlag(v: unknown): number | 'auto' | undefined {
  if (v === undefined || v === 'auto') return v as undefined | 'auto';
  return intFlag(v, 'warmup-sft', 0);
}

/** Runs `search-r3 train search-r1 …`; returns the exit code. */
export async function trainSearchR1Command(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const args = TRAIN_SEARCH_R1.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  const usage = TRAIN_SEARCH_R1.usageLine;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}; usage: ${usage}`);
  for (const flag of ['model', 'train', 'out'] as const) {
    if (typeof values[flag] !== 'string') throw new UsageError(`missing --${flag}; usage: ${usage}`);
  }
  if (values.resume && values.force) throw new UsageError('--resume and --force contradict each other: --resume continues the run at --out, --force replaces it');
  const kind = typeof values.retriever === 'string' ? values.retriever : 'bm25';
  const corpus = typeof values.corpus === 'string' ? values.corpus : undefined;
  if (corpus === undefined && !/^https?:\/\//.test(kind)) throw new UsageError(`missing --corpus; usage: ${usage}`);
  const reward = values.reward as string | undefined;
  if (reward !== undefined && !(QA_REWARD_NAMES as readonly string[]).includes(reward)) {
    throw new UsageError(`Expected ${QA_REWARD_NAMES.join(' or ')} for --reward but received ${JSON.stringify(reward)}`);
  }
  const threads = intFlag(values.threads, 'threads', 1, 1024);
  const options = {
    model: values.model as string, lora: values.lora as string | undefined, loraRank: intFlag(values['lora-rank'], 'lora-rank', 1, 4096),
    loraTargets: listFlag(values['lora-targets'], 'lora-targets', LORA_TARGETS), train: values.train as string, out: values.out as string,
    topk: intFlag(values.topk, 'topk', 1, 100), maxTurns: intFlag(values['max-turns'], 'max-turns', 1, 64),
    maxTurnTokens: intFlag(values['max-turn-tokens'], 'max-turn-tokens', 1, 1 << 20), contextPerSequence: intFlag(values.context, 'context', 16),
    steps: intFlag(values.steps, 'steps', 0), questionsPerStep: intFlag(values['questions-per-step'], 'questions-per-step', 1, 256),
    group: intFlag(values.group, 'group', 2, 256), temperature: numFlag(values.temperature, 'temperature', 0, 100), topP: numFlag(values['top-p'], 'top-p', 0, 1),
    reward: reward as QaRewardName | undefined, warmupSft: warmupFlag(values['warmup-sft']), warmupBatch: intFlag(values['warmup-batch'], 'warmup-batch', 1),
    warmupLr: numFlag(values['warmup-lr'], 'warmup-lr', 0, 10), lr: numFlag(values.lr, 'lr', 0, 10), kl: numFlag(values.kl, 'kl', 0, 1e6),
    clipLow: numFlag(values['clip-low'], 'clip-low', 0, 0.999), clipHigh: numFlag(values['clip-high'], 'clip-high', 0, 100),
    collapse: values['no-collapse-stop'] ? false as const : {
      window: intFlag(values['collapse-window'], 'collapse-window', 1) ?? C.window, patience: intFlag(values['collapse-patience'], 'collapse-patience', 1) ?? C.patience,
    },
    checkpointEvery: intFlag(values['checkpoint-every'], 'checkpoint-every', 1), seed: intFlag(values.seed, 'seed', 0, 0xffffffff), threads,
    resume: values.resume === true, force: values.force === true, progress: !values.json,
  };
  // BM25 over a corpus file is built by the trainer (which also reads the documents to follow multi-hop paths in the warm-up); others open here.
  const plainBm25 = kind === 'bm25' && corpus !== undefined && !(await isIndexDir(corpus));
  let opened: { retriever: TextRetriever; dispose(): void } | null = null;
  try {
    if (!plainBm25) opened = await openRetriever(kind, corpus, threads, err);
    const result = await trainSearchR1(
      opened ? { ...options, retriever: opened.retriever } : { ...options, corpus },
      { onStep: values.json ? (log) => out.write(`${JSON.stringify(log)}\n`) : undefined },
    );
    if (values.json) {
      out.write(`${JSON.stringify({ result })}\n`);
      return 0;
    }
    out.write(`adapter   ${result.adapter} (state ${result.state}, log ${result.log})\n`);
    if (result.adapterRepaired) out.write(`repaired  the adapter on disk was not the checkpoint's (step ${result.resumedFrom}); rewritten from the state\n`);
    const probe = result.probe === null ? '' : ` (probe: ${(100 * result.probe).toFixed(0)}% valid format)`;
    out.write(`warm-up   ${result.warmupSteps} steps on ${result.warmupTrajectories} trajectories (${result.warmupSkipped} questions skipped)${probe}\n`);
    out.write(`steps     ${result.resumedFrom} -> ${result.warmupSteps + result.grpoSteps}, final loss ${result.finalLoss.toFixed(4)}\n`);
    if (result.grpoSteps > 0) out.write(`reward    ${result.firstReward.toFixed(4)} -> ${result.lastReward.toFixed(4)}, EM ${result.firstEm.toFixed(4)} -> ${result.lastEm.toFixed(4)} (first and last GRPO step run)\n`);
    return 0;
  } finally {
    opened?.dispose();
  }
}

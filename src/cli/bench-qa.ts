// `search-r3-bench --task qa`: the QA methods on the same questions (src/bench/qa.ts).
import { formatQaReport, qaReportHtml } from '../bench/qa-report';
import { runQaBench } from '../bench/qa';
import { QA_RETRIEVER_NAMES } from '../bench/qa-retriever';
import { QA_METHOD_NAMES, type QaMethodName } from '../bench/qa-types';
import { checkOutputs, type NamedPath } from '../util/output';
import { writeFileAtomic } from '../util/fs';
import { intFlag, parse, UsageError } from './args';
import { applyLogLevel, takeLogLevel } from './log-level';

export const QA_HELP = `usage: search-r3-bench --task qa [--qa QA.jsonl --corpus CORPUS] [options]

Answers the same questions with each method and scores EM, F1 and substring EM (overall and per
hop when the questions carry "hops"), with tokens, searches and latency per question. With no
--qa/--corpus: the synthetic dataset's multi-hop test questions over its corpus.

  --qa FILE.jsonl               questions {id?, question, golden_answers: [...], hops?}
  --corpus PATH                 FlashRAG JSONL {id, contents}, a BEIR corpus, or a folder
  --model FILE.gguf             the model that answers (default: the generated demo model)
  --lora FILE                   LoRA adapter (llama.cpp adapter GGUF)
  --retriever NAME|URL          bm25 (default), dense (the model's own embeddings), hybrid
                                (both, RRF-fused), or a Search-R1 /retrieve URL
  --methods LIST                comma-separated: ${QA_METHOD_NAMES.join(',')} (default all)
  --topk N                      documents per retrieval (default 3)
  --max-tokens N                tokens generated per answer at most (default 128); the agent: per turn
  --max-turns N                 the agent's model turns per question at most (default 4)
  --limit-questions N           evaluate the first N questions only
  --latency-questions N         questions answered one at a time per method (default 20)
  --sequences N                 parallel sequences of the batched pass (default 8)
  --threads N                   CPU threads for the model (default all)
  --json FILE                   write every figure as JSON
  --report FILE.html            write a self-contained HTML report with charts
  --force                       replace --json and --report files that already exist
  --quiet                       no progress bars or status lines, and no llama.cpp messages
  --log-level none|error|warn|info|debug   llama.cpp messages on stderr (default none)
  -h, --help                    this help
`;

function methodsFlag(value: unknown): QaMethodName[] | undefined {
  if (value === undefined) return undefined;
  const names = String(value).split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(QA_METHOD_NAMES as readonly string[]).includes(name)) {
      throw new UsageError(`Expected a comma-separated list of ${QA_METHOD_NAMES.join(', ')} for --methods but received ${JSON.stringify(name)}`);
    }
  }
  return names as QaMethodName[];
}

/** Runs `--task qa` with the rest of the command line (`--task qa` already removed). */
export async function qaBench(rawArgv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const { argv, level } = takeLogLevel(rawArgv, { keepQuiet: true });
  const { values, positionals } = parse(argv, {
    qa: { type: 'string' }, corpus: { type: 'string' }, model: { type: 'string' }, lora: { type: 'string' }, retriever: { type: 'string' },
    methods: { type: 'string' }, topk: { type: 'string' }, 'max-tokens': { type: 'string' }, 'max-turns': { type: 'string' }, 'limit-questions': { type: 'string' },
    'latency-questions': { type: 'string' }, sequences: { type: 'string' }, threads: { type: 'string' }, json: { type: 'string' },
    report: { type: 'string' }, quiet: { type: 'boolean' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    out.write(QA_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}; see search-r3-bench --task qa --help`);
  if ((values.qa === undefined) !== (values.corpus === undefined)) {
    throw new UsageError(`--${values.qa === undefined ? 'corpus' : 'qa'} needs --${values.qa === undefined ? 'qa' : 'corpus'} (questions and the corpus they are answered from go together)`);
  }
  const retriever = values.retriever as string | undefined;
  if (retriever !== undefined && !(QA_RETRIEVER_NAMES as readonly string[]).includes(retriever) && !/^https?:\/\//.test(retriever)) {
    throw new UsageError(`Expected ${QA_RETRIEVER_NAMES.join(', ')} or an http(s) URL for --retriever but received ${JSON.stringify(retriever)}`);
  }
  applyLogLevel(level);
  const outputs: NamedPath[] = [];
  for (const flag of ['json', 'report'] as const) {
    if (values[flag] === '') throw new UsageError(`Expected a file name for --${flag}`);
    if (typeof values[flag] === 'string') outputs.push({ path: values[flag] as string, name: `--${flag}` });
  }
  const inputs: NamedPath[] = [];
  for (const flag of ['qa', 'corpus', 'model', 'lora'] as const) if (typeof values[flag] === 'string') inputs.push({ path: values[flag] as string, name: `--${flag}` });
  await checkOutputs(outputs, { inputs, force: values.force === true });
  const options = {
    qa: values.qa as string | undefined,
    corpus: values.corpus as string | undefined,
    model: values.model as string | undefined,
    lora: values.lora as string | undefined,
    retriever,
    methods: methodsFlag(values.methods),
    topk: intFlag(values.topk, 'topk', 1, 100),
    maxTokens: intFlag(values['max-tokens'], 'max-tokens', 1, 8192),
    maxTurns: intFlag(values['max-turns'], 'max-turns', 1, 64),
    limitQuestions: intFlag(values['limit-questions'], 'limit-questions', 1),
    latencyQuestions: intFlag(values['latency-questions'], 'latency-questions', 0),
    sequences: intFlag(values.sequences, 'sequences', 1, 256),
    threads: intFlag(values.threads, 'threads', 1, 1024),
  };
  const quiet = values.quiet === true;
  const result = await runQaBench({
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    progress: !quiet,
    log: quiet ? undefined : (line: string) => err.write(`search-r3-bench: ${line}\n`),
  });
  out.write(formatQaReport(result));
  if (typeof values.json === 'string') await writeFileAtomic(values.json, `${JSON.stringify(result, null, 2)}\n`);
  if (typeof values.report === 'string') await writeFileAtomic(values.report, qaReportHtml(result));
  return 0;
}

/**
 * Splits `--task NAME` (or `--task=NAME`) off a command line: `retrieval` (the default) or `qa`.
 *
 * @example takeTask(['--task', 'qa', '--qa', 'q.jsonl']) // { task: 'qa', argv: ['--qa', 'q.jsonl'] }
 */
export function takeTask(argv: string[]): { task: 'retrieval' | 'qa'; argv: string[] } {
  const rest: string[] = [];
  let task: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--task' || a.startsWith('--task=')) {
      if (task !== undefined) throw new UsageError('--task is given twice');
      task = a === '--task' ? argv[++i] : a.slice('--task='.length);
      if (task === undefined) throw new UsageError('Expected retrieval or qa for --task but received nothing');
    } else {
      rest.push(a);
    }
  }
  if (task !== undefined && task !== 'retrieval' && task !== 'qa') throw new UsageError(`Expected retrieval or qa for --task but received ${JSON.stringify(task)}`);
  return { task: (task ?? 'retrieval') as 'retrieval' | 'qa', argv: rest };
}

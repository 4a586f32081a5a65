import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { benchReportHtml } from '../bench/html';
import { runBench } from '../bench/run';
import { formatReport } from '../bench/table';
import { RETRIEVER_NAMES, type RetrieverName } from '../bench/types';
import { checkOutputs, type NamedPath } from '../util/output';
import { writeFileAtomic } from '../util/fs';
import { intFlag, packageVersion, parse, UsageError } from './args';
import { applyLogLevel, takeLogLevel } from './log-level';
import { qaBench, takeTask } from './bench-qa';
import { reportError } from './process';

const HELP = `usage: search-r3-bench [options]

With no options: the embedded default, a synthetic BEIR-style dataset and the package's demo
model (generated locally, untrained), every retriever; a few minutes on two CPU cores.

  --task retrieval|qa           retrieval (default, this help) or question answering
                                (search-r3-bench --task qa --help)
  --dataset DIR                 BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv)
  --model FILE.gguf             model with <|embed_token|> (default: the generated demo model)
  --lora FILE                   LoRA adapter (llama.cpp adapter GGUF) for the dense retrievers
  --retrievers LIST             comma-separated: bm25,direct,reason (default all)
  --max-reasoning-tokens N      reasoning budget per query in reason mode (default 64)
  --limit-queries N             evaluate the first N judged test queries only
  --latency-queries N           queries timed one at a time per retriever (default 50)
  --threads N                   CPU threads for the model (default all)
  --json FILE                   write every figure as JSON
  --report FILE.html            write a self-contained HTML report with charts
  --runs DIR                    write each retriever's TREC run file to DIR/<retriever>.run
  --force                       replace --json, --report and run files that already exist
                                (without it the run refuses them before starting)
  --quiet                       no progress bars or status lines, and no llama.cpp messages
  --log-level none|error|warn|info|debug   llama.cpp messages on stderr (default none)
  -V, --version                 print the package version
  -h, --help                    this help
`;

function retrieversFlag(value: unknown): RetrieverName[] | undefined {
  if (value === undefined) return undefined;
  const names = String(value).split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(RETRIEVER_NAMES as readonly string[]).includes(name)) {
      throw new UsageError(`Expected a comma-separated list of ${RETRIEVER_NAMES.join(', ')} for --retrievers but received ${JSON.stringify(name)}`);
    }
  }
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new UsageError(`--retrievers names ${JSON.stringify(dup)} twice`);
  return names as RetrieverName[];
}

/**
 * The files a run will write, checked before minutes of work: none may be an input, nor exist
 * without --force. Run files are only checked when --runs already exists (runBench creates it).
 */
async function checkBenchOutputs(values: Record<string, unknown>, retrievers: readonly RetrieverName[]): Promise<void> {
  const outputs: NamedPath[] = [];
  for (const flag of ['json', 'report'] as const) {
    const path = values[flag];
    if (path === undefined) continue;
    if (path === '') throw new UsageError(`Expected a file name for --${flag}`);
    outputs.push({ path: String(path), name: `--${flag}` });
  }
  const runs = values.runs;
  if (typeof runs === 'string' && (await stat(runs).catch(() => null))?.isDirectory()) {
    for (const r of retrievers) outputs.push({ path: join(runs, `${r}.run`), name: '--runs' });
  }
  const inputs: NamedPath[] = [];
  for (const flag of ['model', 'lora'] as const) if (typeof values[flag] === 'string') inputs.push({ path: values[flag] as string, name: `--${flag}` });
  if (typeof values.dataset === 'string') {
    for (const file of ['corpus.jsonl', 'queries.jsonl', join('qrels', 'test.tsv')]) inputs.push({ path: join(values.dataset, file), name: '--dataset' });
  }
  await checkOutputs(outputs, { inputs, force: values.force === true });
}

async function bench(rawArgv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const { argv, level } = takeLogLevel(rawArgv, { keepQuiet: true });
  const { values, positionals } = parse(argv, {
    dataset: { type: 'string' }, model: { type: 'string' }, lora: { type: 'string' }, retrievers: { type: 'string' },
    'max-reasoning-tokens': { type: 'string' }, 'limit-queries': { type: 'string' }, 'latency-queries': { type: 'string' },
    threads: { type: 'string' }, json: { type: 'string' }, report: { type: 'string' }, runs: { type: 'string' },
    quiet: { type: 'boolean' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    out.write(HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}; see search-r3-bench --help`);
  if (retrieversNeedModel(values.retrievers)) applyLogLevel(level);
  const retrievers = retrieversFlag(values.retrievers);
  if (retrievers && retrievers.every((r) => r === 'bm25')) {
    for (const flag of ['model', 'lora'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs a dense retriever (direct or reason) in --retrievers`);
    }
  }
  const options = {
    dataset: values.dataset as string | undefined,
    model: values.model as string | undefined,
    lora: values.lora as string | undefined,
    retrievers,
    maxReasoningTokens: intFlag(values['max-reasoning-tokens'], 'max-reasoning-tokens', 1, 8192),
    limitQueries: intFlag(values['limit-queries'], 'limit-queries', 1),
    latencyQueries: intFlag(values['latency-queries'], 'latency-queries', 0),
    threads: intFlag(values.threads, 'threads', 1, 1024),
    runsDir: values.runs as string | undefined,
  };
  await checkBenchOutputs(values, retrievers ?? RETRIEVER_NAMES);
  const json = values.json as string | undefined;
  const report = values.report as string | undefined;
  const quiet = values.quiet === true;
  const result = await runBench({
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    progress: !quiet,
    log: quiet ? undefined : (line: string) => err.write(`search-r3-bench: ${line}\n`),
  });
  out.write(formatReport(result));
  if (json) await writeFileAtomic(json, `${JSON.stringify(result, null, 2)}\n`);
  if (report) await writeFileAtomic(report, benchReportHtml(result));
  return 0;
}

/**
 * The `search-r3-bench` command line. Resolves to the exit code: 0 success, 1 failure, 2 usage
 * error. Every error is one line on `err` naming the flag or file at fault; nothing throws.
 *
 * @example process.exitCode = await main(['--retrievers', 'bm25', '--json', 'bench.json']);
 */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    out.write(`search-r3-bench ${packageVersion()}\n`);
    return 0;
  }
  try {
    const { task, argv: rest } = takeTask(argv);
    return await (task === 'qa' ? qaBench(rest, out, err) : bench(rest, out, err));
  } catch (e) {
    return reportError('search-r3-bench', e, err);
  }
}

export { installCliProcessHandlers } from './process';

// A dense retriever (the default set has two) loads the model; BM25 alone never touches the addon.
function retrieversNeedModel(flag: unknown): boolean {
  return typeof flag !== 'string' || flag.split(',').some((r) => r.trim() !== 'bm25');
}

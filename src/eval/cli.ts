import { SearchR3Error } from '../util/errors';
import { formatTrecEval } from './format';
import { evaluate, type EvaluateOptions } from './metrics';
import { readQrels, readRun } from './trec';

const USAGE = `Usage: search-r3 eval [options] QRELS RUN
Evaluates a TREC run file against TREC qrels exactly as NIST's trec_eval does.
QRELS is TREC qrels (qid iter docno rel) or a BEIR qrels TSV (query-id corpus-id score, header
optional); either file may be - for stdin.
  -q                 also print each query's measures (before the summary)
  -m MEASURE[.P,…]   measure or set to print (repeatable): official (default), all_trec, set,
                     map, ndcg, ndcg_cut.10, P.5,10, recall.100, recip_rank, bpref, …
  -c                 average over all queries in QRELS (a query missing from RUN scores 0)
  -l LEVEL           lowest grade counted as relevant (default 1)
  -M N               evaluate only the top N documents of each query
  -N N               documents in the collection (for utility)
  -J                 judged documents only (drops unjudged documents; rarely wise)
  -n                 no summary
  --json             print JSON instead of trec_eval's table
  --skip-malformed   skip malformed lines (counted on stderr) instead of failing
  -h, --help         show this help
`;

class UsageError extends Error {}

interface CliArgs {
  files: string[];
  perQuery: boolean;
  summary: boolean;
  json: boolean;
  skipMalformed: boolean;
  options: EvaluateOptions & { measures: string[] };
  help: boolean;
}

function integerArg(flag: string, text: string | undefined, min: number): number {
  if (text === undefined || !/^\d+$/.test(text) || Number(text) < min) {
    throw new UsageError(`Expected an integer ≥ ${min} after ${flag} but received ${text === undefined ? 'nothing' : JSON.stringify(text)}`);
  }
  return Number(text);
}

function parseArgs(argv: readonly string[]): CliArgs {
  const a: CliArgs = { files: [], perQuery: false, summary: true, json: false, skipMalformed: false, options: { measures: [] }, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    // Value flags accept both "-m map" and trec_eval's glued "-mmap".
    const value = (flag: string): string | undefined => (arg.length > flag.length ? arg.slice(flag.length) : argv[++i]);
    if (arg === '-h' || arg === '--help') a.help = true;
    else if (arg === '-q') a.perQuery = true;
    else if (arg === '-n') a.summary = false;
    else if (arg === '-c') a.options.averageComplete = true;
    else if (arg === '-J') a.options.judgedDocsOnly = true;
    else if (arg === '--json') a.json = true;
    else if (arg === '--skip-malformed') a.skipMalformed = true;
    else if (arg.startsWith('--measure=')) a.options.measures.push(arg.slice('--measure='.length));
    else if (arg === '--measure') a.options.measures.push(argv[++i] ?? '');
    else if (arg.startsWith('-m')) {
      const m = value('-m');
      if (m === undefined || m === '') throw new UsageError('Expected a measure after -m');
      a.options.measures.push(m);
    } else if (arg.startsWith('-l')) a.options.relevanceLevel = integerArg('-l', value('-l'), 0);
    else if (arg.startsWith('-M')) a.options.maxDocsPerTopic = integerArg('-M', value('-M'), 0);
    else if (arg.startsWith('-N')) a.options.numDocsInColl = integerArg('-N', value('-N'), 0);
    else if (arg.startsWith('-') && arg !== '-') throw new UsageError(`Unknown option "${arg}"`);
    else a.files.push(arg);
  }
  if (!a.help && a.files.length !== 2) throw new UsageError(`Expected QRELS and RUN files but received ${a.files.length} file argument(s)`);
  if (a.options.measures.length === 0) a.options.measures.push('official');
  return a;
}

/**
 * `search-r3 eval QRELS RUN [options]`: trec_eval's command line and output, byte for byte for
 * the same measures. `argv` holds the arguments after `eval`. Returns the exit code: 0 success,
 * 1 unreadable or malformed input, 2 usage error (the message goes to `err`), as every
 * `search-r3` command does.
 *
 * @example process.exitCode = await runEvalCli(['-q', '-m', 'ndcg_cut.10', 'qrels.txt', 'run.txt'], process.stdout);
 */
export async function runEvalCli(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let args: CliArgs;
  try {
    if (!Array.isArray(argv)) throw new UsageError('Expected an array of arguments');
    args = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err.write(`search-r3 eval: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    out.write(USAGE);
    return 0;
  }
  try {
    const read = { skipMalformed: args.skipMalformed };
    const [qrelsFile, runFile] = args.files as [string, string];
    const { qrels, report: qr } = await readQrels(qrelsFile, read);
    const { run, report: rr } = await readRun(runFile, read);
    for (const r of [qr, rr]) {
      if (r.skipped > 0) err.write(`search-r3 eval: skipped ${r.skipped} malformed line(s) in ${r.file} (first: line ${r.skippedLines[0]!.line}: ${r.skippedLines[0]!.reason})\n`);
    }
    const e = evaluate(qrels, run, args.options);
    if (e.queries.length === 0) {
      err.write('search-r3 eval: No queries with both results and relevance info\n');
      return 1;
    }
    if (args.json) {
      const body: Record<string, unknown> = { runid: e.runid, summary: args.summary ? e.summary : undefined };
      if (args.perQuery) body.queries = e.queries;
      out.write(`${JSON.stringify(body, null, 2)}\n`);
    } else {
      out.write(formatTrecEval(e, { perQuery: args.perQuery, summary: args.summary }));
    }
    return 0;
  } catch (e) {
    if (e instanceof SearchR3Error) {
      err.write(`search-r3 eval: ${e.message}\n`);
      return 1;
    }
    if (e instanceof RangeError || e instanceof TypeError) {
      err.write(`search-r3 eval: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

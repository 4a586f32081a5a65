import type { Evaluation, MeasureFormat } from './metrics';

/**
 * Formats a number like C's `printf("%.<digits>f")` with glibc, which rounds the exact binary value
 * half to even; `Number.prototype.toFixed` rounds exact halves away from zero instead
 * (0.03125 → "0.0313" where trec_eval prints "0.0312").
 *
 * @example formatFixed(0.03125, 4) // "0.0312"
 */
export function formatFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const rounded = x.toFixed(digits);
  // An exact half at the last digit needs x = odd / (2·10^digits), which as a binary fraction means
  // x·2^(digits+1) is an integer; only then can toFixed and printf disagree.
  const scaled = Math.abs(x) * 2 ** (digits + 1);
  if (digits === 0 || !Number.isInteger(scaled) || scaled > Number.MAX_SAFE_INTEGER) return rounded;
  const longer = x.toFixed(digits + 1); // exact: x has at most digits+1 decimals here
  if (!longer.endsWith('5')) return rounded;
  const truncated = longer.slice(0, -1);
  const lastKept = Number(truncated[truncated.length - 1]);
  return lastKept % 2 === 0 ? truncated : rounded;
}

/** One value as trec_eval prints it: floats `%6.4f`, counts `%ld`, relstring quoted. */
export function formatValue(name: string, value: number | string, format: MeasureFormat): string {
  if (format === 'string') return name === 'relstring' || name.startsWith('relstring_') ? `'${value}'` : String(value);
  if (format === 'long') return String(Math.trunc(value as number));
  return formatFixed(value as number, 4).padStart(6);
}

function line(name: string, qid: string, value: string): string {
  return `${name.padEnd(22)}\t${qid}\t${value}\n`;
}

/**
 * Renders an evaluation in trec_eval's relational layout (`measure<pad>\tqid\tvalue`): per-query
 * lines first when `perQuery` is set (trec_eval's `-q`), then the summary under qid "all" unless
 * `summary` is false (trec_eval's `-n`).
 *
 * @example process.stdout.write(formatTrecEval(evaluate(qrels, run), { perQuery: true }));
 */
export function formatTrecEval(e: Evaluation, { perQuery = false, summary = true } = {}): string {
  const out: string[] = [];
  if (perQuery) {
    for (const q of e.queries) {
      for (const [name, v] of Object.entries(q.values)) out.push(line(name, q.qid, formatValue(name, v, e.formats[name]!)));
    }
  }
  if (summary) {
    for (const [name, v] of Object.entries(e.summary)) out.push(line(name, 'all', formatValue(name, v, e.formats[name]!)));
  }
  return out.join('');
}

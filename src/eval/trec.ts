import { writeFileAtomic } from '../util/fs';
import { assertString, checkKeys, expected } from '../util/validate';
import { malformed, newReport, readLines, splitFields, type ReadOptions, type ReadReport } from './lines';
import { rankDocs } from './ranking';

/**
 * Relevance judgements: query id → document id → grade. Grades ≥ 1 are relevant by default,
 * 0 is judged non-relevant, negative grades mean "in the pool but unjudged" (as in trec_eval).
 */
export type Qrels = Map<string, Map<string, number>>;

/** One retrieved document with the score its system gave it (higher is better). */
export interface ScoredDoc {
  docno: string;
  score: number;
}

/** A system's ranked results: a run tag and, per query id, the retrieved documents in any order. */
export interface Run {
  /** The run tag (last column of a TREC run file). */
  runid: string;
  /** Query id → retrieved documents. Ranks are derived from scores, as trec_eval does. */
  queries: Map<string, ScoredDoc[]>;
}

const INTEGER = /^[+-]?\d+$/;

function isContent(text: string): boolean {
  const trimmed = text.trimStart();
  return trimmed.length > 0 && !trimmed.startsWith('#');
}

/**
 * Reads a TREC qrels file (`qid iter docno rel` per line, whitespace separated), streaming it line
 * by line, or a BEIR qrels TSV (`query-id corpus-id score`, with or without that header line): the
 * first record's field count (4 or 3) fixes the format for the file. `-` reads stdin.
 * Blank lines and `#` comment lines are ignored. A line with another number of fields, a
 * non-integer grade, or a repeated (qid, docno) pair is malformed: an `ERR_FORMAT` error naming the
 * file and line, or skipped and counted with `{ skipMalformed: true }`.
 *
 * @example const { qrels, report } = await readQrels('qrels.test'); qrels.get('301')?.get('FR940104-0-00001');
 */
export async function readQrels(file: string, options?: ReadOptions): Promise<{ qrels: Qrels; report: ReadReport }> {
  assertString(file, 'file', { nonEmpty: true });
  checkKeys(options, ['skipMalformed'], 'options');
  const report = newReport(file);
  const qrels: Qrels = new Map();
  let fields: 3 | 4 | undefined;
  for await (const { text, line } of readLines(file, 'qrels file')) {
    report.lines = line;
    if (!isContent(text)) continue;
    const f = splitFields(text);
    if (fields === undefined && f.length === 3 && f[0] === 'query-id') {
      fields = 3; // the BEIR header line
      continue;
    }
    fields ??= f.length === 3 ? 3 : 4;
    if (f.length !== fields) {
      const expected = fields === 4 ? '4 fields "qid iter docno rel"' : '3 fields "query-id corpus-id score"';
      malformed(report, line, `expected ${expected} but found ${f.length}`, options);
      continue;
    }
    const [qid, docno, relText] = (fields === 4 ? [f[0], f[2], f[3]] : f) as [string, string, string];
    if (!INTEGER.test(relText)) {
      malformed(report, line, `expected an integer relevance grade but found "${relText}"`, options);
      continue;
    }
    let docs = qrels.get(qid);
    if (docs === undefined) qrels.set(qid, (docs = new Map()));
    if (docs.has(docno)) {
      malformed(report, line, `duplicate judgement for query "${qid}" and document "${docno}"`, options);
      continue;
    }
    docs.set(docno, Number.parseInt(relText, 10));
    report.records++;
  }
  return { qrels, report };
}

/**
 * Reads a TREC run file (`qid Q0 docno rank score tag`, extra columns ignored), streaming it line by
 * line. As in trec_eval the rank column is ignored (ranks come from scores) and the run tag is the
 * tag of the last line. A short line, a score that is not a number, or a document retrieved twice
 * for the same query is malformed: an `ERR_FORMAT` error naming file and line, or skipped and
 * counted with `{ skipMalformed: true }`.
 *
 * @example const { run } = await readRun('results.test'); run.queries.get('301')?.length;
 */
export async function readRun(file: string, options?: ReadOptions): Promise<{ run: Run; report: ReadReport }> {
  assertString(file, 'file', { nonEmpty: true });
  checkKeys(options, ['skipMalformed'], 'options');
  const report = newReport(file);
  const queries = new Map<string, ScoredDoc[]>();
  const seen = new Map<string, Set<string>>();
  let runid = '';
  for await (const { text, line } of readLines(file, 'run file')) {
    report.lines = line;
    if (!isContent(text)) continue;
    const f = splitFields(text);
    if (f.length < 6) {
      malformed(report, line, `expected 6 fields "qid Q0 docno rank score tag" but found ${f.length}`, options);
      continue;
    }
    const [qid, , docno, , scoreText, tag] = f as [string, string, string, string, string, string];
    const score = Number(scoreText);
    if (Number.isNaN(score)) {
      malformed(report, line, `expected a numeric score but found "${scoreText}"`, options);
      continue;
    }
    let docs = seen.get(qid);
    if (docs === undefined) {
      seen.set(qid, (docs = new Set()));
      queries.set(qid, []);
    }
    if (docs.has(docno)) {
      // trec_eval refuses runs that retrieve a document twice for one query; so do we.
      malformed(report, line, `document "${docno}" retrieved twice for query "${qid}"`, options);
      continue;
    }
    docs.add(docno);
    queries.get(qid)!.push({ docno, score });
    runid = tag;
    report.records++;
  }
  return { run: { runid, queries }, report };
}

/**
 * Formats a run as TREC run-file text: per query (in map order), documents in trec_eval's ranking
 * order (score descending, then docno descending) with ranks from 1. Scores are written in the
 * shortest form that reads back as the same number.
 *
 * @example formatRun({ runid: 'bm25', queries: new Map([['q1', [{ docno: 'd1', score: 2.5 }]]]) }) // "q1 Q0 d1 1 2.5 bm25\n"
 */
export function formatRun(run: Run): string {
  checkRun(run);
  const out: string[] = [];
  for (const [qid, docs] of run.queries) {
    rankDocs(docs).forEach((d, i) => out.push(`${qid} Q0 ${d.docno} ${i + 1} ${String(d.score)} ${run.runid}\n`));
  }
  return out.join('');
}

/**
 * Writes a run file atomically (a crash leaves the old file or the new one, never a mix).
 *
 * @example await writeRun('runs/bm25.trec', run);
 */
export async function writeRun(file: string, run: Run): Promise<void> {
  assertString(file, 'file', { nonEmpty: true });
  await writeFileAtomic(file, formatRun(run));
}

function checkToken(value: unknown, name: string): void {
  if (typeof value !== 'string' || value.length === 0 || /\s/.test(value)) {
    throw new TypeError(expected('non-empty string without whitespace', name, value));
  }
}

/** Validates a run's shape so that a written file always reads back. */
export function checkRun(run: Run): void {
  if (typeof run !== 'object' || run === null || !(run.queries instanceof Map)) {
    throw new TypeError(expected('object { runid, queries: Map }', 'run', run));
  }
  checkToken(run.runid, 'run.runid');
  for (const [qid, docs] of run.queries) {
    checkToken(qid, 'query id');
    if (!Array.isArray(docs)) throw new TypeError(expected('array of { docno, score }', `run.queries.get(${JSON.stringify(qid)})`, docs));
    for (const d of docs) {
      checkToken(d?.docno, `docno in query ${JSON.stringify(qid)}`);
      if (typeof d.score !== 'number' || Number.isNaN(d.score)) {
        throw new TypeError(expected('number', `score of ${JSON.stringify(d.docno)} in query ${JSON.stringify(qid)}`, d.score));
      }
    }
  }
}

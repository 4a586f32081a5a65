import { open } from 'node:fs/promises';
import { SearchR3Error } from '../util/errors';

/** Options shared by every reader of line-oriented data files (qrels, runs, JSONL, TSV). */
export interface ReadOptions {
  /**
   * false (default): the first malformed line throws a `SearchR3Error` with code `ERR_FORMAT` that
   * names the file and the line. true: malformed lines are skipped and counted in the report.
   */
  skipMalformed?: boolean;
}

/** One skipped line, kept so that a caller can show the user what was dropped. */
export interface SkippedLine {
  /** 1-based line number in the file. */
  line: number;
  /** Why the line was rejected, e.g. `expected 4 fields "qid iter docno rel" but found 3`. */
  reason: string;
}

/** What a reader saw: how many records it kept and which lines it skipped (never silently). */
export interface ReadReport {
  /** The file that was read. */
  file: string;
  /** Lines read, including blank, comment and skipped lines. */
  lines: number;
  /** Records kept. */
  records: number;
  /** Number of malformed lines skipped (only non-zero with `skipMalformed: true`). */
  skipped: number;
  /** The first {@link MAX_SKIPPED_KEPT} skipped lines with their reasons. */
  skippedLines: SkippedLine[];
}

/** A report keeps at most this many skipped lines in full; `skipped` still counts all of them. */
export const MAX_SKIPPED_KEPT = 100;

/** Starts an empty report for `file`. */
export function newReport(file: string): ReadReport {
  return { file, lines: 0, records: 0, skipped: 0, skippedLines: [] };
}

/**
 * Handles one malformed line: throws `ERR_FORMAT` naming file and line, or records it in the report
 * when the caller asked to skip malformed lines.
 */
export function malformed(report: ReadReport, line: number, reason: string, options: ReadOptions | undefined): void {
  if (!options?.skipMalformed) {
    throw new SearchR3Error('ERR_FORMAT', `${report.file}:${line}: ${reason}`);
  }
  report.skipped++;
  if (report.skippedLines.length < MAX_SKIPPED_KEPT) report.skippedLines.push({ line, reason });
}

/**
 * Yields the lines of a UTF-8 text file one at a time with 1-based line numbers, without reading
 * the whole file into memory. A trailing `\r` (CRLF files) is removed; a final line without a
 * newline is still yielded, and a byte-order mark (as some editors write) is dropped from line 1. A
 * missing or unreadable file is a `SearchR3Error` with code `ERR_FILE`.
 *
 * @example for await (const { text, line } of readLines('qrels.txt')) console.log(line, text);
 */
export async function* readLines(file: string, what = 'file'): AsyncGenerator<{ text: string; line: number }> {
  if (file === '-') {
    yield* splitStream(process.stdin.setEncoding('utf8'));
    return;
  }
  // Opening first turns ENOENT/EISDIR into a clear error before any line is consumed.
  let handle;
  try {
    handle = await open(file, 'r');
    const stat = await handle.stat();
    if (stat.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
  } catch (err) {
    await handle?.close();
    const detail = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new SearchR3Error('ERR_FILE', `Cannot read ${what} "${file}" (${detail})`, { cause: err });
  }
  const stream = handle.createReadStream({ encoding: 'utf8', autoClose: false, highWaterMark: 1 << 16 });
  try {
    yield* splitStream(stream);
  } finally {
    stream.destroy();
    await handle.close();
  }
}

/** Yields a text stream's lines, dropping a leading BOM and each line's CR before LF. */
async function* splitStream(stream: AsyncIterable<string>): AsyncGenerator<{ text: string; line: number }> {
  let pending = '';
  let line = 0;
  for await (const chunk of stream) {
    pending += line === 0 && pending.length === 0 && chunk.charCodeAt(0) === 0xfeff ? chunk.slice(1) : chunk;
    let start = 0;
    let nl: number;
    while ((nl = pending.indexOf('\n', start)) !== -1) {
      const end = nl > start && pending.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      yield { text: pending.slice(start, end), line: ++line };
      start = nl + 1;
    }
    pending = pending.slice(start);
  }
  if (pending.length > 0) {
    yield { text: pending.endsWith('\r') ? pending.slice(0, -1) : pending, line: ++line };
  }
}

/** Splits on runs of ASCII whitespace, as C's `isspace` does in trec_eval's readers. */
export function splitFields(text: string): string[] {
  const fields = text.split(/[ \t\f\v\r]+/);
  if (fields.length > 0 && fields[0] === '') fields.shift();
  if (fields.length > 0 && fields[fields.length - 1] === '') fields.pop();
  return fields;
}

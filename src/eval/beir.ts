import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs';
import { writeViaTemp } from '../util/temp-files';
import { assertOneOf, assertString, checkKeys, expected } from '../util/validate';
import { malformed, newReport, readLines, type ReadOptions, type ReadReport } from './lines';
import type { Qrels } from './trec';

/** A corpus document (BEIR's `_id`, `title`, `text`). */
export interface BeirDoc {
  id: string;
  title: string;
  text: string;
}

/** A query (BEIR's `_id`, `text`, optional `metadata` object). */
export interface BeirQuery {
  id: string;
  text: string;
  metadata?: Record<string, unknown>;
}

/** The qrels splits a BEIR dataset may have (`qrels/<split>.tsv`). */
export type BeirSplit = 'train' | 'dev' | 'test';
export const BEIR_SPLITS: readonly BeirSplit[] = ['train', 'dev', 'test'];

/**
 * A stream of records read lazily from a file. Its `report` fills in as it is iterated and is
 * complete when iteration ends; iterating again re-reads the file.
 */
export interface RecordStream<T> extends AsyncIterable<T> {
  readonly report: ReadReport;
}

function stream<T>(file: string, what: string, options: ReadOptions | undefined, parse: (text: string) => T | string): RecordStream<T> {
  checkKeys(options, ['skipMalformed'], 'options');
  const s = {
    report: newReport(file),
    async *[Symbol.asyncIterator](): AsyncGenerator<T> {
      s.report = newReport(file);
      for await (const { text, line } of readLines(file, what)) {
        s.report.lines = line;
        if (text.trim() === '') continue;
        const r = parse(text);
        // parse returns a string to say why the line is malformed.
        if (typeof r === 'string') malformed(s.report, line, r, options);
        else {
          s.report.records++;
          yield r;
        }
      }
    },
  };
  return s;
}

function parseJsonObject(text: string): Record<string, unknown> | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return `invalid JSON (${(err as Error).message})`;
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : 'expected a JSON object';
}

function idOf(o: Record<string, unknown>): string | undefined {
  const id = o._id;
  // Some BEIR exports write numeric ids; they name the same document as the string form.
  if (typeof id === 'number' && Number.isInteger(id)) return String(id);
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}

function parseDoc(text: string): BeirDoc | string {
  const o = parseJsonObject(text);
  if (typeof o === 'string') return o;
  const id = idOf(o);
  if (id === undefined) return 'expected "_id" to be a non-empty string';
  if (typeof o.text !== 'string') return `expected "text" to be a string in document "${id}"`;
  if (o.title !== undefined && o.title !== null && typeof o.title !== 'string') return `expected "title" to be a string in document "${id}"`;
  return { id, title: typeof o.title === 'string' ? o.title : '', text: o.text };
}

function parseQuery(text: string): BeirQuery | string {
  const o = parseJsonObject(text);
  if (typeof o === 'string') return o;
  const id = idOf(o);
  if (id === undefined) return 'expected "_id" to be a non-empty string';
  if (typeof o.text !== 'string') return `expected "text" to be a string in query "${id}"`;
  const m = o.metadata;
  if (m !== undefined && (typeof m !== 'object' || m === null || Array.isArray(m))) return `expected "metadata" to be an object in query "${id}"`;
  return m === undefined ? { id, text: o.text } : { id, text: o.text, metadata: m as Record<string, unknown> };
}

/**
 * Streams `corpus.jsonl` of a BEIR dataset directory, one document at a time, so corpora of
 * millions of lines never sit in memory. Malformed lines are `ERR_FORMAT` errors naming file and
 * line, or skipped and counted in `report` with `{ skipMalformed: true }`.
 *
 * @example for await (const doc of readBeirCorpus('data/scifact')) index.add(doc.id, `${doc.title} ${doc.text}`);
 */
export function readBeirCorpus(dir: string, options?: ReadOptions): RecordStream<BeirDoc> {
  assertString(dir, 'dir', { nonEmpty: true });
  return stream(join(dir, 'corpus.jsonl'), 'BEIR corpus', options, parseDoc);
}

/**
 * Streams a BEIR corpus file given by its own path (any name), as {@link readBeirCorpus} does for
 * a directory's `corpus.jsonl`.
 *
 * @example for await (const doc of readBeirCorpusFile('data/scifact/corpus.jsonl')) console.log(doc.id);
 */
export function readBeirCorpusFile(file: string, options?: ReadOptions): RecordStream<BeirDoc> {
  assertString(file, 'file', { nonEmpty: true });
  return stream(file, 'BEIR corpus', options, parseDoc);
}

/**
 * Streams `queries.jsonl` of a BEIR dataset directory.
 *
 * @example for await (const q of readBeirQueries('data/scifact')) console.log(q.id, q.text);
 */
export function readBeirQueries(dir: string, options?: ReadOptions): RecordStream<BeirQuery> {
  assertString(dir, 'dir', { nonEmpty: true });
  return stream(join(dir, 'queries.jsonl'), 'BEIR queries', options, parseQuery);
}

const INTEGER = /^[+-]?\d+$/;

/**
 * Reads `qrels/<split>.tsv` (`query-id<TAB>corpus-id<TAB>score`, header line first) into
 * {@link Qrels}. A missing header is tolerated; a wrong field count, a non-integer score or a
 * repeated pair is malformed.
 *
 * @example const { qrels } = await readBeirQrels('data/scifact', 'test');
 */
export async function readBeirQrels(dir: string, split: BeirSplit, options?: ReadOptions): Promise<{ qrels: Qrels; report: ReadReport }> {
  assertString(dir, 'dir', { nonEmpty: true });
  assertOneOf(split, 'split', BEIR_SPLITS);
  checkKeys(options, ['skipMalformed'], 'options');
  const file = join(dir, 'qrels', `${split}.tsv`);
  const report = newReport(file);
  const qrels: Qrels = new Map();
  let first = true;
  for await (const { text, line } of readLines(file, 'BEIR qrels')) {
    report.lines = line;
    if (text.trim() === '') continue;
    const f = text.split('\t').map((s) => s.trim());
    const header = first && f[0] === 'query-id';
    first = false;
    if (header) continue;
    if (f.length !== 3) {
      malformed(report, line, `expected 3 tab-separated fields "query-id corpus-id score" but found ${f.length}`, options);
      continue;
    }
    const [qid, docId, score] = f as [string, string, string];
    if (qid === '' || docId === '' || !INTEGER.test(score)) {
      malformed(report, line, `expected non-empty ids and an integer score but found ${JSON.stringify(text)}`, options);
      continue;
    }
    let docs = qrels.get(qid);
    if (docs === undefined) qrels.set(qid, (docs = new Map()));
    if (docs.has(docId)) {
      malformed(report, line, `duplicate judgement for query "${qid}" and document "${docId}"`, options);
      continue;
    }
    docs.set(docId, Number.parseInt(score, 10));
    report.records++;
  }
  return { qrels, report };
}

/** A dataset to write in BEIR layout. The corpus may be an async stream of any size. */
export interface BeirDataset {
  corpus: Iterable<BeirDoc> | AsyncIterable<BeirDoc>;
  queries: Iterable<BeirQuery>;
  qrels: Partial<Record<BeirSplit, Qrels>>;
}

/**
 * Writes lines to `file` with the same guarantee as `writeFileAtomic` (old or new content, never a
 * mix) without holding the whole file in memory: util/fs takes one buffer, a corpus may not fit.
 */
async function writeLinesAtomic(file: string, lines: AsyncIterable<string>): Promise<void> {
  await writeViaTemp(file, async (sink) => {
    let buffer = '';
    for await (const l of lines) {
      buffer += l;
      if (buffer.length >= 1 << 20) { await sink.write(buffer); buffer = ''; }
    }
    await sink.write(buffer);
  });
}

function checkId(id: unknown, name: string): void {
  if (typeof id !== 'string' || id.length === 0 || /[\t\n\r]/.test(id)) throw new TypeError(expected('non-empty id without tabs or newlines', name, id));
}

async function* corpusLines(corpus: BeirDataset['corpus']): AsyncGenerator<string> {
  for await (const d of corpus as AsyncIterable<BeirDoc>) {
    checkId(d?.id, 'corpus document id');
    if (typeof d.text !== 'string' || typeof d.title !== 'string') throw new TypeError(expected('{ id, title, text } strings', `corpus document ${JSON.stringify(d.id)}`, d));
    yield `${JSON.stringify({ _id: d.id, title: d.title, text: d.text })}\n`;
  }
}

function qrelsTsv(qrels: Qrels): string {
  const out = ['query-id\tcorpus-id\tscore\n'];
  for (const [qid, docs] of qrels) {
    checkId(qid, 'qrels query id');
    for (const [docId, grade] of docs) {
      checkId(docId, 'qrels document id');
      if (!Number.isInteger(grade)) throw new TypeError(expected('integer grade', `qrels grade of ${JSON.stringify(docId)} for ${JSON.stringify(qid)}`, grade));
      out.push(`${qid}\t${docId}\t${grade}\n`);
    }
  }
  return out.join('');
}

/**
 * Writes a dataset in BEIR layout: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv` for each
 * split given. Every file is written atomically.
 *
 * @example await writeBeir('data/mini', { corpus: docs, queries, qrels: { test: qrels } });
 */
export async function writeBeir(dir: string, dataset: BeirDataset): Promise<void> {
  assertString(dir, 'dir', { nonEmpty: true });
  if (typeof dataset !== 'object' || dataset === null) throw new TypeError(expected('object { corpus, queries, qrels }', 'dataset', dataset));
  checkKeys(dataset.qrels, BEIR_SPLITS, 'dataset.qrels');
  await mkdir(join(dir, 'qrels'), { recursive: true });
  await writeLinesAtomic(join(dir, 'corpus.jsonl'), corpusLines(dataset.corpus));
  const queryLines: string[] = [];
  for (const q of dataset.queries) {
    checkId(q?.id, 'query id');
    if (typeof q.text !== 'string') throw new TypeError(expected('string', `text of query ${JSON.stringify(q.id)}`, q.text));
    const record = q.metadata === undefined ? { _id: q.id, text: q.text } : { _id: q.id, text: q.text, metadata: q.metadata };
    queryLines.push(`${JSON.stringify(record)}\n`);
  }
  await writeFileAtomic(join(dir, 'queries.jsonl'), queryLines.join(''));
  for (const split of BEIR_SPLITS) {
    const qrels = dataset.qrels[split];
    if (qrels !== undefined) await writeFileAtomic(join(dir, 'qrels', `${split}.tsv`), qrelsTsv(qrels));
  }
}

/** The text a retriever sees for a document: BEIR's convention of title, then body. */
export function documentText(doc: BeirDoc): string {
  return doc.title ? `${doc.title}\n${doc.text}` : doc.text;
}

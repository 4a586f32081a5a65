// Question-answering data as Search-R1 and FlashRAG ship it — questions in JSONL
// `{id?, question, golden_answers: [...]}`, corpora in JSONL `{id, contents: "\"Title\"\ntext"}` —
// and multi-hop QA made from the package's synthetic dataset in the same two forms.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { titledContents, type CorpusDoc } from '../docindex/corpus';
import { writeViaTemp } from '../util/temp-files';
import { assertString, expected } from '../util/validate';
import type { BeirSplit } from './beir';
import { malformed, newReport, readLines, type ReadOptions, type ReadReport } from './lines';
import type { SyntheticDataset } from './synthetic';

/** One question with its gold answers. */
export interface QaItem {
  /** The record's `id`, or its 0-based position in the file as a string when it has none. */
  id: string;
  question: string;
  /** Every accepted answer (at least one). */
  goldenAnswers: string[];
  /** Documents needed to reach the answer (1 = single hop), when the data says. */
  hops?: number;
  /** Any other fields of the record, kept as they were. */
  metadata?: Record<string, unknown>;
}

const KNOWN = new Set(['id', 'question', 'golden_answers', 'hops']);

function parseQa(text: string, index: number): QaItem | string {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (err) {
    return `invalid JSON (${(err as Error).message})`;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'expected a JSON object {"question", "golden_answers"}';
  const r = o as Record<string, unknown>;
  const id = typeof r.id === 'number' && Number.isInteger(r.id) ? String(r.id) : r.id === undefined ? String(index) : r.id;
  if (typeof id !== 'string' || id.length === 0) return 'expected "id" to be a non-empty string when present';
  if (typeof r.question !== 'string' || r.question.trim() === '') return `expected "question" to be a non-empty string in question "${id}"`;
  const golds = r.golden_answers;
  if (!Array.isArray(golds) || golds.length === 0 || golds.some((g) => typeof g !== 'string')) {
    return `expected "golden_answers" to be a non-empty array of strings in question "${id}"`;
  }
  if (r.hops !== undefined && (!Number.isInteger(r.hops) || (r.hops as number) < 1)) return `expected "hops" to be a positive integer in question "${id}"`;
  const item: QaItem = { id, question: r.question, goldenAnswers: golds as string[] };
  if (r.hops !== undefined) item.hops = r.hops as number;
  const rest = Object.entries(r).filter(([k]) => !KNOWN.has(k));
  if (rest.length > 0) item.metadata = Object.fromEntries(rest);
  return item;
}

/**
 * Reads QA JSONL (FlashRAG's and Search-R1's `{id?, question, golden_answers: [...]}`, optionally
 * `hops`; other fields land in `metadata`). A malformed record or a repeated id is an `ERR_FORMAT`
 * error naming `FILE:LINE`, unless `skipMalformed` counts it in the report instead; a file with no
 * question is `ERR_FORMAT`; a missing file `ERR_FILE`.
 *
 * @example const { items } = await readQaJsonl('nq-test.jsonl'); items[0].goldenAnswers
 */
export async function readQaJsonl(file: string, options?: ReadOptions): Promise<{ items: QaItem[]; report: ReadReport }> {
  assertString(file, 'file', { nonEmpty: true });
  const report = newReport(file);
  const items: QaItem[] = [];
  const firstLine = new Map<string, number>();
  for await (const { text, line } of readLines(file, 'QA file')) {
    report.lines = line;
    if (text.trim() === '') continue;
    const r = parseQa(text, items.length);
    if (typeof r === 'string') {
      malformed(report, line, r, options);
      continue;
    }
    const seen = firstLine.get(r.id);
    if (seen !== undefined) {
      malformed(report, line, `question id "${r.id}" appears again (first at line ${seen})`, options);
      continue;
    }
    firstLine.set(r.id, line);
    items.push(r);
    report.records++;
  }
  if (items.length === 0) malformed(report, report.lines, 'expected at least one question {"question", "golden_answers"}', undefined);
  return { items, report };
}

function qaRecord(item: QaItem): Record<string, unknown> {
  const r: Record<string, unknown> = { ...item.metadata, id: item.id, question: item.question, golden_answers: item.goldenAnswers };
  if (item.hops !== undefined) r.hops = item.hops;
  return r;
}

async function writeJsonl(file: string, records: Iterable<Record<string, unknown>>): Promise<void> {
  await writeViaTemp(file, async (sink) => {
    for (const r of records) await sink.write(`${JSON.stringify(r)}\n`);
  });
}

/**
 * Writes questions as QA JSONL, atomically (`metadata` fields first, then id, question,
 * golden_answers, hops), so {@link readQaJsonl} reads back the same items.
 *
 * @example await writeQaJsonl('test.jsonl', items);
 */
export async function writeQaJsonl(file: string, items: readonly QaItem[]): Promise<void> {
  assertString(file, 'file', { nonEmpty: true });
  if (!Array.isArray(items)) throw new TypeError(expected('array of QA items', 'items', items));
  await writeJsonl(file, items.map(qaRecord));
}

/**
 * Writes a corpus as FlashRAG JSONL `{id, contents}`, atomically; `readCorpus` reads it back.
 *
 * @example await writeFlashragCorpus('corpus.jsonl', [{ id: 'd1', contents: '"Paris"\nCapital of France.' }]);
 */
export async function writeFlashragCorpus(file: string, docs: readonly CorpusDoc[]): Promise<void> {
  assertString(file, 'file', { nonEmpty: true });
  if (!Array.isArray(docs)) throw new TypeError(expected('array of documents', 'docs', docs));
  await writeJsonl(file, docs.map((d) => ({ id: d.id, contents: d.contents })));
}

/** Multi-hop QA made from a synthetic dataset: questions per split and the corpus, FlashRAG-shaped. */
export interface SyntheticQa {
  corpus: CorpusDoc[];
  questions: Record<BeirSplit, QaItem[]>;
}

/**
 * Turns a synthetic dataset into QA: each query becomes a question whose golden answer is the
 * query's answer, with `hops` = 1 + its bridge documents and `metadata` {kind, target, bridges}
 * (the documents on the way, which the warm-up trajectories search for); documents become FlashRAG
 * records with their title quoted on the first line.
 *
 * @example const qa = syntheticQa(makeSyntheticDataset({ seed: 3 })); qa.questions.test.filter((q) => q.hops > 1)
 */
export function syntheticQa(dataset: SyntheticDataset): SyntheticQa {
  if (!Array.isArray(dataset?.corpus) || !Array.isArray(dataset?.queries)) throw new TypeError(expected('a synthetic dataset', 'dataset', dataset));
  const questions: Record<BeirSplit, QaItem[]> = { train: [], dev: [], test: [] };
  for (const q of dataset.queries) {
    questions[q.split].push({
      id: q.id, question: q.text, goldenAnswers: [q.answer], hops: 1 + q.bridges.length,
      metadata: { kind: q.kind, target: q.target, bridges: q.bridges },
    });
  }
  return { corpus: dataset.corpus.map((d) => ({ id: d.id, contents: titledContents(d.title, d.text) })), questions };
}

/**
 * Writes synthetic QA into `dir`: `corpus.jsonl` (FlashRAG) and `train.jsonl`, `dev.jsonl`,
 * `test.jsonl` (QA JSONL), each atomically.
 *
 * @example await writeSyntheticQa('data/qa', syntheticQa(makeSyntheticDataset()));
 */
export async function writeSyntheticQa(dir: string, qa: SyntheticQa): Promise<void> {
  assertString(dir, 'dir', { nonEmpty: true });
  await mkdir(dir, { recursive: true });
  await writeFlashragCorpus(join(dir, 'corpus.jsonl'), qa.corpus);
  for (const split of ['train', 'dev', 'test'] as const) await writeQaJsonl(join(dir, `${split}.jsonl`), qa.questions[split]);
}

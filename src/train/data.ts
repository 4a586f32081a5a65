import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Model } from '../engine/model';
import { buildEmbedPrompt, type EmbedTemplate, type LongTextPolicy } from '../engine/templates';
import { BEIR_SPLITS, documentText, readBeirCorpus, readBeirQrels, readBeirQueries, type BeirDoc, type BeirQuery, type BeirSplit } from '../eval/beir';
import { readLines } from '../eval/lines';
import { makeSyntheticDataset } from '../eval/synthetic';
import type { Qrels } from '../eval/trec';
import { WeightRandom } from '../gguf/random';
import { SearchR3Error } from '../util/errors';
import { assertInteger, assertNumber, assertOneOf, assertString, checkKeys, expected } from '../util/validate';

/**
 * Training records of stage 1: a query, a document relevant to it and documents that are not
 * (hard negatives; the other records' positives serve as in-batch negatives).
 */
export interface PairRecord {
  id: string;
  query: string;
  positive: string;
  negatives: string[];
  /** The positive's corpus id, when the data names it (JSONL `positive_id`, a BEIR qrels line); stage 2 finds the positive in its corpus by it. */
  positiveId?: string;
  /** Where the record was read (`FILE:LINE` for JSONL), so messages about it can point there. */
  source?: string;
}

const PAIR_KEYS = ['id', 'query', 'positive', 'negatives', 'positive_id'];
const lowerFirst = (s: string): string => s[0]!.toLowerCase() + s.slice(1);
const isText = (v: unknown): v is string => typeof v === 'string' && v.trim().length > 0;

/** Parses one JSONL line; a string return says why the line is malformed. */
function parsePair(text: string, line: number): PairRecord | string {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (err) {
    return `invalid JSON (${(err as Error).message})`;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return lowerFirst(expected('JSON object { query, positive, negatives? }', 'the record', o));
  const r = o as Record<string, unknown>;
  try {
    checkKeys(r, PAIR_KEYS, 'the record');
  } catch (err) {
    // checkKeys words it for function options; a data file has keys, not options.
    return lowerFirst((err as Error).message.replace('Unknown option', 'unknown key').replace('known options', 'known keys'));
  }
  if (r.id !== undefined && !isText(r.id)) return lowerFirst(expected('non-empty string', 'id', r.id));
  if (!isText(r.query)) return lowerFirst(expected('non-empty string', 'query', r.query));
  if (!isText(r.positive)) return lowerFirst(expected('non-empty string', 'positive', r.positive));
  const negatives = r.negatives ?? [];
  if (!Array.isArray(negatives)) return lowerFirst(expected('array of non-empty strings', 'negatives', negatives));
  const bad = negatives.findIndex((n) => !isText(n));
  if (bad >= 0) return lowerFirst(expected('non-empty string', `negatives[${bad}]`, negatives[bad]));
  if (r.positive_id !== undefined && !isText(r.positive_id)) return lowerFirst(expected('non-empty string', 'positive_id', r.positive_id));
  const record: PairRecord = { id: (r.id as string | undefined) ?? `line-${line}`, query: r.query, positive: r.positive, negatives: negatives as string[] };
  if (r.positive_id !== undefined) record.positiveId = r.positive_id as string;
  return record;
}

/**
 * Reads training pairs from JSONL, one `{"query": …, "positive": …, "negatives": […]}` object per
 * line (`negatives` optional, default none; `id` optional, default `line-<n>`). Blank lines are
 * skipped. A malformed line, an unknown key, a repeated id or a file without records is a
 * `SearchR3Error` with code `ERR_FORMAT` naming the file and 1-based line; a missing file `ERR_FILE`.
 *
 * @example
 * const pairs = await readPairsJsonl('train.jsonl');
 * // train.jsonl:7: expected non-empty string for query but received 42 of type number
 */
export async function readPairsJsonl(path: string): Promise<PairRecord[]> {
  assertString(path, 'path', { nonEmpty: true });
  const records: PairRecord[] = [];
  const seen = new Map<string, number>();
  for await (const { text, line } of readLines(path, 'training pairs')) {
    if (text.trim() === '') continue;
    const r = parsePair(text, line);
    if (typeof r === 'string') throw new SearchR3Error('ERR_FORMAT', `${path}:${line}: ${r}`);
    const first = seen.get(r.id);
    if (first !== undefined) throw new SearchR3Error('ERR_FORMAT', `${path}:${line}: duplicate id ${JSON.stringify(r.id)} (first on line ${first})`);
    seen.set(r.id, line);
    records.push({ ...r, source: `${path}:${line}` });
  }
  if (records.length === 0) throw new SearchR3Error('ERR_FORMAT', `${path}: no training pairs (the file is empty or has only blank lines)`);
  return records;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isFile() ?? false;
}

async function splitsIn(dir: string): Promise<string[]> {
  const names = await readdir(join(dir, 'qrels')).catch(() => [] as string[]);
  return BEIR_SPLITS.filter((s) => names.includes(`${s}.tsv`));
}

/** Options of {@link readBeirPairs}. */
export interface BeirPairsOptions {
  /** Which `qrels/<split>.tsv` judges the pairs (default 'train'). */
  split?: BeirSplit;
}

/**
 * Reads training pairs from a BEIR dataset directory (`corpus.jsonl`, `queries.jsonl`,
 * `qrels/<split>.tsv`): one record per judged (query, document) with score > 0, whose negatives
 * are the documents judged 0 (or below) for that query. Documents are embedded as
 * `title + "\n" + text` when they have a title, else `text` alone. Only judged documents are kept
 * in memory while the corpus streams past. Queries without a relevant document give no record.
 * A missing split is `ERR_FILE` naming the path; a judged query or document missing from its file
 * is `ERR_FORMAT`.
 *
 * @example const pairs = await readBeirPairs('data/scifact', { split: 'train' });
 */
export async function readBeirPairs(dir: string, options: BeirPairsOptions = {}): Promise<PairRecord[]> {
  assertString(dir, 'dir', { nonEmpty: true });
  checkKeys(options, ['split'], 'options');
  const split = options.split ?? 'train';
  assertOneOf(split, 'options.split', BEIR_SPLITS);
  const qrelsFile = join(dir, 'qrels', `${split}.tsv`);
  if (!(await isFile(qrelsFile))) {
    const have = await splitsIn(dir);
    throw new SearchR3Error('ERR_FILE', `BEIR dataset ${dir} has no ${split} split: ${qrelsFile} does not exist (splits present: ${have.length > 0 ? have.join(', ') : 'none'})`);
  }
  const { qrels } = await readBeirQrels(dir, split);
  const wanted = new Set<string>();
  for (const judged of qrels.values()) for (const id of judged.keys()) wanted.add(id);
  const queries = new Map<string, string>();
  for await (const q of readBeirQueries(dir)) if (qrels.has(q.id)) queries.set(q.id, q.text);
  const docs = new Map<string, string>();
  for await (const d of readBeirCorpus(dir)) if (wanted.has(d.id)) docs.set(d.id, documentText(d));

  const records: PairRecord[] = [];
  for (const [qid, judged] of qrels) {
    const query = queries.get(qid);
    if (query === undefined) throw new SearchR3Error('ERR_FORMAT', `${qrelsFile}: query "${qid}" is judged but ${join(dir, 'queries.jsonl')} has no such query`);
    const text = (docId: string): string => {
      const t = docs.get(docId);
      if (t === undefined) throw new SearchR3Error('ERR_FORMAT', `${qrelsFile}: document "${docId}" is judged for query "${qid}" but ${join(dir, 'corpus.jsonl')} has no such document`);
      return t;
    };
    const negatives = [...judged].filter(([, score]) => score <= 0).map(([id]) => text(id));
    for (const [docId, score] of judged) {
      if (score > 0) records.push({ id: `${qid}/${docId}`, query, positive: text(docId), negatives: [...negatives], positiveId: docId });
    }
  }
  if (records.length === 0) throw new SearchR3Error('ERR_FORMAT', `${qrelsFile}: no query has a relevant document (score > 0)`);
  return records;
}

/**
 * Reads training pairs from a JSONL file ({@link readPairsJsonl}) or a BEIR dataset directory
 * ({@link readBeirPairs}; `options.split` applies there). A missing path is `ERR_FILE`.
 *
 * @example const pairs = await loadTrainingData(process.argv[2]); // 'train.jsonl' or 'data/scifact'
 */
export async function loadTrainingData(pathOrDir: string, options: BeirPairsOptions = {}): Promise<PairRecord[]> {
  assertString(pathOrDir, 'pathOrDir', { nonEmpty: true });
  checkKeys(options, ['split'], 'options');
  let info;
  try {
    info = await stat(pathOrDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new SearchR3Error('ERR_FILE', `Cannot read training data "${pathOrDir}" (${code})`, { cause: err });
  }
  return info.isDirectory() ? readBeirPairs(pathOrDir, options) : readPairsJsonl(pathOrDir);
}

/** Token ids of one training pair, each ending in `<|embed_token|>`. */
export interface EncodedPair {
  query: Int32Array;
  positive: Int32Array;
  negatives: Int32Array[];
  /** How many of the pair's texts were shortened to fit `maxTokens`. */
  shortened: number;
}

/** Options of {@link encodePair}. */
export interface EncodeOptions {
  /**
   * Most tokens per prompt, template included (default 512, the embedder's default
   * `contextPerSequence`, so training never sees more of a text than inference can).
   */
  maxTokens?: number;
  /**
   * A text over `maxTokens` (the README's "Long texts" rule): `truncate` (default) shortens it
   * and counts it in `shortened`; `error` throws ERR_CONTEXT naming the record's id and source.
   * (`skip` is a choice about whole records: {@link fitTrainingData}.)
   */
  longText?: Exclude<LongTextPolicy, 'skip'>;
}

function checkTail(model: Model, ids: Int32Array, side: string): Int32Array {
  if (ids[ids.length - 1] !== model.info.embedTokenId) {
    throw new SearchR3Error('ERR_MODEL', `the ${side} prompt does not end in <|embed_token|>; the template's directAssistant must end with it`);
  }
  return ids;
}

/**
 * The prompt of `text` on one side, exactly as `buildEmbedPrompt` builds it; when that exceeds
 * `maxTokens`, the prompt of the longest prefix of `text` that fits. Cutting the text rather than
 * the token ids keeps the template's tail (and `<|embed_token|>`) intact and means the result is
 * what inference would build for the shortened text. The prefix is found by binary search on its
 * length in characters, never splitting a surrogate pair.
 *
 * @example encodeEmbedText(model, DEFAULT_EMBED_TEMPLATE, 'document', longText, 256).length // ≤ 256
 */
export function encodeEmbedText(model: Model, template: EmbedTemplate, side: 'query' | 'document', text: string, maxTokens: number): Int32Array {
  if (model.info.embedTokenId === null) {
    throw new SearchR3Error('ERR_MODEL', `${model.info.path} has no <|embed_token|>; add it with \`search-r3 add-embed-token\``);
  }
  assertInteger(maxTokens, 'maxTokens', 1);
  const full = checkTail(model, buildEmbedPrompt(model, template, side, text), side);
  if (full.length <= maxTokens) return full;
  const bare = buildEmbedPrompt(model, template, side, '');
  if (bare.length > maxTokens) {
    throw new SearchR3Error('ERR_CONTEXT', `the ${side} prompt template alone takes ${bare.length} tokens, more than maxTokens ${maxTokens}`);
  }
  const cut = (n: number): number => (n > 0 && /[\uD800-\uDBFF]/.test(text[n - 1]!) ? n - 1 : n);
  const fit = (n: number): Int32Array | null => {
    const ids = buildEmbedPrompt(model, template, side, text.slice(0, cut(n)));
    return ids.length <= maxTokens ? ids : null;
  };
  // Invariant: the prefix of length lo fits (its prompt is best); the one of length hi + 1 does not.
  let lo = 0;
  let hi = text.length - 1;
  let best = bare;
  // Start where the first `budget` tokens of the text end and gallop from there, so a long
  // document costs a few tokenizations of a prefix about maxTokens long, not of the whole text.
  // (Tokenizers that do not detokenize to the exact text, e.g. by adding a leading space, skip this.)
  const body = model.tokenize(text, { addSpecial: false, parseSpecial: false });
  const start = model.detokenize(body.subarray(0, maxTokens - bare.length));
  const guess = start.length;
  if (guess > 0 && guess <= hi && text.startsWith(start)) {
    const first = fit(guess);
    if (first === null) hi = guess - 1;
    else {
      [lo, best] = [guess, first];
      for (let step = 1; lo < hi; step *= 2) {
        const m = Math.min(hi, lo + step);
        const ids = fit(m);
        if (ids === null) { hi = m - 1; break; }
        [lo, best] = [m, ids];
      }
    }
  }
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const ids = fit(mid);
    if (ids !== null) [lo, best] = [mid, ids];
    else hi = mid - 1;
  }
  return best;
}

/**
 * Token ids of a training pair: the query on the query side, positive and negatives on the
 * document side, each built by `buildEmbedPrompt` and ending in `<|embed_token|>`; texts too long
 * for `maxTokens` are shortened as {@link encodeEmbedText} does. A model without
 * `<|embed_token|>` or a template whose assistant text does not end in it is `ERR_MODEL`; a
 * template longer than `maxTokens` on its own is `ERR_CONTEXT`.
 *
 * @example
 * const ids = encodePair(model, DEFAULT_EMBED_TEMPLATE, { id: 'a', query: 'who wrote Hamlet', positive: 'Hamlet is a play by Shakespeare.', negatives: [] });
 */
export function encodePair(model: Model, template: EmbedTemplate, record: PairRecord, options: EncodeOptions = {}): EncodedPair {
  checkKeys(options, ['maxTokens', 'longText'], 'options');
  const maxTokens = options.maxTokens ?? 512;
  assertInteger(maxTokens, 'options.maxTokens', 1);
  const longText = options.longText ?? 'truncate';
  assertOneOf(longText, 'options.longText', ['truncate', 'error'] as const);
  if (typeof record !== 'object' || record === null || !Array.isArray(record.negatives)) {
    throw new TypeError(expected('PairRecord { id, query, positive, negatives }', 'record', record));
  }
  assertString(record.query, 'record.query');
  assertString(record.positive, 'record.positive');
  let shortened = 0;
  const encode = (side: 'query' | 'document', text: string, field: string): Int32Array => {
    const ids = encodeEmbedText(model, template, side, text, maxTokens);
    // Tokenizing twice is cheap next to a training step, and keeps encodeEmbedText's contract.
    const needed = buildEmbedPrompt(model, template, side, text).length;
    if (needed <= maxTokens) return ids;
    if (longText === 'error') {
      throw new SearchR3Error('ERR_CONTEXT', `${record.source ?? 'training data'}: record "${record.id}" ${field} needs ${needed} tokens, more than the ${maxTokens} of maxTokens; shorten it, raise maxTokens (--max-tokens) or use longText truncate|skip (--long-text)`);
    }
    shortened++;
    return ids;
  };
  const query = encode('query', record.query, 'query');
  const positive = encode('document', record.positive, 'positive');
  const negatives = record.negatives.map((n, i) => {
    assertString(n, `record.negatives[${i}]`);
    return encode('document', n, `negatives[${i}]`);
  });
  return { query, positive, negatives, shortened };
}

/** What {@link fitTrainingData} kept, and how many texts and records the long-text rule touched. */
export interface FittedTrainingData {
  records: PairRecord[];
  /** Texts shortened to `maxTokens` (policy `truncate`). */
  shortened: number;
  /** Records left out because a text was too long (policy `skip`). */
  skipped: PairRecord[];
}

/**
 * Applies the "Long texts" rule to training records before training starts, so a bad record
 * stops the run before any step (`error`, naming its id and `FILE:LINE`), is dropped and counted
 * (`skip`), or is counted as shortened (`truncate`, the default).
 *
 * @example const { records, shortened } = fitTrainingData(model, DEFAULT_EMBED_TEMPLATE, pairs, { maxTokens: 256 });
 */
export function fitTrainingData(model: Model, template: EmbedTemplate, records: PairRecord[], options: { maxTokens: number; longText?: LongTextPolicy }): FittedTrainingData {
  checkKeys(options, ['maxTokens', 'longText'], 'options');
  const policy = options.longText ?? 'truncate';
  assertOneOf(policy, 'options.longText', ['truncate', 'error', 'skip'] as const);
  const out: FittedTrainingData = { records: [], shortened: 0, skipped: [] };
  for (const r of records) {
    const e = encodePair(model, template, r, { maxTokens: options.maxTokens, longText: policy === 'error' ? 'error' : 'truncate' });
    if (e.shortened > 0 && policy === 'skip') {
      out.skipped.push(r);
      continue;
    }
    out.shortened += e.shortened;
    out.records.push(r);
  }
  return out;
}

/** Options of {@link makeRetrievalTask}; every field has a default. */
export interface RetrievalTaskOptions {
  /** Seed (unsigned 32-bit); the same options always give the same task. Default 1. */
  seed?: number;
  /** Documents generated before the split, 20–1000. Default 100. */
  docs?: number;
  /** Queries generated (train and held-out together). Default 60. */
  queries?: number;
  /** Share of each kind of query used for training; the rest are held out. Default 0.5. */
  trainFraction?: number;
  /** Hard negatives per training record, drawn from other training documents of the same kind. Default 3. */
  negatives?: number;
}

/** A small retrieval task: training pairs and a held-out split in BEIR's shape. */
export interface RetrievalTask {
  train: PairRecord[];
  /** Queries, documents and qrels that share nothing with `train`; `writeBeir` writes them out. */
  heldOut: { corpus: BeirDoc[]; queries: BeirQuery[]; qrels: Qrels };
}

function shuffled<T>(items: T[], rand: WeightRandom): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rand.next() % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * A small synthetic retrieval task for training tests, built on `makeSyntheticDataset`'s one-hop
 * queries, which use different words than their documents ("doctor" asks for a "physician", a
 * "sun-powered timepiece" for a "solar clock"), so lexical overlap cannot solve it. Training
 * records pair each training query with its document, with hard negatives from other training
 * documents of the same kind (people, inventions or towns). The held-out corpus is every document
 * no training record mentions, so held-out queries, their documents and the distractors around
 * them are all unseen in training.
 *
 * @example
 * const { train, heldOut } = makeRetrievalTask({ seed: 3 });
 * await writeBeir('heldout', { corpus: heldOut.corpus, queries: heldOut.queries, qrels: { test: heldOut.qrels } });
 */
export function makeRetrievalTask(options: RetrievalTaskOptions = {}): RetrievalTask {
  checkKeys(options, ['seed', 'docs', 'queries', 'trainFraction', 'negatives'], 'options');
  const o = { seed: 1, docs: 100, queries: 60, trainFraction: 0.5, negatives: 3, ...options };
  assertInteger(o.negatives, 'options.negatives', 0);
  assertNumber(o.trainFraction, 'options.trainFraction', 0, 1);
  const ds = makeSyntheticDataset({ seed: o.seed, docs: o.docs, queries: o.queries, multiHopFraction: 0, trainFraction: o.trainFraction, devFraction: 0 });
  const byId = new Map(ds.corpus.map((d) => [d.id, d]));
  const trainQueries = ds.queries.filter((q) => q.split === 'train');
  const rand = new WeightRandom(o.seed, 'retrieval-task negatives');
  const train = trainQueries.map((q) => {
    const sameKind = trainQueries.filter((p) => p.kind === q.kind && p.target !== q.target).map((p) => p.target);
    if (sameKind.length < o.negatives) {
      throw new RangeError(`Expected at most ${sameKind.length} negatives for ${o.queries} queries over ${o.docs} documents but received ${o.negatives}; use more queries or fewer negatives`);
    }
    const negatives = shuffled(sameKind, rand).slice(0, o.negatives).map((id) => documentText(byId.get(id)!));
    return { id: q.id, query: q.text, positive: documentText(byId.get(q.target)!), negatives };
  });
  // Negatives are other training queries' targets, so the training documents are exactly these.
  const seen = new Set(trainQueries.map((q) => q.target));
  const heldQueries = ds.queries.filter((q) => q.split === 'test');
  return {
    train,
    heldOut: {
      corpus: ds.corpus.filter((d) => !seen.has(d.id)),
      queries: heldQueries.map((q) => ({ id: q.id, text: q.text })),
      qrels: ds.qrels.test,
    },
  };
}

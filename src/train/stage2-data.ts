import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { documentText, readBeirCorpus, readBeirCorpusFile, type BeirDoc } from '../eval/beir';
import { SearchR3Error } from '../util/errors';
import type { PairRecord } from './data';
import type { CorpusDoc } from './rl-env';

/** One training query of stage 2, tied to the corpus: what a rollout's reward is measured against. */
export interface Stage2Query {
  /** The record's id and where it was read (for messages). */
  id: string;
  text: string;
  /** Corpus id of the record's positive, and its text (InfoNCE's positive). */
  positiveId: string;
  positive: string;
  /** Hard negatives' texts (InfoNCE) and the ids of those that are corpus documents (refreshed with the step). */
  negatives: string[];
  negativeIds: string[];
  /** Every corpus document judged relevant to this query text (all records with the same query), grade 1. */
  relevant: Map<string, number>;
}

/** The corpus with the training positives placed in it, and the queries that point into it. */
export interface Stage2Data {
  docs: CorpusDoc[];
  queries: Stage2Query[];
  /** Positives that were neither found by id nor by text and were added to the corpus. */
  added: number;
}

/**
 * Reads `--corpus`: a BEIR directory (its corpus.jsonl) or a corpus JSONL file, or documents in
 * memory. Documents are embedded as BEIR's `title + "\n" + text`. Empty → ERR_FORMAT.
 */
export async function loadCorpus(corpus: string | readonly { id: string; title?: string; text: string }[]): Promise<CorpusDoc[]> {
  const docs: CorpusDoc[] = [];
  if (typeof corpus === 'string') {
    const info = await stat(corpus).catch((err: NodeJS.ErrnoException) => {
      throw new SearchR3Error('ERR_FILE', `Cannot read corpus "${corpus}" (${err.code ?? String(err)})`, { cause: err });
    });
    const stream = info.isDirectory() ? readBeirCorpus(corpus) : readBeirCorpusFile(corpus);
    for await (const d of stream) docs.push({ id: d.id, text: documentText(d) });
  } else {
    for (const d of corpus) docs.push({ id: d.id, text: documentText({ title: '', ...d } as BeirDoc) });
  }
  if (docs.length === 0) {
    throw new SearchR3Error('ERR_FORMAT', `corpus ${typeof corpus === 'string' ? corpus : '(in memory)'} has no documents; stage 2 ranks rollouts against a corpus`);
  }
  return docs;
}

/**
 * Ties each record's positive to the corpus: by `positiveId` when the record names one (missing
 * from the corpus → ERR_FORMAT naming the record's FILE:LINE), else by exact text, else it is added
 * to the corpus as `train-positive-<n>`. Negatives found in the corpus by text are named by id.
 */
export function placePositives(records: readonly PairRecord[], corpus: readonly CorpusDoc[]): Stage2Data {
  const docs = [...corpus];
  const ids = new Set(docs.map((d) => d.id));
  const byText = new Map<string, string>();
  for (const d of docs) if (!byText.has(d.text)) byText.set(d.text, d.id);
  let added = 0;
  const positiveOf = (r: PairRecord): string => {
    if (r.positiveId !== undefined) {
      if (!ids.has(r.positiveId)) {
        throw new SearchR3Error('ERR_FORMAT', `${r.source ?? `record "${r.id}"`}: positive_id "${r.positiveId}" is not a document of the corpus`);
      }
      return r.positiveId;
    }
    const found = byText.get(r.positive);
    if (found !== undefined) return found;
    let id = `train-positive-${++added}`;
    while (ids.has(id)) id = `train-positive-${++added}`;
    docs.push({ id, text: r.positive });
    ids.add(id);
    byText.set(r.positive, id);
    return id;
  };
  const placed = records.map((r) => ({ r, positiveId: positiveOf(r) }));
  const relevantByQuery = new Map<string, Map<string, number>>();
  for (const { r, positiveId } of placed) {
    const m = relevantByQuery.get(r.query) ?? new Map<string, number>();
    m.set(positiveId, 1);
    relevantByQuery.set(r.query, m);
  }
  const queries = placed.map(({ r, positiveId }): Stage2Query => ({
    id: r.id, text: r.query, positiveId, positive: r.positive, negatives: r.negatives,
    negativeIds: r.negatives.map((n) => byText.get(n)).filter((id): id is string => id !== undefined),
    relevant: relevantByQuery.get(r.query)!,
  }));
  return { docs, queries, added };
}

/** A digest of the queries and the corpus, in order (a resumed run must see the same data). */
export function stage2DataDigest(data: Stage2Data): { data: string; corpus: string } {
  const q = createHash('sha256');
  for (const x of data.queries) q.update(JSON.stringify([x.text, x.positiveId, x.negatives])).update('\n');
  const c = createHash('sha256');
  for (const d of data.docs) c.update(JSON.stringify([d.id, d.text])).update('\n');
  return { data: q.digest('hex').slice(0, 16), corpus: c.digest('hex').slice(0, 16) };
}

import type { ScoredDoc } from './trec';

/** Relevance value of a retrieved document that is not in the qrels at all. */
export const REL_NOT_IN_POOL = -1;
/** Relevance value of a retrieved document judged with a negative grade (pooled but unjudged). */
export const REL_UNJUDGED = -2;

/**
 * One query's retrieved list turned into relevance values by rank, plus the counts that trec_eval's
 * measures need. This is trec_eval's `form_res_rels` step, rewritten.
 */
export interface JudgedQuery {
  qid: string;
  /** Relevance by rank (index 0 = rank 1): grade ≥ 0, {@link REL_NOT_IN_POOL} or {@link REL_UNJUDGED}. */
  rels: Int32Array;
  /** Documents retrieved (after `maxDocsPerTopic` and `judgedDocsOnly`). */
  numRet: number;
  /** Judged documents with grade ≥ the relevance level. */
  numRel: number;
  /** Retrieved documents with grade ≥ the relevance level. */
  numRelRet: number;
  /** Count of judged documents at each grade ≥ 0 (negative grades are not counted). */
  relLevels: Map<number, number>;
}

// UTF-16 code units order surrogates (U+D800–DFFF) below U+E000–FFFF, but C's strcmp on UTF-8
// bytes orders by code point. Shifting the two ranges restores code point (= byte) order.
function unitKey(u: number): number {
  if (u >= 0xd800 && u <= 0xdfff) return u + 0x2000;
  if (u >= 0xe000) return u - 0x800;
  return u;
}

/** strcmp on the UTF-8 encodings of two strings: negative, zero or positive. */
export function compareBytes(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return unitKey(x) - unitKey(y);
  }
  return a.length - b.length;
}

/** Comparator putting the larger docno first (trec_eval's tie-break among equal scores). */
export function compareDocnoDesc(a: string, b: string): number {
  return compareBytes(b, a);
}

/**
 * trec_eval's ranking: score descending, ties broken by docno descending (byte order). Ranks in
 * the run file are ignored.
 */
export function rankDocs(docs: readonly ScoredDoc[]): ScoredDoc[] {
  return [...docs].sort((a, b) => {
    if (a.score > b.score) return -1;
    if (a.score < b.score) return 1;
    return compareDocnoDesc(a.docno, b.docno);
  });
}

/** Settings that change how a retrieved list is judged; see {@link EvaluateOptions}. */
export interface JudgeSettings {
  relevanceLevel: number;
  maxDocsPerTopic: number;
  judgedDocsOnly: boolean;
}

/**
 * Ranks a query's retrieved documents and looks each one up in its judgements.
 * Throws if a document is retrieved twice (trec_eval refuses such runs too).
 */
export function judgeQuery(qid: string, docs: readonly ScoredDoc[], judged: Map<string, number>, s: JudgeSettings): JudgedQuery {
  const ranked = rankDocs(docs);
  const seen = new Set<string>();
  for (const d of ranked) {
    if (seen.has(d.docno)) throw new Error(`document "${d.docno}" is retrieved twice for query "${qid}"`);
    seen.add(d.docno);
  }
  const kept = ranked.length > s.maxDocsPerTopic ? ranked.slice(0, s.maxDocsPerTopic) : ranked;
  let rels: number[] = kept.map((d) => {
    const g = judged.get(d.docno);
    if (g === undefined) return REL_NOT_IN_POOL;
    return g < 0 ? REL_UNJUDGED : g;
  });
  // -J: unjudged documents leave the ranking entirely; the rest close up in the same order.
  if (s.judgedDocsOnly) rels = rels.filter((r) => r >= 0);

  // A map, not an array indexed by grade: a stray grade of 10^9 must not allocate 10^9 slots.
  const relLevels = new Map<number, number>();
  for (const g of judged.values()) if (g >= 0) relLevels.set(g, (relLevels.get(g) ?? 0) + 1);
  let numRel = 0;
  for (const [level, count] of relLevels) if (level >= s.relevanceLevel) numRel += count;
  let numRelRet = 0;
  for (const r of rels) if (r >= 0 && r >= s.relevanceLevel) numRelRet++;
  return { qid, rels: Int32Array.from(rels), numRet: rels.length, numRel, numRelRet, relLevels };
}

/**
 * The ideal ranking's gains: every judged document with a positive grade, highest grade first
 * (gain = grade, trec_eval's default gains).
 */
export function idealGains(q: JudgedQuery): number[] {
  const levels = [...q.relLevels.keys()].filter((l) => l > 0).sort((a, b) => b - a);
  const out: number[] = [];
  for (const level of levels) for (let k = 0; k < q.relLevels.get(level)!; k++) out.push(level);
  return out;
}

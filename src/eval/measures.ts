import { idealGains, type JudgedQuery } from './ranking';

/**
 * trec_eval's measures, rewritten from their documented semantics and checked against NIST's own
 * expected outputs. Each entry computes one query's value(s); metrics.ts selects, names, averages
 * and orders them. The table order is trec_eval's print order.
 */

/** A judged query plus what most measures need: relevant documents in the top k, for every k. */
export interface QueryView extends JudgedQuery {
  /** relPrefix[k] = relevant documents among ranks 1..k (k ≤ numRet). */
  relPrefix: Int32Array;
  relevanceLevel: number;
  numDocsInColl: number;
}

/** How a measure takes parameters on the command line (`-m name.params`). */
export type ParamKind =
  | 'none'
  | 'cutoffs' // positive integer document cutoffs, one value each: P.5,10 → P_5, P_10
  | 'fractions' // numeric cutoffs, one value each: iprec_at_recall.0.1 → iprec_at_recall_0.10
  | 'numbers' // a list of numbers for one value, name gets the parameter text: utility.1,-1,0,0
  | 'p'; // rbp's persistence, written p=0.95

/** How per-query values become the summary value. */
export type Summary = 'mean' | 'sum' | 'geometric' | 'none' | 'runid' | 'num_q' | 'num_rel';

export interface MeasureDef {
  name: string;
  format: 'float' | 'long' | 'string';
  summary: Summary;
  /** Printed for each query with -q (trec_eval prints gm_* , runid and num_q only in the summary). */
  perQuery: boolean;
  params: ParamKind;
  defaults: readonly number[];
  /** One value per cutoff for 'cutoffs'/'fractions', else a single value. */
  compute(q: QueryView, params: readonly number[]): number[] | string;
}

/** trec_eval's floor before taking logs for geometric means. */
export const MIN_GEO_MEAN = 0.00001;
const INFAP_EPSILON = 0.00001;
const STD_CUTOFFS = [5, 10, 15, 20, 30, 100, 200, 500, 1000];
const RECALL_POINTS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

/** Relevant documents in the top k, with ranks past the end of the list counting as non-relevant. */
function relInTop(q: QueryView, k: number): number {
  return q.relPrefix[Math.min(Math.max(k, 0), q.numRet)]!;
}

function averagePrecision(q: QueryView, cutoff = Infinity): number {
  let sum = 0;
  const n = Math.min(q.numRet, cutoff);
  for (let i = 0; i < n; i++) if (q.rels[i]! >= q.relevanceLevel) sum += q.relPrefix[i + 1]! / (i + 1);
  return q.numRel > 0 ? sum / q.numRel : 0;
}

function bpref(q: QueryView): number {
  let numNonrel = 0;
  for (const [level, count] of q.relLevels) if (level < q.relevanceLevel) numNonrel += count;
  let nonrelSoFar = 0;
  let sum = 0;
  for (let i = 0; i < q.numRet; i++) {
    const r = q.rels[i]!;
    if (r < 0) continue; // not judged: bpref looks only at judged documents
    if (r < q.relevanceLevel) nonrelSoFar++;
    else sum += nonrelSoFar > 0 ? 1 - Math.min(nonrelSoFar, q.numRel) / Math.min(numNonrel, q.numRel) : 1;
  }
  return q.numRel > 0 ? sum / q.numRel : 0;
}

/** C's lround: nearest integer, halves away from zero. */
function lround(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

/**
 * Interpolated precision (max precision at this rank or any later one) at the rank of the c-th
 * relevant document, where c = lround(fraction · numRel) as in trec_eval 9.0.8+ (older versions
 * used trunc(fraction · numRel + 0.9); NIST's expected outputs are from the newer rule).
 */
function interpolatedPrecision(q: QueryView, fractions: readonly number[]): number[] {
  const best = new Float64Array(q.numRet + 2);
  for (let r = q.numRet; r >= 1; r--) best[r] = Math.max(best[r + 1]!, q.relPrefix[r]! / r);
  const rankOfRel: number[] = [];
  for (let i = 0; i < q.numRet; i++) if (q.rels[i]! >= q.relevanceLevel) rankOfRel.push(i + 1);
  return fractions.map((f) => {
    const c = lround(f * q.numRel);
    if (c > q.numRelRet) return 0;
    if (c <= 0) return q.numRet > 0 ? best[1]! : 0;
    return best[rankOfRel[c - 1]!]!;
  });
}

function infAP(q: QueryView): number {
  let rel = 0;
  let nonrel = 0;
  let unjudged = 0;
  let sum = 0;
  for (let j = 0; j < q.numRet; j++) {
    const r = q.rels[j]!;
    if (r === -1) continue; // outside the pool: ignored
    if (r < 0) { unjudged++; continue; } // pooled, unjudged: assumed relevant in the judged proportion
    if (r < q.relevanceLevel) { nonrel++; continue; }
    rel++;
    if (j === 0) { sum += 1; continue; }
    const above = (rel - 1 + nonrel + unjudged) / j;
    sum += 1 / (j + 1) + (j / (j + 1)) * above * ((rel - 1 + INFAP_EPSILON) / (rel - 1 + nonrel + 2 * INFAP_EPSILON));
  }
  return q.numRel > 0 ? sum / q.numRel : 0;
}

/** Gain of a retrieved document: its grade; documents outside the judged grades gain nothing. */
function gainAt(q: QueryView, i: number): number {
  const r = q.rels[i]!;
  return r > 0 ? r : 0;
}

function ndcg(q: QueryView): number {
  let dcg = 0;
  for (let i = 0; i < q.numRet; i++) dcg += gainAt(q, i) / Math.log2(i + 2);
  let ideal = 0;
  idealGains(q).forEach((g, i) => { ideal += g / Math.log2(i + 2); });
  return ideal > 0 ? dcg / ideal : 0;
}

function ndcgCut(q: QueryView, cutoffs: readonly number[]): number[] {
  const ideal = idealGains(q);
  return cutoffs.map((k) => {
    let dcg = 0;
    for (let i = 0; i < Math.min(k, q.numRet); i++) dcg += gainAt(q, i) / Math.log2(i + 2);
    let idcg = 0;
    for (let i = 0; i < Math.min(k, ideal.length); i++) idcg += ideal[i]! / Math.log2(i + 2);
    return idcg > 0 ? dcg / idcg : dcg;
  });
}

/** nDCG averaged over the relevant documents; an unretrieved one scores the final dcg / ideal dcg. */
function ndcgRel(q: QueryView): number {
  const ideal = idealGains(q);
  let dcg = 0;
  let idcg = 0;
  let sum = 0;
  let relRet = 0;
  for (let i = 0; i < q.numRet; i++) {
    const g = gainAt(q, i);
    dcg += g / Math.log2(i + 2);
    if (i < ideal.length) idcg += ideal[i]! / Math.log2(i + 2);
    if (g > 0) { sum += dcg / idcg; relRet++; }
  }
  for (let i = q.numRet; i < ideal.length; i++) idcg += ideal[i]! / Math.log2(i + 2);
  if (ideal.length === 0) return 0;
  sum += ((ideal.length - relRet) * dcg) / idcg;
  return sum > 0 ? sum / ideal.length : 0;
}

/**
 * nDCG averaged at the ranks where the ideal gain changes level (R-levels), plus the end of the
 * retrieved list when the ideal ranking runs out of gain before it.
 */
function rndcg(q: QueryView): number {
  if (q.numRel === 0) return 0;
  const ideal = idealGains(q);
  const idealAt = (i: number): number => (i < ideal.length ? ideal[i]! : 0);
  let dcg = 0;
  let idcg = 0;
  let sum = 0;
  let points = 0;
  let previous = idealAt(0);
  const visit = (i: number): void => {
    const g = idealAt(i);
    if (g !== previous) {
      if (idcg > 0) { sum += dcg / idcg; points++; }
      previous = g;
    }
  };
  let i = 0;
  for (; i < q.numRet && (i === 0 ? idealAt(0) > 0 : idealAt(i - 1) > 0); i++) {
    visit(i);
    dcg += gainAt(q, i) / Math.log2(i + 2);
    if (idealAt(i) > 0) idcg += idealAt(i) / Math.log2(i + 2);
  }
  if (i < q.numRet) {
    for (; i < q.numRet; i++) dcg += gainAt(q, i) / Math.log2(i + 2);
    if (idcg > 0) { sum += dcg / idcg; points++; }
  }
  for (; i === 0 ? idealAt(0) > 0 : idealAt(i - 1) > 0; i++) {
    visit(i);
    if (idealAt(i) > 0) idcg += idealAt(i) / Math.log2(i + 2);
  }
  return points > 0 ? sum / points : 0;
}

/** Gain at rank i divided by log2(2 + ideal cumulative gain (each rank costing ≥ 1) − gain so far). */
function gMeasure(q: QueryView): number {
  const ideal = idealGains(q);
  let gained = 0;
  let cost = 0;
  let g = 0;
  for (let i = 0; i < q.numRet; i++) {
    const gain = gainAt(q, i);
    gained += gain;
    cost += i < ideal.length ? Math.max(ideal[i]!, 1) : 1;
    if (gain !== 0) g += gain / Math.log2(2 + cost - gained);
  }
  const idealSum = ideal.reduce((a, b) => a + b, 0);
  return idealSum > 0 ? g / idealSum : 0;
}

function binG(q: QueryView): number {
  let sum = 0;
  let rel = 0;
  for (let i = 0; i < q.numRet; i++) {
    if (q.rels[i]! >= q.relevanceLevel) { rel++; sum += 1 / Math.log2(3 + i - rel); }
  }
  return rel > 0 ? sum / q.numRel : 0;
}

/** Rank-biased precision; grades are scaled into [0, 1] by the largest grade when it exceeds 1. */
function rbp(q: QueryView, p: number): number {
  let maxLevel = 0;
  for (const level of q.relLevels.keys()) maxLevel = Math.max(maxLevel, level);
  const scale = maxLevel > 1 ? maxLevel : 1;
  let sum = 0;
  let weight = 1;
  for (let i = 0; i < q.numRet; i++) {
    const gain = gainAt(q, i) / scale;
    if (gain !== 0) sum += gain * weight;
    weight *= p;
  }
  return (1 - p) * sum;
}

function rbpResidual(q: QueryView): number {
  const p = 0.9;
  let unjudged = 0;
  let sum = 0;
  let weight = 1;
  for (let i = 0; i < q.numRet; i++) {
    if (q.rels[i]! < 0) { unjudged++; sum += weight; }
    weight *= p;
  }
  return unjudged > 0 ? weight + (1 - p) * sum : 0;
}

function relstring(q: QueryView, length: number): string {
  let s = '';
  for (let i = 0; i < Math.min(Math.trunc(length), q.numRet); i++) {
    const r = q.rels[i]!;
    s += r > 9 ? '>' : r >= 0 ? String(r) : r === -1 ? '-' : '.';
  }
  return s;
}

type Def = Omit<MeasureDef, 'format' | 'summary' | 'perQuery' | 'params' | 'defaults'> & Partial<MeasureDef>;
function def(d: Def): MeasureDef {
  return { format: 'float', summary: 'mean', perQuery: true, params: 'none', defaults: [], ...d };
}
const atCutoffs = (name: string, f: (q: QueryView, k: number) => number): MeasureDef =>
  def({ name, params: 'cutoffs', defaults: STD_CUTOFFS, compute: (q, ks) => ks.map((k) => f(q, k)) });

/** Every implemented measure, in trec_eval's print order. */
export const MEASURES: readonly MeasureDef[] = [
  def({ name: 'runid', format: 'string', summary: 'runid', perQuery: false, compute: () => '' }),
  def({ name: 'num_q', format: 'long', summary: 'num_q', perQuery: false, compute: () => [1] }),
  def({ name: 'num_ret', format: 'long', summary: 'sum', compute: (q) => [q.numRet] }),
  def({ name: 'num_rel', format: 'long', summary: 'num_rel', compute: (q) => [q.numRel] }),
  def({ name: 'num_rel_ret', format: 'long', summary: 'sum', compute: (q) => [q.numRelRet] }),
  def({ name: 'map', compute: (q) => [averagePrecision(q)] }),
  def({ name: 'gm_map', summary: 'geometric', perQuery: false, compute: (q) => [averagePrecision(q)] }),
  def({ name: 'Rprec', compute: (q) => [q.numRel > 0 ? relInTop(q, q.numRel) / q.numRel : 0] }),
  def({ name: 'bpref', compute: (q) => [bpref(q)] }),
  def({
    name: 'recip_rank',
    compute: (q) => {
      for (let i = 0; i < q.numRet; i++) if (q.rels[i]! >= q.relevanceLevel) return [1 / (i + 1)];
      return [0];
    },
  }),
  def({ name: 'iprec_at_recall', params: 'fractions', defaults: RECALL_POINTS, compute: interpolatedPrecision }),
  atCutoffs('P', (q, k) => relInTop(q, k) / k),
  def({ name: 'relstring', format: 'string', summary: 'none', params: 'numbers', defaults: [10], compute: (q, p) => relstring(q, p[0]!) }),
  atCutoffs('recall', (q, k) => (q.numRel > 0 ? relInTop(q, k) / q.numRel : 0)),
  def({ name: 'infAP', compute: (q) => [infAP(q)] }),
  def({ name: 'gm_bpref', summary: 'geometric', perQuery: false, compute: (q) => [bpref(q)] }),
  def({
    name: 'Rprec_mult',
    params: 'fractions',
    defaults: [0.2, 0.4, 0.6, 0.8, 1, 1.2, 1.4, 1.6, 1.8, 2],
    compute: (q, fs) => fs.map((f) => {
      const k = Math.trunc(f * q.numRel + 0.9);
      return k > 0 ? relInTop(q, k) / k : 0;
    }),
  }),
  def({
    name: 'utility',
    params: 'numbers',
    defaults: [1, -1, 0, 0],
    compute: (q, [a, b, c, d]) => [
      a! * q.numRelRet + b! * (q.numRet - q.numRelRet) + c! * (q.numRel - q.numRelRet) +
        d! * (q.numDocsInColl + q.numRelRet - q.numRet - q.numRel),
    ],
  }),
  def({
    name: '11pt_avg',
    params: 'numbers',
    defaults: RECALL_POINTS,
    compute: (q, fs) => [interpolatedPrecision(q, fs).reduce((a, b) => a + b, 0) / fs.length],
  }),
  def({ name: 'binG', compute: (q) => [binG(q)] }),
  def({ name: 'G', compute: (q) => [gMeasure(q)] }),
  def({ name: 'ndcg', compute: (q) => [ndcg(q)] }),
  def({ name: 'ndcg_rel', compute: (q) => [ndcgRel(q)] }),
  def({ name: 'Rndcg', compute: (q) => [rndcg(q)] }),
  def({ name: 'ndcg_cut', params: 'cutoffs', defaults: STD_CUTOFFS, compute: ndcgCut }),
  atCutoffs('map_cut', (q, k) => averagePrecision(q, k)),
  atCutoffs('relative_P', (q, k) => (q.numRel > 0 ? relInTop(q, k) / Math.min(k, q.numRel) : 0)),
  def({ name: 'success', params: 'cutoffs', defaults: [1, 5, 10], compute: (q, ks) => ks.map((k) => (relInTop(q, k) > 0 ? 1 : 0)) }),
  def({ name: 'set_P', compute: (q) => [q.numRet > 0 ? q.numRelRet / q.numRet : 0] }),
  def({
    name: 'set_relative_P',
    compute: (q) => [q.numRel > 0 && q.numRet > 0 ? q.numRelRet / Math.min(q.numRet, q.numRel) : 0],
  }),
  def({ name: 'set_recall', compute: (q) => [q.numRel > 0 ? q.numRelRet / q.numRel : 0] }),
  def({
    name: 'set_map',
    compute: (q) => [q.numRet > 0 && q.numRel > 0 ? (q.numRelRet * q.numRelRet) / (q.numRet * q.numRel) : 0],
  }),
  def({
    name: 'set_F',
    params: 'numbers',
    defaults: [1],
    compute: (q, [x]) => {
      if (q.numRelRet === 0) return [0];
      const P = q.numRelRet / q.numRet;
      const R = q.numRelRet / q.numRel;
      return [((x! + 1) * P * R) / (x! * P + R)];
    },
  }),
  def({
    name: 'num_nonrel_judged_ret',
    format: 'long',
    summary: 'sum',
    compute: (q) => {
      let n = 0;
      for (let i = 0; i < q.numRet; i++) if (q.rels[i]! >= 0 && q.rels[i]! < q.relevanceLevel) n++;
      return [n];
    },
  }),
  def({ name: 'rbp', params: 'p', defaults: [0.9], compute: (q, [p]) => [rbp(q, p!)] }),
  def({ name: 'rbp_resid', compute: (q) => [rbpResidual(q)] }),
  def({
    name: 'unj',
    params: 'cutoffs',
    defaults: [5, 10, 20],
    compute: (q, ks) => ks.map((k) => {
      let n = 0;
      for (let i = 0; i < Math.min(k, q.numRet); i++) if (q.rels[i]! < 0) n++;
      return n / k;
    }),
  }),
];

/** Named measure sets, as trec_eval's `-m` nicknames. */
export const MEASURE_SETS: Readonly<Record<string, readonly string[]>> = {
  official: ['runid', 'num_q', 'num_ret', 'num_rel', 'num_rel_ret', 'map', 'gm_map', 'Rprec', 'bpref', 'recip_rank', 'iprec_at_recall', 'P'],
  set: ['runid', 'num_q', 'num_ret', 'num_rel', 'num_rel_ret', 'utility', 'set_P', 'set_recall', 'set_relative_P', 'set_map', 'set_F'],
  all_trec: MEASURES.map((m) => m.name),
};

/** Adds the prefix counts that the measures share. */
export function viewOf(q: JudgedQuery, relevanceLevel: number, numDocsInColl: number): QueryView {
  const relPrefix = new Int32Array(q.numRet + 1);
  for (let i = 0; i < q.numRet; i++) relPrefix[i + 1] = relPrefix[i]! + (q.rels[i]! >= relevanceLevel ? 1 : 0);
  return { ...q, relPrefix, relevanceLevel, numDocsInColl };
}

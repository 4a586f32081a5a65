import { SearchR3Error } from '../util/errors';
import { assertBoolean, assertInteger, checkKeys, expected } from '../util/validate';
import { formatFixed } from './format';
import { MEASURES, MEASURE_SETS, MIN_GEO_MEAN, viewOf, type MeasureDef } from './measures';
import { compareBytes, judgeQuery } from './ranking';
import type { Qrels, Run } from './trec';

/** How trec_eval's options map onto {@link evaluate}. Defaults are trec_eval's defaults. */
export interface EvaluateOptions {
  /**
   * Measures as trec_eval's `-m` takes them: a name (`map`), a name with parameters (`P.5,10`,
   * `iprec_at_recall.0.5`, `utility.1,-1,0,0`, `rbp.p=0.95`) or a set (`official`, `all_trec`,
   * `set`). Default `['official']`.
   */
  measures?: readonly string[];
  /** Lowest grade that counts as relevant (`-l`). Default 1. */
  relevanceLevel?: number;
  /**
   * Average over every query in the qrels, a missing query scoring 0 (`-c`). Default false: average
   * over the queries that are in both the qrels and the run.
   */
  averageComplete?: boolean;
  /** Drop unjudged documents from each ranking before measuring (`-J`; rarely wise). Default false. */
  judgedDocsOnly?: boolean;
  /** Evaluate only the top N documents per query (`-M`). Default: all. */
  maxDocsPerTopic?: number;
  /** Number of documents in the collection, used only by `utility` (`-N`). Default 0. */
  numDocsInColl?: number;
}

/** A measure's printed form: trec_eval prints floats with 4 decimals, counts as integers. */
export type MeasureFormat = 'float' | 'long' | 'string';

/** The result of {@link evaluate}: per-query values and the summary, in trec_eval's order. */
export interface Evaluation {
  runid: string;
  /** Evaluated queries in trec_eval's order (query ids in byte order), each with its measures. */
  queries: { qid: string; values: Record<string, number | string> }[];
  /** Summary over queries (measures printed for "all"). */
  summary: Record<string, number | string>;
  /** Print format of every measure name that appears in `queries` or `summary`. */
  formats: Record<string, MeasureFormat>;
}

const EVALUATE_KEYS = ['measures', 'relevanceLevel', 'averageComplete', 'judgedDocsOnly', 'maxDocsPerTopic', 'numDocsInColl'];
const NOT_IMPLEMENTED = ['dcg', 'ideal_dcg', 'yaap', 'map_avgjg', 'P_avgjg', 'Rprec_mult_avgjg', 'all_prefs', 'prefs', 'qrels_jg'];

interface Selected {
  def: MeasureDef;
  params: readonly number[];
  /** Output names: one per value for cutoff measures, else one. */
  names: string[];
}

function parseNumbers(text: string, spec: string): number[] {
  return text.split(',').map((t) => {
    const v = Number(t);
    if (t.trim() === '' || !Number.isFinite(v)) throw new RangeError(`Expected numbers separated by commas in measure "${spec}" but found "${t}"`);
    return v;
  });
}

function sortedUnique(values: number[], spec: string): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) throw new RangeError(`Duplicate cutoff ${sorted[i]} in measure "${spec}"`);
  }
  return sorted;
}

function parseParams(def: MeasureDef, text: string, spec: string): number[] {
  switch (def.params) {
    case 'none':
      throw new RangeError(`Measure "${def.name}" takes no parameters but received "${text}" in "${spec}"`);
    case 'cutoffs': {
      const ks = parseNumbers(text, spec);
      for (const k of ks) if (!Number.isInteger(k) || k <= 0) throw new RangeError(`Expected positive integer cutoffs in measure "${spec}" but found ${k}`);
      return sortedUnique(ks, spec);
    }
    case 'fractions':
      return sortedUnique(parseNumbers(text, spec), spec);
    case 'numbers': {
      const values = parseNumbers(text, spec);
      const want = def.defaults.length;
      if (def.name !== '11pt_avg' && values.length !== want) {
        throw new RangeError(`Measure "${def.name}" takes ${want} number${want === 1 ? '' : 's'} but received ${values.length} in "${spec}"`);
      }
      return values;
    }
    case 'p': {
      const m = /^p=(.+)$/.exec(text);
      const p = m ? Number(m[1]) : NaN;
      if (!(p > 0 && p < 1)) throw new RangeError(`Expected "p=<number between 0 and 1>" in measure "${spec}" but found "${text}"`);
      return [p];
    }
  }
}

/** Resolves `-m` style measure specs to measures, parameters and output names, in print order. */
export function selectMeasures(specs: readonly string[]): Selected[] {
  const chosen = new Map<string, string | undefined>();
  for (const spec of specs) {
    if (typeof spec !== 'string' || spec.length === 0) throw new TypeError(expected('non-empty measure name', 'measures', spec));
    const dot = spec.indexOf('.');
    const name = dot === -1 ? spec : spec.slice(0, dot);
    const params = dot === -1 ? undefined : spec.slice(dot + 1);
    const set = MEASURE_SETS[name];
    if (set !== undefined) {
      if (params !== undefined) throw new RangeError(`Measure set "${name}" takes no parameters but received "${params}"`);
      for (const m of set) if (!chosen.has(m)) chosen.set(m, undefined);
      continue;
    }
    if (!MEASURES.some((m) => m.name === name)) {
      const why = NOT_IMPLEMENTED.includes(name) ? 'is a trec_eval measure that search-r3 does not implement' : 'is not a trec_eval measure';
      throw new RangeError(`Measure "${name}" ${why}; known: ${MEASURES.map((m) => m.name).join(', ')}, official, set, all_trec`);
    }
    if (params === '') throw new RangeError(`Measure "${spec}" has an empty parameter list`);
    // As in trec_eval, the first parameters given for a measure are the ones used.
    if (chosen.get(name) === undefined) chosen.set(name, params);
  }
  const selected: Selected[] = [];
  for (const def of MEASURES) {
    if (!chosen.has(def.name)) continue;
    const text = chosen.get(def.name);
    const params = text === undefined ? def.defaults : parseParams(def, text, `${def.name}.${text}`);
    let names: string[];
    if (def.params === 'cutoffs') names = params.map((k) => `${def.name}_${k}`);
    else if (def.params === 'fractions') names = params.map((f) => `${def.name}_${formatFixed(f, 2)}`);
    else names = [text === undefined ? def.name : `${def.name}_${text}`];
    selected.push({ def, params, names });
  }
  return selected;
}

function resolve(options: EvaluateOptions | undefined) {
  checkKeys(options, EVALUATE_KEYS, 'options');
  const o = options ?? {};
  const measures = o.measures ?? ['official'];
  if (!Array.isArray(measures)) throw new TypeError(expected('array of measure names', 'options.measures', measures));
  const relevanceLevel = o.relevanceLevel ?? 1;
  assertInteger(relevanceLevel, 'options.relevanceLevel', 0);
  const averageComplete = o.averageComplete ?? false;
  assertBoolean(averageComplete, 'options.averageComplete');
  const judgedDocsOnly = o.judgedDocsOnly ?? false;
  assertBoolean(judgedDocsOnly, 'options.judgedDocsOnly');
  const maxDocsPerTopic = o.maxDocsPerTopic ?? Infinity;
  if (maxDocsPerTopic !== Infinity) assertInteger(maxDocsPerTopic, 'options.maxDocsPerTopic', 0);
  const numDocsInColl = o.numDocsInColl ?? 0;
  assertInteger(numDocsInColl, 'options.numDocsInColl', 0);
  return { selected: selectMeasures(measures), relevanceLevel, averageComplete, judgedDocsOnly, maxDocsPerTopic, numDocsInColl };
}

/**
 * Evaluates a run against qrels exactly as NIST's trec_eval does (same ranking, tie-breaking,
 * relevance rules, measures, averaging), returning per-query values and the summary.
 *
 * @example
 * const { qrels } = await readQrels('qrels.txt');
 * const { run } = await readRun('run.txt');
 * const e = evaluate(qrels, run, { measures: ['map', 'ndcg_cut.10', 'P.5,10'] });
 * e.summary.map; e.summary.ndcg_cut_10; e.queries[0].values.P_5;
 */
export function evaluate(qrels: Qrels, run: Run, options?: EvaluateOptions): Evaluation {
  if (!(qrels instanceof Map)) throw new TypeError(expected('Map of query id → Map of docno → grade', 'qrels', qrels));
  if (typeof run !== 'object' || run === null || !(run.queries instanceof Map)) {
    throw new TypeError(expected('object { runid, queries: Map }', 'run', run));
  }
  const o = resolve(options);
  const formats: Record<string, MeasureFormat> = {};
  for (const s of o.selected) for (const n of s.names) formats[n] = s.def.format;

  const totals = o.selected.map((s) => new Float64Array(s.names.length));
  const queries: Evaluation['queries'] = [];
  const qids = [...run.queries.keys()].filter((q) => qrels.has(q)).sort(compareBytes);
  for (const qid of qids) {
    let judged;
    try {
      judged = judgeQuery(qid, run.queries.get(qid)!, qrels.get(qid)!, o);
    } catch (err) {
      throw new SearchR3Error('ERR_FORMAT', `Run "${run.runid}": ${(err as Error).message}`, { cause: err });
    }
    const view = viewOf(judged, o.relevanceLevel, o.numDocsInColl);
    const values: Record<string, number | string> = {};
    o.selected.forEach((s, m) => {
      if (s.def.summary === 'runid' || s.def.summary === 'num_q') return;
      const v = s.def.compute(view, s.params);
      if (typeof v === 'string') {
        if (s.def.perQuery) values[s.names[0]!] = v;
        return;
      }
      v.forEach((x, j) => {
        totals[m]![j]! += s.def.summary === 'geometric' ? Math.log(Math.max(x, MIN_GEO_MEAN)) : x;
        if (s.def.perQuery) values[s.names[j]!] = x;
      });
    });
    queries.push({ qid, values });
  }

  const evaluated = queries.length;
  const denominator = o.averageComplete ? qrels.size : evaluated;
  const summary: Record<string, number | string> = {};
  o.selected.forEach((s, m) => {
    s.names.forEach((name, j) => {
      const total = totals[m]![j]!;
      switch (s.def.summary) {
        case 'none': return;
        case 'runid': summary[name] = run.runid; return;
        case 'num_q': summary[name] = denominator; return;
        case 'sum': summary[name] = total; return;
        case 'num_rel': summary[name] = o.averageComplete ? countPositive(qrels) : total; return;
        case 'mean': summary[name] = denominator > 0 ? total / denominator : 0; return;
        case 'geometric': {
          // Queries missing from the run (with -c) enter the geometric mean at trec_eval's floor.
          const logs = total + (denominator - evaluated) * Math.log(MIN_GEO_MEAN);
          summary[name] = denominator > 0 ? Math.exp(logs / denominator) : 0;
        }
      }
    });
  });
  return { runid: run.runid, queries, summary, formats };
}

// trec_eval's num_rel under -c counts grades > 0 over all qrels, whatever the relevance level.
function countPositive(qrels: Qrels): number {
  let n = 0;
  for (const docs of qrels.values()) for (const g of docs.values()) if (g > 0) n++;
  return n;
}

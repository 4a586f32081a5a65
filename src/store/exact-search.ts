import type { ScanRequest, ScanResult } from './kernels.js';
import type { SearchHit } from './types.js';
import { dotRow } from './vector-math.js';

/** What a search sees of the store: live rows 0..rows-1 of the slab and their ids and versions. */
export interface SearchView {
  slab: Float32Array;
  rows: number;
  dim: number;
  ids: readonly string[];
  versions: Float64Array;
}

/** Orders hits best first: score descending, then id ascending (code-unit order), so results are deterministic. */
export function compareHits(a: SearchHit, b: SearchHit): number {
  if (a.score !== b.score) return b.score - a.score;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Turns one query's scan candidates into the final top-k, or returns null when the candidates
 * cannot prove it and the scan must be repeated with more of them.
 *
 * The kernel orders rows by its own (differently rounded) score and breaks ties by row, but the
 * store promises exact double-precision scores with ties broken by id. So candidates are rescored
 * with {@link dotRow} and re-sorted. A row the scan left out has a kernel score ≤ the last
 * candidate's, hence an exact score ≤ that + `tolerance`; if that is still below the k-th exact
 * score, no left-out row can enter (or tie into) the top-k. Otherwise, e.g. when many vectors tie,
 * the caller widens the scan.
 */
function resolveQuery(view: SearchView, scan: ScanResult, q: number, query: Float32Array, k: number, tolerance: number): SearchHit[] | null {
  const n = scan.counts[q]!;
  const hits: SearchHit[] = [];
  for (let i = 0; i < n; i++) {
    const row = scan.rows[q * scan.k + i]!;
    hits.push({ id: view.ids[row]!, score: dotRow(view.slab, row, view.dim, query), version: view.versions[row]! });
  }
  hits.sort(compareHits);
  // Fewer candidates than asked for means every qualifying row is among them.
  const complete = n < scan.k || scan.k >= view.rows;
  if (complete) return hits.slice(0, k);
  if (hits.length <= k) return null;
  const kth = hits[k - 1]!.score;
  const lastKernelScore = scan.scores[q * scan.k + n - 1]!;
  return lastKernelScore + tolerance < kth ? hits.slice(0, k) : null;
}

/**
 * Largest possible gap between a kernel's score and {@link dotRow}'s for unit vectors. The AVX2
 * kernel sums 8 products per lane in F32 (≤ 5 roundings, each ≤ 2⁻²⁴ of Σ|aᵢqᵢ| ≤ ~1) and the
 * blocks in double; the other kernels and dotRow are double sums off by ≤ dim·2⁻⁵³ each. So
 * 10·2⁻²⁴ + 2·dim·2⁻⁵² bounds the gap with room to spare.
 */
function toleranceFor(dim: number): number {
  return 10 * 2 ** -24 + 2 * dim * Number.EPSILON;
}

function firstCandidates(k: number, rows: number): number {
  return Math.min(rows, k + Math.max(16, k));
}

/** One step of the widening loop, shared by the sync and async drivers; returns the queries to scan again. */
function settle(view: SearchView, scan: ScanResult, pending: number[], queries: Float32Array, k: number,
  results: SearchHit[][]): number[] {
  const tolerance = toleranceFor(view.dim);
  const again: number[] = [];
  // The scan ran on the pending queries packed together, so query q sits at position i of the result.
  pending.forEach((q, i) => {
    const query = queries.subarray(q * view.dim, (q + 1) * view.dim);
    const hits = resolveQuery(view, scan, i, query, k, tolerance);
    if (hits) results[q] = hits;
    else again.push(q);
  });
  return again;
}

function pack(all: Float32Array, which: number[], dim: number): Float32Array {
  if (which.length * dim === all.length) return all;
  const out = new Float32Array(which.length * dim);
  which.forEach((q, j) => out.set(all.subarray(q * dim, (q + 1) * dim), j * dim));
  return out;
}

type ScanBase = Omit<ScanRequest, 'slab' | 'rows' | 'dim' | 'queries' | 'k'>;

/**
 * The widening loop once, as a generator: it yields each scan request and receives its result, so
 * the synchronous and the asynchronous drivers below share every step.
 */
function* searchSteps(view: SearchView, queries: Float32Array, k: number, base: ScanBase): Generator<ScanRequest, SearchHit[][], ScanResult> {
  const nq = queries.length / view.dim;
  const results: SearchHit[][] = Array.from({ length: nq }, () => []);
  if (view.rows === 0) return results;
  let pending = Array.from({ length: nq }, (_, q) => q);
  for (let kc = firstCandidates(k, view.rows); pending.length > 0; kc = Math.min(view.rows, kc * 4)) {
    const req = { ...base, slab: view.slab, rows: view.rows, dim: view.dim, queries: pack(queries, pending, view.dim), k: kc };
    pending = settle(view, yield req, pending, queries, k, results);
  }
  return results;
}

/** Exact top-k for `nq` packed unit queries, on the calling thread. */
export function exactSearchSync(view: SearchView, queries: Float32Array, k: number, base: ScanBase,
  scan: (req: ScanRequest) => ScanResult): SearchHit[][] {
  const steps = searchSteps(view, queries, k, base);
  for (let step = steps.next(); ; ) {
    if (step.done) return step.value;
    step = steps.next(scan(step.value));
  }
}

/** {@link exactSearchSync} with the scan off the JS thread. */
export async function exactSearch(view: SearchView, queries: Float32Array, k: number, base: ScanBase,
  scan: (req: ScanRequest) => Promise<ScanResult>): Promise<SearchHit[][]> {
  const steps = searchSteps(view, queries, k, base);
  for (let step = steps.next(); ; ) {
    if (step.done) return step.value;
    step = steps.next(await scan(step.value));
  }
}

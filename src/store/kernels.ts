import { binding } from '../native.js';
import { dotRow } from './vector-math.js';

/** A scan request: the same arguments the native `vectorTopK` takes (see native/store/vector_kernels.h). */
export interface ScanRequest {
  slab: Float32Array;
  rows: number;
  dim: number;
  /** nq*dim query values, already unit length. */
  queries: Float32Array;
  k: number;
  threads?: number;
  versions?: Float64Array;
  minVersion?: number;
  maxVersion?: number;
}

/** Best rows per query: query q's hits are rows[q*k .. q*k+counts[q]), score descending then row ascending. */
export interface ScanResult {
  k: number;
  rows: Int32Array;
  scores: Float64Array;
  counts: Int32Array;
}

/** The part of the native binding the store uses. */
export interface VectorKernelBinding {
  vectorTopK(slab: Float32Array, rows: number, dim: number, queries: Float32Array, k: number,
    options?: { threads?: number; versions?: Float64Array; minVersion?: number; maxVersion?: number }): Promise<ScanResult>;
  vectorTopKSync(slab: Float32Array, rows: number, dim: number, queries: Float32Array, k: number,
    options?: { threads?: number; versions?: Float64Array; minVersion?: number; maxVersion?: number }): ScanResult;
  vectorSum(data: Float32Array, count: number, threads?: number): Promise<number>;
  vectorSumSync(data: Float32Array, count: number, threads?: number): number;
  vectorKernelInfo(): { isa: 'avx2' | 'neon' | 'scalar'; hardwareThreads: number };
}

let cached: VectorKernelBinding | null | undefined;

function isKernelBinding(b: unknown): b is VectorKernelBinding {
  return typeof b === 'object' && b !== null && typeof (b as VectorKernelBinding).vectorTopK === 'function'
    && typeof (b as VectorKernelBinding).vectorSum === 'function';
}

/**
 * The native vector kernels, or null when the addon is not built or predates them (the store then
 * uses {@link scanJs}). The addon is found by src/native.ts (`SEARCH_R3_BINDING` overrides its path).
 *
 * @example const k = loadVectorKernels(); console.log(k ? k.vectorKernelInfo().isa : 'typescript');
 */
export function loadVectorKernels(): VectorKernelBinding | null {
  if (cached !== undefined) return cached;
  try {
    const b: unknown = binding();
    cached = isKernelBinding(b) ? b : null;
  } catch {
    // No addon (or one that fails to load on this platform): the TypeScript path is in charge.
    cached = null;
  }
  return cached;
}

// Bounded heap whose root is the worst kept (score, row): same total order as the native kernel.
function worse(sa: number, ra: number, sb: number, rb: number): boolean {
  return sa < sb || (sa === sb && ra > rb);
}

class WorstHeap {
  readonly scores: number[] = [];
  readonly rows: number[] = [];
  constructor(private readonly k: number) {}

  offer(score: number, row: number): void {
    const { scores, rows } = this;
    if (scores.length < this.k) {
      scores.push(score);
      rows.push(row);
      this.up(scores.length - 1);
    } else if (worse(scores[0]!, rows[0]!, score, row)) {
      scores[0] = score;
      rows[0] = row;
      this.down(0);
    }
  }

  private swap(i: number, j: number): void {
    const { scores, rows } = this;
    [scores[i], scores[j]] = [scores[j]!, scores[i]!];
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }

  private up(i: number): void {
    const { scores, rows } = this;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!worse(scores[i]!, rows[i]!, scores[p]!, rows[p]!)) break;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const { scores, rows } = this;
    const n = scores.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && worse(scores[l]!, rows[l]!, scores[m]!, rows[m]!)) m = l;
      if (r < n && worse(scores[r]!, rows[r]!, scores[m]!, rows[m]!)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}

/**
 * TypeScript twin of the native `vectorTopKSync`, same contract and order; used when the addon
 * lacks the kernel and as the reference in tests.
 */
export function scanJs(req: ScanRequest): ScanResult {
  const { slab, rows, dim, queries, versions } = req;
  const nq = queries.length / dim;
  const k = Math.max(1, Math.min(req.k, rows));
  const lo = req.minVersion ?? -Infinity;
  const hi = req.maxVersion ?? Infinity;
  const heaps = Array.from({ length: nq }, () => new WorstHeap(k));
  for (let row = 0; row < rows; row++) {
    if (versions && !(versions[row]! >= lo && versions[row]! <= hi)) continue;
    for (let q = 0; q < nq; q++) heaps[q]!.offer(dotRow(slab, row, dim, queries, q * dim), row);
  }
  const out: ScanResult = { k, rows: new Int32Array(nq * k).fill(-1), scores: new Float64Array(nq * k), counts: new Int32Array(nq) };
  heaps.forEach((heap, q) => {
    const order = heap.rows.map((_, i) => i).sort((a, b) =>
      heap.scores[b]! - heap.scores[a]! || heap.rows[a]! - heap.rows[b]!);
    order.forEach((i, j) => {
      out.rows[q * k + j] = heap.rows[i]!;
      out.scores[q * k + j] = heap.scores[i]!;
    });
    out.counts[q] = order.length;
  });
  return out;
}

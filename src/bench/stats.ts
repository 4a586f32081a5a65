import type { Latency } from './types';

/**
 * The q-quantile of `values` by linear interpolation between closest ranks (numpy's default), so
 * p50 of an even count is the mean of the middle two. NaN for an empty list.
 *
 * @example quantile([1, 2, 3, 4], 0.5) // 2.5
 */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Mean of `values`; 0 for an empty list (a count of nothing per query is nothing). */
export function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * Summarises per-query latencies measured in milliseconds.
 * @example summarizeLatency([1, 2, 3]).p50Ms // 2
 */
export function summarizeLatency(valuesMs: number[]): Latency {
  return { samples: valuesMs.length, p50Ms: quantile(valuesMs, 0.5), p95Ms: quantile(valuesMs, 0.95), meanMs: mean(valuesMs), valuesMs };
}

/**
 * Milliseconds since `start` (a `process.hrtime.bigint()` reading), with sub-millisecond precision:
 * BM25 queries take microseconds, and a `Date.now()` clock would report them all as 0.
 */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Peak resident set size of this process so far, in MiB (`maxRSS` is in KiB). */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** `count / seconds`, or 0 when no time was measured (nothing to divide by). */
export function rate(count: number, seconds: number): number {
  return seconds > 0 ? count / seconds : 0;
}

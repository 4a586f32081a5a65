import { QUALITY_MEASURES, type BenchReport } from './types';

/**
 * A number with about three significant digits and no exponent: 0.0412, 3.14, 271, 12345. Speed
 * figures span microseconds to minutes, so fixed decimals would show most of them as 0.00 or noise.
 *
 * @example formatSig(0.041234) // "0.0412"
 */
export function formatSig(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs >= 100) return Math.round(x).toString();
  const decimals = Math.min(6, Math.max(0, 2 - Math.floor(Math.log10(abs))));
  return x.toFixed(decimals);
}

/** Renders rows as a plain-text table: the first column left-aligned, the rest right-aligned. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * The human-readable summary `search-r3-bench` prints: what was measured, the quality table, the
 * speed table and the notes.
 *
 * @example process.stdout.write(formatReport(await runBench()));
 */
export function formatReport(r: BenchReport): string {
  const out: string[] = [];
  const ds = r.dataset;
  out.push(`dataset  ${ds.name}${ds.dir ? ` (${ds.dir})` : ''}: ${ds.docs} documents, ${ds.queries} test queries`);
  if (r.model) {
    const m = r.model;
    const kind = m.origin === 'demo' ? 'demo model, untrained' : 'model';
    out.push(`model    ${m.path} (${kind}; ${m.architecture}, ${m.layers} layers, n_embd ${m.nEmbd}, ${(m.parameters / 1e6).toFixed(1)}M parameters${m.lora ? `, LoRA ${m.lora}` : ''})`);
    if (r.retrievers.some((x) => x.name === 'reason')) out.push(`reason   at most ${r.settings.maxReasoningTokens} reasoning tokens per query, greedy`);
  }
  out.push('');
  out.push('quality (trec_eval definitions; queries without results score 0)');
  out.push(textTable(['retriever', ...QUALITY_MEASURES.map((m) => m.label)], r.retrievers.map((x) => [x.name, ...QUALITY_MEASURES.map((m) => x.quality[m.key].toFixed(4))])));
  out.push('');
  out.push('speed (docs/s: indexing or encoding the corpus; queries/s: all queries batched; latency: one query at a time)');
  out.push(textTable(
    ['retriever', 'docs/s', 'queries/s', 'reason tok/q', 'p50 ms', 'p95 ms', 'peak RSS MiB'],
    r.retrievers.map((x) => [
      x.name, formatSig(x.speed.docsPerSecond), formatSig(x.speed.queriesPerSecond), formatSig(x.speed.reasoningTokensPerQuery),
      formatSig(x.speed.latency.p50Ms), formatSig(x.speed.latency.p95Ms), formatSig(x.speed.peakRssMiB),
    ]),
  ));
  const reason = r.retrievers.find((x) => x.name === 'reason');
  if (reason) out.push(`reason finishes: ${Object.entries(reason.finishes).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`);
  if (r.notes.length > 0) {
    out.push('');
    for (const n of r.notes) out.push(`note: ${n}`);
  }
  out.push(`wall time ${r.wallSeconds.toFixed(1)} s; ${threadsLine(r)}`);
  return `${out.join('\n')}\n`;
}

/** The threads the model session reported using, not the requested or hardware count. */
export function threadsLine(r: BenchReport): string {
  return r.host.threads === null ? 'no model ran' : `model on ${r.host.threads} of ${r.host.cpus} CPU threads`;
}

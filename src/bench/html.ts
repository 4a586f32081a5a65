import { escapeXml, groupedBarChart, latencyChart, seriesColor } from './svg';
import { formatSig, threadsLine } from './table';
import { QUALITY_MEASURES, type BenchReport } from './types';

/** The reports' shared inline stylesheet. */
export const REPORT_STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 820px; color: #1f2328; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
.meta { color: #57606a; margin: .15rem 0; }
.note { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: .5rem .75rem; margin: 1rem 0; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #d0d7de; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .4em; vertical-align: -.05em; }
svg.chart { display: block; max-width: 100%; height: auto; margin: .5rem 0 1.5rem; font-size: 13px; }
svg .chart-title { font-size: 15px; font-weight: 600; fill: #1f2328; }
svg .grid { stroke: #d0d7de; stroke-width: 1; }
svg .axis { stroke: #57606a; stroke-width: 1; }
svg .tick, svg .row-stats { fill: #57606a; }
svg .bar-label { fill: #1f2328; font-size: 11px; }
svg .group-label, svg .row-label { fill: #1f2328; font-weight: 600; }
svg .marker { stroke-width: 2.5; }
svg .marker-p95 { stroke-dasharray: 3 2; }
`;

/** An HTML table whose first column carries each series' colour swatch. */
export function htmlTable(header: string[], rows: { name: string; index: number; cells: string[] }[]): string {
  const head = `<tr>${header.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr>`;
  const body = rows.map((r) => `<tr><td><span class="swatch" style="background:${seriesColor(r.index)}"></span>${escapeXml(r.name)}</td>${r.cells.map((c) => `<td>${escapeXml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table>\n${head}\n${body}\n</table>`;
}

/**
 * A self-contained HTML page of a benchmark: the setting, any caveats, quality as grouped bars
 * (one bar per retriever and measure), per-query latency per retriever, and both tables. Inline CSS
 * and SVG only: no script, font or request leaves the file, so it opens offline.
 *
 * @example await writeFileAtomic('bench.html', benchReportHtml(await runBench()));
 */
export function benchReportHtml(r: BenchReport): string {
  const retrievers = r.retrievers;
  const quality = groupedBarChart({
    title: 'Retrieval quality per retriever',
    groups: QUALITY_MEASURES.map((q) => ({ key: q.key, label: q.label })),
    series: retrievers.map((x) => ({ name: x.name, values: QUALITY_MEASURES.map((q) => x.quality[q.key]) })),
  });
  const latency = latencyChart({
    title: 'Query latency per retriever (one dot per query; solid p50, dashed p95)',
    rows: retrievers.map((x) => ({ name: x.name, valuesMs: x.speed.latency.valuesMs, p50Ms: x.speed.latency.p50Ms, p95Ms: x.speed.latency.p95Ms })),
  });
  const qualityTable = htmlTable(['retriever', ...QUALITY_MEASURES.map((q) => q.label)], retrievers.map((x, index) => ({
    name: x.name, index, cells: QUALITY_MEASURES.map((q) => x.quality[q.key].toFixed(4)),
  })));
  const speedTable = htmlTable(['retriever', 'docs/s', 'queries/s', 'reasoning tokens/query', 'p50 latency ms', 'p95 latency ms', 'peak RSS MiB'], retrievers.map((x, index) => ({
    name: x.name, index,
    cells: [x.speed.docsPerSecond, x.speed.queriesPerSecond, x.speed.reasoningTokensPerQuery, x.speed.latency.p50Ms, x.speed.latency.p95Ms, x.speed.peakRssMiB].map(formatSig),
  })));
  const ds = r.dataset;
  const meta = [
    `Dataset: ${ds.name}${ds.dir ? ` (${ds.dir})` : ''} — ${ds.docs} documents, ${ds.queries} test queries`,
    r.model ? `Model: ${r.model.path} — ${r.model.architecture}, ${r.model.layers} layers, n_embd ${r.model.nEmbd}${r.model.lora ? `, LoRA ${r.model.lora}` : ''}` : 'Model: none (lexical retrieval only)',
    `Reasoning budget ${r.settings.maxReasoningTokens} tokens · top ${r.settings.topK} retrieved · ${threadsLine(r)}, ${r.host.platform}/${r.host.arch}, node ${r.host.node}`,
    `Run ${r.startedAt}, wall time ${r.wallSeconds.toFixed(1)} s`,
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>search-r3-bench — ${escapeXml(ds.name)}</title>
<style>${REPORT_STYLE}</style>
</head>
<body>
<h1>search-r3-bench</h1>
${meta.map((line) => `<p class="meta">${escapeXml(line)}</p>`).join('\n')}
${r.notes.map((note) => `<p class="note">${escapeXml(note)}</p>`).join('\n')}
<h2>Quality</h2>
${quality}
${qualityTable}
<h2>Speed</h2>
${latency}
${speedTable}
<p class="meta">docs/s: BM25 indexing or dense corpus encoding (shared by direct and reason). queries/s: all queries in one batch. Latency: queries timed one at a time. Peak RSS is the process peak when the retriever finished.</p>
</body>
</html>
`;
}

// The text table and the HTML page of a `--task qa` result.
import { REPORT_STYLE, htmlTable } from './html';
import { QA_MEASURES, type QaBenchReport } from './qa-types';
import { escapeXml, groupedBarChart, latencyChart } from './svg';
import { formatSig, textTable } from './table';

const SPEED_HEADER = ['method', 'generated tokens/q', 'prompt tokens/q', 'searches/q', 'questions/s', 'p50 latency ms', 'p95 latency ms'];

function speedCells(m: QaBenchReport['methods'][number]): string[] {
  return [m.generatedTokensPerQuestion, m.promptTokensPerQuestion, m.searchesPerQuestion, m.questionsPerSecond, m.latency.p50Ms, m.latency.p95Ms].map(formatSig);
}

function hopRows(r: QaBenchReport): { name: string; index: number; cells: string[] }[] {
  return r.methods.flatMap((m, index) => m.perHop.map((h) => ({
    name: `${m.name}, ${h.hops} hop${h.hops === 1 ? '' : 's'}`, index, cells: [String(h.questions), h.em.toFixed(4), h.f1.toFixed(4), h.subem.toFixed(4)],
  })));
}

function describe(r: QaBenchReport): string[] {
  const ds = r.dataset;
  return [
    `qa       ${ds.qa}: ${ds.questions} questions${Object.keys(ds.hops).length ? ` (${Object.entries(ds.hops).map(([h, n]) => `${n} × ${h}-hop`).join(', ')})` : ''}`,
    `corpus   ${ds.corpus}: ${ds.docs} documents, retriever ${r.retriever}, top ${r.settings.topk}`,
    `model    ${r.model.path}${r.model.lora ? ` + LoRA ${r.model.lora}` : ''} (${r.model.architecture}, ${r.model.layers} layers), answers ≤ ${r.settings.maxTokens} tokens`,
  ];
}

/**
 * The summary `search-r3-bench --task qa` prints: the data, quality per method (and per hop), cost
 * per method, the notes.
 *
 * @example process.stdout.write(formatQaReport(await runQaBench()));
 */
export function formatQaReport(r: QaBenchReport): string {
  const out = describe(r);
  out.push('', textTable(['method', ...QA_MEASURES.map((q) => q.label), 'answered'], r.methods.map((m) => [
    m.name, ...QA_MEASURES.map((q) => m.scores[q.key].toFixed(4)), m.scores.answered.toFixed(4),
  ])));
  const hops = hopRows(r);
  if (hops.length > 0) out.push('', textTable(['method, hops', 'questions', ...QA_MEASURES.map((q) => q.label)], hops.map((h) => [h.name, ...h.cells])));
  out.push('', textTable(SPEED_HEADER, r.methods.map((m) => [m.name, ...speedCells(m)])));
  for (const note of r.notes) out.push(`note: ${note}`);
  return `${out.join('\n')}\n`;
}

/**
 * A self-contained HTML page of a `--task qa` result: quality per method as grouped bars, EM per
 * hop count, per-question latency, and the tables. Inline CSS and SVG only.
 *
 * @example await writeFileAtomic('qa.html', qaReportHtml(await runQaBench()));
 */
export function qaReportHtml(r: QaBenchReport): string {
  const quality = groupedBarChart({
    title: 'Answer quality per method',
    groups: QA_MEASURES.map((q) => ({ key: q.key, label: q.label })),
    series: r.methods.map((m) => ({ name: m.name, values: QA_MEASURES.map((q) => m.scores[q.key]) })),
  });
  const hopCounts = [...new Set(r.methods.flatMap((m) => m.perHop.map((h) => h.hops)))].sort((a, b) => a - b);
  const perHop = hopCounts.length === 0 ? '' : groupedBarChart({
    title: 'Exact match per number of hops',
    groups: hopCounts.map((h) => ({ key: `hops-${h}`, label: `${h} hop${h === 1 ? '' : 's'}` })),
    series: r.methods.map((m) => ({ name: m.name, values: hopCounts.map((h) => m.perHop.find((x) => x.hops === h)?.em ?? 0) })),
  });
  const latency = latencyChart({
    title: 'Time per question (one dot per question; solid p50, dashed p95)',
    axisLabel: 'time per question, retrieval + generation',
    rows: r.methods.map((m) => ({ name: m.name, valuesMs: m.latency.valuesMs, p50Ms: m.latency.p50Ms, p95Ms: m.latency.p95Ms })),
  });
  const qualityTable = htmlTable(['method', ...QA_MEASURES.map((q) => q.label), 'answered'], r.methods.map((m, index) => ({
    name: m.name, index, cells: [...QA_MEASURES.map((q) => m.scores[q.key].toFixed(4)), m.scores.answered.toFixed(4)],
  })));
  const hopTable = hopCounts.length === 0 ? '' : htmlTable(['method, hops', 'questions', ...QA_MEASURES.map((q) => q.label)], hopRows(r));
  const speedTable = htmlTable(SPEED_HEADER, r.methods.map((m, index) => ({ name: m.name, index, cells: speedCells(m) })));
  const meta = [...describe(r), `Run ${r.startedAt}, wall time ${r.wallSeconds.toFixed(1)} s, ${r.host.platform}/${r.host.arch}, node ${r.host.node}`];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>search-r3-bench --task qa — ${escapeXml(r.dataset.qa)}</title>
<style>${REPORT_STYLE}</style>
</head>
<body>
<h1>search-r3-bench --task qa</h1>
${meta.map((line) => `<p class="meta">${escapeXml(line.replace(/^\w+ +/, (w) => `${w.trim()}: `))}</p>`).join('\n')}
${r.notes.map((note) => `<p class="note">${escapeXml(note)}</p>`).join('\n')}
<h2>Quality</h2>
${quality}
${qualityTable}
${perHop ? `<h2>Per hop</h2>\n${perHop}\n${hopTable}` : ''}
<h2>Cost</h2>
${latency}
${speedTable}
<p class="meta">direct: the model answers with no retrieval. rag: the top ${r.settings.topk} documents retrieved with the question are in the prompt. A response without an &lt;answer&gt; span scores 0.</p>
</body>
</html>
`;
}

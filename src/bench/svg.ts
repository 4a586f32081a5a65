/**
 * The report's two charts as inline SVG strings, drawn by hand: the page must open offline, with no
 * scripts, fonts or stylesheets from anywhere else.
 */

/** Escapes text for XML/HTML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** One colour per series, distinguishable in colour-blind palettes (Tableau 10's first three and more). */
const PALETTE = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2'];
export const seriesColor = (i: number): string => PALETTE[i % PALETTE.length]!;

const n = (x: number): string => (Math.round(x * 100) / 100).toString();

export interface GroupedBars {
  /** Group labels along the x axis (the measures). */
  groups: { key: string; label: string }[];
  /** One bar per group for each series (the retrievers); values in [0, 1]. */
  series: { name: string; values: number[] }[];
  title: string;
}

/**
 * Grouped bars on a 0–1 axis: one group per measure, one bar per series in each. Every bar is a
 * `rect.bar` carrying `data-series`, `data-group` and `data-value`, with a tooltip.
 *
 * @example groupedBarChart({ title: 'Quality', groups: [{ key: 'map', label: 'MAP' }], series: [{ name: 'bm25', values: [0.4] }] })
 */
export function groupedBarChart(chart: GroupedBars): string {
  const width = 760;
  const height = 340;
  const m = { top: 40, right: 16, bottom: 56, left: 52 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const groupW = plotW / chart.groups.length;
  const barW = Math.min(56, (groupW * 0.8) / chart.series.length);
  const y = (v: number): number => m.top + plotH * (1 - Math.max(0, Math.min(1, v)));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" class="chart quality-chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(chart.title)}">`);
  parts.push(`<text x="16" y="22" class="chart-title">${escapeXml(chart.title)}</text>`);
  for (let t = 0; t <= 5; t++) {
    const v = t / 5;
    parts.push(`<line class="grid" x1="${m.left}" x2="${width - m.right}" y1="${n(y(v))}" y2="${n(y(v))}"/>`);
    parts.push(`<text class="tick" x="${m.left - 8}" y="${n(y(v) + 4)}" text-anchor="end">${v.toFixed(1)}</text>`);
  }
  chart.groups.forEach((g, gi) => {
    const x0 = m.left + gi * groupW + (groupW - barW * chart.series.length) / 2;
    chart.series.forEach((s, si) => {
      const v = s.values[gi]!;
      const x = x0 + si * barW;
      const top = y(v);
      const label = `${s.name} ${g.label}: ${v.toFixed(4)}`;
      parts.push(`<rect class="bar" data-series="${escapeXml(s.name)}" data-group="${escapeXml(g.key)}" data-value="${v}" x="${n(x + 2)}" y="${n(top)}" width="${n(barW - 4)}" height="${n(m.top + plotH - top)}" fill="${seriesColor(si)}"><title>${escapeXml(label)}</title></rect>`);
      parts.push(`<text class="bar-label" x="${n(x + barW / 2)}" y="${n(top - 4)}" text-anchor="middle">${v.toFixed(3)}</text>`);
    });
    parts.push(`<text class="group-label" x="${n(m.left + (gi + 0.5) * groupW)}" y="${height - m.bottom + 20}" text-anchor="middle">${escapeXml(g.label)}</text>`);
  });
  parts.push(`<line class="axis" x1="${m.left}" x2="${width - m.right}" y1="${m.top + plotH}" y2="${m.top + plotH}"/>`);
  parts.push(legend(chart.series.map((s) => s.name), m.left, height - 14));
  parts.push('</svg>');
  return parts.join('\n');
}

function legend(names: string[], x: number, y: number): string {
  return names.map((name, i) => {
    const lx = x + i * 120;
    return `<g class="legend-item"><rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${seriesColor(i)}"/><text x="${lx + 18}" y="${y}">${escapeXml(name)}</text></g>`;
  }).join('');
}

export interface LatencyRows {
  rows: { name: string; valuesMs: number[]; p50Ms: number; p95Ms: number }[];
  title: string;
  /** What one dot times (default: a query, embed + search). */
  axisLabel?: string;
}

/**
 * Per-query latency distribution: one row per series, every timed query a dot on a log-scaled
 * millisecond axis (BM25 answers in microseconds, reasoning in seconds: a linear axis would show one
 * of them as a smear at zero), with p50 and p95 marked.
 *
 * @example latencyChart({ title: 'Latency', rows: [{ name: 'bm25', valuesMs: [0.1, 0.2], p50Ms: 0.15, p95Ms: 0.2 }] })
 */
export function latencyChart(chart: LatencyRows): string {
  const rowH = 56;
  const width = 760;
  const m = { top: 40, right: 200, bottom: 44, left: 72 };
  const height = m.top + m.bottom + rowH * Math.max(1, chart.rows.length);
  const all = chart.rows.flatMap((r) => r.valuesMs).filter((v) => v > 0);
  const lo = Math.floor(Math.log10(all.length ? Math.min(...all) : 0.01));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(all.length ? Math.max(...all) : 1)));
  const plotW = width - m.left - m.right;
  // Zero readings (a clock too coarse to see a query) sit at the axis floor rather than vanish.
  const x = (ms: number): number => m.left + (plotW * (Math.log10(Math.max(ms, 10 ** lo)) - lo)) / (hi - lo);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" class="chart latency-chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(chart.title)}">`);
  parts.push(`<text x="16" y="22" class="chart-title">${escapeXml(chart.title)}</text>`);
  const bottom = height - m.bottom;
  for (let d = lo; d <= hi; d++) {
    const xd = x(10 ** d);
    parts.push(`<line class="grid" x1="${n(xd)}" x2="${n(xd)}" y1="${m.top}" y2="${bottom}"/>`);
    parts.push(`<text class="tick" x="${n(xd)}" y="${bottom + 18}" text-anchor="middle">${formatDecade(d)}</text>`);
  }
  parts.push(`<text class="tick" x="${n(m.left + plotW / 2)}" y="${bottom + 36}" text-anchor="middle">${escapeXml(chart.axisLabel ?? 'time per query, embed + search')} (log scale)</text>`);
  chart.rows.forEach((r, ri) => {
    const cy = m.top + ri * rowH + rowH / 2;
    parts.push(`<g class="latency-row" data-series="${escapeXml(r.name)}">`);
    parts.push(`<text class="row-label" x="${m.left - 10}" y="${cy + 4}" text-anchor="end">${escapeXml(r.name)}</text>`);
    r.valuesMs.forEach((v, i) => {
      // A fixed spread by index keeps coincident points visible and the picture reproducible.
      const jitter = ((i * 7) % 11) - 5;
      parts.push(`<circle class="latency-point" cx="${n(x(v))}" cy="${n(cy + jitter * 1.6)}" r="3.5" fill="${seriesColor(ri)}" fill-opacity="0.55"><title>${escapeXml(`${r.name}: ${formatMs(v)}`)}</title></circle>`);
    });
    if (r.valuesMs.length > 0) {
      for (const [label, v] of [['p50', r.p50Ms], ['p95', r.p95Ms]] as const) {
        parts.push(`<line class="marker marker-${label}" x1="${n(x(v))}" x2="${n(x(v))}" y1="${n(cy - 16)}" y2="${n(cy + 16)}" stroke="${seriesColor(ri)}"/>`);
      }
      parts.push(`<text class="row-stats" x="${width - m.right + 12}" y="${cy + 4}">p50 ${formatMs(r.p50Ms)} · p95 ${formatMs(r.p95Ms)}</text>`);
    } else {
      parts.push(`<text class="row-stats" x="${width - m.right + 12}" y="${cy + 4}">not timed</text>`);
    }
    parts.push('</g>');
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** A power of ten of milliseconds as an axis label: 10 µs, 1 ms, 100 ms, 10 s. */
function formatDecade(d: number): string {
  if (d >= 3) return `${10 ** (d - 3)} s`;
  if (d >= 0) return `${10 ** d} ms`;
  return `${Number((10 ** (d + 3)).toPrecision(1))} µs`;
}

/** Milliseconds with a unit that keeps three significant digits readable. */
export function formatMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toPrecision(3)} s`;
  if (ms >= 1) return `${ms.toPrecision(3)} ms`;
  return `${(ms * 1000).toPrecision(3)} µs`;
}

// The server's Prometheus metrics, written in the text exposition format (version 0.0.4) by hand:
// four families do not need a client library.

/** Upper bounds (seconds) of the request-latency histogram's buckets. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

const label = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** What the server counts; `render` writes it for `GET /metrics`. */
export class ServerMetrics {
  readonly #requests = new Map<string, number>();
  readonly #latency = new Map<string, { counts: number[]; sum: number; count: number }>();

  /** Counts one answered request of `route` (its pattern, e.g. `/v1/embeddings`) with its status. */
  observe(route: string, status: number, seconds: number): void {
    const key = `route="${label(route)}",status="${status}"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    let h = this.#latency.get(route);
    if (!h) this.#latency.set(route, (h = { counts: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 }));
    LATENCY_BUCKETS.forEach((b, i) => { if (seconds <= b) h!.counts[i]!++; });
    h.sum += seconds;
    h.count++;
  }

  /** The exposition text; the queue's depth and token totals are read at the moment of the scrape. */
  render(queue: { pending: number; running: number; tokens: { prompt: number; reasoning: number } }): string {
    const out: string[] = [
      '# HELP search_r3_http_requests_total HTTP requests answered, by route and status.',
      '# TYPE search_r3_http_requests_total counter',
      ...[...this.#requests].map(([k, v]) => `search_r3_http_requests_total{${k}} ${v}`),
      '# HELP search_r3_http_request_duration_seconds Time from request to answer, by route.',
      '# TYPE search_r3_http_request_duration_seconds histogram',
    ];
    for (const [route, h] of this.#latency) {
      const r = `route="${label(route)}"`;
      LATENCY_BUCKETS.forEach((b, i) => out.push(`search_r3_http_request_duration_seconds_bucket{${r},le="${b}"} ${h.counts[i]}`));
      out.push(`search_r3_http_request_duration_seconds_bucket{${r},le="+Inf"} ${h.count}`);
      out.push(`search_r3_http_request_duration_seconds_sum{${r}} ${h.sum}`, `search_r3_http_request_duration_seconds_count{${r}} ${h.count}`);
    }
    out.push(
      '# HELP search_r3_tokens_total Tokens processed by the embedder: prompt (read) and reasoning (written).',
      '# TYPE search_r3_tokens_total counter',
      `search_r3_tokens_total{kind="prompt"} ${queue.tokens.prompt}`,
      `search_r3_tokens_total{kind="reasoning"} ${queue.tokens.reasoning}`,
      '# HELP search_r3_queue_texts Texts in the embed queue: waiting for a batch, and in the batch now running.',
      '# TYPE search_r3_queue_texts gauge',
      `search_r3_queue_texts{state="pending"} ${queue.pending}`,
      `search_r3_queue_texts{state="running"} ${queue.running}`,
    );
    return `${out.join('\n')}\n`;
  }
}

import { MultiBar, Presets, SingleBar } from 'cli-progress';

/** A progress reporter: a bar with ETA on a terminal, periodic plain lines otherwise (CI logs). */
export interface Progress {
  /** Advances by `n` units and replaces the shown key/value fields. */
  tick(n?: number, fields?: Record<string, string | number>): void;
  /** Stops the bar; the final line stays on screen. */
  stop(): void;
}

export interface ProgressOptions {
  /** What is being counted, e.g. "docs". */
  unit?: string;
  /** Output stream, default process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Fields shown after the bar, e.g. ['loss', 'tok/s']; any label, `tick` takes values under the same names. */
  fields?: string[];
  /** Disable output entirely (library use, tests). */
  silent?: boolean;
}

/**
 * Starts a progress bar for `total` units of work labelled `label`.
 * @example const p = startProgress('encode corpus', docs.length, { unit: 'docs' }); … p.tick(); … p.stop();
 */
export function startProgress(label: string, total: number, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const unit = options.unit ?? 'items';
  if (options.silent) return { tick() {}, stop() {} };
  // cli-progress fills only `{word}` placeholders, so a label like 'tok/s' gets a payload key of its
  // own (f0, f1, …); the label stays as written.
  const labels = options.fields ?? [];
  const key = new Map(labels.map((f, i) => [f, `f${i}`]));
  const payload = (values: Record<string, string | number>): Record<string, string | number> => {
    const p: Record<string, string | number> = {};
    for (const [f, v] of Object.entries(values)) p[key.get(f) ?? f] = v;
    return p;
  };
  const extra = labels.map((f) => ` | ${f} {${key.get(f)}}`).join('');
  const bar = new SingleBar(
    {
      format: `${label.padEnd(16)} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted}${extra}`,
      stream,
      noTTYOutput: true,
      notTTYSchedule: 5000,
      etaBuffer: 50,
      hideCursor: true,
      clearOnComplete: false,
    },
    Presets.shades_classic,
  );
  const started = Date.now();
  const initial: Record<string, string | number> = { rate: '0.0' };
  for (const f of labels) initial[key.get(f)!] = '-';
  bar.start(total, 0, initial);
  let done = 0;
  return {
    tick(n = 1, fields = {}) {
      done += n;
      const seconds = (Date.now() - started) / 1000;
      bar.increment(n, { ...payload(fields), rate: seconds > 0 ? (done / seconds).toFixed(1) : '0.0' });
    },
    stop() {
      bar.stop();
    },
  };
}

export { MultiBar };

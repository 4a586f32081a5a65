import { DocumentIndex, type IndexInfo, type UpdateOptions, type UpdateReport } from '../docindex/document-index';
import { readCorpus } from '../docindex/corpus';
import { Embedder, EMBEDDER_DEFAULTS, type EmbedMode, type EmbedderOptions } from '../engine/embedder';
import { Model } from '../engine/model';
import { MAX_DOCUMENT_TOKENS } from '../retrieval/encode';
import type { RetrieveResult } from '../retrieval/types';
import { startProgress, type Progress } from '../util/progress';
import { intFlag, oneOfFlag, UsageError } from './args';
import { defineCommand } from './flags';

type Out = NodeJS.WritableStream;

const str = (value: string, dflt: string | number | undefined, help: string) => ({ type: 'string', value, default: dflt, help }) as const;
const threads = str('N', 'all hardware threads', 'CPU threads');
const sequences = str('N', EMBEDDER_DEFAULTS.sequences, 'documents or queries encoded in parallel');
const json = (help: string) => ({ type: 'boolean', help }) as const;
/** Results a search prints per query unless --topk says otherwise. */
const SEARCH_TOPK = 10;

/** `search-r3 index build`. */
export const INDEX_BUILD = defineCommand({
  name: 'index build', usage: '--model M.gguf --corpus CORPUS --out DIR',
  summary: 'Builds a document index of CORPUS (BEIR corpus.jsonl, FlashRAG JSONL, or a folder of .txt/.md files) in DIR.',
  flags: {
    model: str('M.gguf', undefined, 'embedding model with <|embed_token|> (required)'),
    lora: str('A.gguf', undefined, 'LoRA adapter applied at scale 1'),
    template: str('NAME', undefined, 'named prompt template of the embedder (the built-in prompts when omitted)'),
    corpus: str('CORPUS', undefined, 'the documents (required)'),
    out: str('DIR', undefined, 'index directory to create (required)'),
    hnsw: { type: 'boolean', help: 'approximate (HNSW) vector search instead of exact, for large corpora' },
    mode: str('direct|reason', EMBEDDER_DEFAULTS.mode, 'how `search` embeds queries unless told otherwise'),
    'max-reasoning-tokens': str('N', EMBEDDER_DEFAULTS.maxReasoningTokens, 'reasoning budget of reason-mode queries'),
    sequences, threads,
    force: { type: 'boolean', help: 'replace an index already in DIR' },
    json: json('the report as one JSON line, no progress bar'),
  },
});

/** `search-r3 index update`. */
export const INDEX_UPDATE = defineCommand({
  name: 'index update', usage: 'DIR --corpus CORPUS',
  summary: 'Brings the index in DIR in line with CORPUS: encodes added and changed documents, removes deleted ones; a new --lora re-encodes every row, resumably.',
  flags: {
    corpus: str('CORPUS', undefined, 'the documents as they are now (required)'),
    lora: str('A.gguf', 'the adapter the index records', 'LoRA adapter; a different one re-encodes every document'),
    sequences, threads,
    json: json('the report as one JSON line, no progress bar'),
  },
});

/** `search-r3 index info`. */
export const INDEX_INFO = defineCommand({
  name: 'index info', usage: 'DIR', summary: 'Shows what the index in DIR holds and what encoded it (no model is loaded).',
  flags: { json: json('one JSON object') },
});

/** `search-r3 search`. */
export const SEARCH = defineCommand({
  name: 'search', usage: 'DIR QUERY…', summary: 'Searches the index in DIR for each QUERY with the model and adapter it records.',
  flags: {
    mode: str('direct|reason', "the index's mode", 'embed queries at once, or reason first (the reasoning is printed)'),
    hybrid: { type: 'boolean', help: 'fuse BM25 and dense rankings by reciprocal rank (k = 60)' },
    topk: str('K', SEARCH_TOPK, 'documents per query'),
    threads,
    json: json('one JSON line per query: its documents, scores and reasoning'),
  },
});

const need = (value: unknown, flag: string, usage: string): string => {
  if (typeof value !== 'string') throw new UsageError(`missing --${flag}; usage: ${usage}`);
  return value;
};

function dirArg(positionals: string[], usage: string): string {
  const dir = positionals[0];
  if (!dir) throw new UsageError(`missing DIR; usage: ${usage}`);
  return dir;
}

/** A progress bar that starts when the index says how many documents it will encode. */
function encodeProgress(show: boolean, err: Out): { options: Pick<UpdateOptions, 'onProgress'>; stop(): void } {
  let bar: Progress | undefined;
  let shown = 0;
  return {
    options: show ? {
      onProgress: (done, total) => {
        bar ??= startProgress('encode', total, { unit: 'docs', stream: err as NodeJS.WriteStream });
        bar.tick(done - shown);
        shown = done;
      },
    } : {},
    stop: () => bar?.stop(),
  };
}

function reportLine(dir: string, r: UpdateReport): string {
  const encoded = r.added + r.changed + r.reencoded;
  const speed = r.encodeSeconds > 0 ? `, ${Math.round(r.encodedTokens / r.encodeSeconds)} tokens/s` : '';
  const cut = r.truncated > 0 ? `; ${r.truncated} cut to the document budget` : '';
  return `${dir}: added ${r.added}, changed ${r.changed}, removed ${r.removed}, re-encoded ${r.reencoded}, unchanged ${r.unchanged} `
    + `(${encoded} encoded in ${r.encodeSeconds.toFixed(1)} s${speed}${cut})\n`;
}

async function readCorpusFor(path: string, command: string, err: Out) {
  const corpus = await readCorpus(path);
  for (const w of corpus.warnings) err.write(`search-r3 ${command}: ${w}\n`);
  return corpus;
}

/** `search-r3 index build|update|info …`. */
export async function indexCommand(argv: string[], out: Out, err: Out = process.stderr): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') {
    out.write(`search-r3 index build|update|info …\n\n${INDEX_BUILD.help()}\n${INDEX_UPDATE.help()}\n${INDEX_INFO.help()}`);
    return 0;
  }
  if (sub === 'build') return indexBuild(rest, out, err);
  if (sub === 'update') return indexUpdate(rest, out, err);
  if (sub === 'info') return indexInfo(rest, out);
  throw new UsageError(`unknown or missing index command ${JSON.stringify(sub ?? '')}; expected build, update or info`);
}

async function indexBuild(argv: string[], out: Out, err: Out): Promise<number> {
  const args = INDEX_BUILD.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  const usage = INDEX_BUILD.usageLine;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}; usage: ${usage}`);
  const modelPath = need(values.model, 'model', usage);
  const corpusPath = need(values.corpus, 'corpus', usage);
  const dir = need(values.out, 'out', usage);
  const mode = oneOfFlag(values.mode, 'mode', ['direct', 'reason'] as const) ?? EMBEDDER_DEFAULTS.mode;
  const maxReasoningTokens = intFlag(values['max-reasoning-tokens'], 'max-reasoning-tokens', 1, 1 << 16) ?? EMBEDDER_DEFAULTS.maxReasoningTokens;
  const seqs = intFlag(values.sequences, 'sequences', 1, 256);
  const nThreads = intFlag(values.threads, 'threads', 1, 1024);
  // The corpus is read (and checked) before the model loads, so a bad line costs seconds, not an encode.
  const corpus = await readCorpusFor(corpusPath, 'index build', err);
  const model = await Model.load(modelPath);
  let embedder: Embedder | undefined;
  const progress = encodeProgress(!values.json, err);
  try {
    const lora = typeof values.lora === 'string' ? await model.loadLora(values.lora) : undefined;
    embedder = await Embedder.create(model, {
      mode, maxReasoningTokens, lora, sequences: seqs, threads: nThreads,
      // Room for a full-length document, or a query and its reasoning budget.
      contextPerSequence: MAX_DOCUMENT_TOKENS + 64 + maxReasoningTokens,
      // A named template is resolved by the embedder (the flag passes the name through).
      ...(typeof values.template === 'string' ? { template: values.template as unknown as EmbedderOptions['template'] } : {}),
    });
    const index = await DocumentIndex.build(dir, corpus, { embedder, mode, maxReasoningTokens, hnsw: values.hnsw === true, force: values.force === true, ...progress.options });
    progress.stop();
    const report = index.lastReport!;
    out.write(values.json ? `${JSON.stringify({ dir: index.dir, corpus: corpus.kind, ...report })}\n` : reportLine(dir, report));
  } finally {
    progress.stop();
    embedder?.dispose();
    model.dispose();
  }
  return 0;
}

async function indexUpdate(argv: string[], out: Out, err: Out): Promise<number> {
  const args = INDEX_UPDATE.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  const usage = INDEX_UPDATE.usageLine;
  const dir = dirArg(positionals, usage);
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[1])}; usage: ${usage}`);
  const corpusPath = need(values.corpus, 'corpus', usage);
  const seqs = intFlag(values.sequences, 'sequences', 1, 256);
  const nThreads = intFlag(values.threads, 'threads', 1, 1024);
  const corpus = await readCorpusFor(corpusPath, 'index update', err);
  const lora = typeof values.lora === 'string' ? values.lora : undefined;
  // A --lora that differs from the recorded adapter is the user asking for a re-encode.
  const index = await DocumentIndex.openWithModel(dir, { lora, reencode: lora !== undefined, threads: nThreads, sequences: seqs });
  const progress = encodeProgress(!values.json, err);
  try {
    const report = await index.update(corpus, progress.options);
    progress.stop();
    out.write(values.json ? `${JSON.stringify({ dir: index.dir, corpus: corpus.kind, ...report })}\n` : reportLine(dir, report));
  } finally {
    progress.stop();
    index.dispose();
  }
  return 0;
}

function infoLines(info: IndexInfo): string {
  const { identity: id, settings: s } = info;
  const rows: [string, string | number][] = [
    ['dir', info.dir],
    ['documents', info.documents],
    ['stale', info.staleDocuments === 0 ? 0 : `${info.staleDocuments} (encoded by an earlier adapter; run index update to finish re-encoding)`],
    ['model', `${id.model.path} (${id.model.fingerprint})`],
    ['lora', id.lora ? `${id.lora.path} (${id.lora.fingerprint})` : '-'],
    ['dim', id.dim],
    ['document tokens', id.maxDocumentTokens],
    ['mode', s.mode],
    ['vectors', s.hnsw ? 'hnsw (approximate)' : 'exact'],
    ['encoder version', info.encoderVersion],
    ['created', info.createdAt],
    ['saved', info.savedAt],
  ];
  return rows.map(([k, v]) => `${k.padEnd(16)} ${v}\n`).join('');
}

async function indexInfo(argv: string[], out: Out): Promise<number> {
  const args = INDEX_INFO.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  const dir = dirArg(positionals, INDEX_INFO.usageLine);
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[1])}; usage: ${INDEX_INFO.usageLine}`);
  const info = await DocumentIndex.info(dir);
  out.write(values.json ? `${JSON.stringify(info)}\n` : infoLines(info));
  return 0;
}

function preview(contents: string): string {
  const one = contents.replace(/\s+/g, ' ').trim();
  return one.length > 100 ? `${one.slice(0, 100)}…` : one;
}

function resultText(query: string, r: RetrieveResult): string {
  const lines = [`query: ${query}`];
  if (r.reasoning !== undefined) lines.push(`reasoning: ${r.reasoning.replace(/\s+/g, ' ').trim()}`);
  if (r.docs.length === 0) lines.push('  (no documents)');
  r.docs.forEach((d, i) => {
    const parts = d.scores ? ` (bm25 ${d.scores.bm25?.toFixed(4) ?? '-'}, dense ${d.scores.dense?.toFixed(4) ?? '-'})` : '';
    lines.push(`${String(i + 1).padStart(3)}. ${d.score.toFixed(4)}${parts}  ${d.id}  ${preview(d.contents)}`);
  });
  return `${lines.join('\n')}\n`;
}

/** `search-r3 search DIR QUERY…`. */
export async function searchCommand(argv: string[], out: Out, err: Out = process.stderr): Promise<number> {
  const args = SEARCH.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  const [dir, ...queries] = positionals;
  if (!dir || queries.length === 0) throw new UsageError(`missing ${dir ? 'QUERY' : 'DIR'}; usage: ${SEARCH.usageLine}`);
  const mode: EmbedMode | undefined = oneOfFlag(values.mode, 'mode', ['direct', 'reason'] as const);
  const topk = intFlag(values.topk, 'topk', 1, 10_000) ?? SEARCH_TOPK;
  const index = await DocumentIndex.openWithModel(dir, { threads: intFlag(values.threads, 'threads', 1, 1024) });
  try {
    const stale = index.info().staleDocuments;
    if (stale > 0) err.write(`search-r3 search: ${stale} of ${index.size} documents were encoded by an earlier adapter (an interrupted re-encode); run search-r3 index update ${dir} --corpus … to finish it\n`);
    const results = await index.retriever({ hybrid: values.hybrid === true, mode }).retrieve(queries, { topk });
    results.forEach((r, i) => out.write(values.json ? `${JSON.stringify({ query: queries[i], ...r })}\n` : resultText(queries[i]!, r)));
  } finally {
    index.dispose();
  }
  return 0;
}

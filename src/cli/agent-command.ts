// `search-r3 agent`: one question answered by the Search-R1 agent, with its searches and transcript.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent } from '../agent/agent';
import type { Trajectory } from '../agent/trajectory';
import { readCorpus } from '../docindex/corpus';
import { DocumentIndex } from '../docindex/document-index';
import { Model } from '../engine/model';
import { Bm25Retriever } from '../retrieval/bm25';
import { HttpRetriever } from '../retrieval/http';
import type { TextRetriever } from '../retrieval/types';
import { Bm25Index } from '../store/bm25';
import { intFlag, UsageError } from './args';
import { defineCommand } from './flags';

type Out = NodeJS.WritableStream;
const str = (value: string, dflt: string | number | undefined, help: string) => ({ type: 'string', value, default: dflt, help }) as const;

/** `search-r3 agent`. */
export const AGENT = defineCommand({
  name: 'agent', usage: 'MODEL --corpus CORPUS "question"',
  summary: 'Answers a question the Search-R1 way: the model reasons, searches CORPUS, reads the documents, and answers.',
  flags: {
    lora: str('A.gguf', undefined, 'LoRA adapter applied at scale 1'),
    corpus: str('CORPUS', undefined, 'BEIR corpus.jsonl, FlashRAG JSONL or a folder (bm25), or an index DIR from `search-r3 index build` (any retriever); not needed with a URL'),
    retriever: str('bm25|dense|hybrid|URL', 'bm25', 'how searches are answered; a URL speaks Search-R1\'s POST /retrieve'),
    topk: str('K', 3, 'documents per search'),
    'max-turns': str('N', 4, 'model turns at most'),
    'max-turn-tokens': str('N', 500, 'tokens one turn may write'),
    threads: str('N', 'all hardware threads', 'CPU threads'),
    json: { type: 'boolean', help: 'the trajectory as one JSON object' },
  },
});

/** A `catalog` folder marks a document index directory (see src/docindex); a damaged index then fails to open, loudly. */
export async function isIndexDir(path: string): Promise<boolean> {
  try {
    return (await stat(join(path, 'catalog'))).isDirectory();
  } catch {
    return false;
  }
}

async function bm25Over(path: string, err: Out): Promise<TextRetriever> {
  const corpus = await readCorpus(path);
  for (const w of corpus.warnings) err.write(`search-r3 agent: ${w}\n`);
  const index = new Bm25Index();
  const contents = new Map<string, string>();
  for (const d of corpus.docs) {
    index.add(d.id, d.contents);
    contents.set(d.id, d.contents);
  }
  return new Bm25Retriever({ index, contents });
}

/** The retriever the flags ask for, and what must be freed with it (shared with `train search-r1`). */
export async function openRetriever(kind: string, corpus: string | undefined, threads: number | undefined, err: Out): Promise<{ retriever: TextRetriever; dispose(): void }> {
  if (/^https?:\/\//.test(kind)) return { retriever: new HttpRetriever({ url: kind }), dispose: () => {} };
  if (!['bm25', 'dense', 'hybrid'].includes(kind)) throw new UsageError(`Expected bm25, dense, hybrid or an http(s) URL for --retriever but received ${JSON.stringify(kind)}`);
  if (corpus === undefined) throw new UsageError(`missing --corpus; usage: ${AGENT.usageLine}`);
  if (await isIndexDir(corpus)) {
    const index = await DocumentIndex.openWithModel(corpus, threads === undefined ? {} : { threads });
    return { retriever: index.retriever({ kind: kind as 'bm25' | 'dense' | 'hybrid' }), dispose: () => index.dispose() };
  }
  if (kind !== 'bm25') throw new UsageError(`--retriever ${kind} needs --corpus to be an index directory (search-r3 index build); ${corpus} is not one`);
  return { retriever: await bm25Over(corpus, err), dispose: () => {} };
}

/** The trajectory as a reader follows it: each segment labelled by who wrote it, then the result. */
function trajectoryText(t: Trajectory): string {
  const label = { prompt: 'prompt', model: 'model', information: 'retrieved', correction: 'correction' } as const;
  const lines = t.segments.slice(1).map((s) => `[${label[s.origin]}] ${s.text.trim()}`);
  return [
    ...lines, '',
    `answer: ${t.answer ?? '(none)'}`,
    `searches: ${t.searches.length === 0 ? '(none)' : t.searches.map((q) => JSON.stringify(q)).join(', ')}`,
    `turns: ${t.turns}, stopped: ${t.stop}`, '',
  ].join('\n');
}

/** The JSON form: everything but token ids and log-probs (segment token counts instead). */
function trajectoryJson(t: Trajectory): object {
  return {
    question: t.question, answer: t.answer, searches: t.searches, turns: t.turns, invalidActions: t.invalidActions, stop: t.stop,
    segments: t.segments.map((s) => ({ origin: s.origin, text: s.text, tokens: s.tokens?.length ?? 0 })),
  };
}

/** `search-r3 agent MODEL --corpus CORPUS "question"`. */
export async function agentCommand(argv: string[], out: Out, err: Out = process.stderr): Promise<number> {
  const args = AGENT.parse(argv, out);
  if (!args) return 0;
  const { values, positionals } = args;
  const usage = AGENT.usageLine;
  const [modelPath, question, extra] = positionals;
  if (!modelPath || question === undefined) throw new UsageError(`missing ${modelPath ? 'the question' : 'MODEL'}; usage: ${usage}`);
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)} (quote the question); usage: ${usage}`);
  if (question.trim().length === 0) throw new UsageError('Expected a question with text but received an empty one');
  const topk = intFlag(values.topk, 'topk', 1, 100);
  const maxTurns = intFlag(values['max-turns'], 'max-turns', 1, 64);
  const maxTurnTokens = intFlag(values['max-turn-tokens'], 'max-turn-tokens', 1, 1 << 20);
  const threads = intFlag(values.threads, 'threads', 1, 1024);
  const kind = typeof values.retriever === 'string' ? values.retriever : 'bm25';
  const corpus = typeof values.corpus === 'string' ? values.corpus : undefined;
  // The retriever (and its corpus) first: a bad corpus line costs no model load.
  const r = await openRetriever(kind, corpus, threads, err);
  let model: Model | undefined;
  let agent: Agent | undefined;
  try {
    model = await Model.load(modelPath);
    const lora = typeof values.lora === 'string' ? await model.loadLora(values.lora) : undefined;
    agent = await Agent.create(model, { retriever: r.retriever, topk, maxTurns, maxTurnTokens, threads, lora, sequences: 1 });
    const [t] = await agent.run([question]);
    out.write(values.json ? `${JSON.stringify(trajectoryJson(t!))}\n` : trajectoryText(t!));
  } finally {
    agent?.dispose();
    model?.dispose();
    r.dispose();
  }
  return 0;
}

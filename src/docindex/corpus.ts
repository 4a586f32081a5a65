// The corpora a document index reads: a BEIR corpus, a FlashRAG/Search-R1 JSONL corpus, or a
// folder of text files (what a desktop app has). All become {id, contents} with FlashRAG's form of
// a titled document, `"Title"\ntext`, so every retriever returns documents the same way.
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { readLines } from '../eval/lines';
import { SearchR3Error } from '../util/errors';
import { assertString } from '../util/validate';

/** One document of a corpus. */
export interface CorpusDoc {
  id: string;
  /** The text stored, indexed and embedded: `"Title"\ntext` for titled documents, else the text. */
  contents: string;
}

/** Which reader {@link readCorpus} picked. */
export type CorpusKind = 'beir' | 'flashrag' | 'folder';

/** A corpus read whole, in its order (a folder's files sorted by relative path). */
export interface Corpus {
  kind: CorpusKind;
  /** The path that was given. */
  path: string;
  docs: CorpusDoc[];
  /** Things skipped on purpose, one line each (a symlink loop, a dangling link). */
  warnings: string[];
}

/** File extensions a folder corpus reads (case-insensitive). */
export const TEXT_EXTENSIONS = ['.txt', '.md'] as const;

/** `"Title"\ntext`, FlashRAG's (and Search-R1's) form of a titled document; the text alone when untitled. */
export function titledContents(title: string, text: string): string {
  return title ? `"${title}"\n${text}` : text;
}

/**
 * Reads a corpus, detecting its form:
 * - a folder holding `corpus.jsonl` (a BEIR dataset) or a `.jsonl` file whose first record has
 *   `_id` (BEIR: `{_id, title?, text}`) or `id` + `contents` (FlashRAG: `{id, contents}`);
 * - any other folder: every `.txt`/`.md` file under it is one document, id = its path relative to
 *   the folder with `/` separators, in sorted order. Symlinks are followed; a link back into a
 *   folder already being read (a loop) and a dangling link are skipped with a warning.
 * Malformed records and repeated ids are ERR_FORMAT errors naming `file:line`; unreadable files
 * are ERR_FILE errors naming the file; an empty corpus is ERR_FORMAT.
 *
 * @example const corpus = await readCorpus('notes/'); corpus.docs[0] // { id: 'a.md', contents: '…' }
 */
export async function readCorpus(path: string): Promise<Corpus> {
  assertString(path, 'corpus', { nonEmpty: true });
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new SearchR3Error('ERR_FILE', `Cannot read corpus "${path}" (${err.code ?? err.message})`, { cause: err });
  });
  let corpus: Corpus;
  if (st.isDirectory()) {
    const beir = join(path, 'corpus.jsonl');
    const isBeir = await stat(beir).then((s) => s.isFile(), () => false);
    corpus = isBeir ? { ...(await readJsonlCorpus(beir)), path } : await readFolderCorpus(path);
  } else {
    corpus = { ...(await readJsonlCorpus(path)), path };
  }
  if (corpus.docs.length === 0) {
    throw new SearchR3Error('ERR_FORMAT', `corpus "${path}" holds no documents${corpus.kind === 'folder' ? ` (no ${TEXT_EXTENSIONS.join(' or ')} files)` : ''}`);
  }
  return corpus;
}

type JsonlKind = 'beir' | 'flashrag';

function parseRecord(text: string, kind: JsonlKind | undefined): { kind: JsonlKind; doc: CorpusDoc } | string {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (err) {
    return `invalid JSON (${(err as Error).message})`;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'expected a JSON object';
  const r = o as Record<string, unknown>;
  const found: JsonlKind | undefined = kind ?? ('_id' in r ? 'beir' : 'contents' in r ? 'flashrag' : undefined);
  if (found === undefined) return 'expected a BEIR record {"_id", "title", "text"} or a FlashRAG record {"id", "contents"}';
  const rawId = found === 'beir' ? r._id : r.id;
  // Numeric ids (some exports write them) name the same document as their string form.
  const id = typeof rawId === 'number' && Number.isInteger(rawId) ? String(rawId) : rawId;
  const idKey = found === 'beir' ? '_id' : 'id';
  if (typeof id !== 'string' || id.length === 0) return `expected "${idKey}" to be a non-empty string (this corpus is ${found === 'beir' ? 'BEIR' : 'FlashRAG'} JSONL)`;
  if (found === 'flashrag') {
    if (typeof r.contents !== 'string') return `expected "contents" to be a string in document "${id}"`;
    return { kind: found, doc: { id, contents: r.contents } };
  }
  if (typeof r.text !== 'string') return `expected "text" to be a string in document "${id}"`;
  if (r.title !== undefined && r.title !== null && typeof r.title !== 'string') return `expected "title" to be a string in document "${id}"`;
  return { kind: found, doc: { id, contents: titledContents(typeof r.title === 'string' ? r.title : '', r.text) } };
}

async function readJsonlCorpus(file: string): Promise<Omit<Corpus, 'path'>> {
  let kind: JsonlKind | undefined;
  const docs: CorpusDoc[] = [];
  const firstLine = new Map<string, number>();
  for await (const { text, line } of readLines(file, 'corpus')) {
    if (text.trim() === '') continue;
    const r = parseRecord(text, kind);
    if (typeof r === 'string') throw new SearchR3Error('ERR_FORMAT', `${file}:${line}: ${r}`);
    kind = r.kind;
    const seen = firstLine.get(r.doc.id);
    if (seen !== undefined) throw new SearchR3Error('ERR_FORMAT', `${file}:${line}: document id "${r.doc.id}" appears again (first at line ${seen})`);
    firstLine.set(r.doc.id, line);
    docs.push(r.doc);
  }
  return { kind: kind ?? 'flashrag', docs, warnings: [] };
}

async function readFolderCorpus(root: string): Promise<Corpus> {
  const files: string[] = [];
  const warnings: string[] = [];
  // Real paths of the folders on the current path from the root: a link to one of them is a loop.
  const walk = async (dir: string, ancestors: Set<string>): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw new SearchR3Error('ERR_FILE', `Cannot read folder "${dir}" of corpus "${root}" (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
    }
    for (const entry of entries) {
      const full = join(dir, entry.name);
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        const target = await stat(full).catch((err: NodeJS.ErrnoException) => err);
        if (target instanceof Error) {
          warnings.push(`skipped ${full}: ${target.code === 'ELOOP' ? 'a symlink loop' : `a dangling symlink (${target.code ?? target.message})`}`);
          continue;
        }
        [isDir, isFile] = [target.isDirectory(), target.isFile()];
      }
      if (isDir) {
        const real = await realpath(full);
        if (ancestors.has(real)) {
          warnings.push(`skipped ${full}: a symlink loop (it leads back to ${real})`);
          continue;
        }
        await walk(full, new Set([...ancestors, real]));
      } else if (isFile && (TEXT_EXTENSIONS as readonly string[]).includes(extname(entry.name).toLowerCase())) {
        files.push(full);
      }
    }
  };
  await walk(root, new Set([await realpath(root)]));
  const docs = files.map((f) => ({ id: relative(root, f).split(sep).join('/'), file: f }));
  docs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const out: CorpusDoc[] = [];
  for (const d of docs) {
    let contents: string;
    try {
      contents = await readFile(d.file, 'utf8');
    } catch (err) {
      throw new SearchR3Error('ERR_FILE', `Cannot read "${d.file}" of corpus "${root}" (${(err as NodeJS.ErrnoException).code ?? String(err)}); fix its permissions or move it out of the folder`, { cause: err });
    }
    out.push({ id: d.id, contents: contents.charCodeAt(0) === 0xfeff ? contents.slice(1) : contents });
  }
  return { kind: 'folder', path: root, docs: out, warnings };
}

/**
 * The on-disk form of a document index, and its one commit point.
 *
 * ```
 * DIR/catalog/      manifest + docs part (ids, texts, sha256 of each text) + meta (identity, settings,
 *                   which generation of the vectors and BM25 belong to it)   ← the commit point
 * DIR/vectors.<g>/  the vector store (exact or HNSW) of generation g
 * DIR/bm25.<g>/     the BM25 index of generation g
 * ```
 * A save writes generation g+1's vectors and BM25 beside the current ones, then replaces the
 * catalog atomically (store persistence: fsynced parts, manifest renamed into place), and only then
 * removes generation g. A crash at any moment leaves a catalog naming complete files; a reader
 * whose generation is removed under it starts over on the new catalog.
 */
import { createHash } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { EmbedMode } from '../engine/embedder';
import { Bm25Index } from '../store/bm25';
import { HnswStore } from '../store/hnsw';
import { loadStoreDirectory, saveDirectory } from '../store/persistence';
import type { VectorIndex } from '../store/types';
import { VectorStore } from '../store/vector-store';
import { SearchR3Error } from '../util/errors';
import type { EncoderIdentity } from './identity';

/** The manifest kind of a document index's catalog. */
export const CATALOG_KIND = 'document-index';
/** The catalog's folder inside an index directory. */
export const CATALOG_DIR = 'catalog';

/** How the index embeds and searches, fixed at build time. */
export interface IndexSettings {
  /** Query mode searches use unless told otherwise. */
  mode: EmbedMode;
  /** Approximate (HNSW) vector search instead of exact. */
  hnsw: boolean;
  /** Tokens per embedder sequence, and the reasoning budget of reason-mode queries, to reopen the embedder as it was. */
  contextPerSequence: number;
  maxReasoningTokens: number;
}

/** The catalog's metadata. */
export interface CatalogMeta {
  format: 1;
  settings: IndexSettings;
  /** What encodes rows now; rows whose vector version is below `encoderVersion` are stale (encoded by an earlier one). */
  identity: EncoderIdentity;
  encoderVersion: number;
  generation: number;
  documents: number;
  createdAt: string;
  savedAt: string;
}

/** One stored document. */
export interface StoredDoc {
  contents: string;
  /** sha256 of `contents` (hex): an update re-encodes a document exactly when this changes. */
  sha256: string;
}

/** sha256 of a document's text, hex. */
export function contentHash(contents: string): string {
  return createHash('sha256').update(contents, 'utf8').digest('hex');
}

/** A loaded index's parts. */
export interface LoadedIndex {
  meta: CatalogMeta;
  docs: Map<string, StoredDoc>;
  store: VectorIndex;
  bm25: Bm25Index;
}

const vectorsDir = (g: number): string => `vectors.${g}`;
const bm25Dir = (g: number): string => `bm25.${g}`;
const GENERATION_DIR = /^(vectors|bm25)\.(\d+)$/;

interface DocsFile {
  ids: string[];
  sha256: string[];
  contents: string[];
}

/** Whether `dir` holds a document index (its catalog manifest). */
export async function hasCatalog(dir: string): Promise<boolean> {
  return readdir(join(dir, CATALOG_DIR)).then((names) => names.includes('manifest.json'), () => false);
}

/** Builds a BM25 index over the stored texts (rebuilt whole at each save: BM25's statistics span the corpus). */
export function bm25Of(docs: Map<string, StoredDoc>): Bm25Index {
  const bm25 = new Bm25Index();
  for (const [id, d] of docs) bm25.add(id, d.contents);
  return bm25;
}

/**
 * Writes generation `meta.generation` (the caller has advanced it) and commits it; `beforeCommit`
 * runs between the parts and the catalog (a test's kill point).
 */
export async function saveIndex(dir: string, meta: CatalogMeta, docs: Map<string, StoredDoc>, store: VectorIndex, bm25: Bm25Index, beforeCommit?: () => void): Promise<void> {
  const g = meta.generation;
  // A crash after writing parts but before committing them leaves this generation's folders behind.
  await rm(join(dir, vectorsDir(g)), { recursive: true, force: true });
  await rm(join(dir, bm25Dir(g)), { recursive: true, force: true });
  await store.save(join(dir, vectorsDir(g)));
  await bm25.save(join(dir, bm25Dir(g)));
  beforeCommit?.();
  const file: DocsFile = { ids: [], sha256: [], contents: [] };
  for (const [id, d] of docs) {
    file.ids.push(id);
    file.sha256.push(d.sha256);
    file.contents.push(d.contents);
  }
  await saveDirectory(join(dir, CATALOG_DIR), CATALOG_KIND, meta, [{ name: 'docs', chunks: [Buffer.from(JSON.stringify(file))] }]);
  for (const name of await readdir(dir)) {
    const m = GENERATION_DIR.exec(name);
    if (m && Number(m[2]) !== g) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/** Loads the committed generation of the index at `dir`, checking that its parts agree; failures are ERR_STORE naming the file. */
export async function loadIndex(dir: string): Promise<LoadedIndex> {
  // Said in the user's terms: a folder that was never an index is not "a store without a manifest".
  if (!(await hasCatalog(dir))) {
    throw new SearchR3Error('ERR_STORE', `${dir} is not a search-r3 document index (no ${CATALOG_DIR}/manifest.json); build one with "search-r3 index build --model M.gguf --corpus CORPUS --out ${dir}"`);
  }
  return loadStoreDirectory(join(dir, CATALOG_DIR), CATALOG_KIND, async (loaded) => {
    const meta = loaded.meta as CatalogMeta;
    if (meta?.format !== 1 || !Number.isSafeInteger(meta.generation) || !Number.isSafeInteger(meta.documents)) {
      throw new SearchR3Error('ERR_STORE', `document index ${dir}: its catalog has no valid metadata (written by another version of search-r3?)`);
    }
    const path = loaded.path('docs');
    let file: DocsFile;
    try {
      file = JSON.parse((await loaded.read('docs')).toString('utf8')) as DocsFile;
    } catch (err) {
      if (err instanceof SearchR3Error) throw err;
      throw new SearchR3Error('ERR_STORE', `Store file ${path} is not valid JSON`, { cause: err });
    }
    const n = meta.documents;
    if (!Array.isArray(file.ids) || file.ids.length !== n || file.sha256?.length !== n || file.contents?.length !== n) {
      throw new SearchR3Error('ERR_STORE', `Store file ${path} does not hold ${n} documents with hashes and texts`);
    }
    const docs = new Map<string, StoredDoc>();
    file.ids.forEach((id, i) => docs.set(id, { contents: file.contents[i]!, sha256: file.sha256[i]! }));
    const vdir = join(dir, vectorsDir(meta.generation));
    const store: VectorIndex = meta.settings.hnsw ? await HnswStore.load(vdir) : await VectorStore.load(vdir);
    const bm25 = await Bm25Index.load(join(dir, bm25Dir(meta.generation)));
    if (docs.size !== n || store.size !== n || bm25.size !== n || file.ids.some((id) => !store.has(id) || !bm25.has(id))) {
      throw new SearchR3Error('ERR_STORE', `document index ${dir}: generation ${meta.generation} has ${n} texts, ${store.size} vectors and ${bm25.size} BM25 documents, which do not match`);
    }
    return { meta, docs, store, bm25 };
  });
}

/** Refuses to build over anything but nothing, an empty folder, or (with force) a document index. */
export async function checkBuildTarget(dir: string, abs: string, force: boolean): Promise<void> {
  let names: string[];
  try {
    names = await readdir(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new SearchR3Error('ERR_FILE', `cannot build a document index at ${dir}: it is a file, expected a folder`);
    throw new SearchR3Error('ERR_FILE', `cannot build a document index at ${dir} (${code ?? String(err)})`, { cause: err });
  }
  if (await hasCatalog(abs)) {
    if (!force) throw new SearchR3Error('ERR_FILE', `${dir} already holds a document index; update it (search-r3 index update ${dir} --corpus …) or pass --force to rebuild it`);
    return;
  }
  // What an interrupted first build leaves (its lock files, uncommitted parts) is ours to replace.
  const foreign = names.filter((n) => !n.startsWith('.writer') && n !== 'catalog' && !/^(vectors|bm25)\.\d+$/.test(n));
  if (foreign.length > 0) throw new SearchR3Error('ERR_FILE', `cannot build a document index at ${dir}: the folder is not empty and holds no index; choose a new or empty folder`);
}

/** The highest generation number used in `dir` (0 when none): a rebuild continues the count so it never reuses a live folder name. */
export async function highestGeneration(dir: string): Promise<number> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let g = 0;
  for (const n of names) {
    const m = GENERATION_DIR.exec(n);
    if (m) g = Math.max(g, Number(m[2]));
  }
  return g;
}

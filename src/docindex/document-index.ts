import { mkdir, readdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Embedder, EMBEDDER_DEFAULTS, type EmbedMode } from '../engine/embedder';
import { Model } from '../engine/model';
import { Bm25Retriever } from '../retrieval/bm25';
import { DenseRetriever } from '../retrieval/dense';
import { encodeChunkSize, encodeDocuments, queryTokenBudgets } from '../retrieval/encode';
import { HybridRetriever } from '../retrieval/hybrid';
import type { TextRetriever } from '../retrieval/types';
import { Bm25Index } from '../store/bm25';
import { HnswStore } from '../store/hnsw';
import type { VectorIndex } from '../store/types';
import { VectorStore } from '../store/vector-store';
import { lockStoreDirectory, type WriterLock } from '../store/writer-lock';
import { SearchR3Error } from '../util/errors';
import { assertBoolean, assertInteger, assertNumber, assertOneOf, assertString, checkKeys, expected } from '../util/validate';
import { readCorpus, type Corpus, type CorpusDoc } from './corpus';
import { bm25Of, contentHash, hasCatalog, loadIndex, saveIndex, type CatalogMeta, type IndexSettings, type StoredDoc } from './files';
import { encoderIdentity, identityDifferences, mismatchError, type EncoderIdentity } from './identity';

/** A corpus as {@link DocumentIndex.build} and {@link DocumentIndex.update} take it: a path for {@link readCorpus}, a read corpus, or documents. */
export type CorpusInput = string | Corpus | readonly CorpusDoc[];

/** Where a commit is: its vectors and BM25 are written but not yet committed (`parts`), or committed. */
export type CheckpointPhase = 'parts' | 'committed';

/** Options of {@link DocumentIndex.update} (and of the encoding part of a build). */
export interface UpdateOptions {
  /** Called as documents are encoded: done so far of those to encode. */
  onProgress?: (done: number, total: number) => void;
  /** Stops between encoder chunks with ERR_ABORTED, after committing what was encoded. */
  signal?: AbortSignal;
  /**
   * Seconds of encoding between commits: what a kill can cost. Each commit rewrites the index, so
   * commits are also at least four times their own duration apart. Default 10; 0 = after every chunk.
   */
  checkpointSeconds?: number;
  /**
   * Called at each commit with the documents encoded so far. Phase `parts` comes after the new
   * vectors and BM25 are written, before the catalog names them. For progress displays, and for
   * tests that kill a process at an exact point of the commit.
   */
  onCheckpoint?: (phase: CheckpointPhase, done: number, total: number) => void;
}

/** Options of {@link DocumentIndex.build}. */
export interface BuildOptions extends UpdateOptions {
  /** Encodes the documents (and later the queries); the caller keeps ownership. */
  embedder: Embedder;
  /** Query mode of searches unless told otherwise. Default `direct`. */
  mode?: EmbedMode;
  /** Approximate (HNSW) vector search instead of exact. Default false. */
  hnsw?: boolean;
  /** The embedder's reasoning budget (what `maxReasoningTokens` it was created with), to leave room for it in reason-mode queries. Default 128. */
  maxReasoningTokens?: number;
  /** Replace an index already in `dir` (it stays searchable until the new one's first commit). Default false. */
  force?: boolean;
}

/** Options of {@link DocumentIndex.open}. */
export interface OpenOptions {
  /** Encodes queries and updates; must be what encoded the index unless `reencode`. Without one, only BM25 search works. */
  embedder?: Embedder;
  /** Accept an embedder with another model, adapter or template: every row becomes stale and the next update re-encodes it. */
  reencode?: boolean;
}

/** Options of {@link DocumentIndex.openWithModel}. */
export interface OpenWithModelOptions {
  /** An adapter to use instead of the recorded one (`null`: none). A different one needs `reencode`. */
  lora?: string | null;
  reencode?: boolean;
  /** CPU threads of the embedder (default: all). */
  threads?: number;
  /** Parallel sequences of the embedder (default 8). */
  sequences?: number;
}

/** What an update did. */
export interface UpdateReport {
  /** Documents new to the index, encoded. */
  added: number;
  /** Documents whose text changed (by sha256), re-encoded. */
  changed: number;
  /** Documents no longer in the corpus, removed. */
  removed: number;
  /** Unchanged documents re-encoded because an earlier encoder (another adapter) wrote them. */
  reencoded: number;
  /** Documents left as they were. */
  unchanged: number;
  /** Encoded documents cut to the document budget. */
  truncated: number;
  /** Prompt tokens fed to the encoder. */
  encodedTokens: number;
  /** Seconds spent encoding (the throughput denominator). */
  encodeSeconds: number;
  /** Seconds the whole update took, reading the corpus excluded. */
  seconds: number;
}

/** What {@link DocumentIndex.info} tells. */
export interface IndexInfo {
  dir: string;
  documents: number;
  /** Documents whose vector an earlier encoder wrote (a re-encode was interrupted, or has not run yet). */
  staleDocuments: number;
  identity: EncoderIdentity;
  encoderVersion: number;
  settings: IndexSettings;
  generation: number;
  createdAt: string;
  savedAt: string;
}

/** Options of {@link DocumentIndex.retriever}. */
export interface IndexRetrieverOptions {
  /** `bm25`, `dense` or `hybrid` (default `dense`, or `hybrid` with `hybrid: true`). */
  kind?: 'bm25' | 'dense' | 'hybrid';
  hybrid?: boolean;
  /** Query mode (default: the index's). */
  mode?: EmbedMode;
}

const sinceMs = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;

function checkUpdateOptions(options: UpdateOptions, extra: readonly string[]): void {
  checkKeys(options, ['onProgress', 'signal', 'checkpointSeconds', 'onCheckpoint', ...extra], 'options');
  if (options.checkpointSeconds !== undefined) assertNumber(options.checkpointSeconds, 'checkpointSeconds', 0);
  for (const key of ['onProgress', 'onCheckpoint'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'function') throw new TypeError(expected('function', key, options[key]));
  }
}

async function corpusDocs(corpus: CorpusInput): Promise<readonly CorpusDoc[]> {
  if (typeof corpus === 'string') return (await readCorpus(corpus)).docs;
  const docs = Array.isArray(corpus) ? (corpus as readonly CorpusDoc[]) : (corpus as Corpus)?.docs;
  if (!Array.isArray(docs)) throw new TypeError(expected('corpus path, Corpus or array of {id, contents}', 'corpus', corpus));
  const seen = new Set<string>();
  docs.forEach((d, i) => {
    assertString(d?.id, `corpus[${i}].id`, { nonEmpty: true });
    assertString(d.contents, `corpus[${i}].contents`);
    if (seen.has(d.id)) throw new RangeError(expected('unique document ids', `corpus[${i}].id`, d.id));
    seen.add(d.id);
  });
  if (docs.length === 0) throw new RangeError(expected('at least one document', 'corpus', docs));
  return docs;
}

/**
 * A persistent, incremental document index in one directory: the documents' texts with their
 * sha256, their vectors (exact, or HNSW), a BM25 index, and the identity of what encoded them
 * (model and adapter fingerprints, template, document budget). Every change is committed
 * atomically (see files.ts), under the directory's writer lock, so the index on disk is complete
 * and searchable at every moment, and an interrupted build, update or re-encode continues where it
 * stopped when run again.
 *
 * @example
 * const index = await DocumentIndex.build('notes.index', 'notes/', { embedder });
 * const report = await index.update('notes/');   // { added: 1, changed: 2, removed: 0, … }
 * const [hits] = await index.retriever({ hybrid: true }).retrieve(['tax forms'], { topk: 5 });
 */
export class DocumentIndex {
  readonly dir: string;
  #meta: CatalogMeta;
  #docs: Map<string, StoredDoc>;
  #store: VectorIndex;
  #bm25: Bm25Index;
  #embedder: Embedder | null;
  #owned: { model: Model; embedder: Embedder } | null = null;
  #updating = false;
  #lastReport: UpdateReport | null = null;
  // The encoder version on disk: a re-encode accepted in memory must be committed even if nothing else changes.
  #committedVersion: number;

  private constructor(dir: string, meta: CatalogMeta, docs: Map<string, StoredDoc>, store: VectorIndex, bm25: Bm25Index, embedder: Embedder | null) {
    this.dir = dir;
    this.#meta = meta;
    this.#docs = docs;
    this.#store = store;
    this.#bm25 = bm25;
    this.#embedder = embedder;
    this.#committedVersion = meta.encoderVersion;
  }

  /**
   * Builds an index of `corpus` in `dir` (created if missing; an existing index only with `force`,
   * and never a folder that holds something else), encoding every document with `embedder`.
   */
  static async build(dir: string, corpus: CorpusInput, options: BuildOptions): Promise<DocumentIndex> {
    assertString(dir, 'dir', { nonEmpty: true });
    if (typeof options !== 'object' || options === null) throw new TypeError(expected('object with an embedder', 'options', options));
    checkUpdateOptions(options, ['embedder', 'mode', 'hnsw', 'maxReasoningTokens', 'force']);
    if (typeof options.embedder?.embedDocuments !== 'function') throw new TypeError(expected('Embedder', 'embedder', options.embedder));
    const mode = options.mode ?? 'direct';
    assertOneOf(mode, 'mode', ['direct', 'reason'] as const);
    for (const key of ['hnsw', 'force'] as const) if (options[key] !== undefined) assertBoolean(options[key], key);
    const maxReasoningTokens = options.maxReasoningTokens ?? EMBEDDER_DEFAULTS.maxReasoningTokens;
    assertInteger(maxReasoningTokens, 'maxReasoningTokens', 1, 1 << 20);
    const abs = resolve(dir);
    await checkBuildTarget(dir, abs, options.force === true);
    const docs = await corpusDocs(corpus);
    const embedder = options.embedder;
    const identity = await encoderIdentity(embedder);
    const now = new Date().toISOString();
    const settings: IndexSettings = { mode, hnsw: options.hnsw === true, contextPerSequence: embedder.session.info.contextPerSequence, maxReasoningTokens };
    const meta: CatalogMeta = {
      format: 1, settings, identity, encoderVersion: 0, generation: await highestGeneration(abs), documents: 0, createdAt: now, savedAt: now,
    };
    const store: VectorIndex = settings.hnsw ? new HnswStore({ dim: identity.dim, capacity: docs.length }) : new VectorStore({ dim: identity.dim, capacity: docs.length });
    const index = new DocumentIndex(abs, meta, new Map(), store, new Bm25Index(), embedder);
    await mkdir(abs, { recursive: true });
    await index.#update(docs, options, true);
    return index;
  }

  /**
   * Opens the index in `dir`. With an embedder, its identity must match the index's (else
   * ERR_MODEL naming each difference), unless `reencode`.
   */
  static async open(dir: string, options: OpenOptions = {}): Promise<DocumentIndex> {
    assertString(dir, 'dir', { nonEmpty: true });
    checkKeys(options, ['embedder', 'reencode'], 'options');
    if (options.reencode !== undefined) assertBoolean(options.reencode, 'reencode');
    const abs = resolve(dir);
    const loaded = await loadIndex(abs);
    const index = new DocumentIndex(abs, loaded.meta, loaded.docs, loaded.store, loaded.bm25, null);
    if (options.embedder !== undefined) await index.#attach(options.embedder, options.reencode === true);
    return index;
  }

  /**
   * Opens the index in `dir` with the model (and adapter) it records, loaded and owned by the
   * index until {@link DocumentIndex.dispose}. A model or adapter file whose bytes changed since is
   * ERR_MODEL; `lora` picks another adapter (with `reencode`, to re-encode every row with it).
   */
  static async openWithModel(dir: string, options: OpenWithModelOptions = {}): Promise<DocumentIndex> {
    checkKeys(options, ['lora', 'reencode', 'threads', 'sequences'], 'options');
    if (options.lora !== undefined && options.lora !== null) assertString(options.lora, 'lora', { nonEmpty: true });
    const index = await DocumentIndex.open(dir);
    const { identity, settings } = index.#meta;
    const model = await Model.load(identity.model.path).catch((err: unknown) => {
      if (err instanceof SearchR3Error && err.code === 'ERR_FILE') {
        throw new SearchR3Error('ERR_FILE', `document index ${index.dir} was encoded with model ${identity.model.path}, which cannot be opened: ${err.message}`, { cause: err });
      }
      throw err;
    });
    try {
      const loraPath = options.lora === undefined ? identity.lora?.path : options.lora;
      const lora = loraPath == null ? undefined : await model.loadLora(loraPath);
      const embedder = await Embedder.create(model, {
        mode: settings.mode, maxReasoningTokens: settings.maxReasoningTokens, contextPerSequence: settings.contextPerSequence,
        template: identity.template, lora, threads: options.threads, sequences: options.sequences,
      });
      index.#owned = { model, embedder };
      await index.#attach(embedder, options.reencode === true);
    } catch (err) {
      index.dispose();
      model.dispose();
      throw err;
    }
    return index;
  }

  /** Reads what an index holds and what encoded it, without loading a model. */
  static async info(dir: string): Promise<IndexInfo> {
    const index = await DocumentIndex.open(dir);
    return index.info();
  }

  /** Number of documents. */
  get size(): number {
    return this.#docs.size;
  }

  /** What the last build or update of this object did (null before one). */
  get lastReport(): UpdateReport | null {
    return this.#lastReport;
  }

  /** The embedder queries and updates use, or null (BM25 only). */
  get embedder(): Embedder | null {
    return this.#embedder;
  }

  /** A document's stored text, or undefined. */
  contents(id: string): string | undefined {
    return this.#docs.get(id)?.contents;
  }

  /** What this index holds and what encoded it (as in memory: a pending re-encode shows as stale rows). */
  info(): IndexInfo {
    const m = this.#meta;
    return {
      dir: this.dir, documents: this.#docs.size, staleDocuments: this.#store.staleIds(m.encoderVersion).length,
      identity: m.identity, encoderVersion: m.encoderVersion, settings: m.settings, generation: m.generation, createdAt: m.createdAt, savedAt: m.savedAt,
    };
  }

  /**
   * Brings the index in line with `corpus`: documents added or changed (by sha256) are encoded,
   * those gone are removed, stale rows (an earlier adapter's) are re-encoded, the rest untouched.
   * Commits every `checkpointSeconds` and at the end; killed, it continues when run again.
   */
  async update(corpus: CorpusInput, options: UpdateOptions = {}): Promise<UpdateReport> {
    checkUpdateOptions(options, []);
    const docs = await corpusDocs(corpus);
    return this.#update(docs, options, false);
  }

  /**
   * A retriever over this index: `dense` (the embedder's queries against the vectors), `bm25`, or
   * `hybrid` (both fused by reciprocal rank). Documents come back with their stored text.
   */
  retriever(options: IndexRetrieverOptions = {}): TextRetriever {
    checkKeys(options, ['kind', 'hybrid', 'mode'], 'options');
    if (options.hybrid !== undefined) assertBoolean(options.hybrid, 'hybrid');
    const kind = options.kind ?? (options.hybrid ? 'hybrid' : 'dense');
    assertOneOf(kind, 'kind', ['bm25', 'dense', 'hybrid'] as const);
    const contents = (id: string): string | undefined => this.#docs.get(id)?.contents;
    // BM25 is rebuilt at each commit, so each call searches the index's current one.
    const bm25: TextRetriever = { name: 'bm25', retrieve: (q, o) => new Bm25Retriever({ index: this.#bm25, contents }).retrieve(q, o) };
    if (kind === 'bm25') return bm25;
    const embedder = this.#embedder;
    if (embedder === null) throw new TypeError(`the document index ${this.dir} was opened without an embedder, so only kind "bm25" can search it; open it with { embedder } or DocumentIndex.openWithModel`);
    const mode = options.mode ?? this.#meta.settings.mode;
    const dense = new DenseRetriever({ embedder, store: this.#store, contents, mode, queryTokens: queryTokenBudgets(embedder, this.#meta.settings.maxReasoningTokens) });
    return kind === 'dense' ? dense : new HybridRetriever({ bm25, dense });
  }

  /** Frees the model and embedder {@link DocumentIndex.openWithModel} loaded; idempotent. A caller's embedder stays theirs. */
  dispose(): void {
    const owned = this.#owned;
    this.#owned = null;
    if (owned) {
      owned.embedder.dispose();
      owned.model.dispose();
      this.#embedder = null;
    }
  }

  async #attach(embedder: Embedder, reencode: boolean): Promise<void> {
    if (typeof embedder?.embedDocuments !== 'function') throw new TypeError(expected('Embedder', 'embedder', embedder));
    const now = await encoderIdentity(embedder);
    const differences = identityDifferences(this.#meta.identity, now);
    if (differences.length > 0) {
      if (now.dim !== this.#meta.identity.dim) {
        throw mismatchError(this.dir, differences, 'Vectors of another size cannot be re-encoded in place; build a new index with this model.');
      }
      if (!reencode) {
        throw mismatchError(this.dir, differences,
          'Open it with the model and adapter it names, or re-encode every document (reencode: true; search-r3 index update DIR --corpus CORPUS --lora ADAPTER).');
      }
      // Every row is now stale; the next update re-encodes them and commits the new identity with the first of them.
      this.#meta = { ...this.#meta, identity: now, encoderVersion: this.#meta.encoderVersion + 1 };
    }
    this.#embedder = embedder;
  }

  async #update(docs: readonly CorpusDoc[], options: UpdateOptions, building: boolean): Promise<UpdateReport> {
    const embedder = this.#embedder;
    if (embedder === null) throw new TypeError(`the document index ${this.dir} was opened without an embedder; updating it needs one (open it with { embedder } or DocumentIndex.openWithModel)`);
    if (this.#updating) throw new SearchR3Error('ERR_BUSY', `document index ${this.dir} is already being updated by this process; await that update first`);
    this.#updating = true;
    let lock: WriterLock | undefined;
    try {
      lock = await lockStoreDirectory(this.dir);
      this.#lastReport = await this.#apply(embedder, docs, options, lock, building);
      return this.#lastReport;
    } finally {
      this.#updating = false;
      await lock?.release();
    }
  }

  async #apply(embedder: Embedder, docs: readonly CorpusDoc[], options: UpdateOptions, lock: WriterLock, building: boolean): Promise<UpdateReport> {
    const start = process.hrtime.bigint();
    const version = this.#meta.encoderVersion;
    const incoming = new Set(docs.map((d) => d.id));
    const stale = new Set(this.#store.staleIds(version));
    const report: UpdateReport = { added: 0, changed: 0, removed: 0, reencoded: 0, unchanged: 0, truncated: 0, encodedTokens: 0, encodeSeconds: 0, seconds: 0 };
    const todo: { doc: CorpusDoc; sha256: string }[] = [];
    for (const doc of docs) {
      const sha256 = contentHash(doc.contents);
      const current = this.#docs.get(doc.id);
      if (current === undefined) report.added++;
      else if (current.sha256 !== sha256) report.changed++;
      else if (stale.has(doc.id)) report.reencoded++;
      else {
        report.unchanged++;
        continue;
      }
      todo.push({ doc, sha256 });
    }
    for (const id of [...this.#docs.keys()]) {
      if (incoming.has(id)) continue;
      this.#docs.delete(id);
      this.#store.delete(id);
      report.removed++;
    }
    // A pending identity change (reencode) or removals must reach the disk even when nothing is left to encode.
    let dirty = building || report.removed > 0 || version !== this.#committedVersion;
    const checkpointMs = (options.checkpointSeconds ?? 10) * 1000;
    let lastCommit = process.hrtime.bigint();
    let lastCommitMs = 0;
    let done = 0;
    const commit = async (): Promise<void> => {
      const t = process.hrtime.bigint();
      await this.#commit(lock, (phase) => options.onCheckpoint?.(phase, done, todo.length));
      dirty = false;
      lastCommit = process.hrtime.bigint();
      lastCommitMs = sinceMs(t);
    };
    // A commit rewrites the whole index, so on a large one commits are also spaced to at least four
    // times their own duration: they never take more than a fifth of the update's time.
    const commitDue = (): boolean => checkpointMs === 0 || sinceMs(lastCommit) >= Math.max(checkpointMs, 4 * lastCommitMs);
    const chunk = encodeChunkSize(embedder);
    try {
      for (let at = 0; at < todo.length; at += chunk) {
        if (options.signal?.aborted) throw new SearchR3Error('ERR_ABORTED', `the update of ${this.dir} was aborted after ${done} of ${todo.length} documents; they are committed, run it again to continue`);
        const part = todo.slice(at, at + chunk);
        const t = process.hrtime.bigint();
        let inPart = 0;
        const encoded = await encodeDocuments(embedder, part.map((p) => p.doc.contents), this.#meta.identity.maxDocumentTokens, {
          signal: options.signal,
          onProgress: (n) => options.onProgress?.(done + (inPart += n), todo.length),
        });
        report.encodeSeconds += sinceMs(t) / 1000;
        report.encodedTokens += encoded.promptTokens;
        part.forEach((p, i) => {
          this.#store.upsert(p.doc.id, encoded.vectors[i]!, version);
          this.#docs.set(p.doc.id, { contents: p.doc.contents, sha256: p.sha256 });
          if (encoded.truncated[i]) report.truncated++;
        });
        done += part.length;
        dirty = true;
        if (done < todo.length && commitDue()) await commit();
      }
      if (dirty) await commit();
    } catch (err) {
      // What was encoded before a failure or an abort is kept: commit it, then report the failure.
      if (dirty && !(err instanceof SearchR3Error && err.code === 'ERR_STORE')) await commit().catch(() => undefined);
      throw err;
    }
    report.seconds = sinceMs(start) / 1000;
    return report;
  }

  async #commit(lock: WriterLock, onPhase: (phase: CheckpointPhase) => void): Promise<void> {
    lock.assertHeld();
    const meta: CatalogMeta = { ...this.#meta, generation: this.#meta.generation + 1, documents: this.#docs.size, savedAt: new Date().toISOString() };
    const bm25 = bm25Of(this.#docs);
    await saveIndex(this.dir, meta, this.#docs, this.#store, bm25, () => onPhase('parts'));
    this.#meta = meta;
    this.#bm25 = bm25;
    this.#committedVersion = meta.encoderVersion;
    onPhase('committed');
  }
}

/** Refuses to build over anything but nothing, an empty folder, or (with force) a document index. */
async function checkBuildTarget(dir: string, abs: string, force: boolean): Promise<void> {
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
async function highestGeneration(dir: string): Promise<number> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let g = 0;
  for (const n of names) {
    const m = /^(vectors|bm25)\.(\d+)$/.exec(n);
    if (m) g = Math.max(g, Number(m[2]));
  }
  return g;
}

/**
 * Directory persistence shared by the vector stores and BM25: every save writes new part files
 * named by a generation number, fsyncs them and the directory, then atomically replaces
 * `manifest.json` (which names the parts with their sizes and SHA-256), and only then deletes the
 * previous generation. A crash at any moment therefore leaves a manifest that names complete,
 * fsynced files: the old store or the new one.
 *
 * One writer per directory: a save holds the directory's writer lock (writer-lock.ts) from reading
 * the previous generation to deleting it, and a second writer fails with ERR_STORE. Readers take
 * no lock; a reader whose generation is deleted under it by a newer save starts over on the new
 * manifest (see {@link loadStoreDirectory}).
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { SearchR3Error } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { lockStoreDirectory } from './writer-lock.js';

const FORMAT = 'search-r3-store';
const FORMAT_VERSION = 1;
const MANIFEST = 'manifest.json';
const CHUNK = 16 << 20;
// A load restarts when a save replaced its generation; a writer saving in a tight loop could
// otherwise keep a reader busy forever.
const LOAD_ATTEMPTS = 8;

/** One file of a save: either bytes to write, or a function that writes the file itself (e.g. a library's index writer). */
export type PartSource = { name: string; chunks: readonly Uint8Array[] } | { name: string; writeTo: (file: string) => Promise<void> };

interface PartEntry {
  file: string;
  bytes: number;
  sha256: string;
}

interface ManifestBody {
  format: string;
  formatVersion: number;
  kind: string;
  generation: number;
  savedAt: string;
  meta: unknown;
  parts: Record<string, PartEntry>;
}

function storeError(message: string, cause?: unknown): SearchR3Error {
  return new SearchR3Error('ERR_STORE', message, cause === undefined ? undefined : { cause });
}

function fsyncPath(path: string, flags: string): void {
  const fd = openSync(path, flags);
  try { fsyncSync(fd); } catch { /* directories cannot be fsynced on some platforms */ } finally { closeSync(fd); }
}

function bodyDigest(body: ManifestBody): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

async function manifestGeneration(dir: string): Promise<number> {
  try {
    const m = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as { generation?: unknown };
    return typeof m.generation === 'number' && Number.isSafeInteger(m.generation) ? m.generation : 0;
  } catch {
    return 0;
  }
}

async function writeChunks(file: string, chunks: readonly Uint8Array[], hash: Hash): Promise<number> {
  const handle = await open(file, 'w');
  let bytes = 0;
  try {
    for (const chunk of chunks) {
      // Large parts are written in slices so no single write call holds gigabytes.
      for (let off = 0; off < chunk.byteLength; off += CHUNK) {
        const slice = chunk.subarray(off, Math.min(chunk.byteLength, off + CHUNK));
        hash.update(slice);
        await handle.write(slice);
        bytes += slice.byteLength;
      }
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return bytes;
}

async function hashFile(file: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  let bytes = 0;
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return { bytes, sha256: hash.digest('hex') };
}

/**
 * Writes `parts` and a manifest of `kind` with `meta` to `dir` atomically (see the module comment),
 * holding the directory's writer lock: a concurrent writer gets ERR_STORE naming the holder.
 */
export async function saveDirectory(dir: string, kind: string, meta: unknown, parts: readonly PartSource[]): Promise<void> {
  if (endianness() !== 'LE') throw storeError('search-r3 stores are little-endian and this platform is big-endian');
  await mkdir(dir, { recursive: true });
  const lock = await lockStoreDirectory(dir);
  try {
    await saveLocked(dir, kind, meta, parts, lock.assertHeld);
  } finally {
    await lock.release();
  }
}

async function saveLocked(dir: string, kind: string, meta: unknown, parts: readonly PartSource[], assertHeld: () => void): Promise<void> {
  const generation = (await manifestGeneration(dir)) + 1;
  const entries: Record<string, PartEntry> = {};
  for (const part of parts) {
    const file = `${part.name}.${generation}.bin`;
    const path = join(dir, file);
    if ('chunks' in part) {
      const hash = createHash('sha256');
      const bytes = await writeChunks(path, part.chunks, hash);
      entries[part.name] = { file, bytes, sha256: hash.digest('hex') };
    } else {
      await part.writeTo(path);
      fsyncPath(path, 'r+');
      entries[part.name] = { file, ...(await hashFile(path)) };
    }
  }
  // The parts' directory entries must be durable before a manifest can point at them.
  fsyncPath(dir, 'r');
  // A writer that lost its lock must not publish: another may have taken the directory over.
  assertHeld();
  const body: ManifestBody = { format: FORMAT, formatVersion: FORMAT_VERSION, kind, generation, savedAt: new Date().toISOString(), meta, parts: entries };
  await writeFileAtomic(join(dir, MANIFEST), `${JSON.stringify({ ...body, sha256: bodyDigest(body) }, null, 1)}\n`);
  await removeUnreferenced(dir, entries);
}

// Deletes older generations of this save's parts (`<part>.<generation>.bin`, for the part names it
// just wrote) and temporaries left by interrupted saves; any other file in the directory, such as a
// user's own `weights.1.bin`, is left alone.
async function removeUnreferenced(dir: string, entries: Record<string, { file: string }>): Promise<void> {
  const keep = new Set(Object.values(entries).map((e) => e.file));
  const parts = new Set(Object.keys(entries));
  for (const name of await readdir(dir)) {
    const m = /^([a-z][a-z0-9-]*)\.\d+\.bin$/.exec(name);
    const ours = (m !== null && parts.has(m[1]!)) || /^\.manifest\.json\..*\.tmp$/.test(name);
    if (ours && !keep.has(name)) await rm(join(dir, name), { force: true });
  }
}

/** A verified manifest, with access to its parts. */
export interface LoadedDirectory {
  meta: unknown;
  /** The manifest's save counter: 1 for the first save of the directory, then +1 per save. */
  generation: number;
  /** Path of a part, after {@link LoadedDirectory.verify} or for a library that reads it itself. */
  path(name: string): string;
  /** Reads a part whole, checking its size and checksum. */
  read(name: string): Promise<Buffer>;
  /** Reads a part into `into` (which must be exactly its size), checking its checksum. */
  readInto(name: string, into: Uint8Array): Promise<void>;
  /** Checks a part's size and checksum without keeping its bytes. */
  verify(name: string): Promise<void>;
}

function parseManifest(dir: string, text: string, kind: string): ManifestBody {
  const file = join(dir, MANIFEST);
  let parsed: ManifestBody & { sha256?: unknown };
  try {
    parsed = JSON.parse(text) as ManifestBody & { sha256?: unknown };
  } catch (err) {
    throw storeError(`Store manifest ${file} is not valid JSON (corrupt or truncated)`, err);
  }
  const { sha256, ...body } = parsed;
  if (parsed.format !== FORMAT) throw storeError(`${file} is not a search-r3 store manifest`);
  if (sha256 !== bodyDigest(body)) throw storeError(`Store manifest ${file} fails its checksum (corrupt)`);
  if (body.formatVersion !== FORMAT_VERSION) {
    throw storeError(`Store ${file} has format version ${String(body.formatVersion)}; this search-r3 reads version ${FORMAT_VERSION}`);
  }
  if (body.kind !== kind) throw storeError(`Store ${file} holds a ${JSON.stringify(body.kind)} store, expected ${JSON.stringify(kind)}`);
  return body;
}

/**
 * Loads a store: reads and verifies `dir/manifest.json`, then runs `build` on it (which reads the
 * parts). A save that lands meanwhile deletes the generation `build` is reading, so when `build`
 * fails and the manifest has moved on, it starts over on the new one (up to 8 times): a reader
 * gets the last complete save, never a mix. Failures are ERR_STORE naming the file.
 */
export async function loadStoreDirectory<T>(dir: string, kind: string, build: (loaded: LoadedDirectory) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const loaded = await loadDirectory(dir, kind);
    try {
      return await build(loaded);
    } catch (err) {
      if (attempt >= LOAD_ATTEMPTS || (await manifestGeneration(dir)) === loaded.generation) throw err;
    }
  }
}

// Reads and verifies `dir/manifest.json`; parts are verified as they are read.
async function loadDirectory(dir: string, kind: string): Promise<LoadedDirectory> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST), 'utf8');
  } catch (err) {
    throw storeError(`No store at ${dir}: cannot read ${join(dir, MANIFEST)} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, err);
  }
  const body = parseManifest(dir, text, kind);
  const entry = (name: string): PartEntry => {
    const e = body.parts[name];
    if (!e) throw storeError(`Store manifest ${join(dir, MANIFEST)} lists no part "${name}"`);
    return e;
  };
  const check = (e: PartEntry, bytes: number, sha256: string): void => {
    const file = join(dir, e.file);
    if (bytes !== e.bytes) throw storeError(`Store file ${file} has ${bytes} bytes, the manifest says ${e.bytes} (truncated or corrupt)`);
    if (sha256 !== e.sha256) throw storeError(`Store file ${file} fails its SHA-256 checksum (corrupt)`);
  };
  const readFailure = (e: PartEntry, err: unknown): SearchR3Error =>
    err instanceof SearchR3Error ? err
      : storeError(`Cannot read store file ${join(dir, e.file)} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, err);
  return {
    meta: body.meta,
    generation: body.generation,
    path: (name) => join(dir, entry(name).file),
    async read(name) {
      const e = entry(name);
      let data: Buffer;
      try {
        data = await readFile(join(dir, e.file));
      } catch (err) {
        throw readFailure(e, err);
      }
      check(e, data.byteLength, createHash('sha256').update(data).digest('hex'));
      return data;
    },
    async readInto(name, into) {
      const e = entry(name);
      const file = join(dir, e.file);
      if (into.byteLength !== e.bytes) {
        throw storeError(`Store file ${file} is listed with ${e.bytes} bytes but the store's metadata implies ${into.byteLength} (corrupt manifest)`);
      }
      const hash = createHash('sha256');
      let off = 0;
      try {
        const handle = await open(file, 'r');
        try {
          const { size } = await handle.stat();
          if (size !== e.bytes) check(e, size, '');
          while (off < into.byteLength) {
            const { bytesRead } = await handle.read(into, off, Math.min(CHUNK, into.byteLength - off), off);
            if (bytesRead === 0) break;
            hash.update(into.subarray(off, off + bytesRead));
            off += bytesRead;
          }
        } finally {
          await handle.close();
        }
      } catch (err) {
        throw readFailure(e, err);
      }
      check(e, off, hash.digest('hex'));
    },
    async verify(name) {
      const e = entry(name);
      let result: { bytes: number; sha256: string };
      try {
        result = await hashFile(join(dir, e.file));
      } catch (err) {
        throw readFailure(e, err);
      }
      check(e, result.bytes, result.sha256);
    },
  };
}

import { rmSync } from 'node:fs';
import { open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileError } from './io-errors';

/**
 * Temporary files beside their targets, for atomic writes. Each carries the writer's pid in its
 * name (`.<name>.<pid>.<stamp>.tmp`), lives in a registry while it is being written, and is removed
 * on failure, on SIGINT/SIGTERM (the CLI's handlers call {@link removeLiveTempFiles}), and, when a
 * run was killed outright, by the next write into the same directory (its pid is no longer alive).
 */

const TEMP_NAME = /^\..+\.(\d+)\.[0-9a-z]+\.tmp$/;
const live = new Set<string>();
const swept = new Set<string>();
let counter = 0;

/** A fresh temporary path beside `file`; the name encodes this process's pid. */
export function tempPathFor(file: string): string {
  const stamp = `${Date.now().toString(36)}${(counter++).toString(36)}`;
  return join(dirname(file), `.${basename(file)}.${process.pid}.${stamp}.tmp`);
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by someone else
  }
}

/**
 * Removes temporary files in `dir` left by processes that no longer run (a run killed with
 * SIGKILL or a power cut cannot clean up after itself). Each directory is swept once per process.
 * A pid reused by an unrelated process keeps its orphan until that process ends: a file is only
 * removed when it cannot belong to a live writer. Resolves to the names removed.
 */
export async function removeOrphanTemps(dir: string): Promise<string[]> {
  const key = resolve(dir);
  if (swept.has(key)) return [];
  swept.add(key);
  const names = await readdir(key).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (m === null || pidAlive(Number(m[1]))) continue;
    await rm(join(key, name), { force: true }).then(() => removed.push(name), () => undefined);
  }
  return removed;
}

/** Marks a temporary file as being written, so a signal handler can remove it. */
export function registerTemp(path: string): void {
  live.add(resolve(path));
}

/** The temporary file was renamed into place or removed. */
export function releaseTemp(path: string): void {
  live.delete(resolve(path));
}

/**
 * Synchronously removes every temporary file this process is writing; for signal and exit
 * handlers, which cannot wait for promises.
 */
export function removeLiveTempFiles(): void {
  for (const path of live) rmSync(path, { force: true });
  live.clear();
}

/** Where a {@link writeViaTemp} callback writes; failures name the target, not the temporary file. */
export interface TempSink {
  write(data: Uint8Array | string): Promise<void>;
}

async function writeAll(handle: FileHandle, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  for (let off = 0; off < bytes.length;) {
    const { bytesWritten } = await handle.write(bytes, off, bytes.length - off);
    off += bytesWritten;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  // Makes the rename durable; some platforms refuse fsync on a directory, which is harmless there.
  const handle = await open(dir, 'r').catch(() => undefined);
  await handle?.sync().catch(() => undefined);
  await handle?.close().catch(() => undefined);
}

/**
 * Writes `target` atomically: `fill` streams into a temporary file beside it, which is fsynced and
 * renamed over `target`, so a crash leaves the old file or the new one, never a torn one. I/O
 * failures become one-line ERR_FILE errors naming `target`; errors `fill` raises itself pass
 * through unchanged. The temporary file never outlives a failure or a handled signal.
 *
 * @example await writeViaTemp('out.jsonl', async (sink) => { for (const l of lines) await sink.write(l); });
 */
export async function writeViaTemp(target: string, fill: (sink: TempSink) => Promise<void>): Promise<void> {
  const io = <T>(p: Promise<T>): Promise<T> => p.catch((err: unknown) => { throw fileError(err, target, 'write'); });
  await removeOrphanTemps(dirname(target));
  const tmp = tempPathFor(target);
  registerTemp(tmp);
  let handle: FileHandle | undefined;
  try {
    handle = await io(open(tmp, 'wx'));
    const h = handle;
    await fill({ write: (data) => io(writeAll(h, data)) });
    await io(h.sync());
    handle = undefined;
    await io(h.close());
    await io(rename(tmp, target));
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  } finally {
    releaseTemp(tmp);
  }
  await fsyncDir(dirname(target));
}

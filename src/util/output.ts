import { constants } from 'node:fs';
import { access, realpath, stat, statfs } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SearchR3Error } from './errors';
import { fileError } from './io-errors';
import { assertString } from './validate';

/**
 * The rule every command that writes files follows: no output may be one of its inputs, and an
 * existing output is replaced only with `force` (the CLI's `--force`). All checks run before any
 * work starts, so a refusal costs nothing and destroys nothing.
 */

/** A path as the user gave it and what named it on the command line (`--out`, `OUT`, `--model`). */
export interface NamedPath {
  path: string;
  name: string;
}

/** An input path and what it must be (default `file`). */
export interface NamedInput extends NamedPath {
  kind?: 'file' | 'directory' | 'file or directory';
}

/** Options of {@link checkOutputs}. */
export interface CheckOutputsOptions {
  /** Files the command reads; an output naming one of them (also via a symlink or hard link) is refused, even with `force`. */
  inputs?: readonly NamedPath[];
  /** Replace outputs that already exist (default false: refuse, naming the file and `--force`). */
  force?: boolean;
}

/**
 * Human size with the exact byte count, binary units.
 * @example formatBytes(45125312) // '43.0 MiB (45125312 bytes)'
 */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]} (${bytes} bytes)`;
}

const shown = (p: NamedPath): string => `${p.name} ${p.path}`;

async function statOrNull(path: string): Promise<Awaited<ReturnType<typeof stat>> | null> {
  return stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
}

/**
 * Checks that every input exists and is what it must be, so a directory given for a file (or a
 * missing file) is a one-line ERR_FILE error naming the flag, not a failure deep inside a read.
 *
 * @example await checkInputs([{ path: 'docs.jsonl', name: '--input' }]);
 */
export async function checkInputs(inputs: readonly NamedInput[]): Promise<void> {
  for (const input of inputs) {
    assertString(input.path, input.name, { nonEmpty: true });
    const kind = input.kind ?? 'file';
    const st = await stat(input.path).catch((err: unknown) => {
      throw (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? new SearchR3Error('ERR_FILE', `${shown(input)} does not exist`, { cause: err })
        : fileError(err, input.path, 'read', input.name);
    });
    if (kind === 'file' && st.isDirectory()) throw new SearchR3Error('ERR_FILE', `${shown(input)} is a directory, expected a file`);
    if (kind === 'directory' && !st.isDirectory()) throw new SearchR3Error('ERR_FILE', `${shown(input)} is not a directory`);
  }
}

/** Where a path points once symlinks are followed; for a file not yet there, its directory's real path. */
async function realTarget(path: string): Promise<string> {
  const abs = resolve(path);
  return realpath(abs).catch(async () => join(await realpath(dirname(abs)).catch(() => dirname(abs)), basename(abs)));
}

async function checkOne(output: NamedPath, force: boolean, inputIds: Map<string, NamedPath>): Promise<void> {
  assertString(output.path, output.name, { nonEmpty: true });
  const dir = dirname(resolve(output.path));
  const dirStat = await stat(dir).catch((err: unknown) => { throw fileError(err, output.path, 'write', output.name); });
  if (!dirStat.isDirectory()) throw new SearchR3Error('ERR_FILE', `cannot write ${shown(output)}: ${dir} is not a directory`);
  await access(dir, constants.W_OK).catch((err: unknown) => { throw fileError(err, output.path, 'write', output.name); });
  const st = await statOrNull(output.path).catch((err: unknown) => { throw fileError(err, output.path, 'write', output.name); });
  if (st === null) return;
  if (st.isDirectory()) throw new SearchR3Error('ERR_FILE', `cannot write ${shown(output)}: it is a directory, expected a file`);
  const input = inputIds.get(`${st.dev}:${st.ino}`);
  if (input !== undefined) {
    throw new SearchR3Error('ERR_FILE', `${shown(output)} is the same file as ${shown(input)}; write the output to another file`);
  }
  if (!force) throw new SearchR3Error('ERR_FILE', `${shown(output)} already exists; pass --force to replace it`);
}

/**
 * Refuses, before any work, outputs that would destroy something: an output that is one of the
 * inputs (compared by device and inode, so `./a.gguf`, a symlink or a hard link are caught), two
 * outputs naming one file, an existing output without `force`, a directory in a file's place, a
 * missing or unwritable directory. Errors are one-line ERR_FILE errors naming the flag and path.
 *
 * @example
 * await checkOutputs([{ path: outPath, name: '--out' }], { inputs: [{ path: model, name: '--model' }], force: values.force === true });
 */
export async function checkOutputs(outputs: readonly NamedPath[], options: CheckOutputsOptions = {}): Promise<void> {
  const inputIds = new Map<string, NamedPath>();
  for (const input of options.inputs ?? []) {
    const st = await statOrNull(input.path).catch(() => null);
    if (st !== null && st.isFile()) inputIds.set(`${st.dev}:${st.ino}`, input);
  }
  const targets = new Map<string, NamedPath>();
  for (const output of outputs) {
    await checkOne(output, options.force === true, inputIds);
    const target = await realTarget(output.path);
    const other = targets.get(target);
    if (other !== undefined) throw new SearchR3Error('ERR_FILE', `${shown(other)} and ${shown(output)} name the same file`);
    targets.set(target, output);
  }
}

/**
 * Refuses to start writing `bytes` into `path` when its file system has less free space: the
 * temporary copy needs all of it, even when an old file of that name will be replaced.
 *
 * @example await checkFreeSpace('model.gguf', 2_000_000_000);
 */
export async function checkFreeSpace(path: string, bytes: number): Promise<void> {
  const dir = dirname(resolve(path));
  const fs = await statfs(dir).catch((err: unknown) => { throw fileError(err, path, 'write'); });
  const free = fs.bavail * fs.bsize;
  if (bytes > free) {
    throw new SearchR3Error('ERR_FILE', `cannot write ${path}: it needs ${formatBytes(bytes)} but only ${formatBytes(free)} is free in ${dir}`);
  }
}

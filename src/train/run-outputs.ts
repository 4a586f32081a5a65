import { existsSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SearchR3Error } from '../util/errors';

/** The three files one training run writes: the adapter at `out`, `<out>.state` and `<out>.log.jsonl`. */
export interface RunFiles {
  adapter: string;
  state: string;
  log: string;
}

/**
 * The files of the run whose adapter goes to `out`.
 *
 * @example
 * runFiles('stage1.lora.gguf').state; // 'stage1.lora.gguf.state'
 */
export function runFiles(out: string): RunFiles {
  return { adapter: out, state: `${out}.state`, log: `${out}.log.jsonl` };
}

/** How an existing run's files may be treated: continued (`resume`), replaced (`force`), or neither. */
export interface RunOutputMode {
  resume: boolean;
  force: boolean;
}

/** A path's identity: device and inode when it exists, else the real path of its folder plus its name. */
async function identity(path: string): Promise<string> {
  const s = await stat(path).catch(() => null);
  if (s) return `inode ${s.dev}:${s.ino}`;
  const dir = await realpath(dirname(resolve(path))).catch(() => dirname(resolve(path)));
  return `path ${join(dir, basename(path))}`;
}

/**
 * Refuses, before any work, a run whose outputs would destroy something: an output that is one of
 * the inputs (compared by inode, so links and `./` spellings count), an earlier run's adapter,
 * state or log without `resume` or `force`, and `resume` without a state to continue. Errors are
 * `SearchR3Error` `ERR_FILE` naming the file and the flags that would make the run go ahead.
 *
 * Kept to one function so it can later be served by the package's shared output guard.
 *
 * @example
 * await checkRunOutputs(runFiles('a.gguf'), { model: 'm.gguf', train: 'pairs.jsonl' }, { resume: false, force: false });
 */
export async function checkRunOutputs(files: RunFiles, inputs: Record<string, string | undefined>, mode: RunOutputMode): Promise<void> {
  const outputs = Object.entries(files) as [keyof RunFiles, string][];
  const inputIds = new Map<string, string>();
  for (const [name, path] of Object.entries(inputs)) if (path !== undefined) inputIds.set(await identity(path), `${name} ${path}`);
  for (const [kind, path] of outputs) {
    const clash = inputIds.get(await identity(path));
    if (clash !== undefined) {
      throw new SearchR3Error('ERR_FILE', `the run's ${kind} ${path} is the ${clash}; give --out a path of its own so no input is overwritten`);
    }
  }
  if (mode.resume) {
    if (existsSync(files.state)) return;
    const left = outputs.find(([, path]) => existsSync(path));
    const hint = left ? `the run never reached a checkpoint; start over with --force (replaces ${left[1]})` : 'start without --resume';
    throw new SearchR3Error('ERR_FILE', `--resume: no state file ${files.state}; ${hint}`);
  }
  if (mode.force) return;
  const existing = outputs.find(([, path]) => existsSync(path));
  if (existing) {
    throw new SearchR3Error('ERR_FILE', `${existing[1]} exists from an earlier run; continue that run with --resume or replace it with --force`);
  }
}

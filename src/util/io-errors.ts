import { dirname } from 'node:path';
import { SearchR3Error } from './errors';

/**
 * One wording for operating-system I/O failures. Node's own messages name the syscall and, for a
 * write through a temporary file, the hidden temporary name; users need their own path and the
 * reason in plain words, on one line.
 */

const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for the file system',
  EISDIR: 'it is a directory, expected a file',
  ENOTDIR: 'a part of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EIO: 'input/output error',
  ENAMETOOLONG: 'the file name is too long',
  ELOOP: 'too many levels of symbolic links',
  EBUSY: 'the file is busy',
  ETXTBSY: 'the file is busy',
  EXDEV: 'the temporary file is on another device',
};

/** True for an error thrown by node:fs or a stream: it carries an errno `code` and a `syscall`. */
export function isErrnoError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/**
 * Plain words for an errno code; `writing` says a missing path means a missing directory (the file
 * itself is about to be created).
 *
 * @example ioReason('ENOSPC', 'out/m.gguf', true) // 'no space left on the device'
 */
export function ioReason(code: string | undefined, path: string, writing: boolean): string {
  if (code === 'ENOENT') return writing ? `directory ${dirname(path)} does not exist` : 'it does not exist';
  return (code !== undefined && REASONS[code]) || `${code ?? 'unknown error'}`;
}

/**
 * Turns an errno error into a one-line `SearchR3Error` (ERR_FILE) naming `path`, the path the user
 * gave (never a temporary file's name), and `what` (e.g. `--out`) when a flag named it. Anything
 * that is not an errno error is returned unchanged, so bugs keep their stack.
 *
 * @example throw fileError(err, 'm.gguf', 'write'); // cannot write m.gguf: no space left on the device
 */
export function fileError(err: unknown, path: string, action: 'read' | 'write', what?: string): unknown {
  if (!isErrnoError(err)) return err;
  const named = what === undefined ? path : `${what} ${path}`;
  return new SearchR3Error('ERR_FILE', `cannot ${action} ${named}: ${ioReason(err.code, path, action === 'write')}`, { cause: err });
}

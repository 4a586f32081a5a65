import { SearchR3Error } from '../util/errors';
import { ioReason, isErrnoError } from '../util/io-errors';
import { removeLiveTempFiles } from '../util/temp-files';
import { UsageError } from './args';

/**
 * What every search-r3 executable shares at its edges: process handlers installed by the bin
 * scripts, and one table from errors to messages and exit codes (0 success, 1 failure, 2 usage).
 */

const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const; // 128 + signal number, as shells report
let installed = false;
let stdoutClosed = false;
let shutdownHandler: ((signal: NodeJS.Signals) => void) | null = null;

/**
 * Lets a long-running command (`serve`) take the next SIGINT/SIGTERM itself, to finish its work
 * before it exits; the handler is used once, so a second signal exits at once as usual. `null`
 * restores the default.
 *
 * @example onShutdownSignal((signal) => server.close().then(…));
 */
export function onShutdownSignal(handler: ((signal: NodeJS.Signals) => void) | null): void {
  shutdownHandler = handler;
}

/**
 * Installs the CLI's process handlers (once): SIGINT/SIGTERM remove the temporary files being
 * written and exit 130/143; a closed stdout (`search-r3 … | head`) is not an error — output is
 * dropped quietly and the command finishes its files and exits 0. Only the bin scripts call this;
 * a program that imports `main()` keeps its own handlers.
 *
 * @example installCliProcessHandlers(); process.exitCode = await main(process.argv.slice(2));
 */
export function installCliProcessHandlers(): void {
  if (installed) return;
  installed = true;
  for (const [signal, code] of Object.entries(SIGNAL_EXIT_CODES)) {
    process.on(signal, () => {
      const handler = shutdownHandler;
      if (handler) {
        shutdownHandler = null;
        handler(signal as NodeJS.Signals);
        return;
      }
      removeLiveTempFiles();
      process.exit(code);
    });
  }
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') {
      stdoutClosed = true;
      return;
    }
    process.stderr.write(`search-r3: cannot write to standard output: ${ioReason(err.code, '-', true)}\n`);
    removeLiveTempFiles();
    process.exit(1);
  });
}

/**
 * Prints `e` as one line prefixed with `prefix` on `err` and returns its exit code. Usage errors
 * exit 2; engine, input and I/O failures exit 1 naming the file (a path-less errno error still
 * gets plain words); a write into an already closed stdout pipe exits 0 silently; only a real bug
 * prints "unexpected failure" with its stack.
 *
 * @example catch (e) { return reportError('search-r3 embed', e, process.stderr); }
 */
export function reportError(prefix: string, e: unknown, err: NodeJS.WritableStream): number {
  if (e instanceof UsageError) {
    err.write(`${prefix}: ${e.message}\n`);
    return 2;
  }
  if (e instanceof SearchR3Error || e instanceof TypeError || e instanceof RangeError) {
    err.write(`${prefix}: ${e.message}\n`);
    return 1;
  }
  if (isErrnoError(e)) {
    if (e.code === 'EPIPE' && stdoutClosed) return 0;
    const writing = /write|open|rename|mkdir|fsync|ftruncate|copyfile/.test(e.syscall ?? '');
    const where = e.path === undefined ? '' : ` ${e.path}`;
    err.write(`${prefix}: cannot ${writing ? 'write' : 'read'}${where}: ${ioReason(e.code, e.path ?? '', writing)}\n`);
    return 1;
  }
  err.write(`${prefix}: unexpected failure: ${(e as Error)?.stack ?? String(e)}\n`);
  return 1;
}

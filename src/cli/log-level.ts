import { setLogLevel } from '../engine/system';
import { UsageError } from './args';

/** `--log-level` names, in llama.cpp's order; `none` is the CLI default (our errors carry llama.cpp's last message). */
export const LOG_LEVELS = ['none', 'error', 'warn', 'info', 'debug'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** The help lines for the two global flags, shared by both CLIs. */
export const LOG_LEVEL_HELP = [
  '  --log-level none|error|warn|info|debug   llama.cpp messages on stderr (default none)',
  '  --quiet                                  the same as --log-level none',
].join('\n');

/**
 * Takes `--log-level L` / `--log-level=L` / `--quiet` out of `argv` (anywhere in it) and returns the
 * rest with the chosen level. `keepQuiet` leaves `--quiet` in place for a command that has its own
 * meaning for it too (the bench: no progress bars).
 */
export function takeLogLevel(argv: string[], { keepQuiet = false } = {}): { argv: string[]; level: LogLevelName } {
  const rest: string[] = [];
  let level: LogLevelName = 'none';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--quiet') {
      level = 'none';
      if (keepQuiet) rest.push(a);
      continue;
    }
    if (a === '--log-level' || a.startsWith('--log-level=')) {
      const value = a === '--log-level' ? argv[++i] : a.slice('--log-level='.length);
      if (value === undefined || !(LOG_LEVELS as readonly string[]).includes(value)) {
        throw new UsageError(`Expected one of ${LOG_LEVELS.join(', ')} for --log-level but received ${JSON.stringify(value ?? null)}`);
      }
      level = value as LogLevelName;
      continue;
    }
    rest.push(a);
  }
  return { argv: rest, level };
}

/** Applies a level to llama.cpp's log callback (loads the addon; call it only for commands that use it). */
export function applyLogLevel(level: LogLevelName): void {
  setLogLevel(LOG_LEVELS.indexOf(level) as 0 | 1 | 2 | 3 | 4);
}

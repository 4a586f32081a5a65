import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { checkKeys } from '../util/validate';

/** The package version, read from package.json so `--version` never drifts from the release. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

/** A usage error: printed with the command's help, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Joins `--flag -1` into `--flag=-1` for string flags, so a negative number given as a separate
 * value reaches the flag's range check instead of parseArgs' "ambiguous" message.
 */
function joinNegativeValues(argv: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const name = a.startsWith('--') && !a.includes('=') ? a.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * node:util parseArgs with the house error messages: an unknown flag suggests the closest known one.
 */
export function parse(argv: string[], options: Options): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: joinNegativeValues(argv, options), options, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | string[] | undefined>, positionals };
  } catch (err) {
    const msg = (err as Error).message;
    const m = /Unknown option '--?([^']+)'/.exec(msg);
    if (m) {
      try {
        checkKeys({ [m[1]!]: true }, Object.keys(options), 'the command line');
      } catch (e) {
        throw new UsageError((e as Error).message.replace('Unknown option "', 'Unknown option "--').replace('did you mean "', 'did you mean "--'));
      }
    }
    throw new UsageError(msg);
  }
}

/** Reads an integer flag, with the flag's name in the error. */
export function intFlag(value: unknown, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || !/^-?\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`Expected an integer between ${min} and ${max} for --${flag} but received ${JSON.stringify(value)}`);
  }
  return n;
}

/** Reads a number flag, with the flag's name in the error. */
export function numFlag(value: unknown, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || value.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`Expected a number between ${min} and ${max} for --${flag} but received ${JSON.stringify(value)}`);
  }
  return n;
}

export function oneOfFlag<T extends string>(value: unknown, flag: string, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`Expected one of ${allowed.join(', ')} for --${flag} but received ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** A comma-separated list, each item one of `allowed`. */
export function listFlag<T extends string>(value: unknown, flag: string, allowed: readonly T[]): T[] | undefined {
  if (value === undefined) return undefined;
  return String(value).split(',').map((t) => oneOfFlag(t.trim(), flag, allowed)!);
}

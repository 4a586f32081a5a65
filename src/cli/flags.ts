import { parse } from './args';
import { LOG_LEVEL_HELP } from './log-level';

/** One flag of a command: its parseArgs type, the name of its value in the help, its default and what it does. */
export interface FlagSpec {
  type: 'string' | 'boolean';
  /** How the value is shown in the help (`N`, `FILE`, `cosine|linear`); string flags only. */
  value?: string;
  /** The default as the user sees it, read from where the code defines it; omitted where there is none. */
  default?: string | number | boolean;
  help: string;
}

/** A command's one declaration: both its parser options and its help text come from it. */
export interface CommandSpec {
  /** `info`, `train sft`, … as typed after `search-r3`. */
  name: string;
  /** The positionals and required flags, e.g. `MODEL --prompt TEXT`. */
  usage: string;
  /** One line saying what the command does. */
  summary: string;
  flags: Record<string, FlagSpec>;
}

/** A declared command: its spec, the parseArgs options made from it and its help text. */
export interface Command extends CommandSpec {
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>;
  /** The one-line usage, used in usage errors. */
  usageLine: string;
  help(): string;
  /**
   * Parses argv with {@link parse}; on `--help`/`-h` writes the help to `out` and returns null,
   * so the command returns 0 without doing anything else.
   */
  parse(argv: string[], out: NodeJS.WritableStream): ReturnType<typeof parse> | null;
}

function flagLine(name: string, f: FlagSpec): string {
  const left = `  --${name}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}`;
  const dflt = f.default === undefined ? '' : ` (default ${f.default})`;
  // Column 43, where LOG_LEVEL_HELP's texts start, so the global flags line up with the command's.
  return `${left.padEnd(43)}${left.length >= 43 ? ' ' : ''}${f.help}${dflt}`;
}

/**
 * Declares a command once. `--help`/`-h` is added to every command's parser, and the help lists
 * every flag and the global `--log-level`/`--quiet` (taken out of argv in main.ts).
 *
 * @example const INFO = defineCommand({ name: 'info', usage: 'MODEL', summary: 'model metadata', flags: { json: { type: 'boolean', help: 'one JSON line' } } });
 */
export function defineCommand(spec: CommandSpec): Command {
  const options: Command['options'] = { help: { type: 'boolean', short: 'h' } };
  for (const [name, f] of Object.entries(spec.flags)) options[name] = { type: f.type };
  const usageLine = `search-r3 ${spec.name} ${spec.usage}`.trimEnd() + ' [options]';
  const help = (): string => [
    `usage: ${usageLine}`, '', spec.summary, '', 'Options:',
    ...Object.entries(spec.flags).map(([n, f]) => flagLine(n, f)),
    LOG_LEVEL_HELP,
    '  -h, --help                               this help', '',
  ].join('\n');
  return {
    ...spec, options, usageLine, help,
    parse(argv, out) {
      const r = parse(argv, options);
      if (r.values.help) {
        out.write(help());
        return null;
      }
      return r;
    },
  };
}

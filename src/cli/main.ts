import { runEvalCli } from '../eval/cli';
import { packageVersion } from './args';
import { applyLogLevel, LOG_LEVEL_HELP, takeLogLevel } from './log-level';
import { embedCommand, generateCommand, infoCommand } from './engine-commands';
import { addEmbedTokenCommand, makeModelCommand } from './model-commands';
import { reportError } from './process';
import { trainCommand } from './train-commands';

type Command = (argv: string[], out: NodeJS.WritableStream) => Promise<number>;

// The commands that load llama.cpp; the others never touch the addon, so a log level is not applied there.
const NATIVE_COMMANDS = new Set(['generate', 'embed', 'train']);

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  info: { run: infoCommand, summary: 'info MODEL [--json]                      model metadata' },
  generate: { run: generateCommand, summary: 'generate MODEL --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--lora FILE] [--threads N] [--json]' },
  embed: { run: embedCommand, summary: 'embed MODEL [--mode direct|reason] [--max-reasoning-tokens N] [--lora FILE] [--document] [--sequences N] [--threads N] [--input FILE.jsonl|-] [--json] [TEXT…]' },
  'make-model': { run: makeModelCommand, summary: 'make-model --out FILE [--preset NAME] [--arch qwen2|llama|qwen3] [--layers N] [--embd N] [--heads N] [--kv-heads N] [--ff N] [--seed S] [--type f32|f16|q8_0] [--force]' },
  'add-embed-token': { run: addEmbedTokenCommand, summary: 'add-embed-token IN OUT [--force]          add <|embed_token|> to a GGUF' },
  train: { run: trainCommand, summary: 'train sft --model M.gguf --train FILE --out ADAPTER.gguf [--eval DIR] [--steps N] [--resume] [--json] …' },
  eval: { run: (argv, out) => runEvalCli(argv, out), summary: 'eval QRELS RUN [--json] [-m measure…] [-q]  trec_eval-identical metrics' },
};

function help(): string {
  return ['usage: search-r3 <command> [options]', '       search-r3 --version', '', ...Object.values(COMMANDS).map((c) => `  search-r3 ${c.summary}`), '', 'Options for every command:', LOG_LEVEL_HELP, ''].join('\n');
}

/**
 * The `search-r3` command line. Returns the exit code: 0 success, 1 failure, 2 usage error.
 * Every error is printed as one line naming the problem; nothing throws past this function.
 */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    (name ? out : err).write(help());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    out.write(`search-r3 ${packageVersion()}\n`);
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    err.write(`search-r3: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  try {
    const { argv: args, level } = takeLogLevel(rest);
    if (NATIVE_COMMANDS.has(name)) applyLogLevel(level);
    return await cmd.run(args, out);
  } catch (e) {
    return reportError(`search-r3 ${name}`, e, err);
  }
}

export { installCliProcessHandlers } from './process';

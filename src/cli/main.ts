import { runEvalCli } from '../eval/cli';
import { packageVersion } from './args';
import { applyLogLevel, LOG_LEVEL_HELP, takeLogLevel } from './log-level';
import { EMBED, embedCommand, GENERATE, generateCommand, INFO, infoCommand } from './engine-commands';
import type { Command as CommandSpec } from './flags';
import { ADD_EMBED_TOKEN, addEmbedTokenCommand, MAKE_MODEL, makeModelCommand } from './model-commands';
import { reportError } from './process';
import { TRAIN_SFT, trainCommand } from './train-commands';
import { SERVE, serveCommand } from './serve-command';
import { INDEX_BUILD, INDEX_INFO, INDEX_UPDATE, indexCommand, SEARCH, searchCommand } from './index-commands';
import { AGENT, agentCommand } from './agent-command';
import { TRAIN_GRPO } from './train-grpo-command';
import { TRAIN_SEARCH_R1 } from './train-search-r1-command';

type Command = (argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream) => Promise<number>;

// The commands that load llama.cpp; the others never touch the addon, so a log level is not applied there.
const NATIVE_COMMANDS = new Set(['generate', 'embed', 'train', 'index', 'search', 'serve', 'agent']);

/** Every declared command (parser and help from one declaration each); `eval` has trec_eval's own parser. */
export const COMMAND_SPECS: readonly CommandSpec[] = [INFO, GENERATE, EMBED, MAKE_MODEL, ADD_EMBED_TOKEN, TRAIN_SFT, TRAIN_GRPO, INDEX_BUILD, INDEX_UPDATE, INDEX_INFO, SEARCH, SERVE, AGENT, TRAIN_SEARCH_R1];

const line = (c: CommandSpec): string => `${c.usageLine}\n      ${c.summary}`;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  info: { run: infoCommand, summary: line(INFO) },
  generate: { run: generateCommand, summary: line(GENERATE) },
  embed: { run: embedCommand, summary: line(EMBED) },
  'make-model': { run: makeModelCommand, summary: line(MAKE_MODEL) },
  'add-embed-token': { run: addEmbedTokenCommand, summary: line(ADD_EMBED_TOKEN) },
  train: { run: trainCommand, summary: `${line(TRAIN_SFT)}\n  ${line(TRAIN_GRPO)}\n  ${line(TRAIN_SEARCH_R1)}` },
  serve: { run: serveCommand, summary: line(SERVE) },
  eval: { run: (argv, out) => runEvalCli(argv, out), summary: 'search-r3 eval QRELS RUN [options]\n      trec_eval-identical metrics (see search-r3 eval --help)' },
  index: { run: indexCommand, summary: [INDEX_BUILD, INDEX_UPDATE, INDEX_INFO].map(line).join('\n  ') },
  search: { run: searchCommand, summary: line(SEARCH) },
  agent: { run: agentCommand, summary: line(AGENT) },
};

function help(): string {
  return [
    'usage: search-r3 <command> [options]', '       search-r3 <command> --help', '       search-r3 --version', '',
    ...Object.values(COMMANDS).map((c) => `  ${c.summary}`), '', 'Options for every command:', LOG_LEVEL_HELP, '',
  ].join('\n');
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
    return await cmd.run(args, out, err);
  } catch (e) {
    return reportError(`search-r3 ${name}`, e, err);
  }
}

export { installCliProcessHandlers } from './process';

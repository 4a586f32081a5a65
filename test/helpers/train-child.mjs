// A training run in a child process for the kill tests. argv[2] is JSON:
// { options, killAt?: { phase, step, torn? }, stage?: 1 | 2 | 'search-r1' } (stage 1 unless told). It prints each step's log line and then
// { result } as JSON lines. With killAt it SIGKILLs itself at that phase of that step, through
// trainStage1's fault-injection hook (hooks.onPhase); `torn` first appends half of the next log
// line, as a kill in the middle of a log write would leave it.
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// Not through models.mjs: it imports node:test, which would make this child a test file.
const lib = createRequire(import.meta.url)('../../dist/index.js');

const { options, killAt, stage = 1 } = JSON.parse(process.argv[2]);
const onPhase = (phase, step) => {
  if (!killAt || phase !== killAt.phase || step !== killAt.step) return;
  if (killAt.torn) appendFileSync(`${options.out}.log.jsonl`, `{"step":${step},"lr":0.0001,"lo`);
  process.kill(process.pid, 'SIGKILL');
};
const train = stage === 'search-r1' ? lib.trainSearchR1 : stage === 2 ? lib.trainStage2 : lib.trainStage1;
const result = await train(options, { onPhase, onStep: (log) => process.stdout.write(`${JSON.stringify(log)}\n`) });
process.stdout.write(`${JSON.stringify({ result })}\n`);

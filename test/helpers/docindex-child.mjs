// A document-index update in a child process for the kill tests. argv[2] is JSON:
// { dir, corpus, lora?, killAt?: { phase, checkpoint } }. It opens the index with the model it
// records (and `lora`, re-encoding), updates it committing after every chunk, and with killAt
// SIGKILLs itself at that phase of that commit (through update's onCheckpoint hook). Prints the
// report as one JSON line when it finishes.
import { createRequire } from 'node:module';

// Not through models.mjs: it imports node:test, which would make this child a test file.
const lib = createRequire(import.meta.url)('../../dist/index.js');

const { dir, corpus, lora, killAt } = JSON.parse(process.argv[2]);
const index = await lib.DocumentIndex.openWithModel(dir, { threads: 1, sequences: 1, ...(lora ? { lora, reencode: true } : {}) });
let commits = 0;
const report = await index.update(corpus, {
  checkpointSeconds: 0,
  onCheckpoint: (phase) => {
    if (phase === 'parts') commits++;
    if (killAt && phase === killAt.phase && commits === killAt.checkpoint) process.kill(process.pid, 'SIGKILL');
  },
});
index.dispose();
process.stdout.write(`${JSON.stringify(report)}\n`);

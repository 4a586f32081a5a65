// Child process of engine-fuzz.test.mjs: loads each file and, if it loads, runs it briefly.
// Prints "START i" before touching file i (synchronously, so a crash points at the file) and
// "DONE i outcome" after. Any crash shows up in the parent as a signal or a missing DONE line.
import { readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Model } = require('../../dist/index.js');
const files = JSON.parse(readFileSync(process.argv[2], 'utf8'));

for (const [i, file] of files.entries()) {
  writeSync(1, `START ${i}\n`);
  let outcome;
  try {
    const model = await Model.load(file);
    try {
      const session = await model.createSession({ threads: 1, contextSize: 64 });
      await session.generate('Once upon', { maxTokens: 2 });
      session.dispose();
      outcome = 'loaded';
    } finally {
      model.dispose();
    }
  } catch (err) {
    outcome = err && err.name === 'SearchR3Error' ? err.code : `UNEXPECTED:${err && err.name}:${err && err.message}`;
  }
  writeSync(1, `DONE ${i} ${outcome}\n`);
}

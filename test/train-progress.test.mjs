// The training progress bar: fields whose labels are not plain words (tok/s) show their values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { root } from './helpers/models.mjs';

const { startProgress } = createRequire(import.meta.url)(join(root, 'dist', 'util', 'progress.js'));

/** A non-TTY stream that keeps what is written (the bar's plain-line mode, as in CI logs). */
function sink() {
  const s = new Writable({ write(chunk, _enc, cb) { s.text += chunk; cb(); } });
  s.text = '';
  s.isTTY = false;
  return s;
}

test('startProgress: every field, tok/s included, shows the value last ticked under its label', () => {
  const stream = sink();
  const p = startProgress('train stage 1', 4, { unit: 'steps', stream, fields: ['loss', 'gnorm', 'tok/s'] });
  p.tick(1, { loss: '2.5000', gnorm: '0.700', 'tok/s': '1234' });
  p.tick(1, { loss: '1.2500', gnorm: '0.350', 'tok/s': '987' });
  p.stop();
  const lines = stream.text.trim().split('\n');
  assert.match(lines[0], /\| 0\/4 steps \|.*\| loss - \| gnorm - \| tok\/s -$/);
  assert.match(lines.at(-1), /\| 2\/4 steps \|.*\| loss 1\.2500 \| gnorm 0\.350 \| tok\/s 987$/);
  assert.doesNotMatch(stream.text, /\{/);
});

test('startProgress: silent prints nothing', () => {
  const stream = sink();
  const p = startProgress('x', 2, { stream, fields: ['tok/s'], silent: true });
  p.tick(1, { 'tok/s': '5' });
  p.stop();
  assert.equal(stream.text, '');
});

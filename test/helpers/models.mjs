// Shared test fixtures: tiny generated models (made once per process into a temp dir) and the
// real trained model from ../shared/fixtures.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const lib = require(join(root, 'dist', 'index.js'));
export const gguf = require(join(root, 'dist', 'gguf', 'index.js'));
export const fixtures = resolve(root, '..', 'shared', 'fixtures');
export const storiesPath = join(fixtures, 'models', 'stories260K.gguf');

let dir;
const made = new Map();

export function tempDir() {
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'search-r3-test-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return dir;
}

/** A generated model, made once per test process per option set. */
export async function tinyModel(options = {}) {
  const key = JSON.stringify(options);
  if (!made.has(key)) {
    const out = join(tempDir(), `tiny-${made.size}.gguf`);
    made.set(key, gguf.makeModel({ preset: 'tiny', seed: 7, type: 'f32', ...options, out }).then(() => out));
  }
  return made.get(key);
}

export function maxAbsDiff(a, b) {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Writes a LoRA adapter in llama.cpp's adapter GGUF format with random A/B for the given
 * projections of every layer (B non-zero so the adapter changes outputs).
 */
export async function writeRandomLora(modelPath, out, { rank = 4, alpha = 8, targets = ['attn_q', 'ffn_up'], seed = 1, scale = 0.05 } = {}) {
  const info = await gguf.readGguf(modelPath);
  let s = seed >>> 0;
  const rand = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  };
  const tensors = [];
  for (const t of info.tensors) {
    const m = /^(blk\.\d+)\.([a-z_]+)\.weight$/.exec(t.name);
    if (!m || !targets.includes(m[2])) continue;
    const [nIn, nOut] = t.dims;
    const a = Float32Array.from({ length: nIn * rank }, rand);
    const b = Float32Array.from({ length: rank * nOut }, rand);
    tensors.push({ name: `${t.name.slice(0, -'.weight'.length)}.weight.lora_a`, dims: [nIn, rank], type: gguf.GgmlType.F32, data: new Uint8Array(a.buffer) });
    tensors.push({ name: `${t.name.slice(0, -'.weight'.length)}.weight.lora_b`, dims: [rank, nOut], type: gguf.GgmlType.F32, data: new Uint8Array(b.buffer) });
  }
  const arch = info.metadata.get('general.architecture').value;
  await gguf.writeGguf(out, {
    metadata: new Map([
      ['general.architecture', { type: gguf.GgufType.STRING, value: arch }],
      ['general.type', { type: gguf.GgufType.STRING, value: 'adapter' }],
      ['adapter.type', { type: gguf.GgufType.STRING, value: 'lora' }],
      ['adapter.lora.alpha', { type: gguf.GgufType.FLOAT32, value: alpha }],
    ]),
    tensors,
  });
  return out;
}

// Node 20 has no `await using`: tests wrap what they open in track(), and everything tracked is
// disposed after each test, newest first.
import { afterEach } from 'node:test';
const open = [];
export function track(x) {
  open.push(x);
  return x;
}
afterEach(() => {
  while (open.length) open.pop().dispose();
});

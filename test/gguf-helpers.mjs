// Shared helpers for the gguf tests: a raw byte builder that can write *invalid* GGUF files (the
// package's writer refuses to), and small utilities. Not a test file itself.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

export const STORIES = '/work/shared/fixtures/models/stories260K.gguf';

/** Growable little-endian byte sink. */
export class Bytes {
  constructor() { this.parts = []; this.length = 0; }
  raw(buf) { const b = Buffer.from(buf); this.parts.push(b); this.length += b.length; return this; }
  u8(v) { const b = Buffer.alloc(1); b.writeUInt8(v); return this.raw(b); }
  u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return this.raw(b); }
  i32(v) { const b = Buffer.alloc(4); b.writeInt32LE(v); return this.raw(b); }
  f32(v) { const b = Buffer.alloc(4); b.writeFloatLE(v); return this.raw(b); }
  u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return this.raw(b); }
  str(s) { const b = Buffer.from(s, 'utf8'); this.u64(b.length); return this.raw(b); }
  pad(alignment) { const n = (alignment - (this.length % alignment)) % alignment; return this.raw(Buffer.alloc(n)); }
  buffer() { return Buffer.concat(this.parts); }
}

// Value writers for kv specs: each returns [gguf type, (Bytes) => void].
export const kv = {
  u32: (v) => [4, (b) => b.u32(v)],
  i32: (v) => [5, (b) => b.i32(v)],
  f32: (v) => [6, (b) => b.f32(v)],
  bool: (v) => [7, (b) => b.u8(v)],
  str: (v) => [8, (b) => b.str(v)],
  strs: (vs) => [9, (b) => { b.u32(8).u64(vs.length); for (const s of vs) b.str(s); }],
  i32s: (vs) => [9, (b) => { b.u32(5).u64(vs.length); for (const v of vs) b.i32(v); }],
  f32s: (vs) => [9, (b) => { b.u32(6).u64(vs.length); for (const v of vs) b.f32(v); }],
  raw: (type, write) => [type, write],
};

/**
 * Assembles a GGUF file from parts, any of which may be wrong on purpose.
 * spec: { magic?, version?, nKv?, nTensors?, kvs: [[key, [type, write]]], tensors: [{ name, dims, type, offset }],
 *         alignment? (for data section padding), data?: Buffer (the data section) }
 */
export function buildGguf(spec) {
  const b = new Bytes();
  b.u32(spec.magic ?? 0x46554747).u32(spec.version ?? 3);
  b.u64(spec.nTensors ?? spec.tensors?.length ?? 0).u64(spec.nKv ?? spec.kvs?.length ?? 0);
  for (const [key, [type, write]] of spec.kvs ?? []) { b.str(key).u32(type); write(b); }
  for (const t of spec.tensors ?? []) {
    b.str(t.name).u32(t.dims.length);
    for (const d of t.dims) b.u64(d);
    b.u32(t.type).u64(t.offset);
  }
  if ((spec.tensors ?? []).length > 0) b.pad(spec.alignment ?? 32);
  if (spec.data) b.raw(spec.data);
  return b.buffer();
}

/** A small valid model-shaped file: three F32 tensors packed at 32-byte alignment. */
export function validSpec() {
  return {
    kvs: [
      ['general.architecture', kv.str('llama')],
      ['llama.embedding_length', kv.u32(8)],
      ['llama.attention.head_count', kv.u32(2)],
      ['tokenizer.ggml.tokens', kv.strs(['<unk>', '<s>', '</s>', 'a', 'b'])],
      ['tokenizer.ggml.scores', kv.f32s([0, 0, 0, -1, -2])],
      ['tokenizer.ggml.token_type', kv.i32s([2, 3, 3, 1, 1])],
    ],
    tensors: [
      { name: 'a', dims: [8, 2], type: 0, offset: 0 }, // 64 bytes
      { name: 'b', dims: [8], type: 0, offset: 64 }, // 32 bytes
      { name: 'c', dims: [32, 1], type: 8, offset: 96 }, // Q8_0: 34 bytes
    ],
    data: Buffer.alloc(64 + 32 + 34),
  };
}

/** A temporary directory removed by the returned cleanup function. */
export function tempDir(prefix = 'search-r3-gguf-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function writeTemp(dir, name, bytes) {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

export function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

/** Asserts that a promise rejects with SearchR3Error of `code` whose message contains every substring. */
export async function rejectsWith(promise, code, ...substrings) {
  await assert.rejects(promise, (err) => {
    assert.equal(err?.name, 'SearchR3Error', `expected SearchR3Error, got ${err?.name}: ${err?.message}`);
    assert.equal(err.code, code, err.message);
    for (const s of substrings) assert.ok(err.message.includes(s), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(s)}`);
    return true;
  });
}

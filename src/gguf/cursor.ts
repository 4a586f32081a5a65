import type { FileHandle } from 'node:fs/promises';
import { SearchR3Error } from '../util/errors.js';

const WINDOW = 1 << 20; // bytes read per refill; metadata is parsed from this window, never the whole file

/** Builds the one error type the GGUF tools raise for bad bytes: the file first, then the problem. */
export function ggufError(file: string, problem: string): SearchR3Error {
  return new SearchR3Error('ERR_GGUF', `${file}: ${problem}`);
}

/**
 * A forward-only little-endian reader over an open file that keeps a small window in memory.
 * Callers `need(n)` before a group of sync reads; running past the end of the file becomes an
 * ERR_GGUF "truncated" error that says what was being read and where, never a RangeError.
 */
export class FileCursor {
  /** Absolute file offset of the next byte to read. */
  pos = 0;
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0; // absolute offset of buf[0]

  constructor(private readonly handle: FileHandle, readonly size: number, readonly file: string) {}

  /** Bytes between the cursor and the end of the file. */
  get remaining(): number {
    return this.size - this.pos;
  }

  /** True when the next n bytes are already in the window, so a sync read needs no refill. */
  has(n: number): boolean {
    return this.pos - this.bufStart + n <= this.buf.length;
  }

  /** Makes the next n bytes readable synchronously, or throws "truncated" naming `what`. */
  async need(n: number, what: string): Promise<void> {
    if (this.has(n)) return;
    if (n > this.remaining) {
      throw ggufError(this.file, `truncated: ${what} at byte ${this.pos} needs ${n} bytes but the file has ${this.size} bytes`);
    }
    // n is bounded by the file size here, so a forged length cannot allocate more than the file holds.
    const want = Math.min(Math.max(n, WINDOW), this.remaining);
    const buf = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.handle.read(buf, got, want - got, this.pos + got);
      if (bytesRead === 0) break; // the file shrank while we read it
      got += bytesRead;
    }
    if (got < n) {
      throw ggufError(this.file, `truncated: ${what} at byte ${this.pos} needs ${n} bytes but only ${got} could be read`);
    }
    this.buf = got === want ? buf : buf.subarray(0, got);
    this.bufStart = this.pos;
  }

  private at(n: number): number {
    const off = this.pos - this.bufStart;
    this.pos += n;
    return off;
  }

  u8(): number { return this.buf.readUInt8(this.at(1)); }
  i8(): number { return this.buf.readInt8(this.at(1)); }
  u16(): number { return this.buf.readUInt16LE(this.at(2)); }
  i16(): number { return this.buf.readInt16LE(this.at(2)); }
  u32(): number { return this.buf.readUInt32LE(this.at(4)); }
  i32(): number { return this.buf.readInt32LE(this.at(4)); }
  f32(): number { return this.buf.readFloatLE(this.at(4)); }
  f64(): number { return this.buf.readDoubleLE(this.at(8)); }
  u64(): bigint { return this.buf.readBigUInt64LE(this.at(8)); }
  i64(): bigint { return this.buf.readBigInt64LE(this.at(8)); }

  /** Copies the next n bytes into a fresh, 8-byte aligned ArrayBuffer (typed arrays need alignment). */
  bytes(n: number): ArrayBuffer {
    const off = this.at(n);
    const out = new ArrayBuffer(n);
    new Uint8Array(out).set(this.buf.subarray(off, off + n));
    return out;
  }

  /** Decodes the next n bytes as UTF-8. */
  utf8(n: number): string {
    const off = this.at(n);
    return this.buf.toString('utf8', off, off + n);
  }

  /**
   * Reads a length-prefixed string when it is wholly in the window, else returns undefined and
   * leaves the cursor alone; the fast path for the 150k-entry vocabulary arrays.
   */
  stringIfBuffered(): string | undefined {
    if (!this.has(8)) return undefined;
    const off = this.pos - this.bufStart;
    const len = this.buf.readBigUInt64LE(off);
    if (len > BigInt(this.buf.length - off - 8)) return undefined;
    const n = Number(len);
    this.pos += 8 + n;
    return this.buf.toString('utf8', off + 8, off + 8 + n);
  }

  /** Moves the cursor forward without reading, e.g. over alignment padding. */
  skipTo(pos: number): void {
    this.pos = pos;
  }
}

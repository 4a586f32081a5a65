/**
 * Deterministic weights for generated test models. Only integer arithmetic, +, * and sqrt are
 * used (all exactly specified by IEEE 754), never Math.sin/log, whose last bit may differ between
 * platforms: the same seed must give a byte-identical file everywhere.
 */

function fnv1a(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * sfc32, a small fast PRNG with 128 bits of state, seeded per (seed, stream name) so each tensor
 * has its own stream and can be generated lazily in any order.
 */
export class WeightRandom {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(seed: number, stream: string) {
    this.a = fnv1a(stream, seed);
    this.b = fnv1a(stream, seed ^ 0x9e3779b9);
    this.c = fnv1a(stream, Math.imul(seed, 0x85ebca6b) >>> 0);
    for (let i = 0; i < 12; i++) this.next(); // mix the seed into all of the state
  }

  /** Next 32 random bits as an unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /**
   * Fills `out` with approximately normal values of mean 0 and the given standard deviation: the
   * sum of the four bytes of one 32-bit draw (Irwin–Hall), centred and scaled; bounded by ±3.46·std.
   */
  fillNormal(out: Float32Array, std: number): void {
    // Each byte is uniform on 0..255 (variance (256²−1)/12), so the sum of four has variance (256²−1)/3.
    const scale = std / Math.sqrt((256 * 256 - 1) / 3);
    // sfc32 inlined on locals: this loop fills ~10M weights per tiny model, so it must be tight.
    let { a, b, c, d } = this;
    for (let i = 0; i < out.length; i++) {
      const r = (((a + b) >>> 0) + d) >>> 0;
      d = (d + 1) >>> 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) >>> 0;
      c = (((c << 21) | (c >>> 11)) + r) >>> 0;
      const sum = (r & 0xff) + ((r >>> 8) & 0xff) + ((r >>> 16) & 0xff) + (r >>> 24); // mean 510
      out[i] = (sum - 510) * scale;
    }
    Object.assign(this, { a, b, c, d });
  }
}

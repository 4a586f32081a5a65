/**
 * One set of argument checks for the whole package. Every message reads
 * "Expected <what> for <name> but received <value> of type <type>", so a user sees which argument
 * was wrong and what would have been right.
 */

function describe(value: unknown): string {
  let shown: string;
  if (typeof value === 'string') shown = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  else if (typeof value === 'bigint') shown = `${value}n`;
  else if (typeof value === 'object' && value !== null) shown = Array.isArray(value) ? `array(${value.length})` : 'object';
  else shown = String(value);
  const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return `${shown} of type ${type}`;
}

/** Builds the house error message; exported so callers with bespoke checks word errors the same way. */
export function expected(what: string, name: string, value: unknown): string {
  return `Expected ${what} for ${name} but received ${describe(value)}`;
}

export function assertString(value: unknown, name: string, { nonEmpty = false } = {}): asserts value is string {
  if (typeof value !== 'string' || (nonEmpty && value.length === 0)) {
    throw new TypeError(expected(nonEmpty ? 'non-empty string' : 'string', name, value));
  }
}

export function assertBoolean(value: unknown, name: string): asserts value is boolean {
  if (typeof value !== 'boolean') throw new TypeError(expected('boolean', name, value));
}

export function assertInteger(value: unknown, name: string, min = -Infinity, max = Infinity): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    const what = min === 1 ? 'positive integer' : min === 0 ? 'non-negative integer' : 'integer';
    throw new TypeError(expected(what, name, value));
  }
  if (value < min || value > max) {
    throw new RangeError(expected(`integer between ${min} and ${max}`, name, value));
  }
}

export function assertNumber(value: unknown, name: string, min = -Infinity, max = Infinity): asserts value is number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new TypeError(expected('number', name, value));
  if (value < min || value > max) throw new RangeError(expected(`number between ${min} and ${max}`, name, value));
}

export function assertOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): asserts value is T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new TypeError(expected(`one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, name, value));
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/**
 * Rejects option keys that are not known, suggesting the closest known one.
 * @example checkKeys({ thread: 4 }, ['threads'], 'options') // TypeError: Unknown option "thread" in options; did you mean "threads"?
 */
export function checkKeys(options: object | undefined, known: readonly string[], name: string): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(expected('object', name, options));
  }
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    let best = '';
    let bestDistance = Infinity;
    for (const k of known) {
      const d = editDistance(key.toLowerCase(), k.toLowerCase());
      if (d < bestDistance) [best, bestDistance] = [k, d];
    }
    const hint = bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? `; did you mean "${best}"?` : `; known options: ${known.join(', ')}`;
    throw new TypeError(`Unknown option "${key}" in ${name}${hint}`);
  }
}

/**
 * Readers of numeric options that fall back to a defaults table and range-check the result, so a
 * resolver writes `int('steps', 1, 1e9)` once per option (stage 2 and Search-R1 training share it).
 *
 * @example const { int, num } = defaultedNumbers(options, DEFAULTS); const steps = int('steps', 1, 1e9);
 */
export function defaultedNumbers<O extends object, D extends object>(o: O, defaults: D): {
  int(name: keyof D & keyof O & string, min: number, max: number): number;
  num(name: keyof D & keyof O & string, min: number, max: number): number;
} {
  const value = (name: keyof D & keyof O & string): number => ((o[name] as unknown as number | undefined) ?? (defaults[name] as unknown as number));
  return {
    int(name, min, max) {
      const v = value(name);
      assertInteger(v, name, min, max);
      return v;
    },
    num(name, min, max) {
      const v = value(name);
      assertNumber(v, name, min, max);
      return v;
    },
  };
}

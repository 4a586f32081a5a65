import { expected } from '../util/validate.js';

/**
 * Like the house `assertInteger` with min 1, but a number below 1 is reported as
 * "Expected positive integer for k but received 0 of type number" instead of a range.
 */
export function assertPositiveInteger(value: unknown, name: string, max = Number.MAX_SAFE_INTEGER): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(expected('positive integer', name, value));
  if (value < 1) throw new RangeError(expected('positive integer', name, value));
  if (value > max) throw new RangeError(expected(`integer between 1 and ${max}`, name, value));
}

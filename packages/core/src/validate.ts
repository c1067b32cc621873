/**
 * Up-front option validation shared by every factory, and by the add-on packages (`@tripswitch/redis`)
 * so their errors read the same as core's.
 *
 * Each check throws {@link InvalidOptionError} naming the factory, the option path, the allowed
 * range and the value given, before anything is built, so a bad option never leaves a half-made
 * policy behind.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { InvalidOptionError } from './errors.js';

/**
 * Validates options for one factory; every check throws {@link InvalidOptionError} naming the option.
 *
 * @example
 * ```ts
 * const v: Validator = validator('redisStore');
 * const timeoutMs = v.optionalNumber('commandTimeoutMs', opts.commandTimeoutMs, { min: 1 }) ?? 250;
 * ```
 */
export interface Validator {
  /** A number in [min, max] (integers only when `integer`), or `undefined` when absent and optional. */
  number(
    path: string,
    value: unknown,
    range: { min?: number; max?: number; integer?: boolean; exclusiveMin?: boolean },
  ): number;
  optionalNumber(
    path: string,
    value: unknown,
    range: { min?: number; max?: number; integer?: boolean; exclusiveMin?: boolean },
  ): number | undefined;
  boolean(path: string, value: unknown): boolean;
  optionalBoolean(path: string, value: unknown): boolean | undefined;
  optionalFunction<F extends (...args: never[]) => unknown>(path: string, value: unknown): F | undefined;
  oneOf<T extends string>(path: string, value: unknown, allowed: readonly T[]): T;
  string(path: string, value: unknown): string;
  object(path: string, value: unknown): Record<string, unknown>;
  optionalObject(path: string, value: unknown): Record<string, unknown> | undefined;
  clock(path: string, value: unknown): Clock | undefined;
  signal(path: string, value: unknown): AbortSignal | undefined;
  fail(path: string, expected: string, got: unknown): never;
}

/**
 * Returns a {@link Validator} whose messages start with `owner`.
 *
 * @example
 * ```ts
 * const v = validator('bulkhead');
 * const max = v.number('maxConcurrent', opts.maxConcurrent, { min: 1, integer: true });
 * ```
 */
export function validator(owner: string): Validator {
  const fail = (path: string, expected: string, got: unknown): never => {
    throw new InvalidOptionError(owner, path, expected, got);
  };
  const describe = (r: { min?: number; max?: number; integer?: boolean; exclusiveMin?: boolean }) => {
    const kind = r.integer ? 'an integer' : 'a number';
    const lo = r.min === undefined ? '' : `${r.exclusiveMin ? '>' : '>='} ${r.min}`;
    const hi = r.max === undefined ? '' : `<= ${r.max}`;
    if (lo && hi) return `${kind} ${lo} and ${hi}`;
    if (lo || hi) return `${kind} ${lo || hi}`;
    return `a finite ${r.integer ? 'integer' : 'number'}`;
  };
  const number: Validator['number'] = (path, value, r) => {
    if (
      typeof value !== 'number' ||
      Number.isNaN(value) ||
      (!Number.isFinite(value) && !(value === Number.POSITIVE_INFINITY && r.max === undefined)) ||
      (r.integer && Number.isFinite(value) && !Number.isInteger(value)) ||
      (r.min !== undefined && (r.exclusiveMin ? value <= r.min : value < r.min)) ||
      (r.max !== undefined && value > r.max)
    )
      return fail(path, describe(r), value);
    return value;
  };
  return {
    fail,
    number,
    optionalNumber: (path, value, r) => (value === undefined ? undefined : number(path, value, r)),
    boolean: (path, value) => (typeof value === 'boolean' ? value : fail(path, 'true or false', value)),
    optionalBoolean: (path, value) =>
      value === undefined
        ? undefined
        : typeof value === 'boolean'
          ? value
          : fail(path, 'true or false', value),
    optionalFunction: <F>(path: string, value: unknown) =>
      value === undefined
        ? undefined
        : typeof value === 'function'
          ? (value as F)
          : fail(path, 'a function', value),
    oneOf: <T extends string>(path: string, value: unknown, allowed: readonly T[]) =>
      allowed.includes(value as T)
        ? (value as T)
        : fail(path, `one of ${allowed.map((a) => `"${a}"`).join(', ')}`, value),
    string: (path, value) =>
      typeof value === 'string' && value.length > 0 ? value : fail(path, 'a non-empty string', value),
    object: (path, value) =>
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : fail(path, 'an object', value),
    optionalObject: (path, value) =>
      value === undefined
        ? undefined
        : typeof value === 'object' && value !== null && !Array.isArray(value)
          ? (value as Record<string, unknown>)
          : fail(path, 'an object', value),
    clock: (path, value) => {
      if (value === undefined) return undefined;
      const c = value as Partial<Clock>;
      if (
        typeof c !== 'object' ||
        c === null ||
        typeof c.now !== 'function' ||
        typeof c.setTimeout !== 'function' ||
        typeof c.clearTimeout !== 'function'
      )
        return fail(path, 'a Clock with now(), setTimeout() and clearTimeout()', value);
      return c as Clock;
    },
    signal: (path, value) => {
      if (value === undefined) return undefined;
      if (
        typeof value !== 'object' ||
        value === null ||
        typeof (value as AbortSignal).aborted !== 'boolean' ||
        typeof (value as AbortSignal).addEventListener !== 'function'
      )
        return fail(path, 'an AbortSignal', value);
      return value as AbortSignal;
    },
  };
}

/**
 * Throws if `opts` has keys outside `known`, naming the first unknown one (catches typos like `treshold`).
 *
 * @example
 * ```ts
 * rejectUnknownKeys('redisStore', opts, ['url', 'prefix']); // { urll: 'x' } throws naming "urll"
 * ```
 */
export function rejectUnknownKeys(owner: string, opts: object, known: readonly string[], prefix = ''): void {
  for (const k of Object.keys(opts)) {
    if (!known.includes(k)) {
      throw new InvalidOptionError(
        owner,
        `${prefix}${k}`,
        `one of the known options (${known.join(', ')})`,
        (opts as Record<string, unknown>)[k],
      );
    }
  }
}

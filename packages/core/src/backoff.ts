/**
 * Backoff strategies for `retry()`: how long to wait before retry number `n`.
 *
 * A {@link Backoff} is stateless; the retry keeps the previous delay and hands it back, so one
 * backoff object serves every call and the randomness is injected (tests pass a fixed `random`).
 *
 * @module
 */
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * Computes the delay before a retry.
 *
 * @example
 * ```ts
 * const fixed: Backoff = { delay: () => 250 };
 * ```
 */
export interface Backoff {
  /**
   * @param retry - 1 for the first retry, 2 for the second, ...
   * @param previous - the delay used before the previous retry (0 before the first).
   * @param random - a uniform random number source in [0, 1).
   */
  delay(retry: number, previous: number, random: () => number): number;
}

/**
 * Options of the exponential backoffs.
 *
 * @example
 * ```ts
 * exponentialBackoff({ initialDelay: 100, multiplier: 2, maxDelay: 5_000 });
 * ```
 */
export interface ExponentialBackoffOptions {
  /** The first delay in ms. @default 100 */
  initialDelay?: number;
  /** Growth per retry (>= 1). @default 2 */
  multiplier?: number;
  /** The cap in ms. @default 10_000 */
  maxDelay?: number;
}

function expOptions(owner: string, opts: ExponentialBackoffOptions | undefined) {
  const v = validator(owner);
  const o = v.optionalObject('options', opts) ?? {};
  rejectUnknownKeys(owner, o, ['initialDelay', 'multiplier', 'maxDelay']);
  const initialDelay = v.optionalNumber('initialDelay', o.initialDelay, { min: 0 }) ?? 100;
  const multiplier = v.optionalNumber('multiplier', o.multiplier, { min: 1 }) ?? 2;
  const maxDelay =
    v.optionalNumber('maxDelay', o.maxDelay, { min: initialDelay }) ?? Math.max(10_000, initialDelay);
  return { initialDelay, multiplier, maxDelay };
}

/**
 * The same delay before every retry.
 *
 * @example
 * ```ts
 * retry({ backoff: constantBackoff(200) });
 * ```
 */
export function constantBackoff(ms: number): Backoff {
  const d = validator('constantBackoff').number('ms', ms, { min: 0 });
  return { delay: () => d };
}

/**
 * `initialDelay * multiplier^(retry-1)`, capped at `maxDelay`. No jitter: a fleet that failed
 * together retries together, so prefer a jittered backoff against shared dependencies.
 *
 * @example
 * ```ts
 * retry({ backoff: exponentialBackoff({ initialDelay: 100, maxDelay: 2_000 }) });
 * ```
 */
export function exponentialBackoff(options?: ExponentialBackoffOptions): Backoff {
  const { initialDelay, multiplier, maxDelay } = expOptions('exponentialBackoff', options);
  return { delay: (n) => Math.min(maxDelay, initialDelay * multiplier ** (n - 1)) };
}

/**
 * "Full jitter" (AWS architecture blog): uniform in `[0, min(maxDelay, initialDelay * multiplier^(retry-1)))`.
 *
 * @example
 * ```ts
 * retry({ backoff: fullJitterBackoff({ initialDelay: 100 }) });
 * ```
 */
export function fullJitterBackoff(options?: ExponentialBackoffOptions): Backoff {
  const { initialDelay, multiplier, maxDelay } = expOptions('fullJitterBackoff', options);
  return { delay: (n, _p, random) => random() * Math.min(maxDelay, initialDelay * multiplier ** (n - 1)) };
}

/**
 * "Decorrelated jitter" (AWS): uniform in `[initialDelay, previous * 3)`, capped at `maxDelay`.
 * Spreads retries like full jitter while keeping a floor; the default of `retry()`.
 *
 * @example
 * ```ts
 * retry({ backoff: decorrelatedJitterBackoff({ initialDelay: 50, maxDelay: 5_000 }) });
 * ```
 */
export function decorrelatedJitterBackoff(options?: Omit<ExponentialBackoffOptions, 'multiplier'>): Backoff {
  const v = validator('decorrelatedJitterBackoff');
  const o = v.optionalObject('options', options) ?? {};
  rejectUnknownKeys('decorrelatedJitterBackoff', o, ['initialDelay', 'maxDelay']);
  const initialDelay = v.optionalNumber('initialDelay', o.initialDelay, { min: 0 }) ?? 100;
  const maxDelay =
    v.optionalNumber('maxDelay', o.maxDelay, { min: initialDelay }) ?? Math.max(10_000, initialDelay);
  return {
    delay: (_n, previous, random) => {
      const hi = Math.max(initialDelay, previous * 3);
      return Math.min(maxDelay, initialDelay + random() * (hi - initialDelay));
    },
  };
}

/**
 * `chaosFault()`: some calls fail without running.
 *
 * @module
 */
import type { PolicyContext } from '../policy.js';
import { rejectUnknownKeys, validator } from '../validate.js';
import { ChaosBase, type ChaosOptions, type ChaosPolicy, COMMON_KEYS } from './base.js';
import { InjectedFaultError } from './errors.js';

/**
 * Options of {@link chaosFault}.
 *
 * @example
 * ```ts
 * chaosFault({ rate: 0.2, error: () => Object.assign(new Error('ECONNRESET'), { code: 'ECONNRESET' }) });
 * ```
 */
export interface ChaosFaultOptions extends ChaosOptions {
  /**
   * What a disturbed call rejects with: a value, or a function making one per call.
   * @default a new InjectedFaultError per call
   */
  error?: unknown;
}

const OWNER = 'chaosFault';
const KEYS = [...COMMON_KEYS, 'error'];

class Fault extends ChaosBase {
  readonly chaos = 'fault' as const;
  readonly #error: unknown;
  constructor(opts: ChaosFaultOptions) {
    const v = validator(OWNER);
    const o = v.object('options', opts);
    rejectUnknownKeys(OWNER, o, KEYS);
    super(v, o);
    this.#error = o.error;
  }
  protected inject<T>(_fn: unknown, ctx: PolicyContext): Promise<T> {
    const e = this.#error;
    if (e === undefined) return Promise.reject(new InjectedFaultError());
    if (typeof e !== 'function') return Promise.reject(e);
    try {
      return Promise.reject((e as (ctx: PolicyContext) => unknown)(ctx));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

/**
 * Fault injection: a fraction `rate` of calls reject with `error` (an `InjectedFaultError` by
 * default) without running `fn`. Inside `wrap(retry, breaker, chaosFault(...), timeout)` the breaker
 * counts the faults and the retry retries them, as it would real ones.
 *
 * @example
 * ```ts
 * import { circuitBreaker, wrap } from 'tripswitch';
 * import { chaosFault } from 'tripswitch/chaos';
 * const faults = chaosFault({ rate: 0.3, enabled: false, seed: 1 });
 * const policy = wrap(circuitBreaker({ name: 'inventory' }), faults);
 * faults.enabled = true; // the game day starts: watch the breaker open
 * ```
 */
export function chaosFault(options: ChaosFaultOptions): ChaosPolicy {
  return new Fault(options);
}

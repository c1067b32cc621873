/**
 * `chaosBehavior()`: some calls run an extra action before they run.
 *
 * @module
 */
import type { PolicyContext } from '../policy.js';
import { rejectUnknownKeys, validator } from '../validate.js';
import { ChaosBase, type ChaosOptions, type ChaosPolicy, COMMON_KEYS, run } from './base.js';

/**
 * Options of {@link chaosBehavior}.
 *
 * @example
 * ```ts
 * chaosBehavior({ rate: 0.01, behavior: () => pool.destroyOneConnection() });
 * ```
 */
export interface ChaosBehaviorOptions extends ChaosOptions {
  /** Runs (and is awaited) before a disturbed call's `fn`; if it throws or rejects, the call fails with that. */
  behavior: (ctx: PolicyContext) => unknown;
}

const OWNER = 'chaosBehavior';
const KEYS = [...COMMON_KEYS, 'behavior'];

class Behavior extends ChaosBase {
  readonly chaos = 'behavior' as const;
  readonly #behavior: (ctx: PolicyContext) => unknown;
  constructor(opts: ChaosBehaviorOptions) {
    const v = validator(OWNER);
    const o = v.object('options', opts);
    rejectUnknownKeys(OWNER, o, KEYS);
    super(v, o);
    this.#behavior =
      v.optionalFunction<(ctx: PolicyContext) => unknown>('behavior', o.behavior) ??
      v.fail('behavior', 'a function', o.behavior);
  }
  protected inject<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, ctx: PolicyContext): Promise<T> {
    return run(this.#behavior, ctx).then(() => fn(ctx));
  }
}

/**
 * Behaviour injection: before a fraction `rate` of calls, `behavior(ctx)` runs and is awaited,
 * then the call runs as usual. For disturbances that are not a result: drop a pooled connection,
 * fill a cache with junk, burn CPU, restart a worker.
 *
 * @example
 * ```ts
 * import { chaosBehavior } from 'tripswitch/chaos';
 * const flushes = chaosBehavior({ rate: 0.01, behavior: () => cache.clear() });
 * await flushes.execute(() => cache.getOrLoad(key));
 * ```
 */
export function chaosBehavior(options: ChaosBehaviorOptions): ChaosPolicy {
  return new Behavior(options);
}

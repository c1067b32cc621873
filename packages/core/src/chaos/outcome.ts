/**
 * `chaosOutcome()`: some calls answer with an injected result instead of running.
 *
 * @module
 */
import type { PolicyContext } from '../policy.js';
import { rejectUnknownKeys, validator } from '../validate.js';
import { ChaosBase, type ChaosOptions, type ChaosPolicy, COMMON_KEYS } from './base.js';

/**
 * Options of {@link chaosOutcome}.
 *
 * @example
 * ```ts
 * chaosOutcome({ rate: 0.1, outcome: () => new Response('busy', { status: 503 }) });
 * ```
 */
export interface ChaosOutcomeOptions extends ChaosOptions {
  /**
   * Makes the result a disturbed call resolves with (or, when it throws or rejects, fails with).
   * It must be of the type the callers expect: tripswitch cannot check it.
   */
  outcome: (ctx: PolicyContext) => unknown;
}

const OWNER = 'chaosOutcome';
const KEYS = [...COMMON_KEYS, 'outcome'];

class Outcome extends ChaosBase {
  readonly chaos = 'outcome' as const;
  readonly #outcome: (ctx: PolicyContext) => unknown;
  constructor(opts: ChaosOutcomeOptions) {
    const v = validator(OWNER);
    const o = v.object('options', opts);
    rejectUnknownKeys(OWNER, o, KEYS);
    super(v, o);
    this.#outcome =
      v.optionalFunction<(ctx: PolicyContext) => unknown>('outcome', o.outcome) ??
      v.fail('outcome', 'a function', o.outcome);
  }
  protected inject<T>(_fn: unknown, ctx: PolicyContext): Promise<T> {
    try {
      return Promise.resolve(this.#outcome(ctx) as T);
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

/**
 * Result injection: a fraction `rate` of calls resolve with `outcome(ctx)` without running `fn`,
 * to see how callers and result-judging policies (`isResultFailure`, `handleResult`) take a bad
 * answer that is not an error: a 503 response, an empty list, a stale value.
 *
 * @example
 * ```ts
 * import { chaosOutcome } from 'tripswitch/chaos';
 * const empty = chaosOutcome({ rate: 0.05, outcome: () => [] });
 * const rows = await empty.execute(() => db.query(sql));
 * ```
 */
export function chaosOutcome(options: ChaosOutcomeOptions): ChaosPolicy {
  return new Outcome(options);
}

/**
 * `rateLimiter()`: a token bucket, refilled lazily from the clock (no timer unless a caller waits).
 *
 * @module
 */
import { type Clock, systemClock } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { RateLimitedError } from './errors.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
import { sleep } from './sleep.js';
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * Options of {@link rateLimiter}.
 *
 * @example
 * ```ts
 * rateLimiter({ rate: 100, per: 1_000, burst: 20, maxWaitMs: 500 });
 * ```
 */
export interface RateLimiterOptions {
  /** Tokens added per `per` ms (> 0). */
  rate: number;
  /** The refill period in ms. @default 1_000 */
  per?: number;
  /** Bucket size: calls allowed at once after a quiet period (>= 1). @default max(1, rate) */
  burst?: number;
  /**
   * When no token is left: 0 rejects at once with `RateLimitedError` (whose `retryAfter` says when
   * the next token comes); a positive value lets the call wait for its token if that takes at most
   * this many ms (the wait stops on abort).
   * @default 0
   */
  maxWaitMs?: number;
  /**
   * Whether a call waiting for its token keeps the process alive, like the `ref` option of Node's
   * `timers/promises`. The caller's promise depends on that wait, so it does by default; `false`
   * lets the process exit while calls wait (they then never settle).
   * @default true
   */
  ref?: boolean;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Events of a {@link RateLimiterPolicy}.
 *
 * @example
 * ```ts
 * limiter.on('rejected', ({ retryAfter }) => log.debug({ retryAfter }, 'rate limited'));
 * ```
 */
export interface RateLimiterEvents {
  rejected: { retryAfter: number };
}

/**
 * A policy made by {@link rateLimiter}.
 *
 * @example
 * ```ts
 * const limiter: RateLimiterPolicy = rateLimiter({ rate: 10 });
 * ```
 */
export interface RateLimiterPolicy extends Policy<PolicyContext> {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'rateLimiter';
  /** Tokens available now (may be fractional, negative while callers wait for reserved tokens). */
  readonly tokens: number;
  /** Takes a token without running anything: true if one was available. */
  tryAcquire(): boolean;
  on<K extends keyof RateLimiterEvents>(event: K, listener: (e: RateLimiterEvents[K]) => void): Subscription;
  /** @internal */
  readonly contextKeys: readonly string[];
}

const OWNER = 'rateLimiter';
const KEYS = ['rate', 'per', 'burst', 'maxWaitMs', 'ref', 'clock'] as const;
const NO_KEYS: readonly string[] = [];
const plainContext: PolicyContext = Object.freeze({ signal: neverAbortedSignal });

class Limiter implements RateLimiterPolicy {
  // On the prototype, not per instance: idle policies stay as small as they were.
  get kind(): 'rateLimiter' {
    return 'rateLimiter';
  }

  readonly contextKeys = NO_KEYS;
  readonly #perMs: number;
  readonly #burst: number;
  readonly #maxWait: number;
  readonly #ref: boolean;
  readonly #clock: Clock;
  readonly #events = new Emitter<RateLimiterEvents>();
  #tokens: number;
  #at: number;

  constructor(opts: RateLimiterOptions) {
    const v = validator(OWNER);
    const o = v.object('options', opts);
    rejectUnknownKeys(OWNER, o, KEYS);
    const rate = v.number('rate', o.rate, { min: 0, exclusiveMin: true, max: 1e9 });
    const per = v.optionalNumber('per', o.per, { min: 0, exclusiveMin: true, max: 86_400_000 }) ?? 1_000;
    this.#perMs = rate / per;
    this.#burst = v.optionalNumber('burst', o.burst, { min: 1, max: 1e9 }) ?? Math.max(1, rate);
    this.#maxWait = v.optionalNumber('maxWaitMs', o.maxWaitMs, { min: 0, max: 2_147_483_647 }) ?? 0;
    this.#ref = v.optionalBoolean('ref', o.ref) ?? true;
    this.#clock = v.clock('clock', o.clock) ?? systemClock;
    this.#tokens = this.#burst;
    this.#at = this.#clock.now();
  }

  #refill(): number {
    const now = this.#clock.now();
    if (now > this.#at) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#perMs);
      this.#at = now;
    }
    return this.#tokens;
  }

  get tokens(): number {
    return this.#refill();
  }

  tryAcquire(): boolean {
    if (this.#refill() < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  on<K extends keyof RateLimiterEvents>(event: K, listener: (e: RateLimiterEvents[K]) => void): Subscription {
    return this.#events.on(event, listener);
  }

  execute<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError('execute: fn must be a function'));
    if (signal === neverAbortedSignal) signal = undefined;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const ctx = signal === undefined ? plainContext : { signal };
    if (this.tryAcquire()) {
      try {
        return Promise.resolve(fn(ctx));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const wait = (1 - this.#tokens) / this.#perMs;
    if (wait > this.#maxWait) {
      if (this.#events.has('rejected')) this.#events.emit('rejected', { retryAfter: wait });
      return Promise.reject(new RateLimitedError(wait));
    }
    // Reserve the token now (the bucket goes negative) so later callers queue behind this one.
    this.#tokens -= 1;
    return sleep(this.#clock, wait, signal, this.#ref).then(
      () => fn(ctx),
      (reason) => {
        this.#tokens += 1; // an aborted waiter gives its reservation back
        throw reason;
      },
    );
  }
}

/**
 * A token bucket: `rate` calls per `per` ms on average, bursts up to `burst`. For callers that must
 * stay under a downstream quota. Rejects with `RateLimitedError` (with `retryAfter`), or waits
 * up to `maxWaitMs` for a token.
 *
 * @example
 * ```ts
 * import { rateLimiter } from 'tripswitch';
 * const limiter = rateLimiter({ rate: 50, per: 1_000, maxWaitMs: 200 });
 * await limiter.execute(({ signal }) => api.send(msg, { signal }), req.signal);
 * ```
 */
export function rateLimiter(options: RateLimiterOptions): RateLimiterPolicy {
  return new Limiter(options);
}

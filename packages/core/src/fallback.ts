/**
 * `fallback()`: an answer when the protected call cannot give one.
 *
 * @module
 */
import { type Clock, systemClock } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { isBulkheadRejectedError, isCircuitOpenError, isRateLimitedError, isTimeoutError } from './errors.js';
import { neverAbortedSignal, type PolicyContext } from './policy.js';
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * The outcomes a fallback can apply to.
 *
 * @example
 * ```ts
 * const on: FallbackOutcome[] = ['open', 'timeout']; // serve the cache only when the service is unreachable
 * fallback({ lastGood: { ttlMs: 60_000 }, on });
 * ```
 */
export type FallbackOutcome = 'open' | 'timeout' | 'bulkhead' | 'rateLimited' | 'failure';

/**
 * Options of {@link fallback}; exactly one of `value`, `fn`, `lastGood`.
 *
 * @example
 * ```ts
 * fallback({ lastGood: { ttlMs: 60_000 }, on: ['open', 'timeout'] });
 * ```
 */
export interface FallbackOptions<R> {
  /** A static answer. */
  value?: R;
  /** Computes the answer from the error (may be async; may throw to give up). */
  fn?: (error: unknown, ctx: PolicyContext & { key: string }) => R | PromiseLike<R>;
  /**
   * Remember the last successful value per key and answer with it while it is younger than
   * `ttlMs`; with no fresh value the original error is rethrown. At most `maxSize` keys are kept
   * (least recently stored dropped first).
   */
  lastGood?: { ttlMs: number; maxSize?: number };
  /**
   * Which failures get the fallback: a list of outcomes (`open`: CircuitOpenError, `timeout`,
   * `bulkhead`, `rateLimited`, `failure`: any other error) or a predicate. A caller's own abort
   * never does.
   * @default every outcome
   */
  on?: readonly FallbackOutcome[] | ((error: unknown) => boolean);
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Events of a {@link FallbackPolicy}.
 *
 * @example
 * ```ts
 * fb.on('fallback', ({ outcome }) => metrics.fallbacks.inc({ outcome }));
 * ```
 */
export interface FallbackEvents {
  /** The fallback answered instead of the call. */
  fallback: { error: unknown; outcome: FallbackOutcome; key: string };
}

/**
 * A policy made by {@link fallback}: resolves with `fn`'s value or the fallback's `R`.
 *
 * @example
 * ```ts
 * const fb: FallbackPolicy<string> = fallback({ value: 'n/a' });
 * ```
 */
export interface FallbackPolicy<R> {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'fallback';
  execute<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T | R>;
  /** The same policy with `key` as the last-good cache key (the plain `execute` uses `"default"`). */
  forKey(key: string): FallbackPolicy<R>;
  on<K extends keyof FallbackEvents>(event: K, listener: (e: FallbackEvents[K]) => void): Subscription;
  /** @internal */
  readonly contextKeys: readonly string[];
  /** @internal Type-level marker read by `wrap()`. */
  readonly __fallbackResult?: R;
}

const OWNER = 'fallback';
const KEYS = ['value', 'fn', 'lastGood', 'on', 'clock'] as const;
const OUTCOMES: readonly FallbackOutcome[] = ['open', 'timeout', 'bulkhead', 'rateLimited', 'failure'];
const NO_KEYS: readonly string[] = [];

function outcomeOf(err: unknown): FallbackOutcome {
  if (isCircuitOpenError(err)) return 'open';
  if (isTimeoutError(err)) return 'timeout';
  if (isBulkheadRejectedError(err)) return 'bulkhead';
  if (isRateLimitedError(err)) return 'rateLimited';
  return 'failure';
}

class Core<R> {
  readonly events = new Emitter<FallbackEvents>();
  readonly kind: 'value' | 'fn' | 'lastGood';
  readonly value: R | undefined;
  readonly fn: FallbackOptions<R>['fn'];
  readonly ttl: number;
  readonly maxSize: number;
  readonly cache = new Map<string, { value: unknown; at: number }>();
  readonly outcomes: Set<FallbackOutcome> | undefined;
  readonly predicate: ((e: unknown) => boolean) | undefined;
  readonly clock: Clock;

  constructor(opts: FallbackOptions<R>) {
    const v = validator(OWNER);
    const o = v.object('options', opts);
    rejectUnknownKeys(OWNER, o, KEYS);
    const given = (['value', 'fn', 'lastGood'] as const).filter((k) => k in o && o[k] !== undefined);
    if (given.length !== 1)
      v.fail('value | fn | lastGood', 'exactly one of them', given.length ? given.join(', ') : 'none');
    this.kind = given[0]!;
    this.value = o.value as R | undefined;
    this.fn = v.optionalFunction('fn', o.fn);
    this.ttl = 0;
    this.maxSize = 0;
    if (this.kind === 'lastGood') {
      const lg = v.object('lastGood', o.lastGood);
      rejectUnknownKeys(OWNER, lg, ['ttlMs', 'maxSize'], 'lastGood.');
      this.ttl = v.number('lastGood.ttlMs', lg.ttlMs, { min: 0 });
      this.maxSize = v.optionalNumber('lastGood.maxSize', lg.maxSize, { min: 1, integer: true }) ?? 1_000;
    }
    if (typeof o.on === 'function') this.predicate = o.on as (e: unknown) => boolean;
    else if (o.on !== undefined) {
      if (!Array.isArray(o.on) || o.on.length === 0 || o.on.some((x) => !OUTCOMES.includes(x)))
        v.fail('on', `a predicate or a non-empty list of ${OUTCOMES.map((x) => `"${x}"`).join(', ')}`, o.on);
      this.outcomes = new Set(o.on as FallbackOutcome[]);
    }
    this.clock = v.clock('clock', o.clock) ?? systemClock;
  }
}

class Fallback<R> implements FallbackPolicy<R> {
  // On the prototype, not per instance: idle policies stay as small as they were.
  get kind(): 'fallback' {
    return 'fallback';
  }

  readonly contextKeys = NO_KEYS;
  readonly #c: Core<R>;
  readonly #key: string;

  constructor(core: Core<R>, key: string) {
    this.#c = core;
    this.#key = key;
  }

  forKey(key: string): FallbackPolicy<R> {
    if (typeof key !== 'string') throw new TypeError('forKey: key must be a string');
    return new Fallback(this.#c, key);
  }

  on<K extends keyof FallbackEvents>(event: K, listener: (e: FallbackEvents[K]) => void): Subscription {
    return this.#c.events.on(event, listener);
  }

  async execute<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T | R> {
    if (typeof fn !== 'function') throw new TypeError('execute: fn must be a function');
    const c = this.#c;
    const sig = signal ?? neverAbortedSignal;
    const ctx: PolicyContext = signal === undefined ? { signal: neverAbortedSignal } : { signal };
    try {
      const v = await fn(ctx);
      if (c.kind === 'lastGood') {
        const cache = c.cache;
        cache.delete(this.#key);
        cache.set(this.#key, { value: v, at: c.clock.now() });
        if (cache.size > c.maxSize) cache.delete(cache.keys().next().value!);
      }
      return v;
    } catch (err) {
      if (sig.aborted) throw err;
      const outcome = outcomeOf(err);
      if (
        c.predicate !== undefined ? !c.predicate(err) : c.outcomes !== undefined && !c.outcomes.has(outcome)
      )
        throw err;
      let answer: R;
      if (c.kind === 'value') answer = c.value as R;
      else if (c.kind === 'fn') answer = await c.fn!(err, { signal: sig, key: this.#key });
      else {
        const hit = c.cache.get(this.#key);
        if (hit === undefined || c.clock.now() - hit.at > c.ttl) throw err;
        answer = hit.value as R;
      }
      if (c.events.has('fallback')) c.events.emit('fallback', { error: err, outcome, key: this.#key });
      return answer;
    }
  }
}

/**
 * Answers in place of a failed call: a static value, a function of the error, or the last good
 * value for the key (fresh within a TTL). Put it outermost, so it sees the final outcome of the
 * retries, the breaker and the timeout.
 *
 * @example
 * ```ts
 * import { fallback, wrap, circuitBreaker, timeout } from 'tripswitch';
 * const prices = wrap(fallback({ lastGood: { ttlMs: 300_000 } }), circuitBreaker({ name: 'prices' }), timeout({ ms: 300 }));
 * const list = await prices.execute(({ signal }) => loadPrices(signal));
 * ```
 */
export function fallback<R>(options: FallbackOptions<R>): FallbackPolicy<R> {
  return new Fallback(new Core(options), 'default');
}

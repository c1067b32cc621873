/**
 * `retry()`: try again after brief failures, with backoff, a retry budget, and respect for
 * `retryAfter` hints.
 *
 * @module
 */
import { type Backoff, decorrelatedJitterBackoff } from './backoff.js';
import { type Clock, systemClock } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { isCircuitOpenError } from './errors.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
import { sleep } from './sleep.js';
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * What a retry hands to `fn`: the signal and the attempt number.
 *
 * @example
 * ```ts
 * await r.execute(({ attempt, signal }) => call({ signal, headers: { 'x-attempt': String(attempt) } }));
 * ```
 */
export interface RetryContext extends PolicyContext {
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;
}

/**
 * Options of {@link retryBudget}.
 *
 * @example
 * ```ts
 * retryBudget({ percent: 20, minRetriesPerSecond: 5, windowMs: 10_000 });
 * ```
 */
export interface RetryBudgetOptions {
  /** Retries allowed as a percentage of the calls seen in the window (0..1000). @default 20 */
  percent?: number;
  /** Retries always allowed per second of window, so low traffic can still retry. @default 10 */
  minRetriesPerSecond?: number;
  /** The window over which calls and retries are counted, in ms. @default 10_000 */
  windowMs?: number;
  /** Buckets in the window (counts age out one bucket at a time). @default 10 */
  buckets?: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * A retry budget, as Envoy's `retry_budget` or Finagle's `RetryBudget`: retries within the window
 * may be at most `percent`% of the calls in it, plus `minRetriesPerSecond * windowMs / 1000`.
 * When an outage makes every call fail, this keeps the retries from multiplying the load on the
 * struggling service. Share one budget between retry policies that call the same dependency.
 *
 * @example
 * ```ts
 * const budget = retryBudget({ percent: 10 });
 * const r = retry({ maxAttempts: 3, budget });
 * ```
 */
export interface RetryBudget {
  /** Counts a call (a first attempt). */
  recordCall(): void;
  /** Takes one retry from the budget: true if allowed (and counted), false if exhausted. */
  tryRetry(): boolean;
  /** Calls and retries currently in the window, and the retries allowed. */
  stats(): { calls: number; retries: number; allowed: number };
}

class Budget implements RetryBudget {
  readonly #ratio: number;
  readonly #min: number;
  readonly #bucketMs: number;
  readonly #n: number;
  readonly #calls: Float64Array;
  readonly #retries: Float64Array;
  readonly #clock: Clock;
  #index = 0;
  #sumCalls = 0;
  #sumRetries = 0;

  constructor(opts: RetryBudgetOptions | undefined) {
    const owner = 'retryBudget';
    const v = validator(owner);
    const o = v.optionalObject('options', opts) ?? {};
    rejectUnknownKeys(owner, o, ['percent', 'minRetriesPerSecond', 'windowMs', 'buckets', 'clock']);
    this.#ratio = (v.optionalNumber('percent', o.percent, { min: 0, max: 1000 }) ?? 20) / 100;
    const perSec = v.optionalNumber('minRetriesPerSecond', o.minRetriesPerSecond, { min: 0 }) ?? 10;
    const windowMs = v.optionalNumber('windowMs', o.windowMs, { min: 1, max: 86_400_000 }) ?? 10_000;
    this.#n = v.optionalNumber('buckets', o.buckets, { min: 1, max: 1000, integer: true }) ?? 10;
    this.#min = (perSec * windowMs) / 1000;
    this.#bucketMs = windowMs / this.#n;
    this.#calls = new Float64Array(this.#n);
    this.#retries = new Float64Array(this.#n);
    this.#clock = v.clock('clock', o.clock) ?? systemClock;
    this.#index = Math.floor(this.#clock.now() / this.#bucketMs);
  }

  /** Ages out buckets that left the window; O(buckets) at most, usually O(1). */
  #slot(): number {
    const idx = Math.floor(this.#clock.now() / this.#bucketMs);
    const n = this.#n;
    if (idx > this.#index) {
      const steps = Math.min(n, idx - this.#index);
      for (let i = 1; i <= steps; i++) {
        const s = (this.#index + i) % n;
        this.#sumCalls -= this.#calls[s]!;
        this.#sumRetries -= this.#retries[s]!;
        this.#calls[s] = 0;
        this.#retries[s] = 0;
      }
      this.#index = idx;
    }
    return this.#index % n;
  }

  recordCall(): void {
    const s = this.#slot();
    this.#calls[s]!++;
    this.#sumCalls++;
  }

  tryRetry(): boolean {
    const s = this.#slot();
    if (this.#sumRetries + 1 > this.#min + this.#ratio * this.#sumCalls) return false;
    this.#retries[s]!++;
    this.#sumRetries++;
    return true;
  }

  stats(): { calls: number; retries: number; allowed: number } {
    this.#slot();
    return {
      calls: this.#sumCalls,
      retries: this.#sumRetries,
      allowed: Math.floor(this.#min + this.#ratio * this.#sumCalls),
    };
  }
}

/**
 * Makes a {@link RetryBudget}.
 *
 * @example
 * ```ts
 * const budget = retryBudget({ percent: 20, minRetriesPerSecond: 10 });
 * ```
 */
export function retryBudget(options?: RetryBudgetOptions): RetryBudget {
  return new Budget(options);
}

/**
 * Options of {@link retry}.
 *
 * @example
 * ```ts
 * retry({ maxAttempts: 4, shouldRetry: (err) => !(err instanceof ValidationError) });
 * ```
 */
export interface RetryOptions {
  /** Attempts in total, the first included (1 = no retry). @default 3 */
  maxAttempts?: number;
  /** @default decorrelatedJitterBackoff({ initialDelay: 100, maxDelay: 10_000 }) */
  backoff?: Backoff;
  /**
   * Caps every delay, including a `retryAfter` hint from the error (an HTTP Retry-After, an open
   * breaker's `CircuitOpenError.retryAfter`).
   * @default 30_000
   */
  maxDelay?: number;
  /** Whether an error is worth another attempt. Caller aborts are never retried. @default () => true */
  shouldRetry?: (error: unknown, ctx: RetryContext) => boolean;
  /**
   * Whether a resolved value is a failure to retry (e.g. `r => r.status >= 500`). After the last
   * attempt such a value is returned, not thrown.
   * @default undefined (no result is retried)
   */
  handleResult?: (result: unknown, ctx: RetryContext) => boolean;
  /**
   * Retry calls an open breaker rejected (`CircuitOpenError`), waiting its `retryAfter`.
   * @default false
   */
  retryOnCircuitOpen?: boolean;
  /** Shared or private retry budget; none means unlimited retries within `maxAttempts`. @default undefined */
  budget?: RetryBudget | RetryBudgetOptions;
  /** Random source for jitter, in [0, 1). @default Math.random */
  random?: () => number;
  /**
   * Whether the wait between attempts keeps the process alive, like the `ref` option of Node's
   * `timers/promises`. The caller's promise depends on that wait, so it does by default; `false`
   * lets the process exit during a backoff (the pending call then never settles).
   * @default true
   */
  ref?: boolean;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Events of a {@link RetryPolicy}.
 *
 * @example
 * ```ts
 * r.on('retry', ({ attempt, delay, error }) => log.warn({ attempt, delay, error }, 'retrying'));
 * ```
 */
export interface RetryEvents {
  /** Attempt `attempt` failed; the next one starts after `delay` ms. `result` is set for handled results. */
  retry: { attempt: number; delay: number; error: unknown; result?: unknown };
  /** The retry stopped with a failure. */
  giveUp: {
    attempts: number;
    error: unknown;
    result?: unknown;
    reason: 'max-attempts' | 'not-retryable' | 'budget' | 'circuit-open' | 'aborted';
  };
}

/**
 * A policy made by {@link retry}.
 *
 * @example
 * ```ts
 * const r: RetryPolicy = retry({ maxAttempts: 3 });
 * ```
 */
export interface RetryPolicy extends Policy<RetryContext> {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'retry';
  readonly maxAttempts: number;
  readonly budget: RetryBudget | undefined;
  on<K extends keyof RetryEvents>(event: K, listener: (e: RetryEvents[K]) => void): Subscription;
  /** @internal Context keys this policy adds to a `wrap()` context. */
  readonly contextKeys: readonly string[];
}

const OWNER = 'retry';
const KEYS = [
  'maxAttempts',
  'backoff',
  'maxDelay',
  'shouldRetry',
  'handleResult',
  'retryOnCircuitOpen',
  'budget',
  'random',
  'ref',
  'clock',
] as const;
const CONTEXT_KEYS: readonly string[] = ['attempt'];

function retryAfterOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const r = (err as { retryAfter?: unknown }).retryAfter;
  return typeof r === 'number' && r >= 0 && Number.isFinite(r) ? r : undefined;
}

class Retry implements RetryPolicy {
  // On the prototype, not per instance: idle policies stay as small as they were.
  get kind(): 'retry' {
    return 'retry';
  }

  readonly maxAttempts: number;
  readonly budget: RetryBudget | undefined;
  readonly contextKeys = CONTEXT_KEYS;
  readonly #backoff: Backoff;
  readonly #maxDelay: number;
  readonly #shouldRetry: ((e: unknown, ctx: RetryContext) => boolean) | undefined;
  readonly #handleResult: ((r: unknown, ctx: RetryContext) => boolean) | undefined;
  readonly #onOpen: boolean;
  readonly #random: () => number;
  readonly #ref: boolean;
  readonly #clock: Clock;
  readonly #events = new Emitter<RetryEvents>();

  constructor(opts: RetryOptions | undefined) {
    const v = validator(OWNER);
    const o = v.optionalObject('options', opts) ?? {};
    rejectUnknownKeys(OWNER, o, KEYS);
    this.maxAttempts = v.optionalNumber('maxAttempts', o.maxAttempts, { min: 1, integer: true }) ?? 3;
    if (o.backoff !== undefined && typeof (o.backoff as Backoff)?.delay !== 'function')
      v.fail('backoff', 'a Backoff ({ delay(retry, previous, random) })', o.backoff);
    this.#backoff = (o.backoff as Backoff | undefined) ?? decorrelatedJitterBackoff();
    this.#maxDelay = v.optionalNumber('maxDelay', o.maxDelay, { min: 0, max: 2_147_483_647 }) ?? 30_000;
    this.#shouldRetry = v.optionalFunction('shouldRetry', o.shouldRetry);
    this.#handleResult = v.optionalFunction('handleResult', o.handleResult);
    this.#onOpen = v.optionalBoolean('retryOnCircuitOpen', o.retryOnCircuitOpen) ?? false;
    this.#random = v.optionalFunction<() => number>('random', o.random) ?? Math.random;
    this.#ref = v.optionalBoolean('ref', o.ref) ?? true;
    this.#clock = v.clock('clock', o.clock) ?? systemClock;
    const b = v.optionalObject('budget', o.budget);
    this.budget =
      b === undefined
        ? undefined
        : typeof b.tryRetry === 'function'
          ? (b as unknown as RetryBudget)
          : new Budget({ clock: this.#clock, ...(b as RetryBudgetOptions) });
  }

  on<K extends keyof RetryEvents>(event: K, listener: (e: RetryEvents[K]) => void): Subscription {
    return this.#events.on(event, listener);
  }

  execute<T>(fn: (ctx: RetryContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError('execute: fn must be a function'));
    const sig = signal ?? neverAbortedSignal;
    if (sig.aborted) return Promise.reject(sig.reason);
    this.budget?.recordCall();
    // The first attempt runs without an async function: most calls succeed on it, and the loop
    // (with its awaits) is only entered after a failure.
    const ctx: RetryContext = { signal: sig, attempt: 1 };
    let r: PromiseLike<T> | T;
    try {
      r = fn(ctx);
    } catch (err) {
      return this.#again(fn, signal, sig, ctx, err, false, undefined);
    }
    const handle = this.#handleResult;
    if (handle === undefined)
      return Promise.resolve(r).then(undefined, (err) =>
        this.#again(fn, signal, sig, ctx, err, false, undefined),
      );
    return Promise.resolve(r).then(
      (v) => (handle(v, ctx) ? this.#again(fn, signal, sig, ctx, undefined, true, v) : v),
      (err) => this.#again(fn, signal, sig, ctx, err, false, undefined),
    );
  }

  /** After a failed attempt: decide, sleep, try again, until success or giving up. */
  async #again<T>(
    fn: (ctx: RetryContext) => PromiseLike<T> | T,
    signal: AbortSignal | undefined,
    sig: AbortSignal,
    ctx: RetryContext,
    error: unknown,
    failedResult: boolean,
    result: T | undefined,
  ): Promise<T> {
    let previous = 0;
    for (;;) {
      const attempt = ctx.attempt;
      let reason: RetryEvents['giveUp']['reason'] | undefined;
      let hint: number | undefined;
      if (sig.aborted) reason = 'aborted';
      else if (!failedResult && isCircuitOpenError(error) && !this.#onOpen) reason = 'circuit-open';
      else if (!failedResult && this.#shouldRetry !== undefined && !this.#shouldRetry(error, ctx))
        reason = 'not-retryable';
      else if (attempt >= this.maxAttempts) reason = 'max-attempts';
      else if (this.budget !== undefined && !this.budget.tryRetry()) reason = 'budget';
      if (reason !== undefined) {
        if (this.#events.has('giveUp'))
          this.#events.emit(
            'giveUp',
            failedResult
              ? { attempts: attempt, error, result, reason }
              : { attempts: attempt, error, reason },
          );
        if (failedResult) return result as T;
        throw error;
      }
      if (!failedResult) hint = retryAfterOf(error);
      const backoff = this.#backoff.delay(attempt, previous, this.#random);
      previous = backoff;
      const delay = Math.min(this.#maxDelay, Math.max(0, hint ?? backoff));
      if (this.#events.has('retry'))
        this.#events.emit(
          'retry',
          failedResult ? { attempt, delay, error, result } : { attempt, delay, error },
        );
      if (delay > 0) await sleep(this.#clock, delay, signal, this.#ref);
      ctx = { signal: sig, attempt: attempt + 1 };
      error = undefined;
      result = undefined;
      failedResult = false;
      try {
        result = await fn(ctx);
        if (this.#handleResult === undefined || !this.#handleResult(result, ctx)) return result;
        failedResult = true;
      } catch (err) {
        error = err;
      }
    }
  }
}

/**
 * Retries failed calls with backoff.
 *
 * Put it outside the breaker (`retry(breaker(timeout(fn)))`): each attempt is judged by the
 * breaker, and once the breaker opens the retry stops at once (a `CircuitOpenError` is not retried
 * unless `retryOnCircuitOpen`), instead of hammering a dependency the breaker already gave up on.
 * A `retryAfter` (ms) on the error replaces the backoff delay, capped by `maxDelay`. The sleep
 * between attempts stops when the caller's signal aborts, rejecting with its reason. On giving up
 * the last error is rethrown (or, for `handleResult`, the last value returned).
 *
 * @example
 * ```ts
 * import { retry, exponentialBackoff } from 'tripswitch';
 * const r = retry({ maxAttempts: 3, backoff: exponentialBackoff({ initialDelay: 50 }), budget: { percent: 20 } });
 * const user = await r.execute(({ signal, attempt }) => getUser(id, { signal, attempt }), req.signal);
 * ```
 */
export function retry(options?: RetryOptions): RetryPolicy {
  return new Retry(options);
}

/**
 * The protected read of the cascade demo: how Service A calls B for `GET /orders`, and what it
 * answers when B does not.
 *
 * `wrap(fallback(lastGood), retry, circuitBreaker, timeout)`, tuned for a B that hangs:
 *
 * - the breaker's rule counts slow calls: the first call slower than `slowCallMs` opens it (a hung
 *   call is cut by the timeout, so it always counts as slow), as do `tripThreshold` fast failures
 *   in a row. Waiting for several timeouts, as a consecutive rule does, lets requests that were
 *   queued behind the first wave call the hung B again and wait the timeout twice.
 * - the retry retries fast failures only (a 5xx, a refused connection). A call that timed out is
 *   not retried: a service that just hung for the whole timeout will most likely hang again, and a
 *   second attempt doubles what the caller waits.
 * - after the breaker, the timeout and the retry, the last good answer is served while it is younger
 *   than `lastGoodTtlMs`; after that (or before the first good answer) the answer is an explicit
 *   degraded one, not an error: the caller learns that B is down and how old the last good answer
 *   was.
 *
 * @module
 */
import {
  type BreakerRegistry,
  type CircuitBreaker,
  type Clock,
  exponentialBackoff,
  type FallbackPolicy,
  fallback,
  isCircuitOpenError,
  isTimeoutError,
  type RetryContext,
  retry,
  timeout,
  wrap,
} from 'tripswitch';
import type { InstrumentablePolicy } from '@tripswitch/prometheus';
import { realClock } from '../clock.js';

/** The name of the breaker guarding Service B. */
export const BREAKER_NAME = 'service-b';

/**
 * Options of {@link protectedRead}; durations in ms.
 *
 * @example
 * ```ts
 * const options: ProtectedReadOptions = { registry: breakerRegistry(), timeoutMs: 300, lastGoodTtlMs: 60_000 };
 * ```
 */
export interface ProtectedReadOptions {
  /** The registry the breaker is created in (name `service-b`). */
  registry: BreakerRegistry;
  /** Timeout per attempt. @default 300 */
  timeoutMs?: number;
  /** How long the breaker stays open before a probe. @default 1_000 */
  openDurationMs?: number;
  /** Fast failures in a row that open the breaker. @default 5 */
  tripThreshold?: number;
  /** A call slower than this is slow. @default 80% of timeoutMs */
  slowCallMs?: number;
  /**
   * Slow calls within 10 s that open the breaker. @default 1: the first hung call. With more, a
   * worker freed by the first timeout takes a queued request and calls the hung B again while the
   * breaker is still closed, and that request waits the timeout twice.
   */
  slowCallThreshold?: number;
  /** How long the last good answer may be served. @default 60_000 */
  lastGoodTtlMs?: number;
  /** Drives the breaker, timeout, retry backoff and the last-good age (tests pass a TestClock). @default the sidecar's real clock */
  clock?: Clock;
}

/**
 * What {@link ProtectedRead.execute} resolves with: B's answer, the last good one, or a degraded
 * answer. It never rejects for B's sake (only for a caller abort).
 *
 * @example
 * ```ts
 * const a: ReadAnswer<unknown> = await read.execute((signal) => callB(signal));
 * if (a.kind === 'degraded') console.log(a.reason);
 * ```
 */
export type ReadAnswer<T> =
  | { kind: 'fresh'; value: T }
  | { kind: 'last-good'; value: T; ageMs: number; ttlMs: number; reason: string }
  | { kind: 'degraded'; ageMs: number | undefined; ttlMs: number; reason: string };

/**
 * The protected read, made by {@link protectedRead}.
 *
 * @example
 * ```ts
 * const read: ProtectedRead<unknown> = protectedRead({ registry });
 * ```
 */
export interface ProtectedRead<T> {
  readonly breaker: CircuitBreaker;
  /** The same policies as one `wrap()`, for `prometheusMetrics().instrument` (not run: {@link ProtectedRead.execute} runs them). */
  readonly policy: InstrumentablePolicy;
  readonly ttlMs: number;
  readonly timeoutMs: number;
  /** Age of the last good answer in ms, undefined before the first. */
  lastGoodAgeMs(): number | undefined;
  execute(call: (signal: AbortSignal, ctx: RetryContext) => Promise<T>): Promise<ReadAnswer<T>>;
}

/**
 * Why B's answer was not used, for people.
 *
 * @example
 * ```ts
 * reasonOf(new TimeoutError(300)); // 'service b did not answer within 300 ms'
 * ```
 */
export function reasonOf(err: unknown): string {
  if (isCircuitOpenError(err)) return 'the breaker is open (service b failed or hung recently)';
  if (isTimeoutError(err)) return `service b did not answer within ${err.timeoutMs} ms`;
  return err instanceof Error ? err.message : String(err);
}

function positive(name: string, v: number | undefined, fallbackValue: number, integer = false): number {
  if (v === undefined) return fallbackValue;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v)))
    throw new RangeError(
      `protectedRead: option "${name}" must be a ${integer ? 'positive integer' : 'positive number'}, got ${String(v)}`,
    );
  return v;
}

/**
 * Builds the protected read of Service A's `GET /orders`.
 *
 * @example
 * ```ts
 * const read = protectedRead({ registry: breakerRegistry(), timeoutMs: 300 });
 * const answer = await read.execute((signal) => fetch(url, { signal }).then((r) => r.json()));
 * ```
 */
export function protectedRead<T>(options: ProtectedReadOptions): ProtectedRead<T> {
  const clock = options.clock ?? realClock;
  const timeoutMs = positive('timeoutMs', options.timeoutMs, 300);
  const ttlMs = options.lastGoodTtlMs ?? 60_000;
  if (typeof ttlMs !== 'number' || !(ttlMs >= 0))
    throw new RangeError(`protectedRead: option "lastGoodTtlMs" must be a number >= 0, got ${String(ttlMs)}`);
  const tripThreshold = positive('tripThreshold', options.tripThreshold, 5, true);
  const slowCallMs = positive('slowCallMs', options.slowCallMs, Math.round(timeoutMs * 0.8));
  const slowCallThreshold = positive('slowCallThreshold', options.slowCallThreshold, 1, true);
  const breaker = options.registry.get(BREAKER_NAME, {
    clock,
    trip: {
      kind: 'custom',
      windowMs: 10_000,
      slowCallDuration: slowCallMs,
      predicate: (c) => c.consecutiveFailures >= tripThreshold || c.slowCalls >= slowCallThreshold,
    },
    openDuration: positive('openDurationMs', options.openDurationMs, 1_000),
    halfOpen: { maxProbes: 1, successesToClose: 1 },
  });
  const lastGood: FallbackPolicy<unknown> = fallback<unknown>({ lastGood: { ttlMs }, clock });
  const retrying = retry({
    maxAttempts: 2,
    backoff: exponentialBackoff({ initialDelay: 50, maxDelay: 200 }),
    budget: { percent: 20 },
    // Fast failures only: a timed-out B is hanging, and a second wait would double the caller's.
    shouldRetry: (err) => !isTimeoutError(err),
    clock,
  });
  const limit = timeout({ ms: timeoutMs, clock });
  // = wrap(lastGood, retrying, breaker, limit), run in two steps to keep the error the fallback hid.
  const inner = wrap(retrying, breaker, limit);
  let goodAt: number | undefined;
  const ageMs = () => (goodAt === undefined ? undefined : clock.now() - goodAt);
  return {
    breaker,
    policy: wrap(lastGood, retrying, breaker, limit),
    ttlMs,
    timeoutMs,
    lastGoodAgeMs: ageMs,
    async execute(call) {
      let fresh = false;
      let error: unknown;
      let value: T;
      try {
        value = (await lastGood.execute((ctx) =>
          inner
            .execute(async (c) => {
              const v = await call(c.signal, c);
              fresh = true;
              goodAt = clock.now();
              return v;
            }, ctx.signal)
            .catch((err: unknown) => {
              error = err;
              throw err;
            }),
        )) as T;
      } catch (err) {
        // The fallback found no answer younger than the TTL: say so instead of failing.
        const age = ageMs();
        const why = reasonOf(err);
        return {
          kind: 'degraded',
          ageMs: age,
          ttlMs,
          reason:
            age === undefined
              ? `${why}; no good answer from it yet`
              : `${why}; the last good answer is ${(age / 1000).toFixed(1)} s old, past its ${ttlMs / 1000} s TTL`,
        };
      }
      if (fresh) return { kind: 'fresh', value };
      return { kind: 'last-good', value, ageMs: ageMs() ?? 0, ttlMs, reason: reasonOf(error) };
    },
  };
}

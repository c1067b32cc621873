/**
 * The trip rule options (the public types) and their validation into a rule of the right kind.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { rejectUnknownKeys, type Validator } from './validate.js';
import type { TripCounts, TripRule } from './trip-rules-api.js';
import { ConsecutiveRule } from './trip-rules-consecutive.js';
import { CountRule } from './trip-rules-count.js';
import { intern } from './trip-rules-spec.js';
import { TimeRule } from './trip-rules-time.js';
import { TotalRule } from './trip-rules-total.js';

/**
 * Trip after `threshold` failures in a row (a success resets the run).
 *
 * @example
 * ```ts
 * circuitBreaker({ trip: { kind: 'consecutive', threshold: 5 } });
 * ```
 */
export interface ConsecutiveTripOptions {
  kind: 'consecutive';
  /** Failures in a row that open the breaker. @default 5 */
  threshold?: number;
}

/**
 * Trip on the failure (or slow-call) rate over the last `windowSize` calls.
 *
 * @example
 * ```ts
 * circuitBreaker({ trip: { kind: 'count', windowSize: 100, minimumCalls: 20, failureRateThreshold: 0.5 } });
 * ```
 */
export interface CountTripOptions {
  kind: 'count';
  /** Number of most recent calls judged (the count window's size; a time window has `windowMs`). @default 100 */
  windowSize?: number;
  /** @deprecated Renamed `windowSize` (0.2); accepted until 0.3. */
  window?: number;
  /** No trip before this many calls are in the window (at most `windowSize`). @default 20 */
  minimumCalls?: number;
  /**
   * Failure rate in (0, 1] at or over which the breaker opens. @default 0.5, or off when only
   * slow-call options are given (a slow-call-only rule).
   */
  failureRateThreshold?: number;
  /** Slow-call rate in (0, 1] at or over which the breaker opens. @default 1 when `slowCallDuration` is set */
  slowCallRateThreshold?: number;
  /** A call taking longer than this many ms is slow. @default undefined (no slow-call tracking) */
  slowCallDuration?: number;
}

/**
 * Trip on the counts of a sliding time window kept in `buckets` buckets.
 *
 * @example
 * ```ts
 * circuitBreaker({ trip: { kind: 'time', windowMs: 30_000, failureCount: 5 } }); // 5 failures in 30 s
 * ```
 */
export interface TimeTripOptions {
  kind: 'time';
  /** Window length in ms. @default 30_000 */
  windowMs?: number;
  /** Buckets the window is divided into; the window slides one bucket at a time. @default 10 */
  buckets?: number;
  /** No rate-based trip before this many calls are in the window. @default 5 */
  minimumCalls?: number;
  /**
   * Failure rate in (0, 1] at or over which the breaker opens. @default 0.5, or off when
   * `failureCount` or slow-call options are given without it.
   */
  failureRateThreshold?: number;
  /** Open after this many failures in the window, whatever the rate ("5 failures in 30 s"). @default off */
  failureCount?: number;
  /** Slow-call rate in (0, 1] at or over which the breaker opens. @default 1 when `slowCallDuration` is set */
  slowCallRateThreshold?: number;
  /** A call taking longer than this many ms is slow. @default undefined */
  slowCallDuration?: number;
}

/**
 * Trip when `predicate(counts)` returns true. Counts cover a time window (`windowMs`), the last
 * `windowSize` calls, or (neither given) every call since the breaker last closed.
 *
 * @example
 * ```ts
 * circuitBreaker({ trip: { kind: 'custom', predicate: (c) => c.consecutiveFailures >= 3 || c.failures >= 10 } });
 * ```
 */
export interface CustomTripOptions {
  kind: 'custom';
  predicate: (counts: Readonly<TripCounts>) => boolean;
  /** Count over a sliding time window of this length. @default undefined */
  windowMs?: number;
  /** Buckets of the time window. @default 10 */
  buckets?: number;
  /** Count over the last `windowSize` calls (instead of `windowMs`). @default undefined */
  windowSize?: number;
  /** @deprecated Renamed `windowSize` (0.2); accepted until 0.3. */
  window?: number;
  /** A call taking longer than this many ms counts as slow. @default undefined */
  slowCallDuration?: number;
}

/**
 * Any trip rule.
 *
 * @example
 * ```ts
 * const trip: TripOptions = { kind: 'count', windowSize: 50, slowCallDuration: 2_000, slowCallRateThreshold: 0.8 };
 * ```
 */
export type TripOptions = ConsecutiveTripOptions | CountTripOptions | TimeTripOptions | CustomTripOptions;

const RATE = { min: 0, max: 1, exclusiveMin: true } as const;

/** Validates `trip` options and builds the rule. `p` is the option path prefix (`trip`). */
export function createTripRule(
  v: Validator,
  owner: string,
  raw: unknown,
  clock: Clock,
  p = 'trip',
): TripRule {
  if (raw === undefined) return new ConsecutiveRule(5);
  const o = v.object(p, raw);
  const kind = v.oneOf(`${p}.kind`, o.kind, ['consecutive', 'count', 'time', 'custom'] as const);
  switch (kind) {
    case 'consecutive': {
      rejectUnknownKeys(owner, o, ['kind', 'threshold'], `${p}.`);
      const threshold = v.optionalNumber(`${p}.threshold`, o.threshold, { min: 1, integer: true }) ?? 5;
      return new ConsecutiveRule(threshold);
    }
    case 'count': {
      rejectUnknownKeys(
        owner,
        o,
        [
          'kind',
          'windowSize',
          'window',
          'minimumCalls',
          'failureRateThreshold',
          'slowCallRateThreshold',
          'slowCallDuration',
        ],
        `${p}.`,
      );
      const window = windowSize(v, p, o) ?? 100;
      const minimumCalls =
        v.optionalNumber(`${p}.minimumCalls`, o.minimumCalls, { min: 1, max: window, integer: true }) ??
        Math.min(20, window);
      const { failureRate, slowRate, slowCallDuration } = rates(v, p, o);
      return new CountRule(
        intern({
          minimumCalls,
          failureRate,
          slowRate,
          failureCount: undefined,
          predicate: undefined,
          slowCallDuration,
          size: window,
          bucketMs: 0,
        }),
      );
    }
    case 'time': {
      rejectUnknownKeys(
        owner,
        o,
        [
          'kind',
          'windowMs',
          'buckets',
          'minimumCalls',
          'failureRateThreshold',
          'failureCount',
          'slowCallRateThreshold',
          'slowCallDuration',
        ],
        `${p}.`,
      );
      const windowMs = v.optionalNumber(`${p}.windowMs`, o.windowMs, { min: 1 }) ?? 30_000;
      if (!Number.isFinite(windowMs)) v.fail(`${p}.windowMs`, 'a finite number >= 1', windowMs);
      const buckets = v.optionalNumber(`${p}.buckets`, o.buckets, { min: 1, max: 1000, integer: true }) ?? 10;
      const minimumCalls =
        v.optionalNumber(`${p}.minimumCalls`, o.minimumCalls, { min: 1, integer: true }) ?? 5;
      const failureCount = v.optionalNumber(`${p}.failureCount`, o.failureCount, { min: 1, integer: true });
      const { failureRate, slowRate, slowCallDuration } = rates(v, p, o, failureCount !== undefined);
      return new TimeRule(
        intern({
          minimumCalls,
          failureRate,
          slowRate,
          failureCount,
          predicate: undefined,
          slowCallDuration,
          size: buckets,
          bucketMs: windowMs / buckets,
        }),
        clock,
      );
    }
    case 'custom': {
      rejectUnknownKeys(
        owner,
        o,
        ['kind', 'predicate', 'windowMs', 'buckets', 'windowSize', 'window', 'slowCallDuration'],
        `${p}.`,
      );
      const predicate = v.optionalFunction<(c: Readonly<TripCounts>) => boolean>(
        `${p}.predicate`,
        o.predicate,
      );
      if (predicate === undefined) return v.fail(`${p}.predicate`, 'a function', o.predicate);
      const slowCallDuration = v.optionalNumber(`${p}.slowCallDuration`, o.slowCallDuration, { min: 0 });
      const base = {
        minimumCalls: 0,
        failureRate: undefined,
        slowRate: undefined,
        failureCount: undefined,
        predicate,
        slowCallDuration,
      };
      const windowMs = v.optionalNumber(`${p}.windowMs`, o.windowMs, { min: 1 });
      if (windowMs !== undefined) {
        if (!Number.isFinite(windowMs)) v.fail(`${p}.windowMs`, 'a finite number >= 1', windowMs);
        if (o.windowSize !== undefined)
          v.fail(`${p}.windowSize`, 'absent when windowMs is given', o.windowSize);
        if (o.window !== undefined) v.fail(`${p}.window`, 'absent when windowMs is given', o.window);
        const buckets =
          v.optionalNumber(`${p}.buckets`, o.buckets, { min: 1, max: 1000, integer: true }) ?? 10;
        return new TimeRule(intern({ ...base, size: buckets, bucketMs: windowMs / buckets }), clock);
      }
      if (o.buckets !== undefined) v.fail(`${p}.buckets`, 'absent unless windowMs is given', o.buckets);
      const window = windowSize(v, p, o);
      if (window !== undefined) return new CountRule(intern({ ...base, size: window, bucketMs: 0 }));
      return new TotalRule(intern({ ...base, size: 0, bucketMs: 0 }));
    }
  }
}

/** `windowSize`, or its deprecated name `window` (not both). */
function windowSize(v: Validator, p: string, o: Record<string, unknown>): number | undefined {
  if (o.window !== undefined && o.windowSize !== undefined)
    v.fail(`${p}.window`, 'absent when windowSize is given (window is its deprecated name)', o.window);
  const key = o.windowSize === undefined && o.window !== undefined ? 'window' : 'windowSize';
  return v.optionalNumber(`${p}.${key}`, o[key], { min: 1, max: 1_000_000, integer: true });
}

function rates(
  v: Validator,
  p: string,
  o: Record<string, unknown>,
  otherCheck = false,
): { failureRate: number | undefined; slowRate: number | undefined; slowCallDuration: number | undefined } {
  const slowCallDuration = v.optionalNumber(`${p}.slowCallDuration`, o.slowCallDuration, { min: 0 });
  let slowRate = v.optionalNumber(`${p}.slowCallRateThreshold`, o.slowCallRateThreshold, RATE);
  if (slowRate !== undefined && slowCallDuration === undefined)
    v.fail(`${p}.slowCallDuration`, 'a number >= 0 when slowCallRateThreshold is set', undefined);
  if (slowCallDuration !== undefined) slowRate ??= 1;
  let failureRate = v.optionalNumber(`${p}.failureRateThreshold`, o.failureRateThreshold, RATE);
  // A rule given only slow-call (or failure-count) settings judges only those.
  if (failureRate === undefined && slowRate === undefined && !otherCheck) failureRate = 0.5;
  return { failureRate, slowRate, slowCallDuration };
}

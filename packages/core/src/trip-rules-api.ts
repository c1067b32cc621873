/**
 * What the breaker and every trip rule kind share: the {@link TripRule} contract, the {@link Trip}
 * codes and their reason strings, the counts a rule reports ({@link TripCounts}) and its snapshot
 * data ({@link WindowSnapshot}). Internal module; the public types are exported from the package
 * through `trip-rules.ts`.
 *
 * @module
 */
/**
 * The counts a custom predicate sees. The object is reused between calls: read it, do not keep it.
 *
 * @example
 * ```ts
 * circuitBreaker({ trip: { kind: 'custom', windowMs: 10_000, predicate: (c) => c.calls >= 10 && c.failureRate > 0.2 } });
 * ```
 */
export interface TripCounts {
  /** Calls (successes + failures) in the window. */
  calls: number;
  successes: number;
  failures: number;
  /** Calls slower than `slowCallDuration` (successful or not). */
  slowCalls: number;
  /** Failures in a row. */
  consecutiveFailures: number;
  /** failures / calls, 0 when no call. */
  failureRate: number;
  /** slowCalls / calls, 0 when no call. */
  slowCallRate: number;
}

/** Why a rule tripped (0: it did not). */
export const Trip = {
  none: 0,
  consecutive: 1,
  failureRate: 2,
  slowCallRate: 3,
  failureCount: 4,
  predicate: 5,
} as const;

/** The reason strings carried by `stateChange` events, indexed by {@link Trip} codes. */
export const tripReasons = [
  '',
  'consecutive-failures',
  'failure-rate',
  'slow-call-rate',
  'failure-count',
  'predicate',
] as const;

/**
 * Window data in a snapshot.
 *
 * @example
 * ```ts
 * const { window } = breaker.toJSON();
 * ```
 */
export type WindowSnapshot =
  | { kind: 'count'; outcomes: number[] }
  | { kind: 'time'; bucketMs: number; epoch: number; buckets: number[][] }
  | { kind: 'total'; calls: number; failures: number; slowCalls: number };

/** What the breaker needs from a rule. */
export interface TripRule {
  /** Threshold in ms above which a call is slow, or undefined. */
  readonly slowCallDuration: number | undefined;
  /** Records one outcome; returns a {@link Trip} code (0 = stay closed). */
  record(failure: boolean, slow: boolean, consecutiveFailures: number): number;
  /** Forgets every outcome (on close and reset). */
  reset(): void;
  /** Window totals as of `now`: writes into `out`. */
  read(now: number, out: TripCounts): void;
  snapshot(): WindowSnapshot | undefined;
  /** Restores window data from a snapshot; ignores data of another kind or size. */
  restore(data: WindowSnapshot): void;
  /** Releases what the rule holds (nothing today: the bucket ticker is shared and self-expiring). */
  dispose(): void;
}

/** Writes the totals of a window into `out` (rates derived, 0 when no call). */
export function fill(
  out: TripCounts,
  calls: number,
  failures: number,
  slow: number,
  consecutive: number,
): void {
  out.calls = calls;
  out.failures = failures;
  out.successes = calls - failures;
  out.slowCalls = slow;
  out.consecutiveFailures = consecutive;
  out.failureRate = calls === 0 ? 0 : failures / calls;
  out.slowCallRate = calls === 0 ? 0 : slow / calls;
}

/** A count read from a snapshot: a finite number floored, anything else (or below 1) 0. */
export function nonNeg(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}

/** A fresh zeroed {@link TripCounts}. */
export function newCounts(): TripCounts {
  return {
    calls: 0,
    successes: 0,
    failures: 0,
    slowCalls: 0,
    consecutiveFailures: 0,
    failureRate: 0,
    slowCallRate: 0,
  };
}

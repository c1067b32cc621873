/**
 * What a breaker shows of itself: the counts of `stats()`, the JSON-safe snapshot of `toJSON()`,
 * and the reading of a snapshot given back as `initialState` (validated field by field, with the
 * exact `InvalidOptionError` messages, before any of it is applied).
 *
 * `stats()` and `toJSON()` themselves are methods of the breaker (`breaker-core.ts`): they read a
 * dozen of its private counters, which stay private so a caller cannot change them.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { type CircuitState, stateNames } from './breaker-state.js';
import type { WindowSnapshot } from './trip-rules.js';
import type { Validator } from './validate.js';

/**
 * Counts returned by `stats()`; plain numbers.
 *
 * @example
 * ```ts
 * const { state, failureRate, rejections } = breaker.stats();
 * ```
 */
export interface BreakerStats {
  state: CircuitState;
  /** Settled calls (successes + failures + neutral) since creation. */
  calls: number;
  successes: number;
  failures: number;
  /** Calls rejected without running. */
  rejections: number;
  neutral: number;
  /** Calls slower than the rule's `slowCallDuration`. */
  slowCalls: number;
  /** Calls admitted and not settled yet. */
  inFlight: number;
  consecutiveFailures: number;
  /** Failure rate of the trip rule's window (or since the last close for `consecutive`). */
  failureRate: number;
  /** Slow-call rate of the trip rule's window. */
  slowCallRate: number;
  /** Calls in the trip rule's window. */
  windowCalls: number;
  /** Failures in the trip rule's window. */
  windowFailures: number;
  openedAt?: number;
  nextAttemptAt?: number;
}

/**
 * A JSON-safe picture of a breaker, restorable with `initialState`.
 *
 * @example
 * ```ts
 * await fs.writeFile('breaker.json', JSON.stringify(breaker));
 * const restored = circuitBreaker({ initialState: JSON.parse(await fs.readFile('breaker.json', 'utf8')) });
 * ```
 */
export interface BreakerSnapshot {
  version: 1;
  name: string;
  state: CircuitState;
  /** Clock time the snapshot was taken. */
  savedAt: number;
  openedAt?: number;
  nextAttemptAt?: number;
  /** Consecutive openings (drives the open-duration backoff). */
  openings: number;
  consecutiveFailures: number;
  /** Failures counted when the breaker last opened. */
  openFailures?: number;
  totals: {
    successes: number;
    failures: number;
    rejections: number;
    neutral: number;
    slowCalls: number;
  };
  window?: WindowSnapshot;
}

/** @internal A validated `initialState`, for the constructor to apply. */
export interface RestoredState {
  /** Never `half-open`: nobody is probing any more, so that comes back `open`. */
  state: CircuitState;
  openings: number;
  consecutiveFailures: number;
  openFailures: number | undefined;
  successes: number;
  failures: number;
  rejections: number;
  neutral: number;
  slowCalls: number;
  /** The clock's time when the snapshot was read (one read: the eager timer is armed from it). */
  now: number;
  /** Set for `open` only. */
  openedAt: number;
  nextAttemptAt: number;
  /**
   * Unchecked: the constructor checks it is an object (and the trip rule the rest) after applying
   * the state, the order these errors have always come in.
   */
  window: unknown;
}

/**
 * @internal Reads `initialState`: every field checked in order (missing counts are 0), the clock
 * read once for the open period of a half-open or open snapshot.
 */
export function readSnapshot(v: Validator, raw: unknown, clock: Clock): RestoredState {
  const s = v.object('initialState', raw);
  if (s.version !== 1) v.fail('initialState.version', '1', s.version);
  let state = v.oneOf('initialState.state', s.state, stateNames);
  const count = (k: string, x: unknown) =>
    x === undefined ? 0 : v.number(`initialState.${k}`, x, { min: 0, integer: true });
  const openings = count('openings', s.openings);
  const consecutiveFailures = count('consecutiveFailures', s.consecutiveFailures);
  const openFailures = s.openFailures !== undefined ? count('openFailures', s.openFailures) : undefined;
  const t = v.optionalObject('initialState.totals', s.totals) ?? {};
  const successes = count('totals.successes', t.successes);
  const failures = count('totals.failures', t.failures);
  const rejections = count('totals.rejections', t.rejections);
  const neutral = count('totals.neutral', t.neutral);
  const slowCalls = count('totals.slowCalls', t.slowCalls);
  const now = clock.now();
  let openedAt = 0;
  let nextAttemptAt = 0;
  if (state === 'half-open') {
    // Nobody is probing any more: come back open, with the next call admitted as a probe.
    state = 'open';
    nextAttemptAt = now;
    openedAt = typeof s.openedAt === 'number' ? s.openedAt : now;
  } else if (state === 'open') {
    // JSON turns an endless open period (openDuration: Infinity) into null.
    nextAttemptAt =
      s.nextAttemptAt === null
        ? Number.POSITIVE_INFINITY
        : v.number('initialState.nextAttemptAt', s.nextAttemptAt, {});
    openedAt = typeof s.openedAt === 'number' && Number.isFinite(s.openedAt) ? s.openedAt : now;
  }
  return {
    state,
    openings,
    consecutiveFailures,
    openFailures,
    successes,
    failures,
    rejections,
    neutral,
    slowCalls,
    now,
    openedAt,
    nextAttemptAt,
    window: s.window,
  };
}

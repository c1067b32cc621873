/**
 * Trip rules: when a closed breaker opens. Internal module; the options types are exported from
 * the package through `breaker.ts`.
 *
 * Every rule keeps running totals, so recording an outcome is O(1) (a time window touches at most
 * `buckets` slots when time has moved on, amortised O(1)); no rule ever starts a timer. Time
 * windows clear stale buckets lazily, when an outcome or a read finds the clock has moved on, so a
 * breaker idle for longer than its window starts from an empty window rather than from counts that
 * are hours old.
 *
 * @module
 */
import { rejectUnknownKeys, type Validator } from './validate.js';

/** Trip after `threshold` failures in a row (a success resets the run). */
export interface ConsecutiveTripOptions {
  kind: 'consecutive';
  /** Failures in a row that open the breaker. @default 5 */
  threshold?: number;
}

/** Trip on the failure (or slow-call) rate over the last `window` calls. */
export interface CountTripOptions {
  kind: 'count';
  /** Number of most recent calls judged. @default 100 */
  window?: number;
  /** No trip before this many calls are in the window (at most `window`). @default 20 */
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

/** Trip on the counts of a sliding time window kept in `buckets` buckets. */
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

/** The counts a custom predicate sees. The object is reused between calls: read it, do not keep it. */
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

/**
 * Trip when `predicate(counts)` returns true. Counts cover a time window (`windowMs`), the last
 * `window` calls, or (neither given) every call since the breaker last closed.
 */
export interface CustomTripOptions {
  kind: 'custom';
  predicate: (counts: Readonly<TripCounts>) => boolean;
  /** Count over a sliding time window of this length. @default undefined */
  windowMs?: number;
  /** Buckets of the time window. @default 10 */
  buckets?: number;
  /** Count over the last `window` calls (when `windowMs` is not given). @default undefined */
  window?: number;
  /** A call taking longer than this many ms counts as slow. @default undefined */
  slowCallDuration?: number;
}

/** Any trip rule. */
export type TripOptions = ConsecutiveTripOptions | CountTripOptions | TimeTripOptions | CustomTripOptions;

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

/** Window data in a snapshot. */
export type WindowSnapshot =
  | { kind: 'count'; outcomes: number[] }
  | { kind: 'time'; bucketMs: number; epoch: number; buckets: number[][] }
  | { kind: 'total'; calls: number; failures: number; slowCalls: number };

/** What the breaker needs from a rule. */
export interface TripRule {
  /** Threshold in ms above which a call is slow, or undefined. */
  readonly slowCallDuration: number | undefined;
  /** True when `record` and `counts` read `now`. */
  readonly usesTime: boolean;
  /** Records one outcome; returns a {@link Trip} code (0 = stay closed). */
  record(failure: boolean, slow: boolean, now: number, consecutiveFailures: number): number;
  /** Forgets every outcome (on close and reset). */
  reset(): void;
  /** Window totals as of `now`: writes into `out`. */
  read(now: number, out: TripCounts): void;
  snapshot(): WindowSnapshot | undefined;
  /** Restores window data from a snapshot; ignores data of another kind or size. */
  restore(data: WindowSnapshot): void;
}

const FAIL = 1;
const SLOW = 2;

function fill(out: TripCounts, calls: number, failures: number, slow: number, consecutive: number): void {
  out.calls = calls;
  out.failures = failures;
  out.successes = calls - failures;
  out.slowCalls = slow;
  out.consecutiveFailures = consecutive;
  out.failureRate = calls === 0 ? 0 : failures / calls;
  out.slowCallRate = calls === 0 ? 0 : slow / calls;
}

class ConsecutiveRule implements TripRule {
  readonly slowCallDuration = undefined;
  readonly usesTime = false;
  // Totals since the last close, for stats only.
  calls = 0;
  failures = 0;
  constructor(readonly threshold: number) {}
  record(failure: boolean, _slow: boolean, _now: number, consecutive: number): number {
    this.calls++;
    if (!failure) return Trip.none;
    this.failures++;
    return consecutive >= this.threshold ? Trip.consecutive : Trip.none;
  }
  reset(): void {
    this.calls = 0;
    this.failures = 0;
  }
  read(_now: number, out: TripCounts): void {
    fill(out, this.calls, this.failures, 0, 0);
  }
  snapshot(): WindowSnapshot {
    return { kind: 'total', calls: this.calls, failures: this.failures, slowCalls: 0 };
  }
  restore(d: WindowSnapshot): void {
    if (d.kind !== 'total') return;
    this.calls = d.calls;
    this.failures = Math.min(d.failures, d.calls);
  }
}

/** Thresholds shared by count and time windows; `Infinity`/undefined disables a check. */
interface Thresholds {
  minimumCalls: number;
  failureRate: number | undefined;
  slowRate: number | undefined;
  failureCount: number | undefined;
  predicate: ((c: Readonly<TripCounts>) => boolean) | undefined;
}

function judge(
  t: Thresholds,
  calls: number,
  failures: number,
  slow: number,
  consecutive: number,
  scratch: TripCounts | undefined,
): number {
  if (t.predicate !== undefined) {
    fill(scratch!, calls, failures, slow, consecutive);
    return t.predicate(scratch!) ? Trip.predicate : Trip.none;
  }
  if (t.failureCount !== undefined && failures >= t.failureCount) return Trip.failureCount;
  if (calls < t.minimumCalls) return Trip.none;
  if (t.failureRate !== undefined && failures >= t.failureRate * calls) return Trip.failureRate;
  if (t.slowRate !== undefined && slow >= t.slowRate * calls) return Trip.slowCallRate;
  return Trip.none;
}

class CountRule implements TripRule {
  readonly usesTime = false;
  readonly ring: Uint8Array;
  next = 0;
  size = 0;
  failures = 0;
  slow = 0;
  readonly scratch: TripCounts | undefined;
  constructor(
    window: number,
    readonly t: Thresholds,
    readonly slowCallDuration: number | undefined,
  ) {
    this.ring = new Uint8Array(window);
    this.scratch = t.predicate ? newCounts() : undefined;
  }
  record(failure: boolean, slow: boolean, _now: number, consecutive: number): number {
    const ring = this.ring;
    const i = this.next;
    if (this.size === ring.length) {
      const old = ring[i]!;
      if (old & FAIL) this.failures--;
      if (old & SLOW) this.slow--;
    } else this.size++;
    let code = 0;
    if (failure) {
      code = FAIL;
      this.failures++;
    }
    if (slow) {
      code |= SLOW;
      this.slow++;
    }
    ring[i] = code;
    this.next = i + 1 === ring.length ? 0 : i + 1;
    // A success can only lower the failure rate, but can raise the slow-call rate.
    if (!failure && !slow && this.t.predicate === undefined) return Trip.none;
    return judge(this.t, this.size, this.failures, this.slow, consecutive, this.scratch);
  }
  reset(): void {
    this.ring.fill(0);
    this.next = 0;
    this.size = 0;
    this.failures = 0;
    this.slow = 0;
  }
  read(_now: number, out: TripCounts): void {
    fill(out, this.size, this.failures, this.slow, 0);
  }
  snapshot(): WindowSnapshot {
    const out: number[] = [];
    const n = this.ring.length;
    const start = this.size === n ? this.next : 0;
    for (let k = 0; k < this.size; k++) out.push(this.ring[(start + k) % n]!);
    return { kind: 'count', outcomes: out };
  }
  restore(d: WindowSnapshot): void {
    if (d.kind !== 'count' || !Array.isArray(d.outcomes)) return;
    this.reset();
    const from = Math.max(0, d.outcomes.length - this.ring.length);
    for (let k = from; k < d.outcomes.length; k++) {
      const c = d.outcomes[k]! & 3;
      this.record((c & FAIL) !== 0, (c & SLOW) !== 0, 0, 0);
    }
  }
}

class TimeRule implements TripRule {
  readonly usesTime = true;
  readonly bucketMs: number;
  readonly calls: Float64Array;
  readonly fails: Float64Array;
  readonly slows: Float64Array;
  /** Index (now / bucketMs, floored) of the newest bucket. */
  epoch = Number.NEGATIVE_INFINITY;
  totalCalls = 0;
  totalFails = 0;
  totalSlow = 0;
  readonly scratch: TripCounts | undefined;
  constructor(
    windowMs: number,
    buckets: number,
    readonly t: Thresholds,
    readonly slowCallDuration: number | undefined,
  ) {
    this.bucketMs = windowMs / buckets;
    this.calls = new Float64Array(buckets);
    this.fails = new Float64Array(buckets);
    this.slows = new Float64Array(buckets);
    this.scratch = t.predicate ? newCounts() : undefined;
  }
  /** Moves the window to `now`, clearing buckets that fell out of it. */
  roll(now: number): number {
    const idx = Math.floor(now / this.bucketMs);
    const epoch = this.epoch;
    if (idx === epoch) return idx % this.calls.length;
    const n = this.calls.length;
    if (idx < epoch) return epoch % n; // a clock that stepped back: count in the newest bucket
    if (idx - epoch >= n) {
      this.calls.fill(0);
      this.fails.fill(0);
      this.slows.fill(0);
      this.totalCalls = 0;
      this.totalFails = 0;
      this.totalSlow = 0;
    } else {
      for (let e = epoch + 1; e <= idx; e++) {
        const s = e % n;
        this.totalCalls -= this.calls[s]!;
        this.totalFails -= this.fails[s]!;
        this.totalSlow -= this.slows[s]!;
        this.calls[s] = 0;
        this.fails[s] = 0;
        this.slows[s] = 0;
      }
    }
    this.epoch = idx;
    return idx % n;
  }
  record(failure: boolean, slow: boolean, now: number, consecutive: number): number {
    const s = this.roll(now);
    this.calls[s]!++;
    this.totalCalls++;
    if (failure) {
      this.fails[s]!++;
      this.totalFails++;
    }
    if (slow) {
      this.slows[s]!++;
      this.totalSlow++;
    }
    if (!failure && !slow && this.t.predicate === undefined) return Trip.none;
    return judge(this.t, this.totalCalls, this.totalFails, this.totalSlow, consecutive, this.scratch);
  }
  reset(): void {
    this.calls.fill(0);
    this.fails.fill(0);
    this.slows.fill(0);
    this.totalCalls = 0;
    this.totalFails = 0;
    this.totalSlow = 0;
    this.epoch = Number.NEGATIVE_INFINITY;
  }
  read(now: number, out: TripCounts): void {
    this.roll(now);
    fill(out, this.totalCalls, this.totalFails, this.totalSlow, 0);
  }
  snapshot(): WindowSnapshot {
    const buckets: number[][] = [];
    const n = this.calls.length;
    for (let k = 0; k < n; k++) buckets.push([this.calls[k]!, this.fails[k]!, this.slows[k]!]);
    return {
      kind: 'time',
      bucketMs: this.bucketMs,
      epoch: Number.isFinite(this.epoch) ? this.epoch : -1,
      buckets,
    };
  }
  restore(d: WindowSnapshot): void {
    if (d.kind !== 'time' || d.bucketMs !== this.bucketMs || !Array.isArray(d.buckets)) return;
    if (d.buckets.length !== this.calls.length || d.epoch < 0) return;
    this.reset();
    for (let k = 0; k < d.buckets.length; k++) {
      const b = d.buckets[k];
      if (!Array.isArray(b)) continue;
      const c = nonNeg(b[0]);
      const f = Math.min(c, nonNeg(b[1]));
      const sl = Math.min(c, nonNeg(b[2]));
      this.calls[k] = c;
      this.fails[k] = f;
      this.slows[k] = sl;
      this.totalCalls += c;
      this.totalFails += f;
      this.totalSlow += sl;
    }
    this.epoch = d.epoch;
  }
}

/** A custom predicate over every call since the last close. */
class TotalRule implements TripRule {
  readonly usesTime = false;
  calls = 0;
  failures = 0;
  slow = 0;
  readonly scratch = newCounts();
  constructor(
    readonly predicate: (c: Readonly<TripCounts>) => boolean,
    readonly slowCallDuration: number | undefined,
  ) {}
  record(failure: boolean, slow: boolean, _now: number, consecutive: number): number {
    this.calls++;
    if (failure) this.failures++;
    if (slow) this.slow++;
    fill(this.scratch, this.calls, this.failures, this.slow, consecutive);
    return this.predicate(this.scratch) ? Trip.predicate : Trip.none;
  }
  reset(): void {
    this.calls = 0;
    this.failures = 0;
    this.slow = 0;
  }
  read(_now: number, out: TripCounts): void {
    fill(out, this.calls, this.failures, this.slow, 0);
  }
  snapshot(): WindowSnapshot {
    return { kind: 'total', calls: this.calls, failures: this.failures, slowCalls: this.slow };
  }
  restore(d: WindowSnapshot): void {
    if (d.kind !== 'total') return;
    this.calls = nonNeg(d.calls);
    this.failures = Math.min(this.calls, nonNeg(d.failures));
    this.slow = Math.min(this.calls, nonNeg(d.slowCalls));
  }
}

function nonNeg(v: unknown): number {
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

const RATE = { min: 0, max: 1, exclusiveMin: true } as const;

/** Validates `trip` options and builds the rule. `p` is the option path prefix (`trip`). */
export function createTripRule(v: Validator, owner: string, raw: unknown, p = 'trip'): TripRule {
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
          'window',
          'minimumCalls',
          'failureRateThreshold',
          'slowCallRateThreshold',
          'slowCallDuration',
        ],
        `${p}.`,
      );
      const window =
        v.optionalNumber(`${p}.window`, o.window, { min: 1, max: 1_000_000, integer: true }) ?? 100;
      const minimumCalls =
        v.optionalNumber(`${p}.minimumCalls`, o.minimumCalls, { min: 1, max: window, integer: true }) ??
        Math.min(20, window);
      const { failureRate, slowRate, slowCallDuration } = rates(v, p, o);
      return new CountRule(
        window,
        { minimumCalls, failureRate, slowRate, failureCount: undefined, predicate: undefined },
        slowCallDuration,
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
        windowMs,
        buckets,
        { minimumCalls, failureRate, slowRate, failureCount, predicate: undefined },
        slowCallDuration,
      );
    }
    case 'custom': {
      rejectUnknownKeys(
        owner,
        o,
        ['kind', 'predicate', 'windowMs', 'buckets', 'window', 'slowCallDuration'],
        `${p}.`,
      );
      const predicate = v.optionalFunction<(c: Readonly<TripCounts>) => boolean>(
        `${p}.predicate`,
        o.predicate,
      );
      if (predicate === undefined) return v.fail(`${p}.predicate`, 'a function', o.predicate);
      const slowCallDuration = v.optionalNumber(`${p}.slowCallDuration`, o.slowCallDuration, { min: 0 });
      const t: Thresholds = {
        minimumCalls: 0,
        failureRate: undefined,
        slowRate: undefined,
        failureCount: undefined,
        predicate,
      };
      const windowMs = v.optionalNumber(`${p}.windowMs`, o.windowMs, { min: 1 });
      if (windowMs !== undefined) {
        if (!Number.isFinite(windowMs)) v.fail(`${p}.windowMs`, 'a finite number >= 1', windowMs);
        if (o.window !== undefined) v.fail(`${p}.window`, 'absent when windowMs is given', o.window);
        const buckets =
          v.optionalNumber(`${p}.buckets`, o.buckets, { min: 1, max: 1000, integer: true }) ?? 10;
        return new TimeRule(windowMs, buckets, t, slowCallDuration);
      }
      if (o.buckets !== undefined) v.fail(`${p}.buckets`, 'absent unless windowMs is given', o.buckets);
      const window = v.optionalNumber(`${p}.window`, o.window, { min: 1, max: 1_000_000, integer: true });
      if (window !== undefined) return new CountRule(window, t, slowCallDuration);
      return new TotalRule(predicate, slowCallDuration);
    }
  }
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

/**
 * Trip rules: when a closed breaker opens. Internal module; the options types are exported from
 * the package through `breaker.ts`.
 *
 * Every rule keeps running totals, so recording an outcome is O(1) (a time window touches at most
 * `buckets` slots when time has moved on, amortised O(1)). Time windows clear stale buckets
 * lazily, when an outcome or a read finds a newer bucket index, so a breaker idle for longer than
 * its window starts from an empty window rather than from counts that are hours old; no timer
 * rotates buckets. The only timer is the shared bucket ticker (see `BucketTicker`): under traffic,
 * one per clock and bucket length, whatever the number of breakers; none without traffic.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { rejectUnknownKeys, type Validator } from './validate.js';

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
  // Totals since the last close, for stats only.
  calls = 0;
  failures = 0;
  constructor(readonly threshold: number) {}
  get slowCallDuration(): undefined {
    return undefined;
  }
  record(failure: boolean, _slow: boolean, consecutive: number): number {
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
    this.calls = nonNeg(d.calls);
    this.failures = Math.min(nonNeg(d.failures), this.calls);
  }
  dispose(): void {}
}

/**
 * A window rule's settings. Breakers built from equal settings (without a predicate) share one spec, so a
 * breaker carries only its counts. `scratch` is shared too: it is filled and handed to the
 * predicate synchronously, never kept.
 */
interface Spec {
  readonly minimumCalls: number;
  readonly failureRate: number | undefined;
  readonly slowRate: number | undefined;
  readonly failureCount: number | undefined;
  readonly predicate: ((c: Readonly<TripCounts>) => boolean) | undefined;
  readonly slowCallDuration: number | undefined;
  /** Ring size (count rule) or bucket count (time rule). */
  readonly size: number;
  /** Time rule: bucket length in ms. */
  readonly bucketMs: number;
  readonly scratch: TripCounts;
}

const specs = new Map<string, Spec>();

function intern(s: Omit<Spec, 'scratch'>): Spec {
  // A spec with a predicate is not cached: the cache must not pin caller closures.
  if (s.predicate !== undefined) return { ...s, scratch: newCounts() };
  const key = `${s.minimumCalls}|${s.failureRate}|${s.slowRate}|${s.failureCount}|${s.slowCallDuration}|${s.size}|${s.bucketMs}`;
  const hit = specs.get(key);
  if (hit !== undefined) return hit;
  const spec: Spec = { ...s, scratch: newCounts() };
  if (specs.size < 256) specs.set(key, spec);
  return spec;
}

function judge(t: Spec, calls: number, failures: number, slow: number, consecutive: number): number {
  if (t.predicate !== undefined) {
    fill(t.scratch, calls, failures, slow, consecutive);
    return t.predicate(t.scratch) ? Trip.predicate : Trip.none;
  }
  if (t.failureCount !== undefined && failures >= t.failureCount) return Trip.failureCount;
  if (calls < t.minimumCalls) return Trip.none;
  if (t.failureRate !== undefined && failures >= t.failureRate * calls) return Trip.failureRate;
  if (t.slowRate !== undefined && slow >= t.slowRate * calls) return Trip.slowCallRate;
  return Trip.none;
}

/** The last `size` outcomes in a ring of 2-bit codes, with running totals. */
class CountRule implements TripRule {
  readonly ring: Uint8Array;
  /** Restored counts have not been judged under this rule's thresholds yet. */
  unjudged = false;
  next = 0;
  filled = 0;
  failures = 0;
  slow = 0;
  constructor(readonly t: Spec) {
    this.ring = new Uint8Array(t.size);
  }
  get slowCallDuration(): number | undefined {
    return this.t.slowCallDuration;
  }
  record(failure: boolean, slow: boolean, consecutive: number): number {
    const ring = this.ring;
    const i = this.next;
    if (this.filled === ring.length) {
      const old = ring[i]!;
      if (old & FAIL) this.failures--;
      if (old & SLOW) this.slow--;
    } else this.filled++;
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
    // A fast success cannot raise a rate (it may replace an old failure, never add one), so after a
    // judgement that did not trip, only the success that brings the window to minimumCalls needs one.
    if (code === 0 && !this.unjudged && this.filled !== this.t.minimumCalls && this.t.predicate === undefined)
      return Trip.none;
    this.unjudged = false;
    return judge(this.t, this.filled, this.failures, this.slow, consecutive);
  }
  reset(): void {
    this.ring.fill(0);
    this.next = 0;
    this.filled = 0;
    this.failures = 0;
    this.slow = 0;
  }
  read(_now: number, out: TripCounts): void {
    fill(out, this.filled, this.failures, this.slow, 0);
  }
  snapshot(): WindowSnapshot {
    const out: number[] = [];
    const n = this.ring.length;
    const start = this.filled === n ? this.next : 0;
    for (let k = 0; k < this.filled; k++) out.push(this.ring[(start + k) % n]!);
    return { kind: 'count', outcomes: out };
  }
  restore(d: WindowSnapshot): void {
    if (d.kind !== 'count' || !Array.isArray(d.outcomes)) return;
    this.reset();
    const from = Math.max(0, d.outcomes.length - this.ring.length);
    for (let k = from; k < d.outcomes.length; k++) {
      const c = d.outcomes[k]! & 3;
      const ring = this.ring;
      ring[this.next] = c;
      this.next = this.next + 1 === ring.length ? 0 : this.next + 1;
      this.filled++;
      if (c & FAIL) this.failures++;
      if (c & SLOW) this.slow++;
    }
    this.unjudged = true;
  }
  dispose(): void {}
}

/**
 * The current bucket index for one (clock, bucket length), shared by every time window using them.
 *
 * Reading the clock costs tens of nanoseconds (40-90 ns measured on the 2-core CI machine), more
 * than the rest of a call's bookkeeping, so a call does not read it. The index is re-read from the
 * clock when the unref'd timer armed for the bucket's end has fired, and in any case every
 * {@link RECHECK} calls: a busy event loop runs no timer, and without the
 * count a stretch of millions of calls would all land in the bucket where it started, then vanish
 * from the window at once (stats() showing an empty window while the rule had judged a full one).
 * Reads (`stats()`) always read the clock, and a read that finds the index behind makes the next
 * call re-read it. One timer serves every breaker with that bucket length, and nothing is armed
 * without traffic, so idle breakers hold no timer.
 */
class BucketTicker {
  /** Current bucket index (time / bucketMs, floored), while `left` > 0. */
  index = 0;
  /** Calls left before the clock is read again; 0 once the bucket-end timer fired. */
  left = 0;
  /** The bucket-end timer is pending. */
  armed = false;
  readonly #tick = () => {
    this.left = 0;
    this.armed = false;
  };
  constructor(
    readonly clock: Clock,
    readonly bucketMs: number,
  ) {}
  current(): number {
    if (--this.left > 0) return this.index;
    const now = this.clock.now();
    const idx = Math.floor(now / this.bucketMs);
    this.index = idx;
    this.left = RECHECK;
    if (!this.armed) {
      this.armed = true;
      // Capped: Node timers cannot wait longer than 2^31 - 1 ms; firing early only re-reads the clock.
      const wait = Math.min(2_147_483_647, Math.max(1, (idx + 1) * this.bucketMs - now));
      this.clock.setTimeout(this.#tick, wait).unref();
    }
    return idx;
  }
  /**
   * A read found the clock at bucket `idx`: if the shared index is behind, the next call re-reads
   * the clock instead of counting in a bucket the read has already seen leave the window. (No
   * timer is armed here: reading an idle breaker's stats must not leave one behind.)
   */
  seen(idx: number): void {
    if (idx > this.index) this.left = 0;
  }
}

/**
 * Calls between two clock reads of a busy time window (see {@link BucketTicker}). Counted down on
 * the shared ticker: measured cheaper than testing the window's own running total.
 */
const RECHECK = 32;

const tickers = new WeakMap<Clock, Map<number, BucketTicker>>();

function tickerFor(clock: Clock, bucketMs: number): BucketTicker {
  let byLength = tickers.get(clock);
  if (byLength === undefined) {
    byLength = new Map();
    tickers.set(clock, byLength);
  }
  let t = byLength.get(bucketMs);
  if (t === undefined) {
    t = new BucketTicker(clock, bucketMs);
    byLength.set(bucketMs, t);
  }
  return t;
}

/**
 * A sliding time window of `size` buckets, with running totals. Buckets are aligned on multiples
 * of the bucket length; a bucket that left the window is cleared lazily, when a count or a read
 * finds a newer bucket index (after an idle gap longer than the window, all of them).
 */
class TimeRule implements TripRule {
  /**
   * Per bucket: calls, failures and (only when slow calls are tracked) slow calls, `stride` numbers
   * per bucket. Plain small integers: a packed array of them is far smaller than typed arrays.
   */
  readonly counts: number[];
  readonly stride: number;
  readonly ticker: BucketTicker;
  /** Index (time / bucketMs, floored) of the newest bucket; -1 before the first call. */
  epoch = -1;
  /** Offset in `counts` of the newest bucket. */
  cur = 0;
  totalCalls = 0;
  totalFails = 0;
  totalSlow = 0;
  /** Buckets left the window since the last judgement (which may have raised a rate). */
  rolled = false;
  constructor(
    readonly t: Spec,
    clock: Clock,
  ) {
    this.stride = t.slowCallDuration === undefined ? 2 : 3;
    this.counts = new Array<number>(t.size * this.stride).fill(0);
    this.ticker = tickerFor(clock, t.bucketMs);
  }
  get slowCallDuration(): number | undefined {
    return this.t.slowCallDuration;
  }
  /** Moves the window to `now`; the next record counts from there, so reads and records agree. */
  roll(now: number): void {
    const idx = Math.floor(now / this.t.bucketMs);
    this.ticker.seen(idx);
    this.rollTo(idx);
  }
  /** Moves the window to bucket `idx`, clearing buckets that fell out of it. */
  rollTo(idx: number): void {
    const epoch = this.epoch;
    if (idx <= epoch) return; // same bucket, or a clock that stepped back: keep counting in the newest
    const n = this.t.size;
    const c = this.counts;
    const st = this.stride;
    if (epoch < 0 || idx - epoch >= n) {
      c.fill(0);
      this.totalCalls = 0;
      this.totalFails = 0;
      this.totalSlow = 0;
    } else {
      for (let e = epoch + 1; e <= idx; e++) {
        const o = (e % n) * st;
        this.totalCalls -= c[o]!;
        this.totalFails -= c[o + 1]!;
        c[o] = 0;
        c[o + 1] = 0;
        if (st === 3) {
          this.totalSlow -= c[o + 2]!;
          c[o + 2] = 0;
        }
      }
    }
    this.epoch = idx;
    this.cur = (idx % n) * st;
    this.rolled = true;
  }
  record(failure: boolean, slow: boolean, consecutive: number): number {
    const idx = this.ticker.current();
    if (idx !== this.epoch) this.rollTo(idx);
    const c = this.counts;
    const o = this.cur;
    c[o]!++;
    this.totalCalls++;
    if (failure) {
      c[o + 1]!++;
      this.totalFails++;
    }
    if (slow) {
      c[o + 2]!++;
      this.totalSlow++;
    }
    // A fast success lowers both rates, unless buckets left the window since the last judgement
    // (they may have taken successes with them) or it brings the window to minimumCalls.
    if (
      !failure &&
      !slow &&
      !this.rolled &&
      this.totalCalls !== this.t.minimumCalls &&
      this.t.predicate === undefined
    )
      return Trip.none;
    this.rolled = false;
    return judge(this.t, this.totalCalls, this.totalFails, this.totalSlow, consecutive);
  }
  reset(): void {
    this.counts.fill(0);
    this.totalCalls = 0;
    this.totalFails = 0;
    this.totalSlow = 0;
  }
  read(now: number, out: TripCounts): void {
    this.roll(now);
    fill(out, this.totalCalls, this.totalFails, this.totalSlow, 0);
  }
  snapshot(): WindowSnapshot {
    const buckets: number[][] = [];
    const c = this.counts;
    const st = this.stride;
    for (let k = 0; k < this.t.size; k++)
      buckets.push([c[k * st]!, c[k * st + 1]!, st === 3 ? c[k * st + 2]! : 0]);
    return { kind: 'time', bucketMs: this.t.bucketMs, epoch: this.epoch, buckets };
  }
  restore(d: WindowSnapshot): void {
    if (d.kind !== 'time' || d.bucketMs !== this.t.bucketMs || !Array.isArray(d.buckets)) return;
    if (d.buckets.length !== this.t.size || !Number.isInteger(d.epoch) || d.epoch < 0) return;
    this.reset();
    const c = this.counts;
    for (let k = 0; k < d.buckets.length; k++) {
      const b = d.buckets[k];
      if (!Array.isArray(b)) continue;
      const calls = nonNeg(b[0]);
      const f = Math.min(calls, nonNeg(b[1]));
      let sl = Math.min(calls, nonNeg(b[2]));
      const st = this.stride;
      c[k * st] = calls;
      c[k * st + 1] = f;
      if (st === 3) c[k * st + 2] = sl;
      else sl = 0;
      this.totalCalls += calls;
      this.totalFails += f;
      this.totalSlow += sl;
    }
    this.epoch = d.epoch;
    this.cur = (d.epoch % this.t.size) * this.stride;
    this.rolled = true;
  }
  dispose(): void {}
}

/** A custom predicate over every call since the last close. */
class TotalRule implements TripRule {
  calls = 0;
  failures = 0;
  slow = 0;
  constructor(readonly t: Spec) {}
  get slowCallDuration(): number | undefined {
    return this.t.slowCallDuration;
  }
  record(failure: boolean, slow: boolean, consecutive: number): number {
    this.calls++;
    if (failure) this.failures++;
    if (slow) this.slow++;
    return judge(this.t, this.calls, this.failures, this.slow, consecutive);
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
  dispose(): void {}
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

/**
 * The `time` trip rule (and a custom predicate over `windowMs`): a sliding window of buckets.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { fill, nonNeg, Trip, type TripCounts, type TripRule, type WindowSnapshot } from './trip-rules-api.js';
import { judge, type Spec } from './trip-rules-spec.js';
import { type BucketTicker, tickerFor } from './trip-rules-ticker.js';

/**
 * A sliding time window of `size` buckets, with running totals. Buckets are aligned on multiples
 * of the bucket length; a bucket that left the window is cleared lazily, when a count or a read
 * finds a newer bucket index (after an idle gap longer than the window, all of them).
 */
export class TimeRule implements TripRule {
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

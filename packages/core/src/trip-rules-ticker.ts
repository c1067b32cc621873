/**
 * The bucket index shared by the time windows of one clock and bucket length (see
 * {@link BucketTicker}).
 *
 * @module
 */
import type { Clock } from './clock.js';

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
export class BucketTicker {
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

/** The ticker of this clock and bucket length, made on first use. */
export function tickerFor(clock: Clock, bucketMs: number): BucketTicker {
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

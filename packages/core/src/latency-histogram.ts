/**
 * A latency estimator in constant memory: a fixed set of log-spaced buckets (8 per doubling, so a
 * quantile is read to within ~9%), counts that decay by half once they reach a cap so the estimate
 * follows a service whose latency changes, and a cached quantile recomputed every few samples.
 *
 * Recording is O(1); reading a fresh quantile scans the buckets (O(144)), at most once per
 * `refreshEvery` samples, so a hot path pays O(1) amortised.
 *
 * @module
 */

const PER_DOUBLING = 8;
/** The upper bound of bucket 0, in ms: anything faster counts as this fast. */
const LOWEST_MS = 0.25;
/** 20 doublings above 0.25 ms reach ~262 s; slower samples count in the last bucket. */
const BUCKETS = PER_DOUBLING * 20;
const LOG_SCALE = PER_DOUBLING / Math.LN2;

/** Upper bound (ms) of bucket `i`. */
function upper(i: number): number {
  return LOWEST_MS * 2 ** (i / PER_DOUBLING);
}

/**
 * Estimates latency quantiles of recent samples in constant memory.
 *
 * @example
 * ```ts
 * const h = new LatencyHistogram();
 * h.record(12.5);
 * const p95 = h.quantile(0.95); // ms, or undefined before the first sample
 * ```
 */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  readonly #cap: number;
  #total = 0;
  #recorded = 0;

  /**
   * @param cap - once this many (decayed) samples are held, every count is halved: older samples
   *   weigh half as much at each halving, so the estimate follows the last ~`cap` samples.
   */
  constructor(cap = 1_000) {
    this.#cap = cap;
  }

  /** Samples recorded since creation (not decayed). */
  get recorded(): number {
    return this.#recorded;
  }

  /** Adds one latency sample in milliseconds (negative and NaN count as the fastest bucket). */
  record(ms: number): void {
    const i = ms > LOWEST_MS ? Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / LOWEST_MS) * LOG_SCALE)) : 0;
    this.#counts[i]!++;
    this.#recorded++;
    if (++this.#total >= this.#cap) {
      // Amortised O(1): one O(buckets) pass per cap/2 samples.
      let t = 0;
      for (let j = 0; j < BUCKETS; j++) t += this.#counts[j]! *= 0.5;
      this.#total = t;
    }
  }

  /**
   * The latency (ms) at or below which a fraction `q` (0..1) of the held samples fall, read as the
   * upper bound of its bucket (so it errs high by at most one bucket, ~9%); `undefined` when empty.
   */
  quantile(q: number): number | undefined {
    if (this.#total === 0) return undefined;
    const target = q * this.#total;
    let cum = 0;
    for (let i = 0; i < BUCKETS; i++) {
      cum += this.#counts[i]!;
      if (cum >= target && this.#counts[i]! > 0) return upper(i);
    }
    return upper(BUCKETS - 1);
  }
}

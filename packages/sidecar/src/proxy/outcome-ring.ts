/**
 * The outcomes of `workers: N` on their way to the one breaker decision: each worker writes every
 * settled call (success, failure or neutral, its duration and the breaker period it was admitted
 * in) into its own single-producer ring in a SharedArrayBuffer, and the main thread, the only
 * reader, drains the rings into its breaker, which takes the trip decision for all workers. A
 * write is a few typed-array stores and one atomic store: no allocation, no lock, and a full ring
 * never blocks the request (the outcome is dropped and counted).
 * @module
 */

/**
 * Records per worker ring (16 bytes each).
 *
 * @example
 * ```ts
 * for (let k = 0; k < RING_RECORDS; k++) ring.push(OUTCOME.success, 0, 1); // full
 * ```
 */
export const RING_RECORDS = 1024;
const HEAD = 0;
const TAIL = 1;
const DROPS = 2;
const HEADER_BYTES = 16;
const RECORD_BYTES = 16;

/**
 * Bytes one worker's ring takes.
 *
 * @example
 * ```ts
 * const sab = new SharedArrayBuffer(workers * RING_BYTES);
 * ```
 */
export const RING_BYTES = HEADER_BYTES + RING_RECORDS * RECORD_BYTES;

/**
 * Outcome kinds as written in a record.
 *
 * @example
 * ```ts
 * ring.push(OUTCOME.neutral, period, durationMs);
 * ```
 */
export const OUTCOME = { success: 0, failure: 1, neutral: 2 } as const;

/**
 * One worker's ring over `sab` at `offset` (the same bytes seen from the writing worker and the
 * reading main thread).
 *
 * @example
 * ```ts
 * const ring = new OutcomeRing(block.sab, offset);
 * ring.push(OUTCOME.failure, seq, 12.5);
 * ```
 */
export class OutcomeRing {
  readonly #h: Int32Array;
  readonly #i: Int32Array;
  readonly #f: Float64Array;

  constructor(sab: SharedArrayBuffer, offset: number) {
    this.#h = new Int32Array(sab, offset, 4);
    this.#i = new Int32Array(sab, offset + HEADER_BYTES, RING_RECORDS * 4);
    this.#f = new Float64Array(sab, offset + HEADER_BYTES, RING_RECORDS * 2);
  }

  /**
   * Writes one outcome (the worker's side); false when the ring was full and it was dropped
   * (never waits: the request path must not block on the main thread).
   * `period` is the breaker period (shared sequence number) the call was admitted in.
   */
  push(kind: number, period: number, durationMs: number): boolean {
    const h = this.#h;
    const head = Atomics.load(h, HEAD);
    if (((head - Atomics.load(h, TAIL)) | 0) >= RING_RECORDS) {
      Atomics.add(h, DROPS, 1);
      return false;
    }
    // unsigned: the indices wrap at 2^32, a multiple of the ring's size
    const slot = (head >>> 0) % RING_RECORDS;
    this.#i[slot * 4] = period;
    this.#i[slot * 4 + 1] = kind;
    this.#f[slot * 2 + 1] = durationMs;
    // the seq-cst store publishes the record's plain writes to the reader
    Atomics.store(h, HEAD, (head + 1) | 0);
    return true;
  }

  /** Reads every outcome written so far (the main thread's side); returns how many. */
  drain(each: (kind: number, period: number, durationMs: number) => void): number {
    const h = this.#h;
    const head = Atomics.load(h, HEAD);
    let tail = Atomics.load(h, TAIL);
    const n = (head - tail) | 0;
    while (tail !== head) {
      const slot = (tail >>> 0) % RING_RECORDS;
      each(this.#i[slot * 4 + 1]!, this.#i[slot * 4]!, this.#f[slot * 2 + 1]!);
      tail = (tail + 1) | 0;
    }
    Atomics.store(h, TAIL, tail);
    return n;
  }

  /** Outcomes dropped because the ring was full (the main thread was not draining fast enough). */
  get dropped(): number {
    return Atomics.load(this.#h, DROPS);
  }
}

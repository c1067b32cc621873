/**
 * A seeded random source, so a chaos experiment (or a test) injects on the same calls every run.
 *
 * @module
 */

/**
 * Returns a generator of numbers in [0, 1) determined by `seed` (mulberry32: 32 bits of state,
 * fast, statistically fine for choosing which calls to disturb; not for cryptography).
 *
 * @example
 * ```ts
 * import { chaosFault, seededRandom } from 'tripswitch/chaos';
 * const faults = chaosFault({ rate: 0.1, random: seededRandom(42) });
 * ```
 */
export function seededRandom(seed: number): () => number {
  if (!Number.isFinite(seed)) throw new RangeError(`seededRandom: seed must be a finite number, got ${seed}`);
  let a = Math.trunc(seed) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

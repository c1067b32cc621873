/**
 * The sidecar's one door to real time. Everything else in the sidecar reads time and schedules
 * timers through a `Clock` it is given (the `Sidecar`'s, which tests replace with a `TestClock`),
 * and that clock defaults to {@link realClock}. A lint rule (biome.json: `noRestrictedGlobals`
 * and `noRestrictedImports` on `packages/sidecar/src`) refuses `setTimeout`, `setInterval`,
 * `Date`, `performance` and tripswitch's `systemClock` anywhere but here, as core does with its
 * own `clock.ts`.
 * @module
 */
import { type Clock, systemClock } from 'tripswitch';

/**
 * Real time: monotonic epoch milliseconds and Node's timers (tripswitch's `systemClock`).
 *
 * @example
 * ```ts
 * const sidecar = new Sidecar(config, { clock: realClock }); // the default
 * ```
 */
export const realClock: Clock = systemClock;

/**
 * Microseconds since the epoch on a clock every thread of the process shares (performance's time
 * origin is the process's): for measuring how long a change written by one worker thread takes to
 * reach another. A measurement only, never a decision.
 *
 * @example
 * ```ts
 * const t0 = sharedMicros(); doWork(); console.log(`${sharedMicros() - t0} us`);
 * ```
 */
export function sharedMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

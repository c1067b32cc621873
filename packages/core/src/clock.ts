/**
 * The one source of time for every tripswitch policy.
 *
 * Core modules never call `Date.now`, `performance.now` or `setTimeout` directly: they ask a
 * {@link Clock}. Production code uses {@link systemClock}; tests pass a `TestClock` from
 * `tripswitch/testing` and advance it by hand, so no test ever sleeps.
 *
 * @module
 */

/**
 * A scheduled callback, as returned by {@link Clock.setTimeout}. Opaque apart from `unref` and `ref`.
 *
 * A new timer keeps the process alive (as Node's timers do). tripswitch keeps that for a timer a
 * caller's promise waits on (a retry's backoff, a rate limiter's wait, a timeout's deadline) and
 * unrefs the timers nobody awaits (eager half-open, bucket ticks, a write queue's next replay).
 *
 * @example
 * ```ts
 * const handle: TimerHandle = clock.setTimeout(flush, 1_000).unref(); // must not keep the process alive
 * clock.clearTimeout(handle);
 * ```
 */
export interface TimerHandle {
  /** Lets the process exit while this timer is pending (no-op on clocks without a process). */
  unref(): TimerHandle;
  /**
   * Undoes {@link TimerHandle.unref}: the pending timer keeps the process alive again. Optional so
   * that clocks written before it still work; policies skip it when absent.
   */
  ref?(): TimerHandle;
}

/**
 * Reads time and schedules timers.
 *
 * `now()` is milliseconds since the Unix epoch and never goes backwards on the system clock, so
 * durations are safe to compute by subtraction and `new Date(clock.now())` is a readable instant.
 *
 * @example
 * ```ts
 * import { circuitBreaker, systemClock } from 'tripswitch';
 * const breaker = circuitBreaker({ name: 'payments', clock: systemClock });
 * ```
 */
export interface Clock {
  /** Milliseconds since the Unix epoch (fractional on the system clock). */
  now(): number;
  /** Runs `fn` after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer from {@link Clock.setTimeout}; a cleared or fired handle is ignored. */
  clearTimeout(handle: TimerHandle): void;
}

// performance.timeOrigin + performance.now() is epoch-based like Date.now() but monotonic:
// an NTP step backwards cannot make a breaker's open period last longer or a duration negative.
// Held in a module constant: in Node, the global `performance` is an accessor on globalThis, and
// reading it on every call costs more than the `now()` itself.
const perf = globalThis.performance;
const origin = perf.timeOrigin;

/**
 * A timer whose runtime gives back a number (browsers; Deno without Node compatibility), wrapped
 * so callers can `unref()` it like Node's. Deno can unref by id; elsewhere nothing keeps a process
 * alive, so it is a no-op.
 */
class IdTimer implements TimerHandle {
  readonly id: number;
  constructor(id: number) {
    this.id = id;
  }
  unref(): TimerHandle {
    (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno?.unrefTimer?.(this.id);
    return this;
  }
  ref(): TimerHandle {
    (globalThis as { Deno?: { refTimer?: (id: number) => void } }).Deno?.refTimer?.(this.id);
    return this;
  }
}

/**
 * The real clock: monotonic epoch milliseconds and the runtime's timers (Node's are returned as
 * they are; numeric ids are wrapped so `unref()` works everywhere).
 *
 * @example
 * ```ts
 * const started = systemClock.now();
 * ```
 */
export const systemClock: Clock = {
  now: () => origin + perf.now(),
  setTimeout: (fn, ms) => {
    const t: unknown = setTimeout(fn, ms);
    return typeof t === 'number' ? new IdTimer(t) : (t as TimerHandle);
  },
  clearTimeout: (handle) =>
    clearTimeout((handle instanceof IdTimer ? handle.id : handle) as Parameters<typeof clearTimeout>[0]),
};

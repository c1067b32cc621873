/**
 * `ReplayPacing`: when a write queue may replay next. The same rules serve `writeQueue()` and the
 * Redis outbox of `@tripswitch/redis`, which implement one contract on two stores.
 *
 * @module
 */
import type { Backoff } from './backoff.js';
import type { Clock } from './clock.js';
import { isCircuitOpenError } from './errors.js';

/**
 * The wait a write queue owes before its next replay: a backoff after each failed attempt, the
 * time an open breaker names, none once a write gets through or the breaker closes. A failed
 * first attempt (a write's own, before it was queued) owes a backoff too, unless one is owed
 * already, so the first replay waits like a retry would.
 *
 * @example
 * ```ts
 * const pacing = new ReplayPacing(exponentialBackoff(), systemClock, Math.random);
 * if (clock.now() >= pacing.retryAt) await replayOne(); // failure: pacing.failed(); success: pacing.succeeded()
 * ```
 */
export class ReplayPacing {
  /** Earliest time (clock ms) for the next replay; 0 when no wait is owed. */
  retryAt = 0;
  #failures = 0;
  #lastDelay = 0;
  readonly #backoff: Backoff;
  readonly #clock: Clock;
  readonly #random: () => number;

  constructor(backoff: Backoff, clock: Clock, random: () => number) {
    this.#backoff = backoff;
    this.#clock = clock;
    this.#random = random;
  }

  /** Counts a failed attempt and sets when the next replay may go. Returns the wait, in ms. */
  failed(): number {
    this.#failures++;
    const delay = Math.max(0, this.#backoff.delay(this.#failures, this.#lastDelay, this.#random));
    this.#lastDelay = delay;
    this.retryAt = this.#clock.now() + delay;
    return delay;
  }

  /**
   * A write's first attempt failed with `error`: the first replay waits like a retry would,
   * unless a wait is already owed (a backoff, or a breaker's retryAt, still ahead) or the attempt
   * was refused by an open breaker (whose closing starts replays). A retryAt in the past is no
   * wait: it is left by failures whose writes then died or were discarded.
   */
  firstAttemptFailed(error: unknown): void {
    if (this.retryAt <= this.#clock.now() && !isCircuitOpenError(error)) this.failed();
  }

  /**
   * A replay was refused by an open breaker: not an attempt. Come back when its error says, or
   * after a backoff when it names no time still ahead (never a loop of immediate retries).
   */
  circuitOpen(error: unknown): void {
    const retryAt = (error as { retryAt?: unknown }).retryAt;
    if (typeof retryAt === 'number' && retryAt > this.#clock.now()) this.retryAt = retryAt;
    else this.failed();
  }

  /** A replay got through: no wait owed, the backoff starts over. */
  succeeded(): void {
    this.#failures = 0;
    this.#lastDelay = 0;
    this.retryAt = 0;
  }

  /** The breaker closed (or stopped guarding): replays may go at once; the next failure backs off from the start. */
  breakerClosed(): void {
    this.retryAt = 0;
    this.#failures = 0;
  }
}

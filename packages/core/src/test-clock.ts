import type { Clock, TimerHandle } from './clock.js';

interface Timer extends TimerHandle {
  readonly id: number;
  at: number;
  fn: (() => void) | undefined;
  refed: boolean;
}

/**
 * A manual clock for tests: time stands still until the test calls {@link TestClock.advance}.
 *
 * Timers fire in order of their due time (then of scheduling), at exactly their due time, so a
 * test can assert what a policy does at `t = 29_999` and at `t = 30_000` without sleeping.
 *
 * @example
 * ```ts
 * import { circuitBreaker } from 'tripswitch';
 * import { TestClock } from 'tripswitch/testing';
 *
 * const clock = new TestClock();
 * const breaker = circuitBreaker({ clock, openDuration: 5_000 });
 * // ... make it open, then:
 * clock.advance(5_000);
 * ```
 */
export class TestClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: Timer[] = [];

  /** @param start - the initial epoch milliseconds. @default 1_700_000_000_000 */
  constructor(start = 1_700_000_000_000) {
    if (!Number.isFinite(start))
      throw new RangeError(`TestClock: start must be a finite number, got ${start}`);
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const timer: Timer = {
      id: ++this.#seq,
      at: this.#now + delay,
      fn,
      refed: true,
      unref() {
        this.refed = false;
        return this;
      },
      ref() {
        this.refed = true;
        return this;
      },
    };
    this.#timers.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    const i = this.#timers.indexOf(handle as Timer);
    if (i >= 0) this.#timers.splice(i, 1);
  }

  /** How many timers are scheduled and not yet fired or cleared. */
  get pending(): number {
    return this.#timers.length;
  }

  /**
   * How many pending timers are ref'd: on the system clock, each would keep the process alive.
   * An idle policy should hold none; a caller waiting on a retry's backoff holds one.
   */
  get refed(): number {
    let n = 0;
    for (const t of this.#timers) if (t.refed) n++;
    return n;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order, synchronously. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`TestClock.advance: ms must be >= 0, got ${ms}`);
    const end = this.#now + ms;
    for (let t = this.#next(end); t; t = this.#next(end)) {
      this.#now = t.at;
      const fn = t.fn!;
      t.fn = undefined;
      fn();
    }
    this.#now = end;
  }

  /**
   * Like {@link TestClock.advance}, but lets promise callbacks run before and after each timer,
   * so async code that schedules a new timer after an `await` sees it fire within the same advance.
   */
  async advanceAsync(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`TestClock.advanceAsync: ms must be >= 0, got ${ms}`);
    const end = this.#now + ms;
    await flushMicrotasks();
    for (let t = this.#next(end); t; t = this.#next(end)) {
      this.#now = t.at;
      const fn = t.fn!;
      t.fn = undefined;
      fn();
      await flushMicrotasks();
    }
    this.#now = end;
    await flushMicrotasks();
  }

  /** Fires every pending timer (and timers they schedule) until none is left. Bounded to stop runaway loops. */
  runAll(limit = 10_000): void {
    for (let i = 0; i < limit; i++) {
      const t = this.#next(Number.POSITIVE_INFINITY);
      if (!t) return;
      this.#now = Math.max(this.#now, t.at);
      const fn = t.fn!;
      t.fn = undefined;
      fn();
    }
    throw new Error(`TestClock.runAll: still ${this.#timers.length} timers after ${limit} firings`);
  }

  #next(end: number): Timer | undefined {
    let best = -1;
    for (let i = 0; i < this.#timers.length; i++) {
      const t = this.#timers[i]!;
      if (t.at > end) continue;
      if (
        best < 0 ||
        t.at < this.#timers[best]!.at ||
        (t.at === this.#timers[best]!.at && t.id < this.#timers[best]!.id)
      )
        best = i;
    }
    if (best < 0) return undefined;
    return this.#timers.splice(best, 1)[0];
  }
}

async function flushMicrotasks(): Promise<void> {
  // A few macrotask-free turns: enough for chains of awaits inside a policy.
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

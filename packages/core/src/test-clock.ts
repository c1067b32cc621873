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

  /** The due time (epoch ms on this clock) of the next pending timer, or `undefined` when none is pending. */
  nextTimerAt(): number | undefined {
    let at: number | undefined;
    for (const t of this.#timers) if (at === undefined || t.at < at) at = t.at;
    return at;
  }

  /**
   * Lets pending promise callbacks run, moves time to the next timer's due time and fires every
   * timer due then (in order), then lets promise callbacks run again. Resolves with the new time,
   * or `undefined` (time unchanged) when no timer is pending.
   *
   * Promise callbacks run to completion, however long their chain: each step waits one macrotask
   * turn, which Node (and browsers) take only once the microtask queue is empty.
   */
  async advanceToNext(): Promise<number | undefined> {
    await drain();
    const at = this.nextTimerAt();
    if (at === undefined) return undefined;
    this.advance(Math.max(0, at - this.#now));
    await drain();
    return this.#now;
  }

  /**
   * Advances time, timer by timer, until `promise` settles, and returns (or throws) its outcome.
   * Code under test may schedule new timers after any number of awaits: they are waited for.
   *
   * Throws a clear error instead of waiting forever when the promise is still pending and no timer
   * is left (it waits on something this clock does not drive), or after `maxTimers` firings or
   * `maxMs` of clock time (a loop that keeps scheduling timers).
   *
   * @example
   * ```ts
   * const clock = new TestClock();
   * const chain = wrap(retry({ maxAttempts: 3, clock }), timeout({ ms: 1_000, clock }));
   * const hangsOnce = faulty({ schedule: ['hang'], value: 'ok', clock });
   * assert.equal(await clock.settle(chain.execute(hangsOnce)), 'ok');
   * ```
   */
  async settle<T>(promise: PromiseLike<T>, options?: SettleOptions): Promise<T> {
    const maxTimers = options?.maxTimers ?? 10_000;
    const maxMs = options?.maxMs ?? 86_400_000;
    if (!(maxTimers >= 0)) throw new RangeError(`TestClock.settle: maxTimers must be >= 0, got ${maxTimers}`);
    if (!(maxMs >= 0)) throw new RangeError(`TestClock.settle: maxMs must be >= 0, got ${maxMs}`);
    // An object, not a local: TypeScript cannot see the callbacks change a local.
    const seen: { state: 'pending' | 'fulfilled' | 'rejected'; outcome: unknown } = {
      state: 'pending',
      outcome: undefined,
    };
    Promise.resolve(promise).then(
      (v) => {
        seen.state = 'fulfilled';
        seen.outcome = v;
      },
      (e) => {
        seen.state = 'rejected';
        seen.outcome = e;
      },
    );
    const start = this.#now;
    let fired = 0;
    for (;;) {
      await drain();
      if (seen.state === 'fulfilled') return seen.outcome as T;
      if (seen.state === 'rejected') throw seen.outcome;
      const at = this.nextTimerAt();
      if (at === undefined)
        throw new Error(
          `TestClock.settle: the promise is still pending and no timer is scheduled ` +
            `(after ${this.#now - start} ms and ${fired} timers): it waits on something this clock does not drive`,
        );
      if (fired >= maxTimers || at - start > maxMs)
        throw new Error(
          `TestClock.settle: the promise did not settle within ${fired} timers and ${this.#now - start} ms ` +
            `(limits: maxTimers ${maxTimers}, maxMs ${maxMs}); the next timer is due at +${at - start} ms`,
        );
      this.advance(Math.max(0, at - this.#now));
      fired++;
    }
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

/**
 * Limits of {@link TestClock.settle}.
 *
 * @example
 * ```ts
 * await clock.settle(promise, { maxTimers: 100, maxMs: 60_000 });
 * ```
 */
export interface SettleOptions {
  /** Timer due times advanced to before giving up. @default 10_000 */
  maxTimers?: number;
  /** Clock time advanced before giving up, in ms. @default 86_400_000 (a day) */
  maxMs?: number;
}

// One macrotask turn: the runtime takes it only once every pending promise callback has run.
const macrotask: (fn: () => void) => void =
  typeof globalThis.setImmediate === 'function'
    ? (fn) => globalThis.setImmediate(fn)
    : (fn) => globalThis.setTimeout(fn, 0);

function drain(): Promise<void> {
  return new Promise((resolve) => macrotask(resolve));
}

async function flushMicrotasks(): Promise<void> {
  // A few macrotask-free turns: enough for chains of awaits inside a policy.
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

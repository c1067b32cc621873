/**
 * The FIFO queue of calls waiting for a slot, shared by `bulkhead()` and `adaptiveLimiter()`.
 *
 * A doubly linked list: O(1) enqueue, dequeue and removal of an aborted waiter from the middle.
 * The waiter is its own abort listener (`handleEvent`), so waiting allocates nothing but the
 * waiter. Queue timeouts share one clock timer per queue: every waiter waits the same
 * `queueTimeoutMs`, so the queue is already in deadline order and the timer is armed for its head.
 *
 * Internal: not exported from any entry point.
 *
 * @module
 */
import type { Clock, TimerHandle } from './clock.js';
import type { PolicyContext } from './policy.js';

/**
 * A call waiting in a {@link WaiterQueue}: what to run once granted, and how to settle its promise.
 *
 * @example
 * ```ts
 * const w = queue.shift();
 * if (w !== undefined) w.resolve(run(w.fn, w.signal));
 * ```
 */
export class Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  queued = true;
  constructor(
    readonly queue: WaiterQueue,
    readonly deadline: number,
    readonly signal: AbortSignal | undefined,
    readonly fn: (ctx: PolicyContext) => unknown,
    readonly resolve: (v: unknown) => void,
    readonly reject: (e: unknown) => void,
  ) {}

  /** The caller's signal aborted while waiting: leave the queue, reject with the signal's reason. */
  handleEvent(): void {
    if (!this.queued) return;
    this.queue.drop(this);
    this.reject(this.signal!.reason);
  }
}

/**
 * Options of a {@link WaiterQueue}.
 *
 * @example
 * ```ts
 * const options: WaiterQueueOptions = {
 *   clock, queueMs: 1_000, ref: true, idleTimer: 'unref', expire: () => new Error('queue timeout'),
 * };
 * ```
 */
export interface WaiterQueueOptions {
  clock: Clock;
  /** How long a waiter may wait, in ms; `Infinity`: no timer at all. */
  queueMs: number;
  /** Whether the queue timer keeps the process alive while calls wait. */
  ref: boolean;
  /**
   * What becomes of the queue timer once the last waiter leaves: `'unref'` leaves it armed but
   * unref'd (it is ref'd again for the next waiter: no timer churn when a queue fills and drains
   * often), `'clear'` clears it (an idle policy holds no timer).
   */
  idleTimer: 'unref' | 'clear';
  /** The error a waiter past its deadline rejects with (called once per such waiter, after it left). */
  expire: () => unknown;
}

/**
 * A FIFO queue of {@link Waiter}s with abort and a shared queue timeout.
 *
 * @example
 * ```ts
 * const queue = new WaiterQueue({ clock, queueMs: 500, ref: true, idleTimer: 'clear', expire });
 * return new Promise((resolve, reject) => queue.add(signal, fn, resolve, reject));
 * ```
 */
export class WaiterQueue {
  /** The waiter granted next. */
  head: Waiter | undefined = undefined;
  /** Waiters in the queue. */
  size = 0;
  #tail: Waiter | undefined = undefined;
  #timer: TimerHandle | undefined = undefined;
  readonly #clock: Clock;
  readonly #queueMs: number;
  readonly #finite: boolean;
  readonly #ref: boolean;
  readonly #clearIdle: boolean;
  readonly #expire: () => unknown;
  readonly #onTimer = () => this.#fire();

  constructor(options: WaiterQueueOptions) {
    this.#clock = options.clock;
    this.#queueMs = options.queueMs;
    this.#finite = Number.isFinite(options.queueMs);
    this.#ref = options.ref;
    this.#clearIdle = options.idleTimer === 'clear';
    this.#expire = options.expire;
  }

  /** Appends a waiter; `signal` aborting takes it out and rejects it with the signal's reason. */
  add(
    signal: AbortSignal | undefined,
    fn: (ctx: PolicyContext) => unknown,
    resolve: (v: unknown) => void,
    reject: (e: unknown) => void,
  ): void {
    const finite = this.#finite;
    const w = new Waiter(this, finite ? this.#clock.now() + this.#queueMs : 0, signal, fn, resolve, reject);
    this.size++;
    if (this.#tail === undefined) this.head = w;
    else {
      this.#tail.next = w;
      w.prev = this.#tail;
    }
    this.#tail = w;
    signal?.addEventListener('abort', w);
    if (finite) {
      if (this.#timer === undefined) this.#arm(this.#queueMs);
      // A timer left armed by waiters that have gone ('unref'): a caller waits on it again.
      else if (this.size === 1 && this.#ref) this.#timer.ref?.();
    }
  }

  /** Takes the head out of the queue (to grant it a slot); undefined when none waits. */
  shift(): Waiter | undefined {
    const w = this.head;
    if (w !== undefined) this.drop(w);
    return w;
  }

  /** Removes a waiter from the queue (granted, aborted or timed out). */
  drop(w: Waiter): void {
    w.queued = false;
    if (--this.size === 0 && this.#timer !== undefined) {
      if (this.#clearIdle) {
        this.#clock.clearTimeout(this.#timer);
        this.#timer = undefined;
      }
      // Nobody waits on the queue timer any more: it must not keep the process alive.
      else if (this.#ref) this.#timer.unref();
    }
    const { prev, next } = w;
    if (prev === undefined) this.head = next;
    else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    w.prev = w.next = undefined;
    w.signal?.removeEventListener('abort', w);
  }

  #arm(ms: number): void {
    // Armed only while calls wait, and they wait on it.
    const t = this.#clock.setTimeout(this.#onTimer, ms);
    if (!this.#ref) t.unref();
    this.#timer = t;
  }

  #fire(): void {
    this.#timer = undefined;
    const now = this.#clock.now();
    for (let w = this.head; w !== undefined && w.deadline <= now; w = this.head) {
      this.drop(w);
      w.reject(this.#expire());
    }
    if (this.head !== undefined) this.#arm(Math.max(1, this.head.deadline - now));
  }
}

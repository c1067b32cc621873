/**
 * `bulkhead()`: at most `maxConcurrent` calls at once, a bounded FIFO queue behind them.
 *
 * The queue is a doubly linked list (O(1) enqueue, dequeue and removal of an aborted waiter from
 * the middle). Queue timeouts share one clock timer per bulkhead: every waiter waits the same
 * `queueTimeoutMs`, so the queue is already in deadline order and the timer is armed for its head.
 *
 * @module
 */
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { BulkheadRejectedError } from './errors.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * Options of {@link bulkhead}.
 *
 * @example
 * ```ts
 * bulkhead({ maxConcurrent: 10, maxQueue: 50, queueTimeoutMs: 2_000 });
 * ```
 */
export interface BulkheadOptions {
  /** Calls running at once (>= 1). */
  maxConcurrent: number;
  /** Calls waiting for a slot; beyond it calls are rejected at once. @default 0 */
  maxQueue?: number;
  /** How long a call may wait in the queue, in ms. @default Infinity (no limit) */
  queueTimeoutMs?: number;
  /**
   * Whether a queued call's timeout keeps the process alive, like the `ref` option of Node's
   * `timers/promises`: the caller's promise depends on it when the running calls never finish.
   * `false` lets the process exit while calls wait. (The timer is unref'd once the queue is empty.)
   * @default true
   */
  ref?: boolean;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Counts of a bulkhead.
 *
 * @example
 * ```ts
 * const { running, queued } = b.stats();
 * ```
 */
export interface BulkheadStats {
  running: number;
  queued: number;
  maxConcurrent: number;
  maxQueue: number;
  /** Calls admitted (run at once or after queueing), since creation. */
  executed: number;
  /** Calls rejected (full or queue timeout), since creation. */
  rejected: number;
}

/**
 * Events of a {@link BulkheadPolicy}.
 *
 * @example
 * ```ts
 * b.on('rejected', ({ reason }) => metrics.shed.inc({ reason }));
 * ```
 */
export interface BulkheadEvents {
  rejected: { reason: 'full' | 'queue-timeout' };
}

/**
 * A policy made by {@link bulkhead}.
 *
 * @example
 * ```ts
 * const b: BulkheadPolicy = bulkhead({ maxConcurrent: 4 });
 * ```
 */
export interface BulkheadPolicy extends Policy<PolicyContext> {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'bulkhead';
  stats(): BulkheadStats;
  on<K extends keyof BulkheadEvents>(event: K, listener: (e: BulkheadEvents[K]) => void): Subscription;
  /** @internal */
  readonly contextKeys: readonly string[];
}

const OWNER = 'bulkhead';
const KEYS = ['maxConcurrent', 'maxQueue', 'queueTimeoutMs', 'ref', 'clock'] as const;
const NO_KEYS: readonly string[] = [];
const plainContext: PolicyContext = Object.freeze({ signal: neverAbortedSignal });

class Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  queued = true;
  constructor(
    readonly owner: Bulkhead,
    readonly deadline: number,
    readonly signal: AbortSignal | undefined,
    readonly fn: (ctx: PolicyContext) => unknown,
    readonly resolve: (v: unknown) => void,
    readonly reject: (e: unknown) => void,
  ) {}

  /** The caller's signal aborted while waiting. */
  handleEvent(): void {
    if (!this.queued) return;
    this.owner.drop(this);
    this.reject(this.signal!.reason);
  }
}

class Bulkhead implements BulkheadPolicy {
  // On the prototype, not per instance: idle policies stay as small as they were.
  get kind(): 'bulkhead' {
    return 'bulkhead';
  }

  readonly contextKeys = NO_KEYS;
  readonly #max: number;
  readonly #maxQueue: number;
  readonly #queueMs: number;
  readonly #ref: boolean;
  readonly #clock: Clock;
  readonly #events = new Emitter<BulkheadEvents>();
  #running = 0;
  #queued = 0;
  #executed = 0;
  #rejected = 0;
  #head: Waiter | undefined = undefined;
  #tail: Waiter | undefined = undefined;
  #timer: TimerHandle | undefined = undefined;
  readonly #onTimer = () => this.#fire();
  readonly #release = () => this.#done();

  constructor(opts: BulkheadOptions) {
    const v = validator(OWNER);
    const o = v.object('options', opts);
    rejectUnknownKeys(OWNER, o, KEYS);
    this.#max = v.number('maxConcurrent', o.maxConcurrent, { min: 1, integer: true });
    this.#maxQueue = v.optionalNumber('maxQueue', o.maxQueue, { min: 0, integer: true }) ?? 0;
    this.#queueMs =
      v.optionalNumber('queueTimeoutMs', o.queueTimeoutMs, { min: 0 }) ?? Number.POSITIVE_INFINITY;
    this.#ref = v.optionalBoolean('ref', o.ref) ?? true;
    this.#clock = v.clock('clock', o.clock) ?? systemClock;
  }

  stats(): BulkheadStats {
    return {
      running: this.#running,
      queued: this.#queued,
      maxConcurrent: this.#max,
      maxQueue: this.#maxQueue,
      executed: this.#executed,
      rejected: this.#rejected,
    };
  }

  on<K extends keyof BulkheadEvents>(event: K, listener: (e: BulkheadEvents[K]) => void): Subscription {
    return this.#events.on(event, listener);
  }

  execute<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError('execute: fn must be a function'));
    if (signal === neverAbortedSignal) signal = undefined;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#running < this.#max) {
      this.#running++;
      return this.#run(fn, signal);
    }
    if (this.#queued >= this.#maxQueue) return Promise.reject(this.#reject('full'));
    return new Promise<T>((resolve, reject) => {
      const finite = Number.isFinite(this.#queueMs);
      const w = new Waiter(
        this,
        finite ? this.#clock.now() + this.#queueMs : 0,
        signal,
        fn,
        resolve as (v: unknown) => void,
        reject,
      );
      this.#queued++;
      if (this.#tail === undefined) this.#head = w;
      else {
        this.#tail.next = w;
        w.prev = this.#tail;
      }
      this.#tail = w;
      signal?.addEventListener('abort', w);
      if (finite) {
        if (this.#timer === undefined) this.#arm(this.#queueMs);
        // A timer left armed by waiters that have gone: a caller waits on it again.
        else if (this.#queued === 1 && this.#ref) this.#timer.ref?.();
      }
    });
  }

  #reject(reason: 'full' | 'queue-timeout'): BulkheadRejectedError {
    this.#rejected++;
    if (this.#events.has('rejected')) this.#events.emit('rejected', { reason });
    return new BulkheadRejectedError(this.#max, this.#maxQueue, reason);
  }

  #run<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal: AbortSignal | undefined): Promise<T> {
    this.#executed++;
    let r: PromiseLike<T> | T;
    try {
      r = fn(signal === undefined ? plainContext : { signal });
    } catch (err) {
      this.#done();
      return Promise.reject(err);
    }
    const p = Promise.resolve(r);
    p.then(this.#release, this.#release);
    return p;
  }

  #done(): void {
    this.#running--;
    const w = this.#head;
    if (w === undefined) return;
    this.drop(w);
    this.#running++;
    w.resolve(this.#run(w.fn, w.signal));
  }

  /** @internal Removes a waiter from the queue (granted, aborted or timed out). */
  drop(w: Waiter): void {
    w.queued = false;
    // Nobody waits on the queue timer any more: it must not keep the process alive.
    if (--this.#queued === 0 && this.#timer !== undefined && this.#ref) this.#timer.unref();
    const { prev, next } = w;
    if (prev === undefined) this.#head = next;
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
    for (let w = this.#head; w !== undefined && w.deadline <= now; w = this.#head) {
      this.drop(w);
      w.reject(this.#reject('queue-timeout'));
    }
    if (this.#head !== undefined) this.#arm(Math.max(1, this.#head.deadline - now));
  }
}

/**
 * Limits concurrency: at most `maxConcurrent` calls run, up to `maxQueue` wait in FIFO order (for
 * at most `queueTimeoutMs`), the rest are rejected with `BulkheadRejectedError` at once. A waiting
 * call whose signal aborts leaves the queue and rejects with the signal's reason.
 *
 * @example
 * ```ts
 * import { bulkhead, isBulkheadRejectedError } from 'tripswitch';
 * const pool = bulkhead({ maxConcurrent: 8, maxQueue: 100, queueTimeoutMs: 1_000 });
 * const rows = await pool.execute(({ signal }) => db.query(sql, { signal }), req.signal);
 * ```
 */
export function bulkhead(options: BulkheadOptions): BulkheadPolicy {
  return new Bulkhead(options);
}

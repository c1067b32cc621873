/**
 * `bulkhead()`: at most `maxConcurrent` calls at once, a bounded FIFO queue behind them.
 *
 * The queue is a {@link WaiterQueue} (a doubly linked list, one clock timer for its head), shared
 * with `adaptiveLimiter()`; a bulkhead's queue timer stays armed, unref'd, while nobody waits.
 *
 * @module
 */
import { type Clock, systemClock } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { BulkheadRejectedError } from './errors.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
import { rejectUnknownKeys, validator } from './validate.js';
import { WaiterQueue } from './waiter-queue.js';

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

class Bulkhead implements BulkheadPolicy {
  // On the prototype, not per instance: idle policies stay as small as they were.
  get kind(): 'bulkhead' {
    return 'bulkhead';
  }

  readonly contextKeys = NO_KEYS;
  readonly #max: number;
  readonly #maxQueue: number;
  readonly #queue: WaiterQueue;
  readonly #events = new Emitter<BulkheadEvents>();
  #running = 0;
  #executed = 0;
  #rejected = 0;
  readonly #release = () => this.#done();

  constructor(opts: BulkheadOptions) {
    const v = validator(OWNER);
    const o = v.object('options', opts);
    rejectUnknownKeys(OWNER, o, KEYS);
    this.#max = v.number('maxConcurrent', o.maxConcurrent, { min: 1, integer: true });
    this.#maxQueue = v.optionalNumber('maxQueue', o.maxQueue, { min: 0, integer: true }) ?? 0;
    const queueMs =
      v.optionalNumber('queueTimeoutMs', o.queueTimeoutMs, { min: 0 }) ?? Number.POSITIVE_INFINITY;
    const ref = v.optionalBoolean('ref', o.ref) ?? true;
    const clock = v.clock('clock', o.clock) ?? systemClock;
    this.#queue = new WaiterQueue({
      clock,
      queueMs,
      ref,
      idleTimer: 'unref',
      expire: () => this.#reject('queue-timeout'),
    });
  }

  stats(): BulkheadStats {
    return {
      running: this.#running,
      queued: this.#queue.size,
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
    if (this.#queue.size >= this.#maxQueue) return Promise.reject(this.#reject('full'));
    return new Promise<T>((resolve, reject) =>
      this.#queue.add(signal, fn, resolve as (v: unknown) => void, reject),
    );
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
    const w = this.#queue.shift();
    if (w === undefined) return;
    this.#running++;
    w.resolve(this.#run(w.fn, w.signal));
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

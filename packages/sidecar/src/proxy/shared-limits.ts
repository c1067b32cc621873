/**
 * The limits of one cluster shared by the worker threads of `workers: N`: the counts that
 * `max_requests`, `max_pending_requests` and `max_retries` bound live in a SharedArrayBuffer and are
 * taken with a compare-exchange loop, so `max_requests: 100` is 100 across all workers, never
 * exceeded however the requests spread. Each worker also keeps its own share of every count in its
 * own words, so that the main thread can give back what a worker that died was holding.
 * @module
 */
import type { ResolvedThreshold } from '../config/resolve.js';
import type { ThresholdConfig } from '../config/schema.js';
import { waitAsync } from './atomics-wait.js';
import { GrantQueue } from './grant-queue.js';
import { Limiter, type Waiter } from './limits.js';

// Words of one priority: the shared counts, then per worker its share and its overflow counts.
const ACTIVE = 0;
const PENDING = 1;
const RETRIES = 2;
/** Bumped on every release that frees a slot; waiters in other workers wait on it. */
const RELEASED = 3;
const HEAD = 4;
const W_ACTIVE = 0;
const W_PENDING = 1;
const W_RETRIES = 2;
const W_PENDING_OVERFLOW = 3;
const W_RETRY_OVERFLOW = 4;
const PER_WORKER = 5;
/** Longest a queued request sleeps without looking again (a safety net, not the wake-up path). */
const RECHECK_MS = 250;

/**
 * The shared words of one cluster's limits (both priorities), made by the main thread and handed to
 * every worker.
 *
 * @example
 * ```ts
 * const block = newLimitsBlock(2);
 * const lim = new SharedLimiter({ priority: 'default', max_requests: 100 }, block, 0, 0);
 * ```
 */
export interface LimitsBlock {
  readonly sab: SharedArrayBuffer;
  readonly workers: number;
}

const stride = (workers: number) => HEAD + PER_WORKER * workers;

/**
 * A zeroed block for `workers` workers.
 *
 * @example
 * ```ts
 * const block = newLimitsBlock(4);
 * ```
 */
export function newLimitsBlock(workers: number): LimitsBlock {
  return { sab: new SharedArrayBuffer(2 * stride(workers) * 4), workers };
}

/**
 * Gives back what worker `worker` held in `block` (active, pending and retry slots), for a worker
 * that is gone: its own words say exactly what it had added to the shared counts, since it changes
 * both in the same synchronous step. Wakes the waiters of the other workers. Returns the slots freed.
 *
 * @example
 * ```ts
 * worker.on('exit', () => releaseWorker(block, index));
 * ```
 */
export function releaseWorker(block: LimitsBlock, worker: number): number {
  const a = new Int32Array(block.sab);
  let freed = 0;
  for (let p = 0; p < 2; p++) {
    const base = p * stride(block.workers);
    const own = base + HEAD + worker * PER_WORKER;
    for (const [w, g] of [
      [W_ACTIVE, ACTIVE],
      [W_PENDING, PENDING],
      [W_RETRIES, RETRIES],
    ] as const) {
      const n = Atomics.exchange(a, own + w, 0);
      if (n !== 0) Atomics.sub(a, base + g, n);
      freed += n;
    }
    Atomics.add(a, base + RELEASED, 1);
    Atomics.notify(a, base + RELEASED);
  }
  return freed;
}

/**
 * A {@link Limiter} whose counts are shared with the other workers. In a worker, `active`,
 * `pending`, `retries`, `pendingOverflow` and `retryOverflow` are that worker's own share; in the
 * main thread's view (`worker` -1) they read the totals across workers. A freed
 * slot goes first to a request queued in the same worker (as the single-thread limiter does), else
 * it is released and the other workers' queued requests race for it; the order across workers is
 * not FIFO, the limits are exact. The main thread makes one with `worker` -1 to read the totals.
 *
 * @example
 * ```ts
 * const lim = new SharedLimiter(cluster.thresholds.default, block, 0, workerIndex);
 * if (lim.tryEnter()) { try { await call(); } finally { lim.release(); } }
 * ```
 */
export class SharedLimiter extends Limiter {
  readonly #a: Int32Array;
  readonly #base: number;
  readonly #own: number;
  readonly #workers: number;
  readonly #concurrency: number;
  readonly #queue = new GrantQueue();
  #watching = false;

  /**
   * @param priority - 0 for default, 1 for high.
   * @param worker - this worker's index, or -1 for a reader (the main thread's view).
   */
  constructor(
    t: ResolvedThreshold | ThresholdConfig | undefined,
    block: LimitsBlock,
    priority: 0 | 1,
    worker: number,
  ) {
    super(t);
    this.#a = new Int32Array(block.sab);
    this.#workers = block.workers;
    this.#base = priority * stride(block.workers);
    this.#own = worker < 0 ? -1 : this.#base + HEAD + worker * PER_WORKER;
    this.#concurrency = Math.min(this.maxConnections, this.maxRequests);
    if (worker >= 0) return;
    // The main thread's view: the base class's plain counters become the totals. Only there:
    // accessors on the instance would slow the hot path of a worker down (dictionary mode).
    const a = this.#a;
    const base = this.#base;
    const sum = (w: number) => {
      let s = 0;
      for (let i = 0; i < this.#workers; i++) s += Atomics.load(a, base + HEAD + i * PER_WORKER + w);
      return s;
    };
    Object.defineProperties(this, {
      active: { get: () => Atomics.load(a, base + ACTIVE), configurable: true },
      pending: { get: () => Atomics.load(a, base + PENDING), configurable: true },
      retries: { get: () => Atomics.load(a, base + RETRIES), configurable: true },
      pendingOverflow: { get: () => sum(W_PENDING_OVERFLOW), configurable: true },
      retryOverflow: { get: () => sum(W_RETRY_OVERFLOW), configurable: true },
    });
  }

  /** Adds `n` to the shared count `g` and to this worker's share of it (also in its plain field). */
  #add(g: number, w: number, n: number): void {
    // this worker's words have one writer (it): a plain write, read by others only after it died
    this.#a[this.#own + w]! += n;
    Atomics.add(this.#a, this.#base + g, n);
    this.#local(g, n);
  }

  #local(g: number, n: number): void {
    if (g === ACTIVE) this.active += n;
    else if (g === PENDING) this.pending += n;
    else this.retries += n;
  }

  /** Takes one of `limit` in the shared count `g` (compare-exchange, so never past `limit`). */
  #take(g: number, w: number, limit: number): boolean {
    const a = this.#a;
    const i = this.#base + g;
    let cur = Atomics.load(a, i);
    while (cur < limit) {
      const was = Atomics.compareExchange(a, i, cur, cur + 1);
      if (was === cur) {
        a[this.#own + w]! += 1;
        this.#local(g, 1);
        return true;
      }
      cur = was;
    }
    return false;
  }

  override tryEnter(): boolean {
    return this.#take(ACTIVE, W_ACTIVE, this.#concurrency);
  }

  override wait(grant: () => void): Waiter | undefined {
    if (!this.#take(PENDING, W_PENDING, this.maxPending)) {
      Atomics.add(this.#a, this.#own + W_PENDING_OVERFLOW, 1);
      this.pendingOverflow++;
      return undefined;
    }
    const e = this.#queue.push(grant);
    this.#watch();
    return {
      cancel: () => {
        if (this.#queue.cancel(e)) this.#add(PENDING, W_PENDING, -1);
      },
    };
  }

  override acquire(grant: (() => void) | undefined): true | Waiter | undefined {
    if (this.tryEnter()) return true;
    if (grant === undefined) {
      Atomics.add(this.#a, this.#own + W_PENDING_OVERFLOW, 1);
      this.pendingOverflow++;
      return undefined;
    }
    return this.wait(grant);
  }

  override release(): void {
    const e = this.#queue.size > 0 ? this.#queue.next() : undefined;
    if (e !== undefined) {
      // The slot passes to the waiter: the active count stays, the pending count drops.
      this.#add(PENDING, W_PENDING, -1);
      e.grant();
      return;
    }
    this.#add(ACTIVE, W_ACTIVE, -1);
    const a = this.#a;
    if (Atomics.load(a, this.#base + PENDING) > 0) {
      Atomics.add(a, this.#base + RELEASED, 1);
      Atomics.notify(a, this.#base + RELEASED);
    }
  }

  /**
   * While this worker has queued requests: takes the slots other workers free and hands them out,
   * waking on their release notice. The release count is read before trying, so a slot freed
   * between the try and the wait wakes it at once.
   */
  #watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    const a = this.#a;
    const word = this.#base + RELEASED;
    const loop = (): void => {
      for (;;) {
        const seen = Atomics.load(a, word);
        while (this.#queue.size > 0 && this.tryEnter()) {
          const e = this.#queue.next();
          if (e === undefined) {
            this.#add(ACTIVE, W_ACTIVE, -1);
            break;
          }
          this.#add(PENDING, W_PENDING, -1);
          e.grant();
        }
        if (this.#queue.size === 0) {
          this.#watching = false;
          return;
        }
        const r = waitAsync(a, word, seen, RECHECK_MS);
        if (r.async) {
          void r.value.then(loop);
          return;
        }
      }
    };
    // Not from inside wait(): the caller first records its waiter, then a grant may come.
    queueMicrotask(loop);
  }

  override tryRetry(): boolean {
    const limit =
      this.budgetPercent === undefined
        ? this.maxRetries
        : Math.max(
            this.minRetryConcurrency,
            Math.floor((Atomics.load(this.#a, this.#base + ACTIVE) * this.budgetPercent) / 100),
          );
    if (this.#take(RETRIES, W_RETRIES, limit)) return true;
    Atomics.add(this.#a, this.#own + W_RETRY_OVERFLOW, 1);
    this.retryOverflow++;
    return false;
  }

  override retryDone(): void {
    this.#add(RETRIES, W_RETRIES, -1);
  }
}

/**
 * The counts of one priority in a block, for tests and the admin: the shared ones and each
 * worker's share.
 *
 * @example
 * ```ts
 * const { active, perWorker } = readLimits(block, 0);
 * ```
 */
export function readLimits(
  block: LimitsBlock,
  priority: 0 | 1,
): { active: number; pending: number; retries: number; perWorker: { active: number; pending: number }[] } {
  const a = new Int32Array(block.sab);
  const base = priority * stride(block.workers);
  const perWorker = [];
  for (let i = 0; i < block.workers; i++) {
    const own = base + HEAD + i * PER_WORKER;
    perWorker.push({ active: Atomics.load(a, own + W_ACTIVE), pending: Atomics.load(a, own + W_PENDING) });
  }
  return {
    active: Atomics.load(a, base + ACTIVE),
    pending: Atomics.load(a, base + PENDING),
    retries: Atomics.load(a, base + RETRIES),
    perWorker,
  };
}

/**
 * Envoy-style circuit-breaking thresholds of one cluster and priority. A request runs when fewer than
 * min(max_connections, max_requests) are active (HTTP/1.1: one connection per request), waits while
 * fewer than max_pending_requests wait, and is refused at once beyond that (the 503 overflow).
 * Counting is O(1); the wait queue is a {@link GrantQueue}, a FIFO with lazy removal of cancelled waiters.
 * @module
 */
import { CONFIG_DEFAULTS, type ResolvedThreshold, resolveThreshold } from '../config/resolve.js';
import type { ThresholdConfig } from '../config/schema.js';
import { GrantQueue } from './grant-queue.js';

/** A queued request; `cancel()` gives its place back. */
export interface Waiter {
  cancel(): void;
}

/**
 * Admission for one cluster and priority.
 * @example
 * ```ts
 * const lim = new Limiter({ priority: 'default', max_requests: 100 });
 * if (lim.tryEnter()) { try { await call(); } finally { lim.release(); } }
 * ```
 */
export class Limiter {
  readonly maxConnections: number;
  readonly maxPending: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
  readonly budgetPercent: number | undefined;
  readonly minRetryConcurrency: number;
  readonly #concurrency: number;
  active = 0;
  pending = 0;
  retries = 0;
  /** Requests refused because the pending queue was full. */
  pendingOverflow = 0;
  /** Retries skipped because max_retries / the retry budget was reached. */
  retryOverflow = 0;
  readonly #queue = new GrantQueue();

  /** @param t - the threshold block; missing fields take the defaults of `config/resolve`. */
  constructor(t: ResolvedThreshold | ThresholdConfig | undefined) {
    const r = resolveThreshold(t);
    this.maxConnections = r.max_connections;
    this.maxPending = r.max_pending_requests;
    this.maxRequests = r.max_requests;
    this.maxRetries = r.max_retries;
    this.budgetPercent = r.retry_budget?.budget_percent;
    this.minRetryConcurrency =
      r.retry_budget?.min_retry_concurrency ?? CONFIG_DEFAULTS.retry_budget.min_retry_concurrency;
    this.#concurrency = Math.min(this.maxConnections, this.maxRequests);
  }

  /** Takes an active slot if one is free. */
  tryEnter(): boolean {
    if (this.active < this.#concurrency) {
      this.active++;
      return true;
    }
    return false;
  }

  /** Queues for a slot; undefined when the queue is full (overflow, counted). */
  wait(grant: () => void): Waiter | undefined {
    if (this.pending >= this.maxPending) {
      this.pendingOverflow++;
      return undefined;
    }
    const e = this.#queue.push(grant);
    this.pending++;
    return {
      cancel: () => {
        if (this.#queue.cancel(e)) this.pending--;
      },
    };
  }

  /**
   * Takes a slot now (`true`), else queues `grant` for one (a {@link Waiter}); without `grant`, or
   * with the queue full, the request is refused (`undefined`) and counted in `pendingOverflow`.
   */
  acquire(grant: (() => void) | undefined): true | Waiter | undefined {
    if (this.tryEnter()) return true;
    if (grant === undefined) {
      this.pendingOverflow++;
      return undefined;
    }
    return this.wait(grant);
  }

  /** Frees an active slot, handing it to the oldest waiter if there is one. */
  release(): void {
    const e = this.#queue.next();
    if (e !== undefined) {
      this.pending--;
      e.grant();
      return;
    }
    this.active--;
  }

  /** Takes a retry slot if max_retries (or the budget) allows. */
  tryRetry(): boolean {
    const limit =
      this.budgetPercent === undefined
        ? this.maxRetries
        : Math.max(this.minRetryConcurrency, Math.floor((this.active * this.budgetPercent) / 100));
    if (this.retries < limit) {
      this.retries++;
      return true;
    }
    this.retryOverflow++;
    return false;
  }

  /** Gives a retry slot back. */
  retryDone(): void {
    this.retries--;
  }
}

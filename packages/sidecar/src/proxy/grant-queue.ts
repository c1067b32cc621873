/**
 * The FIFO of requests waiting for a slot, shared by the single-thread {@link Limiter} and the
 * workers' `SharedLimiter`: an array with a moving head and lazy removal of cancelled waiters.
 * Cancelling is O(1) (a flag); the array is compacted when cancelled entries dominate, so clients
 * that keep giving up while the cluster is stuck cannot grow it without bound.
 * @module
 */

/**
 * A place in a {@link GrantQueue}.
 *
 * @example
 * ```ts
 * const entry: GrantEntry = queue.push(() => start());
 * ```
 */
export interface GrantEntry {
  readonly grant: () => void;
  /** Cancelled, or already taken by {@link GrantQueue.next}. */
  cancelled: boolean;
}

/**
 * Waiting requests in arrival order.
 *
 * @example
 * ```ts
 * const q = new GrantQueue();
 * const e = q.push(() => start());
 * q.cancel(e); // or, when a slot frees: q.next()?.grant()
 * ```
 */
export class GrantQueue {
  /** Entries still waiting (pushed, not cancelled, not taken). */
  size = 0;
  #queue: GrantEntry[] = [];
  #head = 0;

  /** Appends a waiter. */
  push(grant: () => void): GrantEntry {
    const e: GrantEntry = { grant, cancelled: false };
    if (this.#queue.length - this.#head > 2 * this.size + 64) {
      this.#queue = this.#queue.slice(this.#head).filter((x) => !x.cancelled);
      this.#head = 0;
    }
    this.#queue.push(e);
    this.size++;
    return e;
  }

  /** Gives `e`'s place back; false when it was cancelled or taken already. */
  cancel(e: GrantEntry): boolean {
    if (e.cancelled) return false;
    e.cancelled = true;
    this.size--;
    return true;
  }

  /** The oldest entry still waiting, taken off the queue (its grant is the caller's to call). */
  next(): GrantEntry | undefined {
    const q = this.#queue;
    while (this.#head < q.length) {
      const e = q[this.#head]!;
      q[this.#head++] = undefined as unknown as GrantEntry;
      if (this.#head > 1024 && this.#head * 2 > q.length) {
        q.splice(0, this.#head);
        this.#head = 0;
      }
      if (e.cancelled) continue;
      e.cancelled = true;
      this.size--;
      return e;
    }
    if (this.#head > 0) {
      q.length = 0;
      this.#head = 0;
    }
    return undefined;
  }
}

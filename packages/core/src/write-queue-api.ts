/**
 * The write queue's contract: the {@link WriteQueue} interface, its events and results, and the
 * {@link WriteQueueStore} it keeps writes in (types only). Exported from the package through
 * `write-queue.ts`.
 *
 * @module
 */
import type { Subscription } from './emitter.js';
import type { PolicyContext } from './policy.js';
import type { writeQueue } from './write-queue.js';

/**
 * A write as a {@link WriteQueueStore} keeps it.
 *
 * @example
 * ```ts
 * const w: QueuedWrite<Order> = { id: crypto.randomUUID(), data: order, enqueuedAt: Date.now() };
 * ```
 */
export interface QueuedWrite<T> {
  /** Stable from the first attempt to the last replay: use it as the idempotency key. */
  readonly id: string;
  readonly data: T;
  /** Epoch ms (on the queue's clock) when the write was queued. */
  readonly enqueuedAt: number;
}

/**
 * Where a {@link writeQueue} keeps its writes. `append` must not resolve before the write would
 * survive a crash; `load` returns what is stored, oldest first.
 *
 * @example
 * ```ts
 * const store: WriteQueueStore<Order> = fileWriteStore('/var/lib/orders/outbox.jsonl');
 * ```
 */
export interface WriteQueueStore<T> {
  /** Called once, before anything else: the writes stored by earlier runs, oldest first. */
  load(): Promise<QueuedWrite<T>[]>;
  append(write: QueuedWrite<T>): Promise<void>;
  remove(id: string): Promise<void>;
  /** Flushes and releases the store; called by the queue's `close()`. */
  close(): Promise<void>;
}

/**
 * What `send` receives.
 *
 * @example
 * ```ts
 * send: (order, { signal, id }) => fetch(url, { method: 'POST', body: JSON.stringify(order),
 *   headers: { 'idempotency-key': id }, signal })
 * ```
 */
export interface WriteContext extends PolicyContext {
  /** The write's id, the same on every attempt. */
  readonly id: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** True when the queue is replaying a stored write (no caller is waiting). */
  readonly replay: boolean;
}

/**
 * Events of a {@link WriteQueue}.
 *
 * @example
 * ```ts
 * outbox.on('dead', ({ id, error }) => log.error({ id, err: error }, 'write dropped'));
 * ```
 */
export interface WriteQueueEvents<T, R> {
  /** A write was stored for replay. `error` is why its first attempt failed (none when it went behind others). */
  queued: { id: string; data: T; error: unknown; size: number };
  /** A replay succeeded and the write left the queue. */
  sent: { id: string; data: T; value: R; attempts: number; queuedMs: number };
  /** A replay failed; the queue waits `retryInMs` (or for the breaker) before the next. */
  replayFailed: { id: string; error: unknown; attempts: number; retryInMs: number };
  /** A write was dropped: not retryable, or out of attempts. */
  dead: { id: string; data: T; error: unknown; attempts: number };
  /** The queue became empty after replays. */
  drained: { at: number };
  /** The store failed; `operation` says where. A failed `remove` means the write may be sent again after a restart. */
  storeError: { operation: 'load' | 'remove' | 'close'; error: unknown };
}

/**
 * What {@link WriteQueue.submit} resolves with.
 *
 * @example
 * ```ts
 * const r = await outbox.submit(order);
 * res.status(r.status === 'sent' ? 201 : 202).json({ id: r.id });
 * ```
 */
export type WriteResult<R> =
  | { status: 'sent'; id: string; value: R }
  | { status: 'queued'; id: string; error: unknown };

/**
 * A queued write with its attempt count, as {@link WriteQueue.pending} lists it.
 *
 * @example
 * ```ts
 * for (const w of outbox.pending()) console.log(w.id, w.attempts);
 * ```
 */
export interface PendingWrite<T> extends QueuedWrite<T> {
  /** Sends so far in this process (first attempt included). */
  readonly attempts: number;
}

/**
 * A queue made by {@link writeQueue}.
 *
 * @example
 * ```ts
 * const r = await outbox.submit(order, req.signal);
 * ```
 */
export interface WriteQueue<T, R> {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'writeQueue';
  /** Resolves when the store's writes are loaded; rejects if the store could not be read. */
  readonly ready: Promise<void>;
  /** Writes waiting for replay. */
  readonly size: number;
  /**
   * Sends `data` now; if that fails with a retryable error (an open breaker, a timeout, a 5xx the
   * send throws), stores it for replay and resolves `{ status: 'queued' }` once it is stored.
   * Rejects only when the write was not stored: a non-retryable error, the caller's abort, a full
   * or closed queue, or a store failure.
   */
  submit(data: T, signal?: AbortSignal): Promise<WriteResult<R>>;
  /** Stores `data` for replay without sending it now; resolves with its id once stored. */
  enqueue(data: T): Promise<string>;
  /** Replays now, ignoring the backoff wait; resolves when the queue is empty or a replay fails. */
  drain(): Promise<void>;
  /** The waiting writes, oldest first. */
  pending(): PendingWrite<T>[];
  /** Drops a waiting write (not one being sent): true if it was there. */
  discard(id: string): Promise<boolean>;
  on<K extends keyof WriteQueueEvents<T, R>>(
    event: K,
    listener: (e: WriteQueueEvents<T, R>[K]) => void,
  ): Subscription;
  /**
   * Stops replaying (aborting a replay in flight), waits for the writes already accepted (a first
   * attempt in flight finishes; a write that fails it, or that still waited for its turn, is
   * stored), then closes the store. Stored writes stay stored for the next run.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

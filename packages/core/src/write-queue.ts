/// <reference lib="esnext.disposable" preserve="true" />
// Our .d.ts use Symbol.dispose / Disposable: this brings their lib to consumers compiling without it.
/**
 * `writeQueue()`: the fallback for writes. A write that fails because its downstream is down is
 * stored (durably, with `fileWriteStore` from `tripswitch/file-store`) and replayed in order once
 * the downstream answers again, instead of being lost or failing the user's request.
 *
 * Delivery is at least once: a write whose send succeeded but whose removal from the store did
 * not reach the disk (a crash in between) is sent again after a restart. Every write keeps one
 * `id` from its first attempt to its last replay, so a downstream that deduplicates on an
 * idempotency key sees one write.
 *
 * One job per module: `write-queue.ts` holds the queue itself (admission, storing, replay, close);
 * `write-queue-api.ts` its contract (the `WriteQueue` interface, events, results, the store
 * interface); `write-queue-options.ts` its options and their validation;
 * `write-queue-memory-store.ts` the in-memory store. This module re-exports their public names.
 *
 * @module
 */
import type { CircuitBreaker, CircuitState } from './breaker.js';
import type { Clock, TimerHandle } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { isCircuitOpenError, WriteQueueClosedError, WriteQueueFullError } from './errors.js';
import type { Policy, PolicyContext } from './policy.js';
import { ReplayPacing } from './replay-pacing.js';
import { validator } from './validate.js';
import type {
  PendingWrite,
  QueuedWrite,
  WriteQueue,
  WriteQueueEvents,
  WriteQueueStore,
  WriteResult,
} from './write-queue-api.js';
import { OWNER, type WriteQueueOptions, writeQueueSettings } from './write-queue-options.js';

export type {
  PendingWrite,
  QueuedWrite,
  WriteContext,
  WriteQueue,
  WriteQueueEvents,
  WriteQueueStore,
  WriteResult,
} from './write-queue-api.js';
export { memoryWriteStore } from './write-queue-memory-store.js';
export type { WriteQueueOptions } from './write-queue-options.js';

interface Item<T> {
  id: string;
  data: T;
  enqueuedAt: number;
  attempts: number;
}

// States in which the breaker sends nothing, and in which its own change of state (not a timer of
// ours) says when to try again.
const WAIT_FOR_BREAKER: ReadonlySet<CircuitState> = new Set(['isolated', 'half-open']);

class Queue<T, R> implements WriteQueue<T, R> {
  // On the prototype, not per instance: idle policies stay as small as they were.
  get kind(): 'writeQueue' {
    return 'writeQueue';
  }

  readonly ready: Promise<void>;
  readonly #send: WriteQueueOptions<T, R>['send'];
  readonly #store: WriteQueueStore<T>;
  readonly #breaker: CircuitBreaker | undefined;
  readonly #policy: Policy<PolicyContext>;
  readonly #maxItems: number;
  readonly #maxAttempts: number;
  readonly #retryable: (error: unknown) => boolean;
  readonly #ordered: boolean;
  readonly #pacing: ReplayPacing;
  readonly #clock: Clock;
  readonly #events = new Emitter<WriteQueueEvents<T, R>>();
  readonly #abort = new AbortController();
  readonly #sub: Subscription | undefined;
  #items: Item<T>[] = [];
  /** Writes being stored: they count against `maxItems`. */
  #storing = 0;
  /**
   * Submits and enqueues accepted and not yet decided (sent, stored or refused); close() waits for
   * them. When ordered, the last one is the turn the next one waits for.
   */
  #admitted = new Set<Promise<unknown>>();
  #last: Promise<unknown> | undefined;
  /** The store's writes are loaded; until then (and while earlier callers still wait for that) calls wait. */
  #loaded = false;
  #waitingForLoad = 0;
  #sending: Item<T> | undefined;
  #draining: Promise<void> | undefined;
  #timer: TimerHandle | undefined;
  #closed: Promise<void> | undefined;

  constructor(options: WriteQueueOptions<T, R>) {
    const s = writeQueueSettings(options);
    this.#send = s.send;
    this.#store = s.store;
    const b = s.breaker;
    this.#breaker = b;
    this.#policy = s.policy;
    this.#maxItems = s.maxItems;
    this.#maxAttempts = s.maxAttempts;
    this.#retryable = s.retryable;
    this.#ordered = s.ordered;
    this.#clock = s.clock;
    this.#pacing = new ReplayPacing(s.backoff, this.#clock, s.random);

    // One listener for the queue's life (removed by close): the breaker closing is the signal to replay.
    this.#sub = b?.on('stateChange', ({ to }) => {
      if (to === 'closed' || to === 'disabled' || to === 'metrics-only') this.#pacing.breakerClosed();
      this.#schedule();
    });
    this.ready = this.#load();
    // Callers that never await `ready` still see a load failure through their submits.
    this.ready.catch(() => {});
  }

  async #load(): Promise<void> {
    let stored: QueuedWrite<T>[];
    try {
      stored = await this.#store.load();
      if (!Array.isArray(stored)) throw new TypeError('store.load() must resolve with an array of writes');
    } catch (error) {
      this.#emit('storeError', { operation: 'load', error });
      throw error;
    }
    this.#loaded = true;
    if (this.#closed) return;
    // Writes stored while loading (there are none unless a caller skipped `ready`) go after the old ones.
    this.#items = stored
      .map((w) => ({ id: w.id, data: w.data, enqueuedAt: w.enqueuedAt, attempts: 0 }))
      .concat(this.#items);
    this.#schedule();
  }

  get size(): number {
    return this.#items.length;
  }

  on<K extends keyof WriteQueueEvents<T, R>>(
    event: K,
    listener: (e: WriteQueueEvents<T, R>[K]) => void,
  ): Subscription {
    return this.#events.on(event, listener);
  }

  #emit<K extends keyof WriteQueueEvents<T, R>>(event: K, payload: WriteQueueEvents<T, R>[K]): void {
    this.#events.emit(event, payload);
  }

  async submit(data: T, signal?: AbortSignal): Promise<WriteResult<R>> {
    if (signal !== undefined) validator(OWNER).signal('signal', signal);
    // Once the store's writes are loaded a call is accepted synchronously, so a submit made before
    // close() is one close() waits for; until then, and while earlier callers still wait for the
    // load, calls wait, and are accepted in call order.
    const waited = !this.#loaded || this.#waitingForLoad > 0;
    if (waited) await this.#waitForLoad();
    try {
      if (this.#closed) throw new WriteQueueClosedError();
      if (signal?.aborted) throw signal.reason;
      return this.#admit(this.#ordered ? this.#last : undefined, (prev) => this.#submit(prev, data, signal));
    } finally {
      if (waited) this.#waitingForLoad--;
    }
  }

  /** Counts the caller as waiting for the load; the caller uncounts itself once accepted or refused. */
  async #waitForLoad(): Promise<void> {
    this.#waitingForLoad++;
    try {
      await this.ready;
    } catch (error) {
      this.#waitingForLoad--;
      throw error;
    }
  }

  /**
   * Accepts a write: `decide` runs once `prev` (the previous write's decision, when ordered) has
   * settled, and close() waits for it.
   */
  #admit<V>(
    prev: Promise<unknown> | undefined,
    decide: (prev: Promise<unknown> | undefined) => Promise<V>,
  ): Promise<V> {
    const p = decide(prev);
    const settled = p.then(
      () => {},
      () => {},
    );
    this.#admitted.add(settled);
    if (this.#ordered) this.#last = settled;
    void settled.then(() => {
      this.#admitted.delete(settled);
      if (this.#last === settled) this.#last = undefined;
    });
    return p;
  }

  async #submit(
    prev: Promise<unknown> | undefined,
    data: T,
    signal: AbortSignal | undefined,
  ): Promise<WriteResult<R>> {
    // Ordered: the previous write's attempt decides whether this one may go first.
    if (prev !== undefined) await prev;
    if (signal?.aborted) throw signal.reason;
    const id = globalThis.crypto.randomUUID();
    if (this.#ordered && (this.#items.length + this.#storing > 0 || this.#closed)) {
      // Behind waiting writes (or, once closing, stored for the next run rather than sent now).
      await this.#enqueue(id, data, undefined, 0);
      return { status: 'queued', id, error: undefined };
    }
    try {
      const value = await this.#policy.execute(
        (ctx) => this.#send(data, { signal: ctx.signal, id, attempt: 1, replay: false }),
        signal,
      );
      return { status: 'sent', id, value };
    } catch (error) {
      // The caller gave up, or the write can never succeed: not ours to replay.
      if (signal?.aborted || !this.#retryable(error)) throw error;
      await this.#enqueue(id, data, error, 1);
      return { status: 'queued', id, error };
    }
  }

  async enqueue(data: T): Promise<string> {
    const waited = !this.#loaded || this.#waitingForLoad > 0;
    if (waited) await this.#waitForLoad();
    try {
      if (this.#closed) throw new WriteQueueClosedError();
      return this.#admit(this.#ordered ? this.#last : undefined, async (prev) => {
        if (prev !== undefined) await prev;
        const id = globalThis.crypto.randomUUID();
        await this.#enqueue(id, data, undefined, 0);
        return id;
      });
    } finally {
      if (waited) this.#waitingForLoad--;
    }
  }

  /** Stores a write accepted before close() (which waits for it), and lines it up for replay. */
  async #enqueue(id: string, data: T, error: unknown, attempts: number): Promise<void> {
    if (this.#items.length + this.#storing >= this.#maxItems)
      throw new WriteQueueFullError(this.#maxItems, error);
    const item: Item<T> = { id, data, enqueuedAt: this.#clock.now(), attempts };
    this.#storing++;
    try {
      await this.#store.append({ id, data, enqueuedAt: item.enqueuedAt });
    } finally {
      this.#storing--;
    }
    this.#items.push(item);
    this.#emit('queued', { id, data, error, size: this.#items.length });
    // The first attempt just failed: the first replay waits like a retry would.
    if (attempts > 0) this.#pacing.firstAttemptFailed(error);
    this.#schedule();
  }

  /** Starts a replay now, or arms the one timer for when one may start. */
  #schedule(): void {
    if (this.#closed || this.#draining || this.#items.length === 0) return;
    this.#clearTimer();
    const now = this.#clock.now();
    let at = this.#pacing.retryAt;
    const b = this.#breaker;
    if (b !== undefined) {
      const state = b.state;
      if (WAIT_FOR_BREAKER.has(state)) return; // its stateChange calls back
      if (state === 'open') at = Math.max(at, b.nextAttemptAt ?? now);
    }
    if (at <= now) {
      this.#start();
      return;
    }
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#schedule();
    }, at - now);
    // Stored writes outlive the process; a pending replay must not keep it alive.
    this.#timer.unref();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #start(): Promise<void> {
    if (this.#draining) return this.#draining;
    this.#clearTimer();
    // Marked as draining before the first send: the breaker's stateChange listener may run
    // synchronously inside it (open -> half-open as our replay becomes the probe).
    let done!: () => void;
    const run = new Promise<void>((resolve) => {
      done = resolve;
    });
    this.#draining = run;
    this.#replay()
      .catch((error) => {
        // #replay catches what sends and stores throw; anything else is a bug, reported like a listener's.
        queueMicrotask(() => {
          throw error;
        });
      })
      .finally(() => {
        this.#draining = undefined;
        done();
        this.#schedule();
      });
    return run;
  }

  async #replay(): Promise<void> {
    while (!this.#closed && this.#items.length > 0) {
      const item = this.#items[0]!;
      this.#sending = item;
      item.attempts++;
      let value: R;
      try {
        value = await this.#policy.execute(
          (ctx) =>
            this.#send(item.data, { signal: ctx.signal, id: item.id, attempt: item.attempts, replay: true }),
          this.#abort.signal,
        );
      } catch (error) {
        this.#sending = undefined;
        if (this.#closed) {
          item.attempts--;
          return;
        }
        if (isCircuitOpenError(error)) {
          // Not sent, so not an attempt; the breaker (or its error) says when to come back.
          // (A breaker of ours is also watched by #schedule; this covers one nested in `policy`, and
          // a rejection that names no time, which must not turn into a loop of immediate retries.)
          item.attempts--;
          this.#pacing.circuitOpen(error);
          return;
        }
        if (!this.#retryable(error) || item.attempts >= this.#maxAttempts) {
          this.#leave(item);
          this.#emit('dead', { id: item.id, data: item.data, error, attempts: item.attempts });
          await this.#forget(item.id);
          continue;
        }
        const wait = this.#pacing.failed();
        this.#emit('replayFailed', { id: item.id, error, attempts: item.attempts, retryInMs: wait });
        return;
      }
      this.#sending = undefined;
      this.#pacing.succeeded();
      // The event goes out as the write leaves `size`, not after the store's remove: whoever reads
      // `size` 0 has seen every `sent` (the demo once read 9 replayed of 10 queued, size 0).
      this.#leave(item);
      this.#emit('sent', {
        id: item.id,
        data: item.data,
        value,
        attempts: item.attempts,
        queuedMs: this.#clock.now() - item.enqueuedAt,
      });
      await this.#forget(item.id);
    }
    if (!this.#closed && this.#items.length === 0) this.#emit('drained', { at: this.#clock.now() });
  }

  /**
   * Takes a replayed write out of the queue. It is still the head: writes join at the tail,
   * discard() refuses the write being sent, and the store's writes are loaded before any replay.
   */
  #leave(item: Item<T>): void {
    if (this.#items[0] === item) this.#items.shift();
  }

  /** Removes a write that left the queue from the store. */
  async #forget(id: string): Promise<void> {
    try {
      await this.#store.remove(id);
    } catch (error) {
      // Already sent: keeping it would send it twice in this process; the store may replay it after a restart.
      this.#emit('storeError', { operation: 'remove', error });
    }
  }

  async drain(): Promise<void> {
    await this.ready;
    if (this.#closed) return;
    this.#pacing.retryAt = 0;
    await this.#start();
  }

  pending(): PendingWrite<T>[] {
    return this.#items.map((i) => ({
      id: i.id,
      data: i.data,
      enqueuedAt: i.enqueuedAt,
      attempts: i.attempts,
    }));
  }

  async discard(id: string): Promise<boolean> {
    await this.ready;
    const item = this.#items.find((i) => i.id === id);
    if (item === undefined || item === this.#sending) return false;
    this.#items.splice(this.#items.indexOf(item), 1);
    await this.#store.remove(id);
    return true;
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#clearTimer();
    this.#sub?.dispose();
    this.#abort.abort(new WriteQueueClosedError());
    // Writes accepted before close are decided (sent, or stored for the next run: every append
    // comes from one of them) before the store closes.
    await Promise.allSettled([this.ready, this.#draining, ...this.#admitted]);
    try {
      await this.#store.close();
    } catch (error) {
      this.#emit('storeError', { operation: 'close', error });
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * A queue of writes replayed when their downstream recovers: the fallback for calls that change
 * something, where a cached answer will not do. `submit()` sends at once when it can; when the
 * send fails (breaker open, timeout, 5xx) the write is stored and the caller learns it was
 * queued, not lost. Replays go in order, one at a time, through the same breaker, starting when it
 * closes (or as its probe once its open period ends), with a jittered backoff between failures.
 *
 * @example
 * ```ts
 * import { circuitBreaker, writeQueue } from 'tripswitch';
 * import { fileWriteStore } from 'tripswitch/file-store';
 *
 * const orders = circuitBreaker({ name: 'orders' });
 * const outbox = writeQueue({
 *   breaker: orders,
 *   store: fileWriteStore('/var/lib/shop/orders-outbox.jsonl'),
 *   send: async (order: Order, { signal, id }) => {
 *     const res = await fetch('http://orders/api/orders', {
 *       method: 'POST', body: JSON.stringify(order), signal,
 *       headers: { 'content-type': 'application/json', 'idempotency-key': id },
 *     });
 *     if (res.status >= 500) throw new Error(`orders answered ${res.status}`);
 *     return res.status;
 *   },
 * });
 *
 * const r = await outbox.submit(order, req.signal);
 * res.statusCode = r.status === 'sent' ? 201 : 202; // 202: accepted, will be applied on recovery
 * ```
 */
export function writeQueue<T, R = unknown>(options: WriteQueueOptions<T, R>): WriteQueue<T, R> {
  return new Queue(options);
}

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
 * @module
 */
import type { CircuitBreaker, CircuitState } from './breaker.js';
import { decorrelatedJitterBackoff, type Backoff } from './backoff.js';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { isCircuitOpenError, WriteQueueClosedError, WriteQueueFullError } from './errors.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
import { rejectUnknownKeys, validator } from './validate.js';
import { ReplayPacing } from './replay-pacing.js';

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
 * Options of {@link writeQueue}.
 *
 * @example
 * ```ts
 * writeQueue({ send: postOrder, store: fileWriteStore('outbox.jsonl'), breaker: orders });
 * ```
 */
export interface WriteQueueOptions<T, R> {
  /** Performs one write. Runs under `policy` for first attempts and replays alike. */
  send: (data: T, ctx: WriteContext) => PromiseLike<R> | R;
  /**
   * Where queued writes live. Required, so durability is a choice made in the code:
   * `fileWriteStore` (`tripswitch/file-store`) survives restarts, {@link memoryWriteStore} does not.
   */
  store: WriteQueueStore<T>;
  /**
   * The downstream's breaker. Replays start when it closes and are not attempted while it is
   * open (the first replay after its open period is its probe). Also the default `policy`.
   */
  breaker?: CircuitBreaker;
  /**
   * Runs every send (for example `wrap(breaker, timeout({ ms: 2_000 }))`).
   * @default the breaker, or no policy
   */
  policy?: Policy<PolicyContext>;
  /** Writes held at most; a write beyond it is refused with `WriteQueueFullError`. @default 10_000 */
  maxItems?: number;
  /**
   * Sends per write (first attempt included) before it is dropped with a `dead` event. Rejections
   * by an open breaker do not count.
   * @default Infinity (a write is never dropped on its own; see `discard()`)
   */
  maxAttempts?: number;
  /**
   * Which errors mean "try again later". A failed first attempt is queued only if this says so
   * (otherwise `submit()` rethrows it); a replay failing with an error this rejects is dropped
   * with a `dead` event at once. Example: `(err) => !(err instanceof HttpError && err.status < 500)`.
   * @default every error
   */
  retryable?: (error: unknown) => boolean;
  /**
   * Keep submission order, always: writes reach the downstream in the order `submit()` and
   * `enqueue()` were called. A write submitted while an earlier write's first attempt is in flight
   * waits for that attempt (then goes at once if it succeeded, or behind it in the queue if it
   * failed), and while writes wait in the queue new ones go behind them. So first attempts go one
   * at a time. Turn off when writes are independent and latency matters more: each write is then
   * sent at once, whatever is in flight or queued.
   * @default true
   */
  ordered?: boolean;
  /**
   * The wait after a failed replay (not after a breaker rejection: the breaker says when to come back).
   * @default decorrelatedJitterBackoff({ initialDelay: 1_000, maxDelay: 300_000 })
   */
  backoff?: Backoff;
  /** @default Math.random */
  random?: () => number;
  /** @default systemClock */
  clock?: Clock;
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

interface Item<T> {
  id: string;
  data: T;
  enqueuedAt: number;
  attempts: number;
}

const OWNER = 'writeQueue';
const KEYS = [
  'send',
  'store',
  'breaker',
  'policy',
  'maxItems',
  'maxAttempts',
  'retryable',
  'ordered',
  'backoff',
  'random',
  'clock',
] as const;

// States in which the breaker sends nothing, and in which its own change of state (not a timer of
// ours) says when to try again.
const WAIT_FOR_BREAKER: ReadonlySet<CircuitState> = new Set(['isolated', 'half-open']);

const direct: Policy<PolicyContext> = {
  execute: <T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal) =>
    new Promise<T>((resolve) => resolve(fn({ signal: signal ?? neverAbortedSignal }))),
};

const always = () => true;

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
    const v = validator(OWNER);
    const o = v.object('options', options);
    rejectUnknownKeys(OWNER, o, KEYS);
    if (typeof o.send !== 'function') v.fail('send', 'a function (data, ctx) => result', o.send);
    this.#send = o.send as WriteQueueOptions<T, R>['send'];
    const store = o.store as Partial<WriteQueueStore<T>> | undefined;
    if (
      typeof store !== 'object' ||
      store === null ||
      typeof store.load !== 'function' ||
      typeof store.append !== 'function' ||
      typeof store.remove !== 'function' ||
      typeof store.close !== 'function'
    )
      v.fail(
        'store',
        'a WriteQueueStore (fileWriteStore(path) to survive restarts, memoryWriteStore() for tests)',
        o.store,
      );
    this.#store = store as WriteQueueStore<T>;
    const b = o.breaker as CircuitBreaker | undefined;
    if (b !== undefined && (typeof b !== 'object' || b === null || b.kind !== 'breaker'))
      v.fail('breaker', 'a circuit breaker made by circuitBreaker()', b);
    this.#breaker = b;
    const p = o.policy as Policy<PolicyContext> | undefined;
    if (p !== undefined && (typeof p !== 'object' || p === null || typeof p.execute !== 'function'))
      v.fail('policy', 'a policy with execute(fn, signal)', p);
    this.#policy = p ?? b ?? direct;
    this.#maxItems = v.optionalNumber('maxItems', o.maxItems, { min: 1, integer: true }) ?? 10_000;
    this.#maxAttempts = v.optionalNumber('maxAttempts', o.maxAttempts, { min: 1, integer: true }) ?? Infinity;
    this.#retryable = v.optionalFunction<(e: unknown) => boolean>('retryable', o.retryable) ?? always;
    this.#ordered = v.optionalBoolean('ordered', o.ordered) ?? true;
    const backoff = o.backoff as Backoff | undefined;
    if (backoff !== undefined && (typeof backoff !== 'object' || typeof backoff?.delay !== 'function'))
      v.fail('backoff', 'a Backoff with delay(retry, previous, random)', backoff);
    const random = v.optionalFunction<() => number>('random', o.random) ?? Math.random;
    this.#clock = v.clock('clock', o.clock) ?? systemClock;
    this.#pacing = new ReplayPacing(
      backoff ?? decorrelatedJitterBackoff({ initialDelay: 1_000, maxDelay: 300_000 }),
      this.#clock,
      random,
    );

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

/**
 * A store in memory: writes do not survive the process. For tests, and for writes that may be
 * lost on a restart but should not be lost to a short outage. Closing it keeps its writes, so a
 * second queue on the same store sees them (as after a restart, in tests).
 *
 * @example
 * ```ts
 * const store = memoryWriteStore<Order>();
 * const outbox = writeQueue({ store, send, breaker });
 * ```
 */
export function memoryWriteStore<T>(): WriteQueueStore<T> {
  const writes = new Map<string, QueuedWrite<T>>();
  return {
    load: async () => [...writes.values()],
    append: async (w) => {
      writes.set(w.id, { id: w.id, data: w.data, enqueuedAt: w.enqueuedAt });
    },
    remove: async (id) => {
      writes.delete(id);
    },
    close: async () => {},
  };
}

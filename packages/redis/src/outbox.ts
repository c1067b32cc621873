/**
 * `redisOutbox()`: a write queue the whole fleet shares and drains. `writeQueue()` with a
 * `redisWriteStore` replays one instance's writes in that instance; here every instance appends to
 * one Redis stream per queue and every live instance replays from it, through a consumer group.
 *
 * - A write waiting in the stream is pending with at most one instance at a time (the group's
 *   pending list); that instance refreshes its claim while it holds the write, and a write whose
 *   holder stopped refreshing (dead, stalled, cut off) for `claimTimeoutMs` is taken over by
 *   another instance (XAUTOCLAIM). Before each send a script checks that the write is still this
 *   instance's and refreshes the claim; a send whose claim could not be kept is aborted.
 * - With `orderKey`, writes of one key are sent in the order they were stored: only the oldest
 *   unfinished write of a key may be sent, and the instance that finishes it takes the next one.
 * - Attempt counts live in Redis, so a write taken over after a crash continues its count.
 *
 * Why not a `WriteQueueStore`: core's `writeQueue()` replays the writes it loaded and appended
 * itself, one instance per queue; sharing means Redis decides who replays what.
 *
 * @module
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { Redis as RedisClient } from 'ioredis';
import {
  type CircuitBreaker,
  type Clock,
  isCircuitOpenError,
  type Policy,
  type PolicyContext,
  ReplayPacing,
  type Subscription,
  type TimerHandle,
  validator,
  WriteQueueClosedError,
  type WriteResult,
} from 'tripswitch';
import {
  OWNER,
  outboxConfig,
  type RedisOutbox,
  type RedisOutboxEvents,
  type RedisOutboxOptions,
} from './outbox-options.js';
import {
  beginScript,
  enqueueScript,
  finishScript,
  holdScript,
  pruneScript,
  takeScript,
  uncountScript,
} from './outbox-scripts.js';
import { whenReady } from './ready.js';

const GROUP = 'replay';
/** Idle time given to released writes: any positive claim timeout has passed. */
const RELEASED_IDLE = 1_000_000_000;

type Scripts = {
  tsObEnqueue(s: string, q: string, a: string, ...args: string[]): Promise<string>;
  tsObTake(s: string, ...args: string[]): Promise<[string, RawEntry[], RawEntry[]]>;
  tsObBegin(s: string, q: string, a: string, ...args: string[]): Promise<number>;
  tsObFinish(s: string, q: string, a: string, ...args: string[]): Promise<RawEntry | []>;
  tsObUncount(s: string, a: string, entry: string): Promise<number>;
  tsObHold(s: string, ...args: string[]): Promise<string[]>;
  tsObPrune(s: string, group: string, consumer: string, idleMs: string): Promise<number>;
};
type Client = (Redis | Cluster) & Scripts;
type RawEntry = [string, string[]] | null;

interface Held<T> {
  entry: string;
  id: string;
  data: T;
  enqueuedAt: number;
  key: string;
}

class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}

class Outbox<T, R> implements RedisOutbox<T, R> {
  readonly ready: Promise<void>;
  readonly #send: RedisOutboxOptions<T, R>['send'];
  readonly #redis: Client;
  readonly #owns: boolean;
  readonly #breaker: CircuitBreaker | undefined;
  readonly #policy: Policy<PolicyContext>;
  readonly #orderKey: ((data: T) => string | undefined) | undefined;
  readonly #claimMs: number;
  readonly #pollMs: number;
  readonly #batch: number;
  readonly #maxAttempts: number;
  readonly #retryable: (error: unknown) => boolean;
  readonly #pacing: ReplayPacing;
  readonly #clock: Clock;
  readonly #me: string;
  readonly #s: string;
  readonly #a: string;
  readonly #qPrefix: string;
  readonly #listeners = new Map<string, Set<(e: never) => void>>();
  readonly #abort = new AbortController();
  readonly #sub: Subscription | undefined;
  /** Writes pending with this consumer, in stream order (entry ids sort by insertion). */
  readonly #held = new Map<string, Held<T>>();
  #cursor = '0-0';
  /** Per order key, the last submit of this instance still deciding (sending, or storing). */
  readonly #submitting = new Map<string, Promise<void>>();
  /** When consumers of gone instances were last removed from the group. */
  #prunedAt = 0;
  #pumping: Promise<void> | undefined;
  #timer: TimerHandle | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** The send in flight, with what aborts it when its claim is lost. */
  #inFlight: { entry: string; abort: AbortController; validUntil: number } | undefined;
  #closed: Promise<void> | undefined;

  constructor(options: RedisOutboxOptions<T, R>) {
    const c = outboxConfig(options);
    this.#send = c.send;
    this.#breaker = c.breaker;
    this.#policy = c.policy;
    this.#orderKey = c.orderKey;
    this.#claimMs = c.claimMs;
    this.#pollMs = c.pollMs;
    this.#batch = c.batch;
    this.#maxAttempts = c.maxAttempts;
    this.#retryable = c.retryable;
    this.#clock = c.clock;
    this.#pacing = new ReplayPacing(c.backoff, c.clock, c.random);
    this.#me = c.consumer;
    this.#s = c.stream;
    this.#a = c.attempts;
    this.#qPrefix = c.keyPrefix;
    if (c.client !== undefined) {
      this.#redis = c.client as Client;
      this.#owns = false;
    } else {
      // Fail fast instead of queueing while Redis is away: a write must not be reported stored late.
      const connection: RedisOptions = {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: c.commandTimeoutMs,
        connectTimeout: Math.max(1_000, c.commandTimeoutMs),
        retryStrategy: (times) => Math.min(25 * 2 ** times, 1_000),
      };
      this.#redis = new RedisClient(c.url, connection) as Client;
      this.#owns = true;
      this.#redis.on('error', () => {});
    }
    const r = this.#redis;
    r.defineCommand('tsObEnqueue', { numberOfKeys: 3, lua: enqueueScript });
    r.defineCommand('tsObTake', { numberOfKeys: 1, lua: takeScript });
    r.defineCommand('tsObBegin', { numberOfKeys: 3, lua: beginScript });
    r.defineCommand('tsObFinish', { numberOfKeys: 3, lua: finishScript });
    r.defineCommand('tsObUncount', { numberOfKeys: 2, lua: uncountScript });
    r.defineCommand('tsObHold', { numberOfKeys: 1, lua: holdScript });
    r.defineCommand('tsObPrune', { numberOfKeys: 1, lua: pruneScript });
    this.#sub = c.breaker?.on('stateChange', ({ to }) => {
      if (to === 'closed' || to === 'disabled' || to === 'metrics-only') this.#pacing.breakerClosed();
      this.#schedule(0);
    });
    this.ready = this.#init();
    this.ready.catch(() => {});
  }

  async #init(): Promise<void> {
    await whenReady(this.#redis, OWNER, 2_000);
    try {
      await this.#redis.xgroup('CREATE', this.#s, GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test(String(err))) throw err;
    }
    this.#schedule(0);
  }

  on<K extends keyof RedisOutboxEvents<T, R>>(
    event: K,
    listener: (e: RedisOutboxEvents<T, R>[K]) => void,
  ): Subscription {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as (e: never) => void);
    const dispose = () => {
      set.delete(listener as (e: never) => void);
    };
    return { dispose, [Symbol.dispose]: dispose } as Subscription;
  }

  #emit<K extends keyof RedisOutboxEvents<T, R>>(event: K, payload: RedisOutboxEvents<T, R>[K]): void {
    for (const l of this.#listeners.get(event) ?? []) {
      try {
        (l as (e: RedisOutboxEvents<T, R>[K]) => void)(payload);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  #keyList(key: string): string {
    return `${this.#qPrefix}${key}`;
  }

  #keyOf(data: T): string {
    const k = this.#orderKey?.(data);
    if (k === undefined) return '';
    if (typeof k !== 'string' || k === '')
      throw new TypeError(`${OWNER}: orderKey must return a non-empty string or undefined, got ${String(k)}`);
    return k;
  }

  async submit(data: T, signal?: AbortSignal): Promise<WriteResult<R>> {
    if (signal !== undefined) validator(OWNER).signal('signal', signal);
    await this.ready;
    if (this.#closed) throw new WriteQueueClosedError();
    if (signal?.aborted) throw signal.reason;
    const id = globalThis.crypto.randomUUID();
    const key = this.#keyOf(data);
    if (key === '') return this.#submit(id, data, key, signal);
    // Submits of one key in this instance go one after the other: the next decides once the one
    // before it is sent or stored (otherwise it could be sent while the earlier one is still failing).
    const before = this.#submitting.get(key);
    const mine = (before ?? Promise.resolve()).then(() => this.#submit(id, data, key, signal));
    const settled = mine.then(
      () => {},
      () => {},
    );
    this.#submitting.set(key, settled);
    settled.then(() => {
      if (this.#submitting.get(key) === settled) this.#submitting.delete(key);
    });
    return mine;
  }

  async #submit(id: string, data: T, key: string, signal: AbortSignal | undefined): Promise<WriteResult<R>> {
    if (this.#closed) throw new WriteQueueClosedError();
    if (signal?.aborted) throw signal.reason;
    // Writes of this key are waiting: this one goes behind them, not ahead.
    if (key !== '' && (await this.#redis.llen(this.#keyList(key))) > 0) {
      await this.#append(id, data, key, 0, undefined);
      return { status: 'queued', id, error: undefined };
    }
    try {
      const value = await this.#policy.execute(
        (ctx) => this.#send(data, { signal: ctx.signal, id, attempt: 1, replay: false }),
        signal,
      );
      return { status: 'sent', id, value };
    } catch (error) {
      if (signal?.aborted || !this.#retryable(error)) throw error;
      // The first attempt just failed: the first replay (here) waits like a retry would.
      this.#pacing.firstAttemptFailed(error);
      await this.#append(id, data, key, isCircuitOpenError(error) ? 0 : 1, error);
      return { status: 'queued', id, error };
    }
  }

  async enqueue(data: T): Promise<string> {
    await this.ready;
    if (this.#closed) throw new WriteQueueClosedError();
    const id = globalThis.crypto.randomUUID();
    await this.#append(id, data, this.#keyOf(data), 0, undefined);
    return id;
  }

  async #append(id: string, data: T, key: string, attempts: number, error: unknown): Promise<void> {
    if (this.#closed) throw new WriteQueueClosedError();
    let d: string;
    try {
      d = data === undefined ? '' : JSON.stringify(data);
    } catch (err) {
      throw new TypeError(`${OWNER}: the write's data must be JSON-serialisable (${(err as Error).message})`);
    }
    await this.#redis.tsObEnqueue(
      this.#s,
      this.#keyList(key),
      this.#a,
      id,
      String(this.#clock.now()),
      d,
      key,
      String(attempts),
    );
    this.#emit('queued', { id, data, error });
    this.#schedule(0);
  }

  /** Arms the one timer for the next pass (`ms` from now, or later if the breaker or a backoff says so). */
  #schedule(ms: number): void {
    if (this.#closed || this.#pumping) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    const now = this.#clock.now();
    let at = Math.max(now + ms, this.#pacing.retryAt);
    const b = this.#breaker;
    if (b !== undefined) {
      const state = b.state;
      // Isolated or probing elsewhere: its stateChange calls back; still poll, slowly, to keep claims fresh.
      if (state === 'isolated' || state === 'half-open') at = Math.max(at, now + this.#pollMs);
      if (state === 'open') at = Math.max(at, b.nextAttemptAt ?? now);
    }
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#pumping = this.#pump().finally(() => {
        this.#pumping = undefined;
      });
    }, at - now);
    this.#timer.unref();
  }

  /** One pass: take writes, send those this instance may send, until none is left or one fails. */
  async #pump(): Promise<void> {
    let next = this.#pollMs;
    try {
      const b = this.#breaker?.state;
      if (b === 'isolated' || b === 'half-open') return;
      await this.#take();
      for (;;) {
        if (this.#closed) return;
        // A failure during this pass (a submit's first attempt) owes a wait: the next pass, which
        // the finally arms, honours it.
        if (this.#pacing.retryAt > this.#clock.now()) break;
        const outcome = await this.#sendOne();
        // Nothing this instance may send now (none held, or all behind older writes of their key).
        if (outcome === 'idle') break;
        if (outcome === 'stop') return;
        if (this.#held.size < this.#batch) await this.#take();
      }
    } catch (error) {
      this.#emit('storeError', { operation: 'take', error });
      next = Math.min(this.#pollMs, 1_000);
    } finally {
      this.#pumping = undefined;
      this.#schedule(next);
    }
  }

  /** Consumers idle this long with nothing pending belong to instances that are gone. */
  get #pruneAfterMs(): number {
    return Math.max(60_000, 10 * this.#claimMs, 10 * this.#pollMs);
  }

  async #take(): Promise<void> {
    const now = this.#clock.now();
    if (now - this.#prunedAt >= this.#pruneAfterMs) {
      this.#prunedAt = now;
      await this.#redis.tsObPrune(this.#s, GROUP, this.#me, String(this.#pruneAfterMs));
    }
    const [cursor, claimed, fresh] = await this.#redis.tsObTake(
      this.#s,
      GROUP,
      this.#me,
      String(this.#claimMs),
      String(this.#batch),
      this.#cursor,
      String(Math.max(0, this.#batch - this.#held.size)),
    );
    this.#cursor = cursor;
    for (const raw of [...claimed, ...fresh]) this.#hold(raw);
    this.#syncHeartbeat();
  }

  #hold(raw: RawEntry): void {
    if (!raw) return; // deleted while pending: XAUTOCLAIM dropped it
    const [entry, fields] = raw;
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
    if (typeof f.id !== 'string' || f.d === undefined) return;
    let data: T;
    try {
      data = (f.d === '' ? undefined : JSON.parse(f.d)) as T;
    } catch {
      return;
    }
    this.#held.set(entry, { entry, id: f.id, data, enqueuedAt: Number(f.t), key: f.k ?? '' });
  }

  /** Sends the oldest held write this instance may send now. */
  async #sendOne(): Promise<'sent' | 'idle' | 'stop'> {
    const entries = [...this.#held.keys()].sort(compareEntryIds);
    for (const entry of entries) {
      const w = this.#held.get(entry)!;
      const keyed = w.key === '' ? '0' : '1';
      const attempt = await this.#redis.tsObBegin(
        this.#s,
        this.#keyList(w.key),
        this.#a,
        GROUP,
        entry,
        this.#me,
        keyed,
      );
      if (attempt === -1) {
        this.#held.delete(entry); // taken over or finished elsewhere
        continue;
      }
      if (attempt === -2) continue; // an older write of its key is not finished
      return this.#replay(w, attempt);
    }
    this.#syncHeartbeat();
    return 'idle';
  }

  async #replay(w: Held<T>, attempt: number): Promise<'sent' | 'stop'> {
    const abort = new AbortController();
    const onClose = () => abort.abort(this.#abort.signal.reason);
    this.#abort.signal.addEventListener('abort', onClose, { once: true });
    this.#inFlight = { entry: w.entry, abort, validUntil: this.#clock.now() + this.#claimMs };
    this.#syncHeartbeat();
    let value: R;
    try {
      value = await this.#policy.execute(
        (ctx) => this.#send(w.data, { signal: ctx.signal, id: w.id, attempt, replay: true }),
        abort.signal,
      );
    } catch (error) {
      this.#inFlight = undefined;
      if (abort.signal.reason instanceof LeaseLostError) {
        // Another instance may have it now; the attempt counts (the send may have reached the downstream).
        this.#held.delete(w.entry);
        return 'stop';
      }
      if (this.#closed) {
        // Aborted by close(): not an attempt; close() hands the write back to the fleet.
        await this.#redis.tsObUncount(this.#s, this.#a, w.entry).catch(() => {});
        return 'stop';
      }
      if (isCircuitOpenError(error)) {
        await this.#redis.tsObUncount(this.#s, this.#a, w.entry);
        this.#pacing.circuitOpen(error);
        return 'stop';
      }
      if (!this.#retryable(error) || attempt >= this.#maxAttempts) {
        await this.#finish(w);
        this.#emit('dead', { id: w.id, data: w.data, error, attempts: attempt });
        return 'sent';
      }
      const wait = this.#pacing.failed();
      this.#emit('replayFailed', { id: w.id, error, attempts: attempt, retryInMs: wait });
      return 'stop';
    } finally {
      this.#abort.signal.removeEventListener('abort', onClose);
    }
    this.#inFlight = undefined;
    this.#pacing.succeeded();
    await this.#finish(w);
    this.#emit('sent', {
      id: w.id,
      data: w.data,
      value,
      attempts: attempt,
      queuedMs: this.#clock.now() - w.enqueuedAt,
    });
    return 'sent';
  }

  /** Removes a sent (or dead) write from the stream, and takes its key's next write if another instance holds it. */
  async #finish(w: Held<T>): Promise<void> {
    this.#held.delete(w.entry);
    const keyed = w.key === '' ? '0' : '1';
    const next = await this.#redis.tsObFinish(
      this.#s,
      this.#keyList(w.key),
      this.#a,
      GROUP,
      w.entry,
      this.#me,
      keyed,
    );
    if (Array.isArray(next) && next.length === 2) this.#hold(next as RawEntry);
  }

  /** A heartbeat runs only while this instance holds writes: it keeps their claims fresh. */
  #syncHeartbeat(): void {
    if (this.#held.size > 0 && this.#heartbeat === undefined && !this.#closed) {
      this.#heartbeat = setInterval(() => this.#renew(), Math.max(10, Math.floor(this.#claimMs / 3)));
      this.#heartbeat.unref();
    } else if (this.#held.size === 0 && this.#heartbeat !== undefined) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
    }
  }

  #renew(): void {
    const ids = [...this.#held.keys()];
    if (ids.length === 0) {
      this.#syncHeartbeat();
      return;
    }
    const started = this.#clock.now();
    const flight = this.#inFlight;
    const interval = Math.floor(this.#claimMs / 3);
    this.#redis.tsObHold(this.#s, GROUP, this.#me, '0', ...ids).then(
      (lost) => {
        for (const e of lost) {
          this.#held.delete(e);
          if (flight?.entry === e)
            flight.abort.abort(new LeaseLostError(`${OWNER}: write taken over by another instance`));
        }
        if (flight && !lost.includes(flight.entry)) flight.validUntil = started + this.#claimMs;
        this.#syncHeartbeat();
      },
      (error) => {
        this.#emit('storeError', { operation: 'renew', error });
        // Could not refresh: abort before another instance may take the write over.
        if (flight && this.#clock.now() + interval >= flight.validUntil)
          flight.abort.abort(
            new LeaseLostError(`${OWNER}: could not keep the claim on a write (Redis unreachable)`),
          );
      },
    );
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#sub?.dispose();
    this.#abort.abort(new WriteQueueClosedError());
    await Promise.allSettled([this.ready, this.#pumping]);
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    const ids = [...this.#held.keys()];
    this.#held.clear();
    if (ids.length > 0)
      await this.#redis.tsObHold(this.#s, GROUP, this.#me, String(RELEASED_IDLE), ...ids).catch((error) => {
        this.#emit('storeError', { operation: 'release', error });
      });
    if (this.#owns) this.#redis.disconnect();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function compareEntryIds(a: string, b: string): number {
  const [am, as] = a.split('-');
  const [bm, bs] = b.split('-');
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}

/**
 * An outbox the fleet drains: `submit()` sends now and, when that fails, stores the write in one
 * Redis stream shared by every instance; any live instance replays it (consumer group), a write
 * held by a dead instance is taken over after `claimTimeoutMs`, writes of one `orderKey` go in
 * order, attempt counts survive restarts. Delivery is at least once: use `ctx.id` as the
 * idempotency key.
 *
 * @example
 * ```ts
 * import { circuitBreaker } from 'tripswitch';
 * import { redisOutbox } from '@tripswitch/redis';
 *
 * const outbox = redisOutbox({
 *   name: 'orders',
 *   url: process.env.REDIS_URL,
 *   breaker: circuitBreaker({ name: 'orders' }),
 *   orderKey: (order: Order) => order.customerId,
 *   send: (order, { id, signal }) => postOrder(order, { idempotencyKey: id, signal }),
 * });
 * const r = await outbox.submit(order);
 * ```
 */
export function redisOutbox<T, R = unknown>(options: RedisOutboxOptions<T, R>): RedisOutbox<T, R> {
  return new Outbox<T, R>(options);
}
export type { RedisOutbox, RedisOutboxEvents, RedisOutboxOptions } from './outbox-options.js';

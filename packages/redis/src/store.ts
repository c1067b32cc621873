/**
 * `redisStore()`: breaker state shared by every instance of a service, on Redis.
 *
 * Design, in one paragraph: the closed path of a call never touches Redis. Each breaker keeps
 * working on its own local state; the store publishes local transitions (one Lua script: write
 * the state hash, set the open period as a `PX` TTL, `PUBLISH`), and a subscription applies the
 * transitions of other instances to the local copy. Fleet-wide counts are batched in memory and
 * flushed every `flushIntervalMs` into time buckets whose index comes from the Redis server's
 * clock. The half-open probe is a lease (`SET NX PX`) so a recovering upstream sees the
 * breaker's probes from one instance, not from every instance. When Redis is slow or gone,
 * commands fail fast (no offline queue, bounded timeouts), breakers carry on locally, the
 * degradation is reported once, and the store re-subscribes and re-reads the shared state on
 * its own when Redis answers again.
 *
 * This module is the store itself (breakers attach here, messages are routed to them, events);
 * the jobs live in their own modules: options.ts (validation), connection.ts (connections and
 * degraded mode), replication.ts (state replication), fleet-counts.ts, probe-lease.ts.
 *
 * @module
 */
import type { Subscription } from 'tripswitch';
import { Connection } from './connection.js';
import type { BreakerHandle, BreakerStore, StoreSession } from './contract.js';
import {
  type ConnectTarget,
  OWNER,
  parseOptions,
  type RedisStoreOptions,
  type StoreConfig,
} from './options.js';
import { type Message, Session, type SessionHost } from './replication.js';
import { SyncQueue } from './resync.js';

export type { FleetRule, RedisStoreOptions, StoreLogger } from './options.js';

const ALL_STATES = new Set<string>(['closed', 'open', 'half-open', 'isolated', 'disabled', 'metrics-only']);

/**
 * Events of a {@link RedisStore}.
 *
 * @example
 * ```ts
 * store.on('degraded', ({ error }) => alerts.raise('breaker state is local only', error));
 * store.on('recovered', ({ downMs }) => alerts.clear(downMs));
 * ```
 */
export interface RedisStoreEvents {
  /** Redis stopped answering; breakers carry on locally. Emitted once per outage. */
  degraded: { error: unknown; at: number };
  /** Redis answers again and every breaker re-read the shared state. */
  recovered: { at: number; downMs: number };
}

/**
 * A {@link BreakerStore} on Redis, returned by {@link redisStore}.
 *
 * @example
 * ```ts
 * await using store = redisStore({ url: process.env.REDIS_URL });
 * if (!(await store.ready(2000))) console.warn('starting with local breaker state only');
 * ```
 */
export interface RedisStore extends BreakerStore, AsyncDisposable {
  /** This instance's id. */
  readonly instanceId: string;
  /** The key and channel prefix. */
  readonly prefix: string;
  /** Connected, subscribed and not degraded. */
  readonly healthy: boolean;
  /** Listens to {@link RedisStoreEvents}. */
  on<K extends keyof RedisStoreEvents>(event: K, listener: (e: RedisStoreEvents[K]) => void): Subscription;
  /**
   * Resolves `true` once connected, subscribed and synchronised, or `false` after `timeoutMs`.
   * Breakers never need this (their first calls wait, bounded, for the first read of the shared
   * state); it is for start-up checks and tests.
   */
  ready(timeoutMs?: number): Promise<boolean>;
  /** Detaches every breaker, waits (bounded) for in-flight commands, closes the connections. */
  close(): Promise<void>;
}

type Listener = (e: never) => void;

class Store implements RedisStore, SessionHost {
  readonly config: StoreConfig;
  readonly connection: Connection;
  /** Reads of the shared state, a bounded number at a time (start-up, attach, recovery). */
  readonly #syncs: SyncQueue<Session>;
  readonly #sessions = new Map<string, Set<Session>>();
  readonly #listeners: { [K in keyof RedisStoreEvents]?: Array<(e: RedisStoreEvents[K]) => void> } = {};
  #sessionSeq = 0;
  #closed = false;

  constructor(opts: RedisStoreOptions) {
    const { config, target } = parseOptions(opts);
    this.config = config;
    this.connection = this.#connect(target);
    this.#syncs = new SyncQueue(this.connection);
  }

  #connect(target: ConnectTarget): Connection {
    return new Connection(this.config, target, {
      resync: () => this.#syncs.pass(this.#allSessions()),
      message: (raw) => this.#onMessage(raw),
      degraded: (e) => {
        for (const set of this.#sessions.values()) for (const s of set) s.firstSyncDone();
        this.#emit('degraded', e);
      },
      recovered: (e) => this.#emit('recovered', e),
    });
  }

  *#allSessions(): Iterable<Session> {
    for (const set of this.#sessions.values()) yield* set;
  }

  prioritize(session: Session): void {
    this.#syncs.prioritize(session);
  }

  get instanceId(): string {
    return this.config.instanceId;
  }

  get prefix(): string {
    return this.config.prefix;
  }

  get healthy(): boolean {
    return this.connection.healthy;
  }

  key(name: string, part: string): string {
    return `${this.config.prefix}:{${encodeURIComponent(name)}}:${part}`;
  }

  channel(name: string): string {
    return this.config.sharded ? this.key(name, 'events') : this.config.channel;
  }

  nextHolderId(): string {
    return `${this.config.instanceId}#${++this.#sessionSeq}`;
  }

  on<K extends keyof RedisStoreEvents>(event: K, listener: (e: RedisStoreEvents[K]) => void): Subscription {
    const list = [...(this.#listeners[event] ?? []), listener] as Array<(e: RedisStoreEvents[K]) => void>;
    (this.#listeners as Record<string, unknown>)[event] = list;
    let done = false;
    const dispose = () => {
      if (done) return;
      done = true;
      const cur = (this.#listeners[event] ?? []) as Listener[];
      (this.#listeners as Record<string, unknown>)[event] = cur.filter((l) => l !== (listener as Listener));
    };
    return { dispose, [Symbol.dispose]: dispose };
  }

  #emit<K extends keyof RedisStoreEvents>(event: K, payload: RedisStoreEvents[K]): void {
    for (const l of (this.#listeners[event] ?? []) as Array<(e: RedisStoreEvents[K]) => void>) {
      try {
        l(payload);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  attach(handle: BreakerHandle): StoreSession {
    if (this.#closed) throw new Error(`${OWNER}: attach("${handle.name}") after close()`);
    const session = new Session(this, handle);
    let set = this.#sessions.get(handle.name);
    if (!set) {
      set = new Set();
      this.#sessions.set(handle.name, set);
    }
    set.add(session);
    // A restarted instance picks up the shared state now (on a cluster, once the breaker's own
    // channel is subscribed, so no change slips between the read and the subscription); before
    // the connection is ready the 'ready' handler does it for every attached breaker. The read
    // waits its turn in the store's window (thousands of breakers attach in one tick).
    if (set.size === 1 && this.config.sharded)
      this.connection.addChannel(this.channel(handle.name)).then(() => this.#syncs.add(session));
    else this.#syncs.add(session);
    return session;
  }

  removeSession(session: Session, name: string): void {
    const set = this.#sessions.get(name);
    this.#syncs.remove(session);
    if (!set) return;
    set.delete(session);
    if (set.size > 0) return;
    this.#sessions.delete(name);
    this.connection.removeChannel(this.channel(name));
  }

  #onMessage(raw: string): void {
    let m: Message;
    try {
      m = JSON.parse(raw) as Message;
    } catch {
      return;
    }
    if (
      typeof m !== 'object' ||
      m === null ||
      !ALL_STATES.has(m.s) ||
      typeof m.n !== 'string' ||
      typeof m.i !== 'string' ||
      typeof m.d !== 'number' ||
      typeof m.v !== 'number'
    )
      return; // not ours (another writer on the channel): ignored
    const set = this.#sessions.get(m.n);
    if (!set) return;
    for (const s of set) s.onMessage(m);
  }

  async ready(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    if (!(await this.connection.ready(timeoutMs))) return false;
    // breakers attached since the last re-synchronisation: ready once each has been read
    return this.#syncs.whenIdle(deadline - Date.now());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const set of [...this.#sessions.values()]) for (const s of [...set]) s.detach();
    this.#syncs.close();
    await this.connection.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Creates a {@link RedisStore}: pass it as `store` to any number of breakers; breakers with the
 * same name on every instance using the same Redis and prefix share one state.
 *
 * Opens propagate to the other instances through pub/sub (typically within a millisecond or two);
 * closes and manual isolate/close/reset apply fleet-wide too. The closed path of a call never
 * waits for Redis.
 *
 * @example
 * ```ts
 * import { circuitBreaker } from 'tripswitch';
 * import { redisStore } from '@tripswitch/redis';
 *
 * const store = redisStore({ url: process.env.REDIS_URL, prefix: 'checkout', mode: 'fleet' });
 * store.on('degraded', ({ error }) => metrics.redisDown.inc());
 * const payments = circuitBreaker({ name: 'payments', store });
 * // on shutdown
 * await store.close();
 * ```
 */
export function redisStore(options: RedisStoreOptions = {}): RedisStore {
  return new Store(options);
}

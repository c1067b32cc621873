/**
 * `redisWriteStore()`: a {@link WriteQueueStore} on Redis, for services whose disk does not outlive
 * the container (a replaced pod loses a `fileWriteStore`; it keeps its Redis queue).
 *
 * One Redis stream per queue: `XADD` appends in order, `XRANGE` loads in order, `XDEL` removes.
 * A lock key, renewed while the queue is open, keeps a second process off the same queue; when its
 * holder dies the lock runs out and a new process (the restarted instance, or one adopting the
 * queue) takes it over. Appends fail fast when Redis is away: a write is reported stored only
 * when Redis has it.
 *
 * @module
 */
import { hostname } from 'node:os';
import { type Cluster, Redis, type RedisOptions } from 'ioredis';
import { InvalidOptionError, type QueuedWrite, type WriteQueueStore } from 'tripswitch';
import { whenReady } from './ready.js';

/**
 * Options of {@link redisWriteStore}.
 *
 * @example
 * ```ts
 * redisWriteStore({ url: process.env.REDIS_URL, name: `orders-outbox:${process.env.POD_NAME}` });
 * ```
 */
export interface RedisWriteStoreOptions {
  /**
   * The queue's name; its keys are `<prefix>:wq:{<name>}:s` (stream) and `:l` (lock). Give each
   * instance a name that survives its restart (a StatefulSet pod name, a host name), so the
   * restarted instance finds its writes.
   */
  name: string;
  /** @default 'redis://127.0.0.1:6379' */
  url?: string;
  /** An ioredis client (a `Cluster` too) to use instead of `url` (not closed by the store). */
  client?: Redis | Cluster;
  /** @default 'tripswitch' */
  prefix?: string;
  /** Bound on each command; an append that takes longer is reported as not stored. @default 2_000 */
  commandTimeoutMs?: number;
  /** Lifetime of the lock; renewed every third of it while open, so a dead holder frees it within this. @default 30_000 */
  lockTtlMs?: number;
}

const OWNER = 'redisWriteStore';
const KNOWN = ['name', 'url', 'client', 'prefix', 'commandTimeoutMs', 'lockTtlMs'];

// Compare-and-renew / compare-and-delete: only the holder's token may extend or free the lock.
const renewScript = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const releaseScript = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

type Scripts = {
  tripswitchWqRenew(key: string, token: string, ttl: number): Promise<number>;
  tripswitchWqRelease(key: string, token: string): Promise<number>;
};

class RedisWriteStore<T> implements WriteQueueStore<T> {
  readonly #name: string;
  readonly #stream: string;
  readonly #lock: string;
  readonly #ttl: number;
  readonly #token = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`;
  readonly #redis: (Redis | Cluster) & Scripts;
  readonly #owns: boolean;
  /** Write id -> stream entry id, for XDEL. */
  readonly #entries = new Map<string, string>();
  #renewTimer: ReturnType<typeof setInterval> | undefined;
  #state: 'new' | 'open' | 'lost' | 'closed' = 'new';

  constructor(options: RedisWriteStoreOptions) {
    if (typeof options !== 'object' || options === null)
      throw new InvalidOptionError(OWNER, 'options', 'an object', options);
    for (const k of Object.keys(options))
      if (!KNOWN.includes(k))
        throw new InvalidOptionError(OWNER, k, `one of the known options (${KNOWN.join(', ')})`, k);
    const { name, prefix = 'tripswitch' } = options;
    if (typeof name !== 'string' || name === '' || /[{}]/.test(name))
      throw new InvalidOptionError(OWNER, 'name', 'a non-empty string without { or }', name);
    if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix))
      throw new InvalidOptionError(OWNER, 'prefix', 'a non-empty string without { or }', prefix);
    const timeout = options.commandTimeoutMs ?? 2_000;
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 60_000)
      throw new InvalidOptionError(OWNER, 'commandTimeoutMs', 'an integer >= 1 and <= 60000', timeout);
    this.#ttl = options.lockTtlMs ?? 30_000;
    if (!Number.isInteger(this.#ttl) || this.#ttl < 30 || this.#ttl > 3_600_000)
      throw new InvalidOptionError(OWNER, 'lockTtlMs', 'an integer >= 30 and <= 3600000', this.#ttl);
    if (options.url !== undefined && !/^rediss?:\/\//.test(String(options.url)))
      throw new InvalidOptionError(OWNER, 'url', 'a redis:// or rediss:// URL', options.url);
    this.#name = name;
    // One hash slot for both keys (Redis Cluster), named by the queue.
    this.#stream = `${prefix}:wq:{${name}}:s`;
    this.#lock = `${prefix}:wq:{${name}}:l`;
    // Fail fast instead of queueing while Redis is away: a write must not be reported stored late.
    const connection: RedisOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: timeout,
      connectTimeout: Math.max(1_000, timeout),
      retryStrategy: (times) => Math.min(25 * 2 ** times, 1_000),
    };
    if (options.client !== undefined) {
      if (typeof (options.client as { xadd?: unknown }).xadd !== 'function')
        throw new InvalidOptionError(OWNER, 'client', 'an ioredis client', options.client);
      this.#redis = options.client as (Redis | Cluster) & Scripts;
      this.#owns = false;
    } else {
      this.#redis = new Redis(options.url ?? 'redis://127.0.0.1:6379', connection) as Redis & Scripts;
      this.#owns = true;
    }
    this.#redis.defineCommand('tripswitchWqRenew', { numberOfKeys: 1, lua: renewScript });
    this.#redis.defineCommand('tripswitchWqRelease', { numberOfKeys: 1, lua: releaseScript });
    // Errors surface through the commands; an unhandled 'error' event would crash the process.
    this.#redis.on('error', () => {});
  }

  async load(): Promise<QueuedWrite<T>[]> {
    if (this.#state !== 'new') throw new Error(`${OWNER}: load() was already called for "${this.#name}"`);
    await whenReady(this.#redis, OWNER, 1_000);
    const got = await this.#redis.set(this.#lock, this.#token, 'PX', this.#ttl, 'NX');
    if (got !== 'OK') {
      const [holder, left] = await Promise.all([this.#redis.get(this.#lock), this.#redis.pttl(this.#lock)]);
      throw new Error(
        `${OWNER}: queue "${this.#name}" is in use by ${holder ?? 'another process'} (lock ${this.#lock}, free in ${Math.max(0, left)} ms if its holder is gone)`,
      );
    }
    this.#state = 'open';
    this.#renewTimer = setInterval(() => this.#renew(), Math.max(10, Math.floor(this.#ttl / 3)));
    this.#renewTimer.unref();
    try {
      return await this.#readAll();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async #readAll(): Promise<QueuedWrite<T>[]> {
    const writes: QueuedWrite<T>[] = [];
    let start = '-';
    for (;;) {
      const page = await this.#redis.xrange(this.#stream, start, '+', 'COUNT', 1000);
      for (const [entry, fields] of page) {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
        const at = Number(f.t);
        if (typeof f.id !== 'string' || !Number.isFinite(at) || f.d === undefined)
          throw new Error(`${OWNER}: entry ${entry} of ${this.#stream} is not a queue record`);
        this.#entries.set(f.id, entry);
        writes.push({ id: f.id, enqueuedAt: at, data: (f.d === '' ? undefined : JSON.parse(f.d)) as T });
      }
      if (page.length < 1000) return writes;
      start = `(${page[page.length - 1]![0]}`;
    }
  }

  #renew(): void {
    if (this.#state !== 'open') return;
    this.#redis.tripswitchWqRenew(this.#lock, this.#token, this.#ttl).then(
      (ok) => {
        // Someone else holds it now (this process stalled past the TTL): stop writing to the queue.
        if (ok === 0 && this.#state === 'open') this.#state = 'lost';
      },
      () => {}, // Redis away: try again on the next tick; the TTL covers a short outage
    );
  }

  #check(): void {
    if (this.#state === 'open') return;
    if (this.#state === 'lost')
      throw new Error(
        `${OWNER}: lost the lock of queue "${this.#name}" to another process; writes go nowhere`,
      );
    throw new Error(`${OWNER}: queue "${this.#name}" is ${this.#state === 'new' ? 'not loaded' : 'closed'}`);
  }

  async append(write: QueuedWrite<T>): Promise<void> {
    this.#check();
    let data: string;
    try {
      data = write.data === undefined ? '' : JSON.stringify(write.data);
    } catch (err) {
      throw new TypeError(`${OWNER}: the write's data must be JSON-serialisable (${(err as Error).message})`);
    }
    const entry = await this.#redis.xadd(
      this.#stream,
      '*',
      'id',
      write.id,
      't',
      String(write.enqueuedAt),
      'd',
      data,
    );
    if (entry === null) throw new Error(`${OWNER}: XADD to ${this.#stream} stored nothing`);
    this.#entries.set(write.id, entry);
  }

  async remove(id: string): Promise<void> {
    this.#check();
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    await this.#redis.xdel(this.#stream, entry);
    this.#entries.delete(id);
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const held = this.#state === 'open';
    this.#state = 'closed';
    if (this.#renewTimer !== undefined) clearInterval(this.#renewTimer);
    this.#renewTimer = undefined;
    if (held) await this.#redis.tripswitchWqRelease(this.#lock, this.#token).catch(() => {});
    if (this.#owns) this.#redis.disconnect();
  }
}

/**
 * A {@link WriteQueueStore} for `writeQueue()` on Redis: one stream per queue, a lock so one process
 * at a time owns it (taken over when its holder dies), appends that fail fast while Redis is away.
 * How durable a stored write is depends on the server: with `appendonly yes` and
 * `appendfsync everysec` a Redis crash can lose the last second; replicas add failover, not
 * synchronous durability.
 *
 * @example
 * ```ts
 * import { circuitBreaker, writeQueue } from 'tripswitch';
 * import { redisWriteStore } from '@tripswitch/redis';
 *
 * const outbox = writeQueue({
 *   breaker: circuitBreaker({ name: 'orders' }),
 *   store: redisWriteStore({ url: process.env.REDIS_URL, name: `orders:${process.env.POD_NAME}` }),
 *   send: postOrder,
 * });
 * ```
 */
export function redisWriteStore<T = unknown>(options: RedisWriteStoreOptions): WriteQueueStore<T> {
  return new RedisWriteStore<T>(options);
}

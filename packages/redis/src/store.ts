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
 * @module
 */
import { Redis, type RedisOptions } from 'ioredis';
import { type Clock, InvalidOptionError, type Subscription, systemClock } from 'tripswitch';
import type { BreakerHandle, BreakerStore, CircuitState, StoreSession } from './contract.js';
import { flushScript, probeScript, readScript, releaseScript, transitionScript } from './scripts.js';

/**
 * The fleet-wide trip rule used in `mode: 'fleet'`, evaluated atomically on Redis.
 *
 * @example
 * ```ts
 * redisStore({ mode: 'fleet', fleet: { windowMs: 30_000, minimumCalls: 50, failureRateThreshold: 0.4 } });
 * ```
 */
export interface FleetRule {
  /** Length of the counting window. @default 10_000 */
  windowMs: number;
  /** Buckets in the window (counts age out one bucket at a time). @default 10 */
  buckets: number;
  /** No fleet-wide trip below this many calls in the window. @default 20 */
  minimumCalls: number;
  /** Trip when failures / calls reaches this (0..1; above 1 turns it off). @default 0.5 */
  failureRateThreshold: number;
  /** Trip when slow calls / calls reaches this (0..1; above 1 turns it off). @default 2 (off) */
  slowCallRateThreshold: number;
  /** Trip when this many failures are in the window (0 turns it off). @default 0 */
  failureCount: number;
  /**
   * How long a fleet-wide trip keeps every instance open, for breakers that do not report their
   * own next open period (`BreakerHandle.openDurationMs()`, backoff included, is used when present).
   * @default 30_000
   */
  openDurationMs: number;
}

/**
 * Where the store writes its one-line reports (one warning per outage, one note per recovery).
 *
 * @example
 * ```ts
 * redisStore({ logger: { warn: (m) => log.warn(m), info: (m) => log.info(m) } });
 * ```
 */
export interface StoreLogger {
  warn(message: string): void;
  info?(message: string): void;
}

/**
 * Options of {@link redisStore}.
 *
 * @example
 * ```ts
 * const options: RedisStoreOptions = { url: 'rediss://:secret@redis.internal:6380', prefix: 'shop' };
 * ```
 */
export interface RedisStoreOptions {
  /**
   * An ioredis client to send commands on (it stays yours: `close()` does not quit it). The
   * store subscribes on a `duplicate()` of it. Give `client` or `url`, not both.
   */
  client?: Redis;
  /** `redis://[:password@]host:port[/db]` or `rediss://...` (TLS). @default 'redis://127.0.0.1:6379' */
  url?: string;
  /** Extra ioredis options for connections made from `url` (e.g. `tls: { ca }`). */
  redisOptions?: RedisOptions;
  /** Namespace of every key and of the channel. @default 'tripswitch' */
  prefix?: string;
  /**
   * `'local'`: each instance trips on its own counts; state is shared.
   * `'fleet'`: outcomes are also counted fleet-wide and {@link RedisStoreOptions.fleet} trips
   * every instance when the aggregate crosses it.
   * @default 'local'
   */
  mode?: 'local' | 'fleet';
  /** Upper bound of any Redis command; nothing waits longer. @default 250 */
  commandTimeoutMs?: number;
  /** Fleet mode: counts are flushed at most this long after the first unflushed outcome. @default 100 */
  flushIntervalMs?: number;
  /**
   * Fleet mode: a batch this large is flushed before `flushIntervalMs` ends (but never sooner than
   * `flushIntervalMs / 10` after the previous flush, so a hot breaker does not flood Redis).
   * @default 1000
   */
  flushMaxOutcomes?: number;
  /**
   * Lifetime of the fleet-wide probe lease. The holder renews it every third of this while its
   * probes run, so a dead holder frees it after at most this long. @default 5000
   */
  probeLeaseMs?: number;
  /** Pause between two attempts to take a probe lease held elsewhere. @default 50 */
  probeRetryMs?: number;
  /** While degraded, how often the store retries to re-synchronise. @default 1000 */
  recheckIntervalMs?: number;
  /** The fleet-wide trip rule (fleet mode). Every field has a default. */
  fleet?: Partial<FleetRule>;
  /** Same clock as the breakers' (open periods are converted to it). @default systemClock */
  clock?: Clock;
  /** Degradation and recovery are written here once each; `false` silences it. @default console */
  logger?: StoreLogger | false;
  /** This instance's id in Redis (probe lease holder, origin of messages). @default random */
  instanceId?: string;
}

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
   * Breakers never need this (they work before it); it is for start-up checks and tests.
   */
  ready(timeoutMs?: number): Promise<boolean>;
  /** Detaches every breaker, waits (bounded) for in-flight commands, closes the connections. */
  close(): Promise<void>;
}

const OWNER = 'redisStore';
const KNOWN = [
  'client',
  'url',
  'redisOptions',
  'prefix',
  'mode',
  'commandTimeoutMs',
  'flushIntervalMs',
  'flushMaxOutcomes',
  'probeLeaseMs',
  'probeRetryMs',
  'recheckIntervalMs',
  'fleet',
  'clock',
  'logger',
  'instanceId',
] as const;
const FLEET_KNOWN = [
  'windowMs',
  'buckets',
  'minimumCalls',
  'failureRateThreshold',
  'slowCallRateThreshold',
  'failureCount',
  'openDurationMs',
] as const;

function num(
  path: string,
  value: unknown,
  dflt: number,
  r: { min: number; max?: number; integer?: boolean },
): number {
  if (value === undefined) return dflt;
  const bad =
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    (r.integer === true && !Number.isInteger(value)) ||
    value < r.min ||
    (r.max !== undefined && value > r.max);
  if (bad) {
    const kind = r.integer ? 'an integer' : 'a number';
    const range = r.max === undefined ? `>= ${r.min}` : `>= ${r.min} and <= ${r.max}`;
    throw new InvalidOptionError(OWNER, path, `${kind} ${range}`, value);
  }
  return value;
}

function unknownKeys(opts: object, known: readonly string[], prefix: string): void {
  for (const k of Object.keys(opts)) {
    if (!known.includes(k))
      throw new InvalidOptionError(
        OWNER,
        `${prefix}${k}`,
        `one of the known options (${known.join(', ')})`,
        (opts as Record<string, unknown>)[k],
      );
  }
}

/** A probe lease nobody used within this long (capped at half the lease) is given back. */
const UNCLAIMED_LEASE_MS = 250;
const MANUAL_STATES = new Set<string>(['isolated', 'disabled', 'metrics-only']);
const ALL_STATES = new Set<string>(['closed', 'open', 'half-open', 'isolated', 'disabled', 'metrics-only']);

// Transitions a breaker makes by itself; anything else is an operator's (manual) decision, which
// always wins in Redis, while automatic ones never override a manual state set elsewhere.
function isAutomatic(from: CircuitState, to: CircuitState): boolean {
  return (
    (from === 'closed' && to === 'open') ||
    (from === 'half-open' && (to === 'open' || to === 'closed')) ||
    (from === 'open' && to === 'half-open')
  );
}

class RedisCommandTimeoutError extends Error {
  override readonly name = 'RedisCommandTimeoutError';
  readonly code = 'ERR_REDIS_COMMAND_TIMEOUT';
  constructor(ms: number) {
    super(`Redis did not answer within ${ms} ms`);
  }
}

type Reply = [number, number, string, number];
interface Scripts {
  tripswitchTransition(...args: Array<string | number>): Promise<Reply>;
  tripswitchRead(...args: Array<string | number>): Promise<[string, string, number, number]>;
  tripswitchProbe(...args: Array<string | number>): Promise<[number, string | null, number]>;
  tripswitchFlush(...args: Array<string | number>): Promise<[number, number, number, number, number, number]>;
  tripswitchRelease(...args: Array<string | number>): Promise<number>;
}

interface Message {
  n: string;
  s: CircuitState;
  r: string;
  d: number;
  i: string;
  v: number;
  /** The sender session's count of local transitions when it published (its own echo check). */
  q?: number;
}

type Listener = (e: never) => void;

class Store implements RedisStore {
  readonly instanceId: string;
  readonly prefix: string;
  readonly mode: 'local' | 'fleet';
  readonly clock: Clock;
  readonly timeoutMs: number;
  readonly flushIntervalMs: number;
  readonly flushMax: number;
  readonly leaseMs: number;
  readonly probeRetryMs: number;
  readonly rule: FleetRule;
  readonly channel: string;
  sessionSeq = 0;
  readonly #recheckMs: number;
  readonly #logger: StoreLogger | undefined;
  readonly #cmd: Redis & Scripts;
  readonly #sub: Redis;
  readonly #ownsCmd: boolean;
  readonly #sessions = new Map<string, Set<Session>>();
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #listeners: { [K in keyof RedisStoreEvents]?: Array<(e: RedisStoreEvents[K]) => void> } = {};
  #subscribed = false;
  #synced = false;
  #degraded = false;
  #degradedAt = 0;
  #resyncing = false;
  #recheck: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #readyWaiters = new Set<(ok: boolean) => void>();
  readonly #onCmdError = (err: unknown) => this.markDegraded(err);
  readonly #onCmdClose = () => this.#lost('command connection closed');
  readonly #onCmdReady = () => this.#onReady();

  constructor(opts: RedisStoreOptions) {
    if (typeof opts !== 'object' || opts === null)
      throw new InvalidOptionError(OWNER, 'options', 'an object', opts);
    unknownKeys(opts, KNOWN, '');
    if (opts.client !== undefined && opts.url !== undefined)
      throw new InvalidOptionError(OWNER, 'url', 'absent when "client" is given', opts.url);
    if (opts.url !== undefined && (typeof opts.url !== 'string' || !/^rediss?:\/\//.test(opts.url)))
      throw new InvalidOptionError(OWNER, 'url', 'a redis:// or rediss:// URL', opts.url);
    if (opts.client !== undefined && typeof (opts.client as { duplicate?: unknown }).duplicate !== 'function')
      throw new InvalidOptionError(OWNER, 'client', 'an ioredis client', opts.client);
    this.prefix = opts.prefix ?? 'tripswitch';
    if (typeof this.prefix !== 'string' || this.prefix.length === 0 || /[{}\s]/.test(this.prefix))
      throw new InvalidOptionError(
        OWNER,
        'prefix',
        'a non-empty string without braces or spaces',
        opts.prefix,
      );
    const mode = opts.mode ?? 'local';
    if (mode !== 'local' && mode !== 'fleet')
      throw new InvalidOptionError(OWNER, 'mode', 'one of "local", "fleet"', opts.mode);
    this.mode = mode;
    this.timeoutMs = num('commandTimeoutMs', opts.commandTimeoutMs, 250, { min: 1, max: 60_000 });
    this.flushIntervalMs = num('flushIntervalMs', opts.flushIntervalMs, 100, { min: 1, max: 60_000 });
    this.flushMax = num('flushMaxOutcomes', opts.flushMaxOutcomes, 1000, { min: 1, integer: true });
    this.leaseMs = num('probeLeaseMs', opts.probeLeaseMs, 5000, { min: 1, integer: true });
    this.probeRetryMs = num('probeRetryMs', opts.probeRetryMs, 50, { min: 0 });
    this.#recheckMs = num('recheckIntervalMs', opts.recheckIntervalMs, 1000, { min: 1 });
    const f = opts.fleet ?? {};
    if (typeof f !== 'object' || f === null)
      throw new InvalidOptionError(OWNER, 'fleet', 'an object', opts.fleet);
    unknownKeys(f, FLEET_KNOWN, 'fleet.');
    this.rule = {
      windowMs: num('fleet.windowMs', f.windowMs, 10_000, { min: 1, integer: true }),
      buckets: num('fleet.buckets', f.buckets, 10, { min: 1, max: 120, integer: true }),
      minimumCalls: num('fleet.minimumCalls', f.minimumCalls, 20, { min: 1, integer: true }),
      failureRateThreshold: num('fleet.failureRateThreshold', f.failureRateThreshold, 0.5, { min: 0 }),
      slowCallRateThreshold: num('fleet.slowCallRateThreshold', f.slowCallRateThreshold, 2, { min: 0 }),
      failureCount: num('fleet.failureCount', f.failureCount, 0, { min: 0, integer: true }),
      openDurationMs: num('fleet.openDurationMs', f.openDurationMs, 30_000, { min: 1 }),
    };
    if (opts.clock !== undefined && typeof (opts.clock as Clock).now !== 'function')
      throw new InvalidOptionError(OWNER, 'clock', 'a Clock', opts.clock);
    this.clock = opts.clock ?? systemClock;
    if (opts.logger !== undefined && opts.logger !== false && typeof opts.logger?.warn !== 'function')
      throw new InvalidOptionError(OWNER, 'logger', 'an object with warn() or false', opts.logger);
    this.#logger = opts.logger === false ? undefined : (opts.logger ?? console);
    if (opts.instanceId !== undefined && (typeof opts.instanceId !== 'string' || opts.instanceId === ''))
      throw new InvalidOptionError(OWNER, 'instanceId', 'a non-empty string', opts.instanceId);
    this.instanceId = opts.instanceId ?? `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    this.channel = `${this.prefix}:events`;

    // Fail fast instead of queueing: a command issued while Redis is away must not hold anything.
    const connection: RedisOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.timeoutMs,
      connectTimeout: Math.max(1000, this.timeoutMs),
      autoResubscribe: false,
      retryStrategy: (times) => Math.min(25 * 2 ** times, 1000),
    };
    if (opts.client) {
      this.#cmd = opts.client as Redis & Scripts;
      this.#ownsCmd = false;
      this.#sub = opts.client.duplicate(connection);
    } else {
      const url = opts.url ?? 'redis://127.0.0.1:6379';
      this.#cmd = new Redis(url, { ...connection, ...opts.redisOptions }) as Redis & Scripts;
      this.#ownsCmd = true;
      this.#sub = new Redis(url, { ...connection, ...opts.redisOptions });
    }
    this.#cmd.defineCommand('tripswitchTransition', { numberOfKeys: 3, lua: transitionScript });
    this.#cmd.defineCommand('tripswitchRead', { numberOfKeys: 2, lua: readScript });
    this.#cmd.defineCommand('tripswitchProbe', { numberOfKeys: 3, lua: probeScript });
    this.#cmd.defineCommand('tripswitchFlush', { numberOfKeys: 2, lua: flushScript });
    this.#cmd.defineCommand('tripswitchRelease', { numberOfKeys: 1, lua: releaseScript });

    this.#cmd.on('error', this.#onCmdError);
    this.#cmd.on('close', this.#onCmdClose);
    this.#cmd.on('ready', this.#onCmdReady);
    this.#sub.on('error', (err: unknown) => this.markDegraded(err));
    this.#sub.on('close', () => {
      this.#subscribed = false;
      this.#lost('subscriber connection closed');
    });
    this.#sub.on('ready', () => this.#subscribe());
    this.#sub.on('message', (_channel: string, raw: string) => this.#onMessage(raw));
    if (this.#sub.status === 'ready') this.#subscribe();
  }

  get healthy(): boolean {
    return !this.#degraded && this.#subscribed && this.#synced && this.#cmd.status === 'ready';
  }

  /** Commands can be sent now (they may still fail). */
  get connected(): boolean {
    return !this.#closed && this.#cmd.status === 'ready';
  }

  get scripts(): Scripts {
    return this.#cmd;
  }

  key(name: string, part: string): string {
    return `${this.prefix}:{${encodeURIComponent(name)}}:${part}`;
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

  /**
   * Runs a command with a hard deadline; the store tracks it so close() can wait for it. Network
   * deadlines run on real time, not on the injected clock: a test clock must not freeze a socket.
   */
  run<T>(command: () => Promise<T>): Promise<T> {
    const p = new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new RedisCommandTimeoutError(this.timeoutMs)), this.timeoutMs);
      timer.unref();
      let started: Promise<T>;
      try {
        started = command();
      } catch (err) {
        clearTimeout(timer);
        reject(err);
        return;
      }
      started.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
    const tracked = p.then(
      () => undefined,
      () => undefined,
    );
    this.#inFlight.add(tracked);
    void tracked.then(() => this.#inFlight.delete(tracked));
    return p;
  }

  attach(handle: BreakerHandle): StoreSession {
    if (this.#closed) throw new Error(`redisStore: attach("${handle.name}") after close()`);
    const session = new Session(this, handle);
    let set = this.#sessions.get(handle.name);
    if (!set) {
      set = new Set();
      this.#sessions.set(handle.name, set);
    }
    set.add(session);
    // A restarted instance picks up the shared state now; before the connection is ready the
    // 'ready' handler does it for every attached breaker.
    if (this.connected) session.refresh();
    return session;
  }

  removeSession(session: Session, name: string): void {
    const set = this.#sessions.get(name);
    if (!set) return;
    set.delete(session);
    if (set.size === 0) this.#sessions.delete(name);
  }

  markDegraded(error: unknown): void {
    if (this.#closed) return;
    this.#synced = false;
    if (!this.#degraded) {
      this.#degraded = true;
      this.#degradedAt = this.clock.now();
      const msg = error instanceof Error ? error.message : String(error);
      this.#log(
        'warn',
        `tripswitch/redis: Redis unreachable (${msg}); breakers continue on local state and re-synchronise when it answers`,
      );
      this.#emit('degraded', { error, at: this.#degradedAt });
    }
    this.#scheduleRecheck();
  }

  /** A one-line warning that is not about Redis (a breaker refusing a remote state). */
  report(message: string): void {
    this.#log('warn', `tripswitch/redis: ${message}`);
  }

  // Called from connection event handlers: a throwing logger must not take the connection down.
  #log(level: 'warn' | 'info', message: string): void {
    try {
      this.#logger?.[level]?.(message);
    } catch {
      // nothing sensible left to report to
    }
  }

  #lost(reason: string): void {
    if (this.#closed) return;
    this.markDegraded(new Error(reason));
  }

  #scheduleRecheck(): void {
    if (this.#recheck !== undefined || this.#closed) return;
    this.#recheck = setTimeout(() => {
      this.#recheck = undefined;
      this.#onReady();
      if (this.#degraded) this.#scheduleRecheck();
    }, this.#recheckMs);
    this.#recheck.unref();
  }

  #subscribe(): void {
    if (this.#closed) return;
    this.#sub.subscribe(this.channel).then(
      () => {
        this.#subscribed = true;
        this.#onReady();
      },
      (err: unknown) => this.markDegraded(err),
    );
  }

  // Both connections up: re-read every breaker's shared state (messages may have been missed
  // while the subscriber was away), then report recovery.
  #onReady(): void {
    if (this.#closed || this.#resyncing || !this.#subscribed || this.#cmd.status !== 'ready') return;
    this.#resyncing = true;
    const all: Promise<unknown>[] = [];
    for (const set of this.#sessions.values())
      for (const s of set) all.push(s.sync().then((fresh) => fresh || s.refresh()));
    Promise.all(all).then(
      () => {
        this.#resyncing = false;
        // a connection dropped while re-reading: not recovered yet, the next 'ready' retries
        if (this.#closed || !this.#subscribed || this.#cmd.status !== 'ready') return;
        this.#synced = true;
        if (this.#degraded) {
          this.#degraded = false;
          const at = this.clock.now();
          this.#log('info', 'tripswitch/redis: Redis answers again; breaker state re-synchronised');
          this.#emit('recovered', { at, downMs: at - this.#degradedAt });
        }
        for (const w of this.#readyWaiters) w(true);
      },
      (err: unknown) => {
        this.#resyncing = false;
        this.markDegraded(err);
      },
    );
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

  ready(timeoutMs = 5000): Promise<boolean> {
    if (this.healthy) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.#readyWaiters.delete(onReady);
        resolve(ok);
      };
      const onReady = (ok: boolean) => done(ok);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#readyWaiters.add(onReady);
      // A store that is connected but never needed a resync (no breaker attached yet) is ready now.
      this.#onReady();
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    for (const set of [...this.#sessions.values()]) for (const s of [...set]) s.detach();
    await Promise.allSettled([...this.#inFlight]);
    this.#closed = true;
    if (this.#recheck !== undefined) clearTimeout(this.#recheck);
    this.#recheck = undefined;
    for (const w of [...this.#readyWaiters]) w(false);
    this.#sub.disconnect();
    if (this.#ownsCmd) this.#cmd.disconnect();
    else {
      // The client stays the caller's: take back only what this store added to it.
      this.#cmd.off('error', this.#onCmdError);
      this.#cmd.off('close', this.#onCmdClose);
      this.#cmd.off('ready', this.#onCmdReady);
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

type Outcome = 'success' | 'failure' | 'slow-success' | 'slow-failure';
type Transition = {
  from: CircuitState;
  to: CircuitState;
  reason: string;
  openUntil?: number;
  manual?: boolean;
};

class Session implements StoreSession {
  readonly #store: Store;
  readonly #handle: BreakerHandle;
  readonly #name: string;
  readonly #id: string;
  readonly #kState: string;
  readonly #kOpen: string;
  readonly #kProbe: string;
  readonly #kCounts: string;
  /** Version of the shared state as last seen (applied or written); tells a re-read whether Redis moved on. */
  #version = 0;
  /** Bumped whenever a message or a reply tells this session something: detects stale reads. */
  #moves = 0;
  /** The last local transition that could not be published (Redis away). */
  #pending: Transition | undefined;
  /** Order of local transitions, so an older failure never replaces a newer pending one. */
  #seq = 0;
  #pendingSeq = 0;
  #leaseUntil = Number.NEGATIVE_INFINITY;
  #nextAcquireAt = Number.NEGATIVE_INFINITY;
  /** The lease request in flight: resolves true when granted. */
  #acquiring: Promise<boolean> | undefined = undefined;
  #publishing = 0;
  #detached = false;
  #s = 0;
  #f = 0;
  #ss = 0;
  #sf = 0;
  #n = 0;
  #lastFlushAt = Number.NEGATIVE_INFINITY;
  #flushTimer: ReturnType<Clock['setTimeout']> | undefined;
  #renewTimer: ReturnType<Clock['setTimeout']> | undefined;
  #unclaimedTimer: ReturnType<Clock['setTimeout']> | undefined;
  readonly #flushNow = () => {
    this.#flushTimer = undefined;
    this.#flush();
  };
  /** Present only in fleet mode, so a local-mode breaker does not even make the call. */
  onOutcome?: (outcome: Outcome) => void;

  constructor(store: Store, handle: BreakerHandle) {
    // Per session, not per store: two breakers of one name on one store hear each other, and
    // each holds (or not) the probe lease on its own.
    this.#id = `${store.instanceId}#${++store.sessionSeq}`;
    this.#store = store;
    this.#handle = handle;
    this.#name = handle.name;
    this.#kState = store.key(handle.name, 's');
    this.#kOpen = store.key(handle.name, 'o');
    this.#kProbe = store.key(handle.name, 'p');
    this.#kCounts = store.key(handle.name, 'c:');
    if (store.mode === 'fleet') {
      // Inlined on purpose: this runs on every call of a fleet-mode breaker.
      this.onOutcome = (o) => {
        if (o === 'success') this.#s++;
        else if (o === 'failure') this.#f++;
        else if (o === 'slow-success') this.#ss++;
        else this.#sf++;
        const n = ++this.#n;
        if (n === 1) this.#arm(this.#store.flushIntervalMs);
        else if (n === this.#store.flushMax) this.#batchFull();
      };
    }
  }

  // One timer per batch, armed by its first outcome; a full batch only brings the timer forward,
  // and never closer than flushIntervalMs / 10 after the previous flush, so a hot breaker sends at
  // most ten flushes per interval instead of one per batch.
  #batchFull(): void {
    const wait = this.#lastFlushAt + this.#store.flushIntervalMs / 10 - this.#store.clock.now();
    if (wait <= 0) this.#flush();
    else this.#arm(wait);
  }

  #arm(ms: number): void {
    const clock = this.#store.clock;
    if (this.#flushTimer !== undefined) clock.clearTimeout(this.#flushTimer);
    this.#flushTimer = clock.setTimeout(this.#flushNow, ms).unref();
  }

  #flush(): void {
    const store = this.#store;
    if (this.#flushTimer !== undefined) {
      store.clock.clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    }
    const s = this.#s;
    const f = this.#f;
    const ss = this.#ss;
    const sf = this.#sf;
    this.#s = this.#f = this.#ss = this.#sf = this.#n = 0;
    this.#lastFlushAt = store.clock.now();
    // Counts made while Redis was away, or while this breaker is not closed, are not fleet
    // evidence any more by the time they could be sent: drop them.
    if (s + f + ss + sf === 0 || !store.connected || this.#handle.state !== 'closed') return;
    const r = store.rule;
    const bucketMs = Math.max(1, Math.ceil(r.windowMs / r.buckets));
    store
      .run(() =>
        store.scripts.tripswitchFlush(
          this.#kState,
          this.#kOpen,
          this.#kCounts,
          bucketMs,
          r.buckets,
          s,
          f,
          ss,
          sf,
          r.minimumCalls,
          r.failureRateThreshold,
          r.slowCallRateThreshold,
          r.failureCount,
          Math.round(this.#openDuration()),
          this.#id,
          store.channel,
          this.#name,
          this.#seq,
        ),
      )
      // A fleet trip reaches this instance as its own message, in order with everyone else's.
      .catch((err: unknown) => store.markDegraded(err));
  }

  /** The breaker's own next open period (backoff included) when it tells, else the fleet rule's. */
  #openDuration(): number {
    try {
      const d = this.#handle.openDurationMs?.();
      if (typeof d === 'number' && Number.isFinite(d) && d > 0) return d;
    } catch {
      // a handle that cannot tell falls back to the configured period
    }
    return this.#store.rule.openDurationMs;
  }

  onTransition(ev: Transition): void {
    if (this.#detached) return;
    this.#seq++;
    // open -> half-open is this instance's own step; the probe lease already speaks for it.
    if (ev.from === 'open' && ev.to === 'half-open') return;
    if (ev.to !== 'closed') this.#s = this.#f = this.#ss = this.#sf = this.#n = 0;
    if (ev.from === 'half-open') {
      this.#leaseUntil = Number.NEGATIVE_INFINITY;
      this.#stopRenewal();
    }
    if (!this.#store.connected) {
      this.#pending = ev;
      this.#pendingSeq = this.#seq;
      return;
    }
    this.#publish(ev);
  }

  #publish(ev: Transition): void {
    const store = this.#store;
    const openMs =
      ev.to === 'open'
        ? Math.max(1, (ev.openUntil ?? store.clock.now() + this.#openDuration()) - store.clock.now())
        : -1;
    // Breakers that say so are believed; older ones are classified by the transition itself.
    const manual = ev.manual ?? !isAutomatic(ev.from, ev.to);
    const kind = manual ? 'manual' : 'auto';
    const seq = this.#seq;
    const movesAtSend = this.#moves;
    this.#publishing++;
    store
      .run(() =>
        store.scripts.tripswitchTransition(
          this.#kState,
          this.#kOpen,
          this.#kProbe,
          ev.to,
          ev.reason,
          Math.round(openMs),
          this.#id,
          kind,
          store.channel,
          this.#name,
          ev.from,
          seq,
        ),
      )
      .then(
        ([applied, version, state, pttl]) => {
          this.#publishing--;
          if (this.#detached) return;
          if (this.#pendingSeq <= seq) this.#pending = undefined;
          if (applied === 1) return; // its own message (in order with the others) confirms it
          // Refused: the shared state (a manual state, an earlier trip, another probe holder)
          // wins, and this breaker takes it over, unless messages arrived meanwhile: they are
          // newer than this answer, and a fresh read settles it.
          if (this.#moves !== movesAtSend || this.#seq !== seq) {
            this.refresh();
            return;
          }
          this.#version = Number(version);
          this.#moves++;
          this.#adopt(state as CircuitState | '', 'shared', Number(pttl));
        },
        (err: unknown) => {
          this.#publishing--;
          if (this.#detached) return;
          if (this.#pending === undefined || this.#pendingSeq < seq) {
            this.#pending = ev;
            this.#pendingSeq = seq;
          }
          store.markDegraded(err);
        },
      );
  }

  /** Applies a state read from Redis (not from a message) if it differs from the local one. */
  #adopt(state: CircuitState | '', reason: string, pttl: number): void {
    const local = this.#handle.state;
    if (state === '' || state === 'half-open') {
      // Another instance is probing (or the state is unknown): an open period that ran out
      // stays open here until the probe decides.
      if (state === 'half-open' && local === 'closed') this.#apply('open', reason, 0);
      return;
    }
    if (state === 'open') {
      if (pttl > 0) this.#apply('open', reason, pttl);
      else if (local === 'closed' || MANUAL_STATES.has(local)) this.#apply('open', reason, 0);
      return;
    }
    if (state !== local) this.#apply(state, reason, -1);
  }

  #apply(state: CircuitState, reason: string, openMs: number): void {
    // Runs inside Redis callbacks and the subscriber's event handler: a throwing handle must
    // become a log line, not an unhandled rejection or a crashed connection.
    try {
      if (state === 'open') {
        this.#handle.applyRemote({
          state,
          openUntil: this.#store.clock.now() + Math.max(0, openMs),
          reason: `remote:${reason}`,
        });
      } else {
        this.#handle.applyRemote({ state, reason: `remote:${reason}` });
      }
    } catch (err) {
      this.#store.report(`applyRemote(${state}) failed on breaker "${this.#name}": ${String(err)}`);
    }
  }

  onMessage(m: Message): void {
    if (this.#detached) return;
    if (m.i === this.#id) {
      this.#version = m.v;
      this.#moves++;
      // Our own write, echoed in its place in the order. If another instance's message was
      // applied after our local transition but was ordered before our write, the local state is
      // now behind Redis: put it back, unless this instance moved on since (a later transition).
      if (m.q === this.#seq && m.s !== this.#handle.state) {
        if (m.s === 'open') this.#apply('open', m.r, m.d);
        else this.#apply(m.s, m.r, -1);
      }
      return;
    }
    // One server executes every publish in order and delivers them in that order on the one
    // subscriber connection, so arrival order is the order of the state changes: no version
    // comparison here (a version could go back after a FLUSHALL or a failover).
    this.#version = m.v;
    this.#moves++;
    this.#pending = undefined;
    this.#leaseUntil = Number.NEGATIVE_INFINITY;
    if (m.s === 'open') this.#apply('open', m.r, m.d);
    else if (m.s !== this.#handle.state) this.#apply(m.s, m.r, -1);
  }

  requestProbe(): boolean {
    if (this.#detached || !this.#store.healthy) return true; // Redis away: decide locally
    const now = this.#store.clock.now();
    if (now < this.#leaseUntil) {
      this.#leaseUntil = Number.NEGATIVE_INFINITY;
      this.#stopUnclaimed();
      this.#renewLater();
      return true;
    }
    if (this.#acquiring === undefined && now >= this.#nextAcquireAt) this.#acquire(now);
    return false;
  }

  // The breaker's execute() waits here after requestProbe() said false, so the call that asked
  // becomes the probe when the lease comes: without it a quiet instance (calls farther apart than
  // the unclaimed lease is kept) would ask, be refused, give the lease back, and never probe.
  // Bounded by the store's command timeout; never rejects.
  awaitProbe(): Promise<boolean> {
    if (this.#detached || !this.#store.healthy) return Promise.resolve(true);
    const now = this.#store.clock.now();
    if (now < this.#leaseUntil) return Promise.resolve(true);
    if (this.#acquiring !== undefined) return this.#acquiring;
    return Promise.resolve(false); // refused moments ago: retry on a later call, not in a loop
  }

  // While this instance probes, the lease is renewed every third of its life, so a probe slower
  // than probeLeaseMs keeps its exclusivity; a dead holder renews nothing and the lease expires.
  #renewLater(): void {
    const store = this.#store;
    this.#stopRenewal();
    this.#renewTimer = store.clock
      .setTimeout(() => {
        this.#renewTimer = undefined;
        if (this.#detached || this.#handle.state !== 'half-open' || !store.connected) return;
        store
          .run(() =>
            store.scripts.tripswitchProbe(this.#kProbe, this.#kState, this.#kOpen, this.#id, store.leaseMs),
          )
          .then(
            ([granted]) => {
              if (granted === 1 && !this.#detached && this.#handle.state === 'half-open') this.#renewLater();
            },
            (err: unknown) => store.markDegraded(err),
          );
      }, store.leaseMs / 3)
      .unref();
  }

  // A lease is fetched for the call after the one that asked; if no call comes soon (a quiet
  // instance, or an eager half-open timer with no traffic), hand it back so a busy instance probes.
  #giveBackIfUnclaimed(): void {
    const store = this.#store;
    this.#stopUnclaimed();
    this.#unclaimedTimer = store.clock
      .setTimeout(
        () => {
          this.#unclaimedTimer = undefined;
          if (this.#leaseUntil === Number.NEGATIVE_INFINITY || this.#detached || !store.connected) return;
          this.#leaseUntil = Number.NEGATIVE_INFINITY;
          store
            .run(() => store.scripts.tripswitchRelease(this.#kProbe, this.#id))
            .catch((err: unknown) => store.markDegraded(err));
        },
        Math.min(UNCLAIMED_LEASE_MS, store.leaseMs / 2),
      )
      .unref();
  }

  #stopUnclaimed(): void {
    if (this.#unclaimedTimer === undefined) return;
    this.#store.clock.clearTimeout(this.#unclaimedTimer);
    this.#unclaimedTimer = undefined;
  }

  #stopRenewal(): void {
    if (this.#renewTimer === undefined) return;
    this.#store.clock.clearTimeout(this.#renewTimer);
    this.#renewTimer = undefined;
  }

  #acquire(sentAt: number): Promise<boolean> {
    const store = this.#store;
    this.#acquiring = store
      .run(() =>
        store.scripts.tripswitchProbe(this.#kProbe, this.#kState, this.#kOpen, this.#id, store.leaseMs),
      )
      .then(
        ([granted, state, pttl]) => {
          this.#acquiring = undefined;
          if (this.#detached) return false;
          // The lease is counted from when it was asked for, so local time never outlives Redis's.
          if (granted === 1) {
            this.#leaseUntil = sentAt + store.leaseMs;
            this.#giveBackIfUnclaimed();
            return true;
          }
          this.#nextAcquireAt = store.clock.now() + store.probeRetryMs;
          const st = (state ?? '') as CircuitState | '';
          if (st === 'closed' || MANUAL_STATES.has(st)) this.#adopt(st, 'shared', -1);
          else if (Number(pttl) > 0) this.#apply('open', 'shared', Number(pttl));
          return false;
        },
        (err: unknown) => {
          this.#acquiring = undefined;
          store.markDegraded(err);
          return false;
        },
      );
    return this.#acquiring;
  }

  /** Reads until a read is not overtaken by messages (bounded: messages keep it fresh too). */
  refresh(attempt = 0): void {
    if (this.#detached || !this.#store.connected) return;
    this.sync().then(
      (fresh) => {
        if (!fresh && attempt < 5) this.refresh(attempt + 1);
      },
      (err: unknown) => this.#store.markDegraded(err),
    );
  }

  /**
   * Reads the shared state and reconciles it with the local one (start-up, reconnect, after a
   * refused write). Resolves false when the read was overtaken and nothing was applied.
   */
  async sync(): Promise<boolean> {
    const store = this.#store;
    const seen = this.#moves;
    const seq = this.#seq;
    const [state, reason, version, pttl] = await store.run(() =>
      store.scripts.tripswitchRead(this.#kState, this.#kOpen),
    );
    if (this.#detached) return true;
    const v = Number(version);
    const pending = this.#pending;
    // A transition made while Redis was away is newer than what Redis holds, unless another
    // instance wrote since this one last saw the state (or Redis restarted empty).
    if (pending && (state === '' || v === this.#version)) {
      this.#pending = undefined;
      const stillOpen = pending.to !== 'open' || (pending.openUntil ?? 0) > store.clock.now();
      if (this.#handle.state === pending.to && stillOpen) {
        this.#publish(pending);
        return true;
      }
    }
    this.#pending = undefined;
    // A message was applied while the read was on its way, or a publish of ours is in flight and
    // will reconcile with whatever Redis holds: the read is stale either way. Otherwise the read is
    // the truth, even with a lower version than seen before (a server restarted with its clock
    // set back), so the versions of later messages compare against it.
    if (this.#publishing > 0) return true;
    if (this.#moves !== seen || this.#seq !== seq) return false;
    this.#version = v;
    this.#moves++;
    this.#adopt(state as CircuitState | '', reason || 'sync', Number(pttl));
    return true;
  }

  detach(): void {
    if (this.#detached) return;
    this.#flush();
    this.#stopRenewal();
    this.#stopUnclaimed();
    this.#detached = true;
    this.#store.removeSession(this, this.#name);
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

/**
 * The store's two Redis connections (commands, and the subscriber) and its degraded mode.
 *
 * Commands fail fast instead of queueing (no offline queue, bounded timeouts, a store-side
 * deadline on every command); the first failure or lost connection degrades the store once
 * (one warning, one `degraded` event); a recheck timer runs only while degraded; when both
 * connections answer again every attached breaker is re-read (`resync`) before `recovered`.
 * Internal.
 *
 * @module
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import type { ConnectTarget, StoreConfig } from './options.js';
import { flushScript, probeScript, readScript, releaseScript, transitionScript } from './scripts.js';

class RedisCommandTimeoutError extends Error {
  override readonly name = 'RedisCommandTimeoutError';
  readonly code = 'ERR_REDIS_COMMAND_TIMEOUT';
  constructor(ms: number) {
    super(`Redis did not answer within ${ms} ms`);
  }
}

/** Replies of the scripts in scripts.ts, as ioredis hands them back. */
export interface Scripts {
  tripswitchTransition(...args: Array<string | number>): Promise<[number, number, string, number]>;
  tripswitchRead(...args: Array<string | number>): Promise<[string, string, number, number]>;
  tripswitchProbe(...args: Array<string | number>): Promise<[number, string | null, number, number]>;
  tripswitchFlush(...args: Array<string | number>): Promise<[number, number, number, number, number, number]>;
  tripswitchRelease(...args: Array<string | number>): Promise<number>;
}

/** What the connection asks of the store it serves. */
export interface ConnectionHooks {
  /**
   * Re-reads every attached breaker's shared state; resolves when all reads are done, rejects
   * when Redis stopped answering meanwhile.
   */
  resync(): Promise<unknown>;
  /** A raw message from the state-change channel. */
  message(raw: string): void;
  degraded(e: { error: unknown; at: number }): void;
  recovered(e: { at: number; downMs: number }): void;
}

/** The fail-fast settings every connection the store makes or duplicates gets. */
export function failFastOptions(timeoutMs: number): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // ioredis' own deadline is a backstop for commands the store does not send through run()
    // (subscribing) and frees a command run() gave up on; run()'s deadline is the one that
    // counts, and it must fire first (see run()).
    commandTimeout: Math.max(timeoutMs * 4, timeoutMs + 2000),
    connectTimeout: Math.max(1000, timeoutMs),
    autoResubscribe: false,
    // no CLIENT SETINFO on connect: one command fewer, and none outside the documented ACL
    disableClientInfo: true,
    retryStrategy: (times) => Math.min(25 * 2 ** times, 1000),
  };
}

type Client = Redis | Cluster;

/** The Cluster settings of the store's own cluster connections: fail fast, reconnect with backoff. */
function clusterOptions(
  failFast: RedisOptions,
  redisOptions: RedisOptions | undefined,
  extra: ClusterOptions | undefined,
  subscriber: boolean,
): ClusterOptions {
  return {
    ...extra,
    enableOfflineQueue: false,
    shardedSubscribers: subscriber,
    clusterRetryStrategy: (times) => Math.min(25 * 2 ** times, 1000),
    redisOptions: { ...failFast, ...redisOptions, ...extra?.redisOptions },
  };
}

export class Connection {
  readonly #cfg: StoreConfig;
  readonly #hooks: ConnectionHooks;
  readonly #cmd: Client & Scripts;
  readonly #sub: Client;
  readonly #ownsCmd: boolean;
  /** Redis Cluster: one sharded channel per breaker name, subscribed while a breaker uses it. */
  readonly #sharded: boolean;
  readonly #channels = new Set<string>();
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #readyWaiters = new Set<(ok: boolean) => void>();
  #subscribed = false;
  #synced = false;
  #degraded = false;
  #degradedAt = 0;
  #resyncing = false;
  #recheck: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly #onCmdError = (err: unknown) => this.markDegraded(err);
  readonly #onCmdClose = () => this.#lost('command connection closed');
  readonly #onCmdReady = () => this.#onReady();
  // Only once the store has been synchronised: while ioredis first maps the cluster it drops the
  // startup nodes it reaches by another name (a hostname for an IP), which is no outage, and
  // degrading then would release the first calls before the first read.
  readonly #onNodeLost = () => {
    if (this.#everSynced) this.#lost('a Redis Cluster node was lost');
  };
  #everSynced = false;
  /** Commands answered so far: a command that timed out while this moved was slow, not lost. */
  #answers = 0;

  constructor(cfg: StoreConfig, target: ConnectTarget, hooks: ConnectionHooks) {
    this.#cfg = cfg;
    this.#hooks = hooks;
    this.#sharded = cfg.sharded;
    // Fail fast instead of queueing: a command issued while Redis is away must not hold anything.
    const ff = failFastOptions(cfg.timeoutMs);
    let cmd: Client;
    switch (target.kind) {
      case 'client':
        cmd = target.client;
        this.#sub = target.client.duplicate(ff);
        break;
      case 'cluster-client': {
        cmd = target.client;
        // Cluster.duplicate(startupNodes, options): the overrides go second (ioredis' signature).
        const own = target.client.options;
        this.#sub = target.client.duplicate([], {
          enableOfflineQueue: false,
          shardedSubscribers: true,
          lazyConnect: false,
          redisOptions: { ...own.redisOptions, ...ff },
        });
        break;
      }
      case 'url':
        cmd = new Redis(target.url, { ...ff, ...target.redisOptions });
        this.#sub = new Redis(target.url, { ...ff, ...target.redisOptions });
        break;
      case 'sentinel': {
        // failoverDetector: the sentinels' +switch-master moves both connections to the new
        // master at once, even when the old one stays up (a SENTINEL FAILOVER demotes it).
        const o: RedisOptions = {
          ...ff,
          ...target.redisOptions,
          sentinels: target.sentinels,
          name: target.name,
          failoverDetector: true,
        };
        cmd = new Redis(o);
        this.#sub = new Redis(o);
        break;
      }
      case 'cluster':
        cmd = new Cluster(
          target.nodes,
          clusterOptions(ff, target.redisOptions, target.clusterOptions, false),
        );
        this.#sub = new Cluster(
          target.nodes,
          clusterOptions(ff, target.redisOptions, target.clusterOptions, true),
        );
        break;
    }
    this.#cmd = cmd as Client & Scripts;
    this.#ownsCmd = target.kind !== 'client' && target.kind !== 'cluster-client';
    this.#cmd.defineCommand('tripswitchTransition', { numberOfKeys: 4, lua: transitionScript });
    this.#cmd.defineCommand('tripswitchRead', { numberOfKeys: 2, lua: readScript });
    this.#cmd.defineCommand('tripswitchProbe', { numberOfKeys: 3, lua: probeScript });
    this.#cmd.defineCommand('tripswitchFlush', { numberOfKeys: 3, lua: flushScript });
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
    if (this.#sharded) {
      this.#sub.on('smessage', (_channel: string, raw: string) => this.#hooks.message(raw));
      // A lost node (a master killed, a failover): messages of its slots may be lost until the
      // subscribers follow the new master, so the store degrades and re-reads once it answers.
      this.#cmd.on('-node', this.#onNodeLost);
      this.#sub.on('-node', this.#onNodeLost);
      // ioredis re-made its sharded subscribers (new topology): re-read what they may have missed.
      // (It also says so while the cluster connection is still starting: 'ready' covers that.)
      this.#sub.on('subscribersReady', () => {
        if (this.#sub.status === 'ready') this.#subscribe();
      });
    } else this.#sub.on('message', (_channel: string, raw: string) => this.#hooks.message(raw));
    if (this.#sub.status === 'ready') this.#subscribe();
  }

  /** Connected, subscribed, synchronised and not degraded. */
  get healthy(): boolean {
    return !this.#degraded && this.#subscribed && this.#synced && this.#cmd.status === 'ready';
  }

  /** Commands can be sent now (they may still fail). */
  get connected(): boolean {
    return !this.#closed && this.#cmd.status === 'ready';
  }

  /** Degraded: breakers decide locally until the store re-synchronises. */
  get degraded(): boolean {
    return this.#degraded;
  }

  get scripts(): Scripts {
    return this.#cmd;
  }

  /** How many commands Redis has answered on this connection (successfully) so far. */
  get answers(): number {
    return this.#answers;
  }

  /**
   * Runs a command with a hard deadline; tracked so close() can wait for it. Network deadlines
   * run on real time, not on the injected clock: a test clock must not freeze a socket.
   */
  run<T>(command: () => Promise<T>): Promise<T> {
    const timeoutMs = this.#cfg.timeoutMs;
    const p = new Promise<T>((resolve, reject) => {
      // The deadline is checked after the event loop has read the sockets once more: a process
      // that was not scheduled for longer than the timeout (a loaded host, a long synchronous
      // task) runs its timers before its I/O, and would otherwise call a reply that is already
      // in its socket buffer a timeout, and degrade the store for its own stall.
      const timer = setTimeout(
        () => setImmediate(() => reject(new RedisCommandTimeoutError(timeoutMs))),
        timeoutMs,
      );
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
          this.#answers++;
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

  markDegraded(error: unknown): void {
    if (this.#closed) return;
    this.#synced = false;
    if (!this.#degraded) {
      this.#degraded = true;
      this.#degradedAt = this.#cfg.clock.now();
      const msg = error instanceof Error ? error.message : String(error);
      this.#log(
        'warn',
        `tripswitch/redis: Redis unreachable (${msg}); breakers continue on local state and re-synchronise when it answers`,
      );
      this.#hooks.degraded({ error, at: this.#degradedAt });
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
      this.#cfg.logger?.[level]?.(message);
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
      // Sharded subscriptions live on per-shard connections that a failover replaces: renew
      // them (idempotent) before the re-read, which #subscribe() starts when they are in place.
      if (this.#sharded && this.#degraded) this.#subscribe();
      else this.#onReady();
      if (this.#degraded) this.#scheduleRecheck();
    }, this.#cfg.recheckMs);
    this.#recheck.unref();
  }

  /**
   * Sharded: subscribes one breaker's channel (its first session on this store). Resolves once
   * subscribed, so the breaker's first read cannot miss a change published in between.
   */
  addChannel(channel: string): Promise<void> {
    if (!this.#sharded || this.#closed) return Promise.resolve();
    this.#channels.add(channel);
    if (this.#sub.status !== 'ready') return Promise.resolve(); // #subscribe() takes it along
    return this.run(() => this.#sub.ssubscribe(channel)).then(
      () => undefined,
      (err: unknown) => this.markDegraded(err),
    );
  }

  /** Sharded: the last breaker of that name left. */
  removeChannel(channel: string): void {
    if (!this.#sharded || !this.#channels.delete(channel) || this.#closed) return;
    if (this.#sub.status === 'ready') this.run(() => this.#sub.sunsubscribe(channel)).catch(() => {});
  }

  #subscribe(): void {
    if (this.#closed) return;
    const subscribed = this.#sharded
      ? // one command per channel: a command's channels must share a slot
        this.run(() => Promise.all([...this.#channels].map((ch) => this.#sub.ssubscribe(ch))))
      : this.#sub.subscribe(this.#cfg.channel);
    subscribed.then(
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
    this.#hooks.resync().then(
      () => {
        this.#resyncing = false;
        // a connection dropped while re-reading: not recovered yet, the next 'ready' retries
        if (this.#closed || !this.#subscribed || this.#cmd.status !== 'ready') return;
        this.#synced = true;
        this.#everSynced = true;
        if (this.#degraded) {
          this.#degraded = false;
          const at = this.#cfg.clock.now();
          this.#log('info', 'tripswitch/redis: Redis answers again; breaker state re-synchronised');
          this.#hooks.recovered({ at, downMs: at - this.#degradedAt });
        }
        for (const w of this.#readyWaiters) w(true);
      },
      (err: unknown) => {
        this.#resyncing = false;
        this.markDegraded(err);
      },
    );
  }

  ready(timeoutMs: number): Promise<boolean> {
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

  /** Waits (bounded) for in-flight commands, then closes what the store opened. */
  async close(): Promise<void> {
    if (this.#closed) return;
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
      this.#cmd.off('-node', this.#onNodeLost);
    }
  }
}

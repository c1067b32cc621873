/**
 * The options of `redisStore()`: their public types, and their validation through core's
 * validator (so a bad option reads like any other tripswitch option error) into the resolved
 * configuration the rest of the store works from.
 *
 * @module
 */
import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { type Clock, InvalidOptionError, rejectUnknownKeys, systemClock, validator } from 'tripswitch';

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
   * An ioredis client to send commands on, a `Redis` or a `Cluster` (it stays yours: `close()` does
   * not quit it). The store subscribes on a `duplicate()` of it. Give one of `client`, `url`,
   * `cluster`, `sentinel`.
   */
  client?: Redis | Cluster;
  /**
   * `redis://[:password@]host:port[/db]`, `rediss://...` (TLS), or Sentinel:
   * `redis-sentinel://[[user]:password@]host:port[,host:port...][/db]#<master name>` (the sentinels'
   * addresses; the password is the data nodes'). @default 'redis://127.0.0.1:6379'
   */
  url?: string;
  /**
   * Redis Cluster: some of its nodes (`{ host, port }`); the store opens an ioredis `Cluster` on
   * them, with `redisOptions` for every node connection (password, `tls`). State changes then
   * travel over sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7+).
   */
  cluster?: ClusterNode[];
  /** Extra ioredis `Cluster` options with `cluster` (e.g. `natMap`, `dnsLookup`). */
  clusterOptions?: ClusterOptions;
  /**
   * Redis Sentinel: the sentinels and the name of the master they watch; the store connects to
   * whichever data node they name master, and follows a failover. `redisOptions` add the rest
   * (`password`, `sentinelPassword`, `tls`, `enableTLSForSentinelMode`).
   */
  sentinel?: { sentinels: Array<{ host: string; port: number }>; name: string };
  /**
   * Extra ioredis options for connections made from `url` (e.g. `tls: { ca }`). Options that would
   * switch off failing fast (`enableOfflineQueue: true`, `maxRetriesPerRequest` other than 0,
   * `autoResubscribe: true`, `lazyConnect: true`, `commandTimeout`, `keyPrefix`) throw, naming the option.
   */
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

/** The validated configuration every part of the store reads. Internal. */
export interface StoreConfig {
  readonly instanceId: string;
  readonly prefix: string;
  readonly mode: 'local' | 'fleet';
  readonly clock: Clock;
  readonly timeoutMs: number;
  readonly flushIntervalMs: number;
  readonly flushMax: number;
  readonly leaseMs: number;
  readonly probeRetryMs: number;
  readonly recheckMs: number;
  readonly rule: FleetRule;
  readonly logger: StoreLogger | undefined;
  /** The classic pub/sub channel of every breaker's state changes (not sharded). */
  readonly channel: string;
  /** Redis Cluster: one sharded channel per breaker, `SPUBLISH`/`SSUBSCRIBE`. */
  readonly sharded: boolean;
}

/** Where the connections go: the caller's client, or a URL and extra options. Internal. */
export type ConnectTarget =
  | { kind: 'client'; client: Redis }
  | { kind: 'cluster-client'; client: Cluster }
  | { kind: 'url'; url: string; redisOptions: RedisOptions | undefined }
  | {
      kind: 'cluster';
      nodes: ClusterNode[];
      redisOptions: RedisOptions | undefined;
      clusterOptions: ClusterOptions | undefined;
    }
  | {
      kind: 'sentinel';
      sentinels: Array<{ host: string; port: number }>;
      name: string;
      redisOptions: RedisOptions | undefined;
    };

export const OWNER = 'redisStore';
const KNOWN = [
  'client',
  'url',
  'cluster',
  'clusterOptions',
  'sentinel',
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

// Every number ends up as a Lua argument or a timer delay: finite bounds keep "Infinity" (which
// Lua's tonumber() does not read) out of Redis and out of setTimeout.
const HOUR = 3_600_000;
const BIG = Number.MAX_SAFE_INTEGER;

/**
 * ioredis options that would switch off failing fast, each with the only value the store accepts
 * (absent is always fine) and why. `redisOptions` is spread over the store's own settings, so
 * without this check one of these would silently make calls' bookkeeping wait on Redis.
 */
const FAIL_FAST: ReadonlyArray<[keyof RedisOptions, unknown, string]> = [
  ['enableOfflineQueue', false, 'commands must fail while Redis is away, not queue until it returns'],
  ['maxRetriesPerRequest', 0, 'a command must not be retried across reconnects'],
  ['autoResubscribe', false, 'the store re-subscribes itself, after re-reading the shared state'],
  ['lazyConnect', false, 'the store connects at once and never calls connect()'],
  ['commandTimeout', undefined, 'use the store option commandTimeoutMs'],
  ['keyPrefix', undefined, 'use the store option prefix (keys must keep their {name} hash tag)'],
];

function checkFailFast(redisOptions: RedisOptions, path = 'redisOptions'): void {
  for (const [name, allowed, why] of FAIL_FAST) {
    const value = redisOptions[name];
    if (value === undefined || value === allowed) continue;
    throw new InvalidOptionError(
      OWNER,
      `${path}.${name}`,
      `${allowed === undefined ? 'absent' : `absent or ${String(allowed)}`} (${why})`,
      value,
    );
  }
}

function checkClusterFailFast(clusterOptions: ClusterOptions): void {
  if (clusterOptions.enableOfflineQueue !== undefined && clusterOptions.enableOfflineQueue !== false)
    throw new InvalidOptionError(
      OWNER,
      'clusterOptions.enableOfflineQueue',
      'absent or false (commands must fail while the cluster is away, not queue)',
      clusterOptions.enableOfflineQueue,
    );
  if (clusterOptions.lazyConnect === true)
    throw new InvalidOptionError(OWNER, 'clusterOptions.lazyConnect', 'absent or false', true);
  if (clusterOptions.keyPrefix !== undefined)
    throw new InvalidOptionError(
      OWNER,
      'clusterOptions.keyPrefix',
      'absent (use the store option prefix)',
      clusterOptions.keyPrefix,
    );
  if (clusterOptions.redisOptions !== undefined)
    checkFailFast(clusterOptions.redisOptions as RedisOptions, 'clusterOptions.redisOptions');
}

/**
 * `redis-sentinel://[[user]:password@]host:port[,host:port...][/db]#<master name>` (the form Lettuce
 * and Spring use): the sentinels, the master's name, and the data nodes' credentials and db.
 */
function parseSentinelUrl(url: string): {
  sentinels: Array<{ host: string; port: number }>;
  name: string;
  auth: RedisOptions;
} {
  const m = /^redis-sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/#]+)(?:\/(\d+))?#(.+)$/.exec(url);
  const bad = (): never => {
    throw new InvalidOptionError(
      OWNER,
      'url',
      'redis-sentinel://[[user]:password@]host:port[,host:port...][/db]#<master name>',
      url,
    );
  };
  if (!m) return bad();
  const sentinels = m[3]!.split(',').map((hp) => {
    const at = hp.lastIndexOf(':');
    const host = at > 0 ? hp.slice(0, at) : hp;
    const port = at > 0 ? Number(hp.slice(at + 1)) : 26379;
    if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) bad();
    return { host: host.replace(/^\[|\]$/g, ''), port };
  });
  const auth: RedisOptions = {};
  if (m[1]) auth.username = decodeURIComponent(m[1]);
  if (m[2] !== undefined) auth.password = decodeURIComponent(m[2]);
  if (m[4] !== undefined) auth.db = Number(m[4]);
  return { sentinels, name: decodeURIComponent(m[5]!), auth };
}

/** Validates `redisStore()` options; throws `InvalidOptionError` naming the first bad one. */
export function parseOptions(opts: RedisStoreOptions): { config: StoreConfig; target: ConnectTarget } {
  const v = validator(OWNER);
  v.object('options', opts);
  rejectUnknownKeys(OWNER, opts, KNOWN);
  const given = (['client', 'url', 'cluster', 'sentinel'] as const).filter((k) => opts[k] !== undefined);
  if (given.length > 1)
    v.fail(
      given[1]!,
      `absent when "${given[0]}" is given (one of client, url, cluster, sentinel)`,
      opts[given[1]!],
    );
  if (opts.cluster !== undefined && (!Array.isArray(opts.cluster) || opts.cluster.length === 0))
    v.fail('cluster', 'a non-empty array of cluster nodes ({ host, port })', opts.cluster);
  const clusterOptions = v.optionalObject('clusterOptions', opts.clusterOptions) as
    | ClusterOptions
    | undefined;
  if (clusterOptions !== undefined && opts.cluster === undefined)
    v.fail('clusterOptions', 'absent unless "cluster" is given', clusterOptions);
  if (clusterOptions !== undefined) checkClusterFailFast(clusterOptions);
  if (opts.sentinel !== undefined) {
    const sn = v.object('sentinel', opts.sentinel);
    rejectUnknownKeys(OWNER, sn, ['sentinels', 'name'], 'sentinel.');
    if (!Array.isArray(sn.sentinels) || sn.sentinels.length === 0)
      v.fail('sentinel.sentinels', 'a non-empty array of { host, port }', sn.sentinels);
    v.string('sentinel.name', sn.name);
  }
  if (
    opts.url !== undefined &&
    (typeof opts.url !== 'string' || !/^(rediss?|redis-sentinel):\/\//.test(opts.url))
  )
    v.fail('url', 'a redis://, rediss:// or redis-sentinel:// URL', opts.url);
  const sentinelUrl =
    typeof opts.url === 'string' && opts.url.startsWith('redis-sentinel://')
      ? parseSentinelUrl(opts.url)
      : undefined;
  if (opts.client !== undefined && typeof (opts.client as { duplicate?: unknown }).duplicate !== 'function')
    v.fail('client', 'an ioredis client (Redis or Cluster)', opts.client);
  const clusterClient =
    opts.client !== undefined && (opts.client as { isCluster?: unknown }).isCluster === true;
  const redisOptions = v.optionalObject('redisOptions', opts.redisOptions) as RedisOptions | undefined;
  if (redisOptions !== undefined) checkFailFast(redisOptions);
  const prefix = opts.prefix ?? 'tripswitch';
  if (typeof prefix !== 'string' || prefix.length === 0 || /[{}\s]/.test(prefix))
    v.fail('prefix', 'a non-empty string without braces or spaces', opts.prefix);
  const mode = v.oneOf('mode', opts.mode ?? 'local', ['local', 'fleet'] as const);
  const f = v.optionalObject('fleet', opts.fleet) ?? {};
  rejectUnknownKeys(OWNER, f, FLEET_KNOWN, 'fleet.');
  const num = (
    path: string,
    value: unknown,
    dflt: number,
    r: { min: number; max: number; integer?: boolean },
  ) => v.optionalNumber(path, value, r) ?? dflt;
  const rule: FleetRule = {
    windowMs: num('fleet.windowMs', f.windowMs, 10_000, { min: 1, max: 24 * HOUR, integer: true }),
    buckets: num('fleet.buckets', f.buckets, 10, { min: 1, max: 120, integer: true }),
    minimumCalls: num('fleet.minimumCalls', f.minimumCalls, 20, { min: 1, max: BIG, integer: true }),
    failureRateThreshold: num('fleet.failureRateThreshold', f.failureRateThreshold, 0.5, {
      min: 0,
      max: BIG,
    }),
    slowCallRateThreshold: num('fleet.slowCallRateThreshold', f.slowCallRateThreshold, 2, {
      min: 0,
      max: BIG,
    }),
    failureCount: num('fleet.failureCount', f.failureCount, 0, { min: 0, max: BIG, integer: true }),
    openDurationMs: num('fleet.openDurationMs', f.openDurationMs, 30_000, { min: 1, max: 24 * HOUR }),
  };
  if (opts.clock !== undefined && typeof (opts.clock as Clock).now !== 'function')
    v.fail('clock', 'a Clock', opts.clock);
  if (opts.logger !== undefined && opts.logger !== false && typeof opts.logger?.warn !== 'function')
    v.fail('logger', 'an object with warn() or false', opts.logger);
  if (opts.instanceId !== undefined) v.string('instanceId', opts.instanceId);
  const config: StoreConfig = {
    instanceId: opts.instanceId ?? `${process.pid}-${Math.random().toString(36).slice(2, 10)}`,
    prefix,
    mode,
    clock: opts.clock ?? systemClock,
    timeoutMs: num('commandTimeoutMs', opts.commandTimeoutMs, 250, { min: 1, max: 60_000 }),
    flushIntervalMs: num('flushIntervalMs', opts.flushIntervalMs, 100, { min: 1, max: 60_000 }),
    flushMax: num('flushMaxOutcomes', opts.flushMaxOutcomes, 1000, { min: 1, max: BIG, integer: true }),
    leaseMs: num('probeLeaseMs', opts.probeLeaseMs, 5000, { min: 1, max: HOUR, integer: true }),
    probeRetryMs: num('probeRetryMs', opts.probeRetryMs, 50, { min: 0, max: HOUR }),
    recheckMs: num('recheckIntervalMs', opts.recheckIntervalMs, 1000, { min: 1, max: HOUR }),
    rule,
    logger: opts.logger === false ? undefined : (opts.logger ?? console),
    channel: `${prefix}:events`,
    sharded: clusterClient || opts.cluster !== undefined,
  };
  let target: ConnectTarget;
  if (opts.client !== undefined)
    target = clusterClient
      ? { kind: 'cluster-client', client: opts.client as Cluster }
      : { kind: 'client', client: opts.client as Redis };
  else if (opts.cluster !== undefined)
    target = { kind: 'cluster', nodes: opts.cluster, redisOptions, clusterOptions };
  else if (opts.sentinel !== undefined) target = { kind: 'sentinel', ...opts.sentinel, redisOptions };
  else if (sentinelUrl !== undefined)
    target = {
      kind: 'sentinel',
      sentinels: sentinelUrl.sentinels,
      name: sentinelUrl.name,
      redisOptions: { ...sentinelUrl.auth, ...redisOptions },
    };
  else target = { kind: 'url', url: opts.url ?? 'redis://127.0.0.1:6379', redisOptions };
  return { config, target };
}

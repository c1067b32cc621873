/**
 * Runtime of one cluster: an undici Pool per host (keep-alive), the limiters per priority, the
 * tripswitch breaker, outlier detection and the balancer, plus plain counters for /metrics.
 * @module
 */
import {
  type BreakerRegistry,
  type BreakerStore,
  type CircuitBreaker,
  type Clock,
  circuitBreaker,
} from 'tripswitch';
import { buildConnector, Pool } from 'undici';
import { Balancer } from '../lb/balancer.js';
import { OutlierDetector, type OutlierHost, outlierSettings } from '../outlier/outlier.js';
import { breakerOptions } from '../config/breaker.js';
import type { ResolvedCluster } from '../config/resolve.js';
import { type TlsMaterial, tlsMaterial } from '../config/tls.js';
import { UpstreamPool } from './h1-pool.js';
import { Limiter } from './limits.js';
import { SharedBreakerStore } from './shared-breaker.js';
import { sharedCounters } from './shared-counters.js';
import { SharedLimiter } from './shared-limits.js';
import { CLUSTER_COUNTERS, type ClusterBlocks } from './shared-plan.js';

/** An upstream host with its connection pool (the fast HTTP/1.1 path, undici behind it). */
export interface UpstreamHost extends OutlierHost {
  readonly origin: string;
  readonly pool: UpstreamPool;
}

/**
 * Plain counters of a cluster (monotonic).
 *
 * @example
 * ```ts
 * const c: ClusterCounters = sidecar.clusters.get('api')!.counters;
 * console.log(`${c.circuitOpen} refused by the breaker, ${c.retries} retries`);
 * ```
 */
export interface ClusterCounters {
  requests: number;
  responses2xx: number;
  responses3xx: number;
  responses4xx: number;
  responses5xx: number;
  circuitOpen: number;
  retries: number;
  timeouts: number;
  resets: number;
  connectFailures: number;
  fallbacks: number;
  clientAborts: number;
  /**
   * Requests the pool sent again on a fresh connection after a reused one closed before any byte
   * of their response (the keep-alive race; neither a retry nor a failure).
   */
  staleConnectionRetries: number;
}

/** Cluster settings that, when unchanged on reload, let a pool be reused. */
function poolKey(c: ResolvedCluster, tls: TlsMaterial | undefined): string {
  const max = Math.max(c.thresholds.default.max_connections, c.thresholds.high.max_connections);
  return JSON.stringify([c.connect_timeout_ms, c.idle_timeout_ms, max, tls?.digest]);
}

/**
 * undici's connector with the cluster's TLS options (the names of node's `tls.connect()`). It drops
 * the servername undici derives from each request's Host header (the client's, forwarded), so SNI
 * and the certificate check use `servername`, else the host name of the `hosts` entry (no SNI for
 * an IP address, which is then what the certificate must name).
 */
function tlsConnector(c: ResolvedCluster, tls: TlsMaterial | undefined): buildConnector.connector {
  const t = c.tls;
  const base = buildConnector({
    timeout: c.connect_timeout_ms,
    ...(tls?.ca ? { ca: tls.ca } : {}),
    ...(tls?.cert ? { cert: tls.cert } : {}),
    ...(tls?.key ? { key: tls.key } : {}),
    ...(t?.servername ? { servername: t.servername } : {}),
    rejectUnauthorized: t?.reject_unauthorized ?? true,
  });
  return ({ servername: _fromHostHeader, ...opts }, callback) => base(opts, callback);
}

/**
 * One cluster's runtime.
 * @example
 * ```ts
 * const c = new Cluster(resolveCluster({ name: 'api', hosts: ['127.0.0.1:3000'] }), systemClock);
 * ```
 */
export class Cluster {
  readonly name: string;
  readonly hosts: UpstreamHost[];
  #breaker: CircuitBreaker | undefined;
  readonly failureStatuses: Set<number> | undefined;
  readonly limits: { default: Limiter; high: Limiter };
  readonly outlier: OutlierDetector;
  readonly balancer: Balancer<UpstreamHost>;
  readonly requestTimeoutMs: number;
  /** Carried over from the same-named cluster on reload, so Prometheus counters never go back. */
  readonly counters: ClusterCounters;
  readonly poolKey: string;
  readonly breakerKey: string;
  /**
   * With `workers: N`, the store that keeps the breaker's decision shared across the workers;
   * admission calls its `sync()` before asking the breaker.
   */
  readonly sharedBreaker: SharedBreakerStore | undefined;
  /** With `workers: N`: this cluster's shared memory and which worker this is (-1: the main thread). */
  readonly share: { blocks: ClusterBlocks; worker: number } | undefined;
  /** The files of the cluster's `tls` block (also used for Upgrade tunnels to https hosts). */
  readonly tls: TlsMaterial | undefined;

  /**
   * @param previous - the same-named cluster of the config being replaced: its pools (same
   * host and pool settings) and breaker (same breaker options) carry over.
   * @param breakers - where the breaker is created, by {@link Cluster.attachBreaker} once the
   * cluster comes into force (so that a reload that fails leaves the registry as it was); without
   * it the breaker is created here.
   */
  constructor(
    readonly config: ResolvedCluster,
    readonly clock: Clock,
    previous?: Cluster,
    breakers?: BreakerRegistry,
    share?: { blocks: ClusterBlocks; worker: number },
  ) {
    this.name = config.name;
    this.share = share;
    this.counters = share
      ? sharedCounters(CLUSTER_COUNTERS, share.blocks.counters, share.worker)
      : (previous?.counters ?? {
          requests: 0,
          responses2xx: 0,
          responses3xx: 0,
          responses4xx: 0,
          responses5xx: 0,
          circuitOpen: 0,
          retries: 0,
          timeouts: 0,
          resets: 0,
          connectFailures: 0,
          fallbacks: 0,
          clientAborts: 0,
          staleConnectionRetries: 0,
        });
    const tls = config.tls ? tlsMaterial(config.tls, `cluster ${config.name} tls`) : undefined;
    this.tls = tls;
    this.poolKey = poolKey(config, tls);
    // a breaker sharing its state elsewhere (or no longer) is a different breaker
    this.breakerKey = JSON.stringify([config.breaker ?? {}, config.shared_state ?? null]);
    this.limits = share
      ? {
          default: new SharedLimiter(config.thresholds.default, share.blocks.limits, 0, share.worker),
          high: new SharedLimiter(config.thresholds.high, share.blocks.limits, 1, share.worker),
        }
      : { default: new Limiter(config.thresholds.default), high: new Limiter(config.thresholds.high) };
    const sb = share?.blocks.breaker;
    this.sharedBreaker =
      sb === undefined
        ? undefined
        : previous?.sharedBreaker?.block === sb
          ? previous.sharedBreaker
          : new SharedBreakerStore(sb, share!.worker, clock);
    const maxConn = Math.max(this.limits.default.maxConnections, this.limits.high.maxConnections);
    const reuse = previous && previous.poolKey === this.poolKey ? previous : undefined;
    const now = clock.now();
    // Not `this`: a pool carried over on reload must not keep this cluster alive.
    const counters = this.counters;
    const onStaleRetry = () => {
      counters.staleConnectionRetries++;
    };
    this.hosts = config.hosts.map((h) => {
      const origin = h.startsWith('http') ? h.replace(/\/$/, '') : `http://${h}`;
      const old = reuse?.hosts.find((x) => x.origin === origin);
      const pool =
        old?.pool ??
        new UpstreamPool(
          origin,
          new Pool(origin, {
            connections: maxConn,
            pipelining: 1,
            keepAliveTimeout: config.idle_timeout_ms,
            // Caps the server's Keep-Alive hint too (undici prefers the hint over keepAliveTimeout).
            keepAliveMaxTimeout: config.idle_timeout_ms,
            connect: origin.startsWith('https:')
              ? tlsConnector(config, tls)
              : { timeout: config.connect_timeout_ms },
            headersTimeout: 0,
            bodyTimeout: 0,
          }),
          {
            connections: maxConn,
            connectTimeoutMs: config.connect_timeout_ms,
            idleTimeoutMs: config.idle_timeout_ms,
            onStaleRetry,
          },
        );
      return {
        address: origin.replace(/^https?:\/\//, ''),
        origin,
        pool,
        active: 0,
        consecutive5xx: old?.consecutive5xx ?? 0,
        consecutiveGateway: old?.consecutiveGateway ?? 0,
        ejectedUntil: old?.ejectedUntil ?? 0,
        ejections: old?.ejections ?? 0,
        windowStart: now,
        windowTotal: 0,
        windowFailures: 0,
      };
    });
    const b = config.breaker;
    if (b !== undefined && previous?.breaker && previous.breakerKey === this.breakerKey)
      this.#breaker = previous.breaker;
    else if (b !== undefined && breakers === undefined)
      this.#breaker = circuitBreaker(breakerOptions(this.name, b, clock));
    this.failureStatuses = b?.failureStatuses ? new Set(b.failureStatuses) : undefined;
    this.outlier = new OutlierDetector(outlierSettings(config.outlier_detection), clock, this.hosts);
    if (previous) {
      this.outlier.ejectionsTotal = previous.outlier.ejectionsTotal;
      this.outlier.ejectionsOverflow = previous.outlier.ejectionsOverflow;
    }
    this.balancer = new Balancer(config.lb_policy, this.hosts);
    this.requestTimeoutMs = config.request_timeout_ms;
  }

  /** The cluster's breaker; undefined when disabled (or not yet attached). */
  get breaker(): CircuitBreaker | undefined {
    return this.#breaker;
  }

  /**
   * Creates the breaker in `breakers` under the cluster's name, unless it was carried over or is
   * disabled. The caller first deletes the breaker of the cluster this one replaces.
   */
  attachBreaker(
    breakers: BreakerRegistry,
    storeFor?: (c: ResolvedCluster) => BreakerStore | undefined,
  ): void {
    if (this.#breaker !== undefined || this.config.breaker === undefined) return;
    const { name: _name, ...options } = breakerOptions(
      this.name,
      this.config.breaker,
      this.sharedBreaker?.breakerClock ?? this.clock,
    );
    const store = this.sharedBreaker ?? storeFor?.(this.config);
    this.#breaker = breakers.get(this.name, store ? { ...options, store } : options);
  }

  /** The host for the next request or tunnel: the only one, else the balancer's pick. */
  pick(): UpstreamHost {
    return this.hosts.length === 1 ? this.hosts[0]! : this.balancer.pick(this.clock.now());
  }

  /** True when `status` counts as a failure for the breaker. */
  isFailureStatus(status: number): boolean {
    return this.failureStatuses ? this.failureStatuses.has(status) : status >= 500;
  }

  /** Pools not carried over into `next` (to close once their requests finish). */
  poolsNotIn(next: Cluster | undefined): UpstreamPool[] {
    return this.hosts.filter((h) => !next?.hosts.some((x) => x.pool === h.pool)).map((h) => h.pool);
  }

  /** Total requests in flight across both priorities. */
  get active(): number {
    return this.limits.default.active + this.limits.high.active;
  }
}

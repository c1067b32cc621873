/**
 * Every default of the sidecar configuration, and the one function that applies them. A validated
 * {@link SidecarConfig} is resolved once (when a {@link Sidecar} is built or reloaded, or a config is
 * exported) into a {@link ResolvedConfig} in which nothing is optional that has a default, so the
 * proxy, the limits, the pools, the exporters and the docs read the same numbers.
 * @module
 */
import type {
  BreakerConfig,
  ClusterConfig,
  FallbackConfig,
  ListenerConfig,
  ListenerTlsConfig,
  OutlierConfig,
  RecordTraceConfig,
  RetryConfig,
  RouteConfig,
  SharedStateConfig,
  SidecarConfig,
  ThresholdConfig,
  UpstreamTlsConfig,
} from './schema.js';
import { ownServerProblem } from '../proxy/llhttp.js';

/**
 * The defaults, by YAML block and field name (the table in docs/sidecar.md is this object).
 *
 * @example
 * ```ts
 * console.log(CONFIG_DEFAULTS.threshold.max_requests); // 1024, as in Envoy
 * ```
 */
export const CONFIG_DEFAULTS = {
  admin: { address: '127.0.0.1', port: 9901 },
  drain_timeout_ms: 10_000,
  workers: 1,
  listener: {
    address: '127.0.0.1',
    max_header_bytes: 16_384,
    max_headers_count: 100,
    headers_timeout_ms: 10_000,
    request_timeout_ms: 300_000,
    idle_timeout_ms: 5000,
    priority_header: 'x-tripswitch-priority',
    // A listener without tls; one with tls gets node (own reads plain HTTP only), and so does every
    // listener on a Node without what own needs (see defaultHttpServer).
    http_server: 'own',
  },
  route: { prefix: '/', priority: 'default' },
  retry: {
    attempts: 0,
    retry_on: [502, 503, 504, 'connect-failure', 'reset'],
    backoff_base_ms: 25,
    backoff_max_ms: 250,
    retry_non_idempotent: false,
    buffer_body_bytes: 65_536,
  },
  last_good: { max_body_bytes: 1_048_576 },
  cluster: {
    lb_policy: 'round_robin',
    connect_timeout_ms: 5000,
    request_timeout_ms: 15_000,
    idle_timeout_ms: 60_000,
  },
  threshold: { max_connections: 1024, max_pending_requests: 1024, max_requests: 1024, max_retries: 3 },
  retry_budget: { budget_percent: 20, min_retry_concurrency: 3 },
  shared_state: {
    prefix: 'tripswitch',
    mode: 'local',
    commandTimeoutMs: 250,
    flushIntervalMs: 100,
    flushMaxOutcomes: 1000,
    probeLeaseMs: 5000,
    probeRetryMs: 50,
    recheckIntervalMs: 1000,
  },
  record_trace: { sample_rate: 1, max_bytes: 100_000_000, max_files: 2 },
  outlier_detection: {
    consecutive_5xx: 5,
    consecutive_gateway_failure: 5,
    failure_percentage_request_volume: 50,
    interval_ms: 10_000,
    base_ejection_time_ms: 30_000,
    max_ejection_time_ms: 300_000,
    max_ejection_percent: 10,
  },
} as const;

/** A priority class of traffic. */
export type Priority = 'default' | 'high';

/**
 * One priority's limits with defaults applied; `retry_budget` replaces `max_retries` when set.
 *
 * @example
 * ```ts
 * const t: ResolvedThreshold = resolveThreshold({ priority: 'high', max_requests: 100 });
 * ```
 */
export interface ResolvedThreshold {
  priority: Priority;
  max_connections: number;
  max_pending_requests: number;
  max_requests: number;
  max_retries: number;
  retry_budget: { budget_percent: number; min_retry_concurrency: number } | undefined;
}

/**
 * A route's retry policy with defaults applied (`attempts: 0` = no retries).
 *
 * @example
 * ```ts
 * const r: ResolvedRetry = resolveRetry({ attempts: 2 }); // backoff 25..250 ms, retry_on 502/503/504/connect-failure/reset
 * ```
 */
export interface ResolvedRetry {
  attempts: number;
  retry_on: (number | 'connect-failure' | 'reset')[];
  backoff_base_ms: number;
  backoff_max_ms: number;
  retry_non_idempotent: boolean;
  buffer_body_bytes: number;
}

/**
 * A route fallback with defaults applied.
 *
 * @example
 * ```ts
 * const f: ResolvedFallback = { last_good: true, max_body_bytes: 1_048_576 };
 * ```
 */
export type ResolvedFallback =
  | { status: number; headers: Record<string, string>; body: string }
  | { last_good: true; max_body_bytes: number };

/**
 * A route with defaults applied; `timeout_ms` is the route's, else its cluster's request timeout.
 *
 * @example
 * ```ts
 * for (const r of sidecar.resolved.listeners[0]!.routes) console.log(r.prefix, r.cluster, r.timeout_ms);
 * ```
 */
export interface ResolvedRoute {
  prefix: string;
  /** Lower-cased; undefined matches every Host. */
  host: string | undefined;
  cluster: string;
  priority: Priority;
  timeout_ms: number;
  retry: ResolvedRetry;
  fallback: ResolvedFallback | undefined;
}

/**
 * A listener with defaults applied; `key` is `address:port`.
 *
 * @example
 * ```ts
 * const l: ResolvedListener = sidecar.resolved.listeners[0]!;
 * console.log(`${l.name ?? l.key} reads headers up to ${l.max_header_bytes} bytes`);
 * ```
 */
export interface ResolvedListener {
  name: string | undefined;
  key: string;
  address: string;
  port: number;
  max_header_bytes: number;
  max_headers_count: number;
  headers_timeout_ms: number;
  /** 0 = no limit. */
  request_timeout_ms: number;
  idle_timeout_ms: number;
  /** Lower-cased. */
  priority_header: string;
  routes: ResolvedRoute[];
  tls: ListenerTlsConfig | undefined;
  /** What reads the client connections (`own`: plain HTTP only); see {@link defaultHttpServer}. */
  http_server: 'node' | 'own';
}

/**
 * Outlier detection with defaults applied; `failure_percentage_threshold` undefined = off.
 *
 * @example
 * ```ts
 * const o: ResolvedOutlier = resolveOutlier({ consecutive_5xx: 3 });
 * ```
 */
export interface ResolvedOutlier {
  consecutive_5xx: number;
  consecutive_gateway_failure: number;
  failure_percentage_threshold: number | undefined;
  failure_percentage_request_volume: number;
  interval_ms: number;
  base_ejection_time_ms: number;
  max_ejection_time_ms: number;
  max_ejection_percent: number;
}

/**
 * A `shared_state` block with defaults applied (the `fleet` rule's defaults are the store's).
 *
 * @example
 * ```ts
 * const s: ResolvedSharedState = resolveSharedState({ url: 'redis://127.0.0.1:6379' });
 * s.commandTimeoutMs; // 250
 * ```
 */
export type ResolvedSharedState = SharedStateConfig &
  Required<Omit<SharedStateConfig, 'url' | 'cluster' | 'fleet'>>;

/**
 * A `shared_state` block with defaults applied.
 * @example
 * ```ts
 * resolveSharedState({ url: 'redis://redis:6379' }).mode; // 'local'
 * ```
 */
export function resolveSharedState(s: SharedStateConfig): ResolvedSharedState {
  return { ...CONFIG_DEFAULTS.shared_state, ...s };
}

/**
 * A `record_trace` block with defaults applied.
 *
 * @example
 * ```ts
 * const r: ResolvedRecordTrace = resolveRecordTrace({ file: 'payments.ndjson' });
 * r.max_files; // 2
 * ```
 */
export type ResolvedRecordTrace = Required<RecordTraceConfig>;

/**
 * A `record_trace` block with defaults applied.
 *
 * @example
 * ```ts
 * resolveRecordTrace({ file: 'payments.ndjson' }).sample_rate; // 1
 * ```
 */
export function resolveRecordTrace(r: RecordTraceConfig): ResolvedRecordTrace {
  return { ...CONFIG_DEFAULTS.record_trace, ...r };
}

/**
 * A cluster with defaults applied. `thresholds` has both priorities; `breaker` is undefined when
 * the breaker is disabled (`enabled: false`); its `failureStatuses` undefined = every 5xx.
 *
 * @example
 * ```ts
 * const c: ResolvedCluster = resolveCluster({ name: 'api', hosts: ['127.0.0.1:3000'] });
 * console.log(c.thresholds.default.max_requests); // 1024
 * ```
 */
export interface ResolvedCluster {
  name: string;
  hosts: string[];
  lb_policy: 'round_robin' | 'least_request';
  connect_timeout_ms: number;
  request_timeout_ms: number;
  idle_timeout_ms: number;
  thresholds: Record<Priority, ResolvedThreshold>;
  breaker: Omit<BreakerConfig, 'enabled'> | undefined;
  /** Undefined: the breaker's state is this sidecar's own (also when the breaker is disabled). */
  shared_state: ResolvedSharedState | undefined;
  /** Undefined: not recorded (also when the breaker is disabled: there are no calls to record). */
  record_trace: ResolvedRecordTrace | undefined;
  outlier_detection: ResolvedOutlier;
  tls: UpstreamTlsConfig | undefined;
}

/**
 * A whole configuration with defaults applied, and the validated config it came from.
 *
 * @example
 * ```ts
 * const resolved: ResolvedConfig = resolveConfig(loadConfig('tripswitch.yaml'));
 * ```
 */
export interface ResolvedConfig {
  admin: { address: string; port: number; token: string | undefined; allowed_hosts: string[] };
  drain_timeout_ms: number;
  /** Worker threads accepting on the listeners (1: the main thread serves them itself). */
  workers: number;
  listeners: ResolvedListener[];
  clusters: ResolvedCluster[];
  /** The config as validated, before defaults. */
  source: SidecarConfig;
}

/**
 * One priority's limits with defaults applied (`t` undefined: the defaults).
 * @example
 * ```ts
 * resolveThreshold(undefined, 'high').max_pending_requests; // 1024
 * ```
 */
export function resolveThreshold(
  t: ThresholdConfig | undefined,
  priority: Priority = 'default',
): ResolvedThreshold {
  const d = CONFIG_DEFAULTS.threshold;
  const b = t?.retry_budget;
  return {
    priority: t?.priority ?? priority,
    max_connections: t?.max_connections ?? d.max_connections,
    max_pending_requests: t?.max_pending_requests ?? d.max_pending_requests,
    max_requests: t?.max_requests ?? d.max_requests,
    max_retries: t?.max_retries ?? d.max_retries,
    retry_budget: b
      ? {
          budget_percent: b.budget_percent ?? CONFIG_DEFAULTS.retry_budget.budget_percent,
          min_retry_concurrency:
            b.min_retry_concurrency ?? CONFIG_DEFAULTS.retry_budget.min_retry_concurrency,
        }
      : undefined,
  };
}

/**
 * Outlier detection with defaults applied.
 * @example
 * ```ts
 * resolveOutlier(undefined).base_ejection_time_ms; // 30000
 * ```
 */
export function resolveOutlier(o: OutlierConfig | undefined): ResolvedOutlier {
  const d = CONFIG_DEFAULTS.outlier_detection;
  return {
    consecutive_5xx: o?.consecutive_5xx ?? d.consecutive_5xx,
    consecutive_gateway_failure: o?.consecutive_gateway_failure ?? d.consecutive_gateway_failure,
    failure_percentage_threshold: o?.failure_percentage_threshold,
    failure_percentage_request_volume:
      o?.failure_percentage_request_volume ?? d.failure_percentage_request_volume,
    interval_ms: o?.interval_ms ?? d.interval_ms,
    base_ejection_time_ms: o?.base_ejection_time_ms ?? d.base_ejection_time_ms,
    max_ejection_time_ms: o?.max_ejection_time_ms ?? d.max_ejection_time_ms,
    max_ejection_percent: o?.max_ejection_percent ?? d.max_ejection_percent,
  };
}

/**
 * A retry block with defaults applied (`r` undefined: no retries).
 * @example
 * ```ts
 * resolveRetry({ attempts: 2 }).backoff_max_ms; // 250
 * ```
 */
export function resolveRetry(r: RetryConfig | undefined): ResolvedRetry {
  const d = CONFIG_DEFAULTS.retry;
  return {
    attempts: r?.attempts ?? d.attempts,
    retry_on: r?.retry_on ?? [...d.retry_on],
    backoff_base_ms: r?.backoff_base_ms ?? d.backoff_base_ms,
    backoff_max_ms: r?.backoff_max_ms ?? d.backoff_max_ms,
    retry_non_idempotent: r?.retry_non_idempotent ?? d.retry_non_idempotent,
    buffer_body_bytes: r?.buffer_body_bytes ?? d.buffer_body_bytes,
  };
}

function resolveFallback(f: FallbackConfig | undefined): ResolvedFallback | undefined {
  if (f === undefined) return undefined;
  if ('last_good' in f)
    return { last_good: true, max_body_bytes: f.max_body_bytes ?? CONFIG_DEFAULTS.last_good.max_body_bytes };
  return { status: f.status, headers: f.headers ?? {}, body: f.body ?? '' };
}

/**
 * A cluster block with defaults applied.
 * @example
 * ```ts
 * resolveCluster({ name: 'api', hosts: ['127.0.0.1:3000'] }).request_timeout_ms; // 15000
 * ```
 */
export function resolveCluster(c: ClusterConfig): ResolvedCluster {
  const d = CONFIG_DEFAULTS.cluster;
  const th = c.circuit_breakers?.thresholds ?? [];
  const { enabled, ...breaker } = c.breaker ?? {};
  return {
    name: c.name,
    hosts: c.hosts,
    lb_policy: c.lb_policy ?? d.lb_policy,
    connect_timeout_ms: c.connect_timeout_ms ?? d.connect_timeout_ms,
    request_timeout_ms: c.request_timeout_ms ?? d.request_timeout_ms,
    idle_timeout_ms: c.idle_timeout_ms ?? d.idle_timeout_ms,
    thresholds: {
      default: resolveThreshold(
        th.find((t) => t.priority === 'default'),
        'default',
      ),
      high: resolveThreshold(
        th.find((t) => t.priority === 'high'),
        'high',
      ),
    },
    breaker: enabled === false ? undefined : breaker,
    shared_state: c.shared_state && enabled !== false ? resolveSharedState(c.shared_state) : undefined,
    record_trace: c.record_trace && enabled !== false ? resolveRecordTrace(c.record_trace) : undefined,
    outlier_detection: resolveOutlier(c.outlier_detection),
    tls: c.tls,
  };
}

function resolveRoute(r: RouteConfig, clusters: ReadonlyMap<string, ResolvedCluster>): ResolvedRoute {
  const cluster = clusters.get(r.cluster);
  return {
    prefix: r.prefix ?? CONFIG_DEFAULTS.route.prefix,
    host: r.host?.toLowerCase(),
    cluster: r.cluster,
    priority: r.priority ?? CONFIG_DEFAULTS.route.priority,
    timeout_ms: r.timeout_ms ?? cluster?.request_timeout_ms ?? CONFIG_DEFAULTS.cluster.request_timeout_ms,
    retry: resolveRetry(r.retry),
    fallback: resolveFallback(r.fallback),
  };
}

/**
 * The `http_server` of a listener that does not name one: `own` (CONFIG_DEFAULTS) on plain HTTP;
 * `node` with a tls block (own reads plain HTTP only), or when this Node lacks node's internal
 * parser that own needs (`ownProblem` says why; given here so that a test can try both answers).
 * @example
 * ```ts
 * defaultHttpServer({ port: 8080, routes: [{ cluster: 'api' }] }); // 'own' on Node 20-24
 * ```
 */
export function defaultHttpServer(
  l: ListenerConfig,
  ownProblem: () => string | undefined = ownServerProblem,
): 'node' | 'own' {
  if (l.tls || ownProblem() !== undefined) return 'node';
  return CONFIG_DEFAULTS.listener.http_server;
}

/**
 * A listener block with defaults applied; routes take their cluster's request timeout.
 * `ownProblem`: see {@link defaultHttpServer}.
 * @example
 * ```ts
 * const l = resolveListener({ port: 8080, routes: [{ cluster: 'api' }] }, new Map());
 * l.key; // '127.0.0.1:8080'
 * ```
 */
export function resolveListener(
  l: ListenerConfig,
  clusters: ReadonlyMap<string, ResolvedCluster>,
  ownProblem: () => string | undefined = ownServerProblem,
): ResolvedListener {
  const d = CONFIG_DEFAULTS.listener;
  const address = l.address ?? d.address;
  return {
    name: l.name,
    key: `${address}:${l.port}`,
    address,
    port: l.port,
    max_header_bytes: l.max_header_bytes ?? d.max_header_bytes,
    max_headers_count: l.max_headers_count ?? d.max_headers_count,
    headers_timeout_ms: l.headers_timeout_ms ?? d.headers_timeout_ms,
    request_timeout_ms: l.request_timeout_ms ?? d.request_timeout_ms,
    idle_timeout_ms: l.idle_timeout_ms ?? d.idle_timeout_ms,
    priority_header: (l.priority_header ?? d.priority_header).toLowerCase(),
    routes: l.routes.map((r) => resolveRoute(r, clusters)),
    tls: l.tls,
    http_server: l.http_server ?? defaultHttpServer(l, ownProblem),
  };
}

/**
 * Applies every default to a validated config (see {@link CONFIG_DEFAULTS}; `ownProblem`: see
 * {@link defaultHttpServer}).
 * @example
 * ```ts
 * const { listeners, clusters } = resolveConfig(loadConfig('tripswitch.yaml'));
 * ```
 */
export function resolveConfig(
  config: SidecarConfig,
  ownProblem: () => string | undefined = ownServerProblem,
): ResolvedConfig {
  const clusters = config.clusters.map(resolveCluster);
  const byName = new Map(clusters.map((c) => [c.name, c]));
  return {
    admin: {
      address: config.admin?.address ?? CONFIG_DEFAULTS.admin.address,
      port: config.admin?.port ?? CONFIG_DEFAULTS.admin.port,
      token: config.admin?.token,
      allowed_hosts: config.admin?.allowed_hosts ?? [],
    },
    drain_timeout_ms: config.drain_timeout_ms ?? CONFIG_DEFAULTS.drain_timeout_ms,
    workers: config.workers ?? CONFIG_DEFAULTS.workers,
    listeners: config.listeners.map((l) => resolveListener(l, byName, ownProblem)),
    clusters,
    source: config,
  };
}

/**
 * The TypeScript shape of a sidecar configuration, as the code reads it once `configSchema`
 * (`schema.ts`) has validated it (types only).
 *
 * @module
 */

/**
 * Limits of one priority, as in Envoy's `circuit_breakers.thresholds[]`.
 *
 * @example
 * ```ts
 * const t: ThresholdConfig = { priority: 'default', max_connections: 100, max_pending_requests: 50, max_requests: 200 };
 * ```
 */
export interface ThresholdConfig {
  priority: 'default' | 'high';
  max_connections?: number;
  max_pending_requests?: number;
  max_requests?: number;
  max_retries?: number;
  retry_budget?: { budget_percent?: number; min_retry_concurrency?: number };
}

/**
 * The breaker block: circuitBreaker() options plus `enabled` and `failureStatuses`.
 *
 * @example
 * ```ts
 * const b: BreakerConfig = { trip: { kind: 'consecutive', threshold: 5 }, openDuration: 10_000, failureStatuses: [502, 503, 504] };
 * ```
 */
export interface BreakerConfig {
  enabled?: boolean;
  trip?: Record<string, unknown> & { kind: 'consecutive' | 'count' | 'time' };
  openDuration?: number | { base: number; max?: number; multiplier?: number; jitter?: number };
  halfOpen?: {
    maxProbes?: number;
    successesToClose?: number;
    failureRateThreshold?: number;
    deadlineMs?: number;
    waitForProbes?: boolean;
  };
  eagerHalfOpen?: boolean;
  failureStatuses?: number[];
}

/**
 * The cluster's breaker state shared through Redis: `redisStore()` options of `@tripswitch/redis`
 * (`url` or `cluster`, one of them).
 *
 * @example
 * ```ts
 * const s: SharedStateConfig = { url: 'redis://redis:6379', prefix: 'edge', mode: 'fleet' };
 * ```
 */
export interface SharedStateConfig {
  url?: string;
  /** Redis Cluster nodes, `host:port`. */
  cluster?: string[];
  prefix?: string;
  mode?: 'local' | 'fleet';
  commandTimeoutMs?: number;
  flushIntervalMs?: number;
  flushMaxOutcomes?: number;
  probeLeaseMs?: number;
  probeRetryMs?: number;
  recheckIntervalMs?: number;
  fleet?: {
    windowMs?: number;
    buckets?: number;
    minimumCalls?: number;
    failureRateThreshold?: number;
    slowCallRateThreshold?: number;
    failureCount?: number;
    openDurationMs?: number;
  };
}

/**
 * The cluster's breaker calls recorded as a trace for the tuner (`recordTrace()` of
 * `@tripswitch/tuner`: `sample_rate`, `max_bytes` and `max_files` are its `sample`, `maxBytes` and
 * `maxFiles`).
 *
 * @example
 * ```ts
 * const r: RecordTraceConfig = { file: '/var/log/tripswitch/payments.ndjson', sample_rate: 0.1, max_bytes: 50_000_000 };
 * ```
 */
export interface RecordTraceConfig {
  /** NDJSON file appended to; a relative path starts from the config file's directory. */
  file: string;
  /** Fraction of calls recorded, in (0, 1]. @default 1 */
  sample_rate?: number;
  /** Rotate when the file reaches this many bytes. @default 100000000 */
  max_bytes?: number;
  /** Rotated files kept besides the current one. @default 2 */
  max_files?: number;
}

/**
 * Per-host outlier detection, named as in Envoy.
 *
 * @example
 * ```ts
 * const o: OutlierConfig = { consecutive_5xx: 5, base_ejection_time_ms: 30_000, max_ejection_percent: 50 };
 * ```
 */
export interface OutlierConfig {
  consecutive_5xx?: number;
  consecutive_gateway_failure?: number;
  failure_percentage_threshold?: number;
  failure_percentage_request_volume?: number;
  interval_ms?: number;
  base_ejection_time_ms?: number;
  max_ejection_time_ms?: number;
  max_ejection_percent?: number;
}

/**
 * Retry policy of a route.
 *
 * @example
 * ```ts
 * const r: RetryConfig = { attempts: 3, retry_on: [502, 503], backoff_base_ms: 25 };
 * ```
 */
export interface RetryConfig {
  attempts?: number;
  retry_on?: (number | 'connect-failure' | 'reset')[];
  backoff_base_ms?: number;
  backoff_max_ms?: number;
  retry_non_idempotent?: boolean;
  /** Request bodies (Content-Length or chunked) up to this size are buffered for replay. @default 65536 */
  buffer_body_bytes?: number;
}

/**
 * A static response or the last good response of a GET.
 *
 * @example
 * ```ts
 * const f: FallbackConfig = { status: 503, headers: { 'content-type': 'application/json' }, body: '{"degraded":true}' };
 * ```
 */
export type FallbackConfig =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { last_good: true; max_body_bytes?: number };

/**
 * One route: match on path prefix and host, send to a cluster.
 *
 * @example
 * ```ts
 * const route: RouteConfig = { prefix: '/api/', cluster: 'api', timeout_ms: 2_000 };
 * ```
 */
export interface RouteConfig {
  prefix?: string;
  host?: string;
  cluster: string;
  priority?: 'default' | 'high';
  timeout_ms?: number;
  retry?: RetryConfig;
  fallback?: FallbackConfig;
}

/**
 * A cluster's `tls` block: how the proxy speaks TLS to its https:// hosts.
 *
 * @example
 * ```ts
 * const tls: UpstreamTlsConfig = { ca_file: 'certs/ca.pem', cert_file: 'certs/client.pem', key_file: 'certs/client.key', servername: 'payments.internal' };
 * ```
 */
export interface UpstreamTlsConfig {
  /** PEM CA certificates replacing the system CAs for this cluster. */
  ca_file?: string;
  /** PEM client certificate chain (mTLS); set with `key_file`. */
  cert_file?: string;
  /** PEM private key of `cert_file`. */
  key_file?: string;
  /** SNI and the name the upstream certificate is checked against. */
  servername?: string;
  /** `false` skips certificate checks: for tests only. @default true */
  reject_unauthorized?: boolean;
}

/**
 * A listener's `tls` block: serve HTTPS, optionally requiring client certificates.
 *
 * @example
 * ```ts
 * const tls: ListenerTlsConfig = { cert_file: 'certs/proxy.pem', key_file: 'certs/proxy.key', ca_file: 'certs/clients-ca.pem', request_client_cert: true };
 * ```
 */
export interface ListenerTlsConfig {
  /** PEM server certificate chain. */
  cert_file: string;
  /** PEM private key of `cert_file`. */
  key_file: string;
  /** PEM CA certificates that client certificates must chain to; set with `request_client_cert`. */
  ca_file?: string;
  /** Require and verify a client certificate (mTLS). @default false */
  request_client_cert?: boolean;
}

/**
 * A listening socket and its routes (first match wins).
 *
 * @example
 * ```ts
 * const l: ListenerConfig = { name: 'public', address: '127.0.0.1', port: 8080, routes: [route] };
 * ```
 */
export interface ListenerConfig {
  name?: string;
  address?: string;
  port: number;
  max_header_bytes?: number;
  /** Most header lines a request may have; more are answered 431 (as Envoy's default). @default 100 */
  max_headers_count?: number;
  /** Keep-alive idle time of a client connection. @default 5000 */
  idle_timeout_ms?: number;
  /** Longest time to receive a request head; past it the connection gets 408 and closes. @default 10000 */
  headers_timeout_ms?: number;
  /** Longest time to receive a whole request (0 = none); at least `headers_timeout_ms`. @default 300000 */
  request_timeout_ms?: number;
  priority_header?: string;
  routes: RouteConfig[];
  /** Serve HTTPS. */
  tls?: ListenerTlsConfig;
  /**
   * What reads the client connections: `own` (a purpose-built parser for bodyless HTTP/1.1
   * requests, handing anything else to node's server; plain-HTTP listeners only, see
   * docs/sidecar.md) or `node` (node's `http` server). Changing it needs a restart.
   * @default own (node on a listener with tls, and on a Node without node's internal HTTP parser that own needs)
   */
  http_server?: 'node' | 'own';
}

/**
 * A named group of upstream hosts with its limits, breaker and outlier detection.
 *
 * @example
 * ```ts
 * const c: ClusterConfig = { name: 'api', hosts: ['127.0.0.1:3001', '127.0.0.1:3002'], lb_policy: 'least_request' };
 * ```
 */
export interface ClusterConfig {
  name: string;
  hosts: string[];
  lb_policy?: 'round_robin' | 'least_request';
  connect_timeout_ms?: number;
  request_timeout_ms?: number;
  idle_timeout_ms?: number;
  circuit_breakers?: { thresholds?: ThresholdConfig[] };
  breaker?: BreakerConfig;
  /** Share the breaker's state with the other sidecars through Redis. */
  shared_state?: SharedStateConfig;
  /** Record the breaker's calls as a trace for `tripswitch tune`. */
  record_trace?: RecordTraceConfig;
  outlier_detection?: OutlierConfig;
  /** TLS settings for https:// hosts. */
  tls?: UpstreamTlsConfig;
}

/**
 * A whole sidecar configuration file.
 *
 * @example
 * ```ts
 * const config: SidecarConfig = loadConfig('tripswitch.yaml');
 * ```
 */
export interface SidecarConfig {
  admin?: { address?: string; port?: number; token?: string; allowed_hosts?: string[] };
  drain_timeout_ms?: number;
  /** Worker threads accepting on the listeners (see docs/sidecar.md, "More than one core"). */
  workers?: number;
  listeners: ListenerConfig[];
  clusters: ClusterConfig[];
}

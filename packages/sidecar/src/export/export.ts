/**
 * Translates a sidecar config into the equivalent Envoy clusters and Istio DestinationRules, so the
 * same limits can move to a mesh. The tripswitch breaker itself has no Envoy/Istio equivalent (Envoy's
 * "circuit breakers" are the thresholds); it is noted in a comment.
 * @module
 */
import { stringify } from 'yaml';
import { isIP } from 'node:net';
import {
  type ResolvedCluster,
  type ResolvedListener,
  type ResolvedRoute,
  type ResolvedThreshold,
  resolveConfig,
} from '../config/resolve.js';
import type { SidecarConfig } from '../config/schema.js';

const dur = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms / 1000}s`);

function endpoint(h: string): { address: string; port: number } {
  const bare = h.replace(/^https?:\/\//, '');
  const i = bare.lastIndexOf(':');
  return { address: bare.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(bare.slice(i + 1)) };
}

/** True when the cluster speaks TLS to its hosts (all https://). */
function isTls(c: ResolvedCluster): boolean {
  return c.hosts.every((h) => h.startsWith('https://'));
}

/** `servername`, else the one DNS name all hosts share (an IP address gets no SNI). */
function sniOf(c: ResolvedCluster): string | undefined {
  if (c.tls?.servername) return c.tls.servername;
  const names = new Set(c.hosts.map((h) => endpoint(h).address));
  const [only] = names;
  return names.size === 1 && only && isIP(only) === 0 ? only : undefined;
}

/** Where Envoy finds the system CAs when the cluster has no ca_file (Debian, Ubuntu, Alpine). */
const SYSTEM_CA = '/etc/ssl/certs/ca-certificates.crt';

function upstreamTransportSocket(c: ResolvedCluster): Record<string, unknown> {
  const t = c.tls ?? {};
  const sni = sniOf(c);
  const common: Record<string, unknown> = {};
  if (t.cert_file && t.key_file)
    common.tls_certificates = [
      { certificate_chain: { filename: t.cert_file }, private_key: { filename: t.key_file } },
    ];
  // reject_unauthorized: false is Envoy's default (no validation_context: any certificate).
  if (t.reject_unauthorized !== false) {
    const validation: Record<string, unknown> = { trusted_ca: { filename: t.ca_file ?? SYSTEM_CA } };
    if (sni) validation.match_typed_subject_alt_names = [{ san_type: 'DNS', matcher: { exact: sni } }];
    common.validation_context = validation;
  }
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      ...(sni ? { sni } : {}),
      common_tls_context: common,
    },
  };
}

function downstreamTransportSocket(l: ResolvedListener): Record<string, unknown> {
  const t = l.tls!;
  const common: Record<string, unknown> = {
    tls_certificates: [
      { certificate_chain: { filename: t.cert_file }, private_key: { filename: t.key_file } },
    ],
  };
  if (t.request_client_cert && t.ca_file) common.validation_context = { trusted_ca: { filename: t.ca_file } };
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      ...(t.request_client_cert ? { require_client_certificate: true } : {}),
      common_tls_context: common,
    },
  };
}

function envoyRoute(r: ResolvedRoute): Record<string, unknown> {
  const route: Record<string, unknown> = { cluster: r.cluster, timeout: dur(r.timeout_ms) };
  if (r.priority === 'high') route.priority = 'HIGH';
  const rt = r.retry;
  if (rt.attempts > 0) {
    const on = rt.retry_on;
    const statuses = on.filter((x): x is number => typeof x === 'number');
    const kinds: string[] = on.filter((x) => typeof x === 'string');
    if (statuses.length > 0) kinds.push('retriable-status-codes');
    route.retry_policy = {
      retry_on: kinds.join(','),
      num_retries: rt.attempts,
      ...(statuses.length > 0 ? { retriable_status_codes: statuses } : {}),
      retry_back_off: {
        base_interval: dur(rt.backoff_base_ms),
        max_interval: dur(rt.backoff_max_ms),
      },
    };
  }
  return { match: { prefix: r.prefix }, route };
}

/**
 * The listener's routes as virtual hosts: one per `host` value (its own routes and the host-less
 * ones, in config order, which is the order the proxy tries them in) plus `*` for the rest.
 */
function virtualHosts(l: ResolvedListener): Record<string, unknown>[] {
  const hosts = [...new Set(l.routes.flatMap((r) => (r.host ? [r.host] : [])))];
  const out = hosts.map((h, i) => ({
    name: `host_${i}`,
    domains: [h, `${h}:*`],
    routes: l.routes.filter((r) => !r.host || r.host === h).map(envoyRoute),
  }));
  const rest = l.routes.filter((r) => !r.host);
  if (rest.length > 0) out.push({ name: 'default', domains: ['*'], routes: rest.map(envoyRoute) });
  return out;
}

function envoyListener(l: ResolvedListener, i: number): Record<string, unknown> {
  const name = l.name ?? `listener_${i}`;
  const chain: Record<string, unknown> = {
    filters: [
      {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type':
            'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          stat_prefix: name,
          codec_type: 'HTTP1',
          common_http_protocol_options: { idle_timeout: dur(l.idle_timeout_ms) },
          max_request_headers_kb: Math.ceil(l.max_header_bytes / 1024),
          route_config: { name, virtual_hosts: virtualHosts(l) },
          http_filters: [
            {
              name: 'envoy.filters.http.router',
              typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
            },
          ],
        },
      },
    ],
  };
  if (l.tls) chain.transport_socket = downstreamTransportSocket(l);
  return {
    name,
    address: { socket_address: { address: l.address, port_value: l.port } },
    filter_chains: [chain],
  };
}

function threshold(t: ResolvedThreshold): Record<string, unknown> {
  const out: Record<string, unknown> = {
    priority: t.priority === 'high' ? 'HIGH' : 'DEFAULT',
    max_connections: t.max_connections,
    max_pending_requests: t.max_pending_requests,
    max_requests: t.max_requests,
  };
  if (t.retry_budget) {
    out.retry_budget = {
      budget_percent: { value: t.retry_budget.budget_percent },
      min_retry_concurrency: t.retry_budget.min_retry_concurrency,
    };
  } else out.max_retries = t.max_retries;
  return out;
}

function outlier(c: ResolvedCluster): Record<string, unknown> {
  const s = c.outlier_detection;
  const out: Record<string, unknown> = {
    consecutive_5xx: s.consecutive_5xx,
    enforcing_consecutive_5xx: s.consecutive_5xx > 0 ? 100 : 0,
    consecutive_gateway_failure: s.consecutive_gateway_failure,
    enforcing_consecutive_gateway_failure: s.consecutive_gateway_failure > 0 ? 100 : 0,
    interval: dur(s.interval_ms),
    base_ejection_time: dur(s.base_ejection_time_ms),
    max_ejection_time: dur(s.max_ejection_time_ms),
    max_ejection_percent: s.max_ejection_percent,
  };
  if (s.failure_percentage_threshold !== undefined) {
    out.failure_percentage_threshold = s.failure_percentage_threshold;
    out.enforcing_failure_percentage = 100;
    out.failure_percentage_request_volume = s.failure_percentage_request_volume;
  }
  return out;
}

/**
 * Envoy `static_resources`, as YAML: a listener per listener (HTTP connection manager with the
 * routes; `DownstreamTlsContext` for a `tls` listener) and a cluster per cluster (with an
 * `UpstreamTlsContext` when its hosts are https://). Certificate paths are written as in the config.
 * @example
 * ```ts
 * process.stdout.write(toEnvoy(loadConfig('tripswitch.yaml')));
 * ```
 */
export function toEnvoy(config: SidecarConfig): string {
  const cfg = resolveConfig(config);
  const clusters = cfg.clusters.map((c) => ({
    name: c.name,
    type: 'STRICT_DNS',
    connect_timeout: dur(c.connect_timeout_ms),
    lb_policy: c.lb_policy === 'least_request' ? 'LEAST_REQUEST' : 'ROUND_ROBIN',
    load_assignment: {
      cluster_name: c.name,
      endpoints: [
        {
          lb_endpoints: c.hosts.map((h) => {
            const e = endpoint(h);
            return { endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } } };
          }),
        },
      ],
    },
    circuit_breakers: { thresholds: [threshold(c.thresholds.default), threshold(c.thresholds.high)] },
    outlier_detection: outlier(c),
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        common_http_protocol_options: { idle_timeout: dur(c.idle_timeout_ms) },
        explicit_http_config: { http_protocol_options: {} },
      },
    },
    ...(isTls(c) ? { transport_socket: upstreamTransportSocket(c) } : {}),
  }));
  const listeners = cfg.listeners.map(envoyListener);
  const head =
    '# Generated by `tripswitch export envoy`. Envoy has no per-cluster tripswitch breaker:\n' +
    '# circuit_breakers.thresholds and outlier_detection carry the limits and ejection rules.\n' +
    '# Route fallbacks have no Envoy equivalent and are left out. TLS file paths are as in the\n' +
    `# config; a cluster without ca_file trusts ${SYSTEM_CA}.\n` +
    sharedStateNote(cfg.clusters, 'Envoy') +
    recordTraceNote(cfg.clusters, 'Envoy');
  return head + stringify({ static_resources: { listeners, clusters } });
}

// Envoy's and Istio's circuit breaking is per proxy: nothing shares a breaker's state between
// proxies, so a shared_state block can only be named, with what it would have done.
function sharedStateNote(clusters: readonly ResolvedCluster[], target: string): string {
  return clusters
    .filter((c) => c.shared_state !== undefined)
    .map((c) => {
      const s = c.shared_state!;
      const where =
        s.url !== undefined ? s.url.replace(/\/\/[^@/]*@/, '//') : `Redis Cluster ${s.cluster!.join(',')}`;
      return (
        `# cluster ${c.name}: shared_state (${s.mode} mode, prefix ${s.prefix}, ${where}) has no ${target} equivalent:\n` +
        `#   ${target} proxies do not share breaker state; each trips on its own counts.\n`
      );
    })
    .join('');
}

// Envoy and Istio record no per-call breaker trace: the block is named so that it is not lost silently.
function recordTraceNote(clusters: readonly ResolvedCluster[], target: string): string {
  return clusters
    .filter((c) => c.record_trace !== undefined)
    .map(
      (c) =>
        `# cluster ${c.name}: record_trace (${c.record_trace!.file}) has no ${target} equivalent:\n` +
        `#   nothing is recorded for \`tripswitch tune\`; record with the sidecar or recordTrace() in the app.\n`,
    )
    .join('');
}

/**
 * One Istio DestinationRule per cluster (connectionPool from the DEFAULT thresholds, outlierDetection,
 * and `tls` SIMPLE or MUTUAL when the hosts are https://).
 * @example
 * ```ts
 * process.stdout.write(toIstio(loadConfig('tripswitch.yaml')));
 * ```
 */
export function toIstio(config: SidecarConfig): string {
  const docs = resolveConfig(config).clusters.map((c) => {
    const t = c.thresholds.default;
    const s = c.outlier_detection;
    const http: Record<string, unknown> = {
      http1MaxPendingRequests: t.max_pending_requests,
      http2MaxRequests: t.max_requests,
      idleTimeout: dur(c.idle_timeout_ms),
    };
    if (!t.retry_budget) http.maxRetries = t.max_retries;
    let tls: Record<string, unknown> | undefined;
    if (isTls(c)) {
      const x = c.tls ?? {};
      const sni = sniOf(c);
      tls = {
        mode: x.cert_file ? 'MUTUAL' : 'SIMPLE',
        ...(x.cert_file ? { clientCertificate: x.cert_file, privateKey: x.key_file } : {}),
        ...(x.ca_file ? { caCertificates: x.ca_file } : {}),
        ...(sni ? { sni, ...(x.reject_unauthorized === false ? {} : { subjectAltNames: [sni] }) } : {}),
        ...(x.reject_unauthorized === false ? { insecureSkipVerify: true } : {}),
      };
    }
    return {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: c.name },
      spec: {
        host: c.name,
        trafficPolicy: {
          loadBalancer: { simple: c.lb_policy === 'least_request' ? 'LEAST_REQUEST' : 'ROUND_ROBIN' },
          connectionPool: {
            tcp: {
              maxConnections: t.max_connections,
              connectTimeout: dur(c.connect_timeout_ms),
            },
            http,
          },
          outlierDetection: {
            consecutive5xxErrors: s.consecutive_5xx,
            consecutiveGatewayErrors: s.consecutive_gateway_failure,
            interval: dur(s.interval_ms),
            baseEjectionTime: dur(s.base_ejection_time_ms),
            maxEjectionPercent: s.max_ejection_percent,
          },
          ...(tls ? { tls } : {}),
        },
      },
    };
  });
  const head =
    '# Generated by `tripswitch export istio`. Istio has no priorities: the DEFAULT thresholds are used.\n' +
    sharedStateNote(resolveConfig(config).clusters, 'Istio') +
    recordTraceNote(resolveConfig(config).clusters, 'Istio');
  return head + docs.map((d) => stringify(d)).join('---\n');
}

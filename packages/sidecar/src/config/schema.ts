/**
 * The sidecar's configuration schema: the one source of truth. ajv validates YAML against it and
 * `schema/tripswitch.schema.json` (for editors) is this object written out (a test keeps them equal).
 *
 * One job per module: this one is the JSON Schema of a configuration file (what a YAML file may
 * hold); `types.ts` is the TypeScript shape the code reads, re-exported from here.
 * @module
 */
import { CONFIG_DEFAULTS as D } from './resolve.js';

export type * from './types.js';

const ms = { type: 'integer', minimum: 0 } as const;
const count = { type: 'integer', minimum: 0 } as const;

const threshold = {
  type: 'object',
  additionalProperties: false,
  properties: {
    priority: { enum: ['default', 'high'], description: 'Which traffic class these limits apply to.' },
    max_connections: {
      ...count,
      description: `Upstream connections (one request each on HTTP/1.1). @default ${D.threshold.max_connections}`,
    },
    max_pending_requests: {
      ...count,
      description: `Requests waiting for a connection. @default ${D.threshold.max_pending_requests}`,
    },
    max_requests: {
      ...count,
      description: `Requests in flight to the cluster. @default ${D.threshold.max_requests}`,
    },
    max_retries: {
      ...count,
      description: `Retries in flight to the cluster. @default ${D.threshold.max_retries}`,
    },
    retry_budget: {
      type: 'object',
      additionalProperties: false,
      description: 'Retries in flight limited to a share of active requests (replaces max_retries).',
      properties: {
        budget_percent: {
          type: 'number',
          minimum: 0,
          maximum: 100,
          description: `@default ${D.retry_budget.budget_percent}`,
        },
        min_retry_concurrency: { ...count, description: `@default ${D.retry_budget.min_retry_concurrency}` },
      },
    },
  },
  required: ['priority'],
} as const;

const tripRule = {
  type: 'object',
  required: ['kind'],
  properties: {
    kind: { enum: ['consecutive', 'count', 'time'] },
    threshold: { type: 'integer', minimum: 1 },
    windowSize: { type: 'integer', minimum: 1 },
    /** Deprecated name of windowSize (core accepts it until 0.3). */
    window: { type: 'integer', minimum: 1 },
    windowMs: { type: 'integer', minimum: 1 },
    buckets: { type: 'integer', minimum: 1 },
    minimumCalls: { type: 'integer', minimum: 1 },
    failureRateThreshold: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    failureCount: { type: 'integer', minimum: 1 },
    slowCallRateThreshold: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    slowCallDuration: { type: 'integer', minimum: 1 },
  },
  additionalProperties: false,
} as const;

const breaker = {
  type: 'object',
  additionalProperties: false,
  description:
    "The cluster's circuit breaker: the same option names and meaning as tripswitch's circuitBreaker().",
  properties: {
    enabled: { type: 'boolean', description: '@default true' },
    trip: tripRule,
    openDuration: {
      oneOf: [
        ms,
        {
          type: 'object',
          additionalProperties: false,
          required: ['base'],
          properties: {
            base: ms,
            max: ms,
            multiplier: { type: 'number', minimum: 1 },
            jitter: { type: 'number', minimum: 0, maximum: 1 },
          },
        },
      ],
    },
    halfOpen: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxProbes: { type: 'integer', minimum: 1 },
        successesToClose: { type: 'integer', minimum: 1 },
        failureRateThreshold: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
        deadlineMs: ms,
        waitForProbes: { type: 'boolean' },
      },
    },
    eagerHalfOpen: { type: 'boolean' },
    failureStatuses: {
      type: 'array',
      items: { type: 'integer', minimum: 100, maximum: 599 },
      description: 'Upstream statuses that count as failures. @default every 5xx',
    },
  },
} as const;

const positive = { type: 'integer', minimum: 1 } as const;
const SS = D.shared_state;
const RT = D.record_trace;

const recordTrace = {
  type: 'object',
  additionalProperties: false,
  required: ['file'],
  description:
    "Record this cluster's breaker calls (successes and failures, with durations) as an NDJSON trace for `tripswitch tune` (@tripswitch/tuner's recordTrace(), loaded on demand).",
  properties: {
    file: {
      type: 'string',
      minLength: 1,
      description: 'NDJSON file appended to (relative to the config file); rotated to file.1, file.2, ...',
    },
    sample_rate: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 1,
      description: `Fraction of calls recorded, in (0, 1]. @default ${RT.sample_rate}`,
    },
    max_bytes: {
      ...positive,
      description: `Rotate when the file reaches this many bytes. @default ${RT.max_bytes}`,
    },
    max_files: {
      ...count,
      description: `Rotated files kept besides the current one (0: none). @default ${RT.max_files}`,
    },
  },
} as const;

const sharedState = {
  type: 'object',
  additionalProperties: false,
  description:
    "Share the cluster's breaker with every sidecar using the same Redis and prefix (@tripswitch/redis's redisStore(): the same option names, modes and guarantees). Give url or cluster.",
  properties: {
    url: {
      type: 'string',
      pattern: '^(redis|rediss|redis-sentinel)://',
      description:
        'redis://[:password@]host:port[/db], rediss:// (TLS), or redis-sentinel://host:port[,host:port...][/db]#<master name>',
    },
    cluster: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', pattern: '^[^/\\s:]+:[0-9]{1,5}$' },
      description: 'Redis Cluster: some nodes, host:port',
    },
    prefix: { type: 'string', minLength: 1, description: `Key and channel namespace. @default ${SS.prefix}` },
    mode: {
      enum: ['local', 'fleet'],
      description: `local: each sidecar trips on its own counts, the state is shared; fleet: counts are also summed fleet-wide. @default ${SS.mode}`,
    },
    commandTimeoutMs: {
      ...positive,
      maximum: 60_000,
      description: `Bound of every Redis command. @default ${SS.commandTimeoutMs}`,
    },
    flushIntervalMs: {
      ...positive,
      description: `fleet mode: longest delay before outcomes are sent. @default ${SS.flushIntervalMs}`,
    },
    flushMaxOutcomes: {
      ...positive,
      description: `fleet mode: a full batch is sent early. @default ${SS.flushMaxOutcomes}`,
    },
    probeLeaseMs: {
      ...positive,
      description: `Lifetime of the fleet-wide half-open probe lease. @default ${SS.probeLeaseMs}`,
    },
    probeRetryMs: {
      ...positive,
      description: `Pause between two tries for a lease another sidecar holds. @default ${SS.probeRetryMs}`,
    },
    recheckIntervalMs: {
      ...positive,
      description: `While Redis is away, how often to try again. @default ${SS.recheckIntervalMs}`,
    },
    fleet: {
      type: 'object',
      additionalProperties: false,
      description: 'fleet mode: the fleet-wide trip rule',
      properties: {
        windowMs: positive,
        buckets: positive,
        minimumCalls: positive,
        failureRateThreshold: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
        slowCallRateThreshold: { type: 'number', exclusiveMinimum: 0, maximum: 2 },
        failureCount: count,
        openDurationMs: positive,
      },
    },
  },
} as const;

const outlier = {
  type: 'object',
  additionalProperties: false,
  properties: {
    consecutive_5xx: {
      ...count,
      description: `5xx in a row that eject a host; 0 disables. @default ${D.outlier_detection.consecutive_5xx}`,
    },
    consecutive_gateway_failure: {
      ...count,
      description: `502/503/504 or connection errors in a row that eject a host; 0 disables. @default ${D.outlier_detection.consecutive_gateway_failure}`,
    },
    failure_percentage_threshold: {
      type: 'number',
      minimum: 0,
      maximum: 100,
      description: 'Failure percentage over an interval that ejects a host. @default off',
    },
    failure_percentage_request_volume: {
      ...count,
      description: `Requests needed in the interval. @default ${D.outlier_detection.failure_percentage_request_volume}`,
    },
    interval_ms: {
      type: 'integer',
      minimum: 1,
      description: `Failure-percentage interval. @default ${D.outlier_detection.interval_ms}`,
    },
    base_ejection_time_ms: {
      type: 'integer',
      minimum: 1,
      description: `@default ${D.outlier_detection.base_ejection_time_ms}`,
    },
    max_ejection_time_ms: {
      type: 'integer',
      minimum: 1,
      description: `@default ${D.outlier_detection.max_ejection_time_ms}`,
    },
    max_ejection_percent: {
      type: 'number',
      minimum: 0,
      maximum: 100,
      description: `@default ${D.outlier_detection.max_ejection_percent}`,
    },
  },
} as const;

const retry = {
  type: 'object',
  additionalProperties: false,
  properties: {
    attempts: {
      type: 'integer',
      minimum: 0,
      maximum: 10,
      description: `Retries after the first try. @default ${D.retry.attempts}`,
    },
    retry_on: {
      type: 'array',
      items: {
        anyOf: [{ type: 'integer', minimum: 500, maximum: 599 }, { enum: ['connect-failure', 'reset'] }],
      },
      description: `@default [${D.retry.retry_on.join(', ')}]`,
    },
    backoff_base_ms: { ...ms, description: `@default ${D.retry.backoff_base_ms}` },
    backoff_max_ms: { ...ms, description: `@default ${D.retry.backoff_max_ms}` },
    retry_non_idempotent: {
      type: 'boolean',
      description: `Also retry POST/PATCH and other non-idempotent methods. @default ${D.retry.retry_non_idempotent}`,
    },
    buffer_body_bytes: {
      type: 'integer',
      minimum: 0,
      maximum: 16_777_216,
      description: `A request body up to this size is read into memory first so that retries can replay it; a larger one streams and is not retried (a chunked body is read until it ends or passes this size, then the bytes read and the rest stream on). 0 disables. @default ${D.retry.buffer_body_bytes}`,
    },
  },
} as const;

const fallback = {
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['status'],
      properties: {
        status: { type: 'integer', minimum: 100, maximum: 599 },
        headers: { type: 'object', additionalProperties: { type: 'string' } },
        body: { type: 'string' },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['last_good'],
      properties: {
        last_good: { const: true },
        max_body_bytes: { ...count, description: `@default ${D.last_good.max_body_bytes}` },
      },
    },
  ],
} as const;

const route = {
  type: 'object',
  additionalProperties: false,
  required: ['cluster'],
  properties: {
    prefix: { type: 'string', pattern: '^/', description: `Path prefix. @default ${D.route.prefix}` },
    host: {
      type: 'string',
      minLength: 1,
      description: 'Host header (port ignored); "*.x" matches subdomains.',
    },
    cluster: { type: 'string', minLength: 1 },
    priority: { enum: ['default', 'high'], description: `@default ${D.route.priority}` },
    timeout_ms: { ...ms, description: 'Overrides the cluster request timeout.' },
    retry,
    fallback,
  },
} as const;

const pemFile = (what: string) =>
  ({
    type: 'string',
    minLength: 1,
    description: `${what} (PEM file; relative paths from the config file's directory). Read when the config is loaded or reloaded.`,
  }) as const;

const upstreamTls = {
  type: 'object',
  additionalProperties: false,
  description:
    'TLS to the upstream hosts (all of them must be https://). Without this block https hosts are checked against the system CAs.',
  properties: {
    ca_file: pemFile(
      'CA certificates that the upstream certificate must chain to, instead of the system CAs',
    ),
    cert_file: pemFile('Client certificate chain for mTLS (needs key_file)'),
    key_file: pemFile('Private key of cert_file'),
    servername: {
      type: 'string',
      minLength: 1,
      description:
        'SNI sent and the name the certificate is checked against. @default the host name of each hosts entry (no SNI for an IP address, checked against the IP)',
    },
    reject_unauthorized: {
      type: 'boolean',
      description:
        'false accepts any upstream certificate (no CA or name check). For tests only. @default true',
    },
  },
  dependencies: { cert_file: ['key_file'], key_file: ['cert_file'] },
} as const;

const listenerTls = {
  type: 'object',
  additionalProperties: false,
  required: ['cert_file', 'key_file'],
  description: 'Serve HTTPS on this listener.',
  properties: {
    cert_file: pemFile('Server certificate chain'),
    key_file: pemFile('Private key of cert_file'),
    ca_file: pemFile('CA certificates that client certificates must chain to (needs request_client_cert)'),
    request_client_cert: {
      type: 'boolean',
      description:
        'mTLS: require a client certificate that chains to ca_file; other clients fail the handshake. @default false',
    },
  },
} as const;

/**
 * The JSON Schema (draft 2020-12 subset ajv understands) of a tripswitch sidecar YAML file.
 *
 * @example
 * ```ts
 * writeFileSync('tripswitch.schema.json', JSON.stringify(configSchema, null, 2)); // for editors
 * ```
 */
export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://tripswitch.dev/schema/tripswitch.schema.json',
  title: 'tripswitch sidecar configuration',
  type: 'object',
  additionalProperties: false,
  required: ['listeners', 'clusters'],
  properties: {
    admin: {
      type: 'object',
      additionalProperties: false,
      properties: {
        address: { type: 'string', description: `@default ${D.admin.address}` },
        port: { type: 'integer', minimum: 0, maximum: 65535, description: `@default ${D.admin.port}` },
        token: {
          type: 'string',
          minLength: 16,
          description: 'Bearer token; required off loopback (or env TRIPSWITCH_ADMIN_TOKEN).',
        },
        allowed_hosts: {
          type: 'array',
          items: { type: 'string', minLength: 1 },
          description:
            'Host names the admin is reached by besides loopback and its address (DNS-rebinding check).',
        },
      },
    },
    drain_timeout_ms: {
      ...ms,
      description: `Longest wait for in-flight requests on shutdown. @default ${D.drain_timeout_ms}`,
    },
    workers: {
      type: 'integer',
      minimum: 1,
      description: `Worker threads accepting on every listener's port (SO_REUSEPORT, Node 22.12+), with one set of limits and one breaker decision per cluster across them; at most 4 x the cores. Changing it needs a restart. @default ${D.workers}`,
    },
    listeners: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['port', 'routes'],
        properties: {
          name: { type: 'string' },
          address: { type: 'string', description: `@default ${D.listener.address}` },
          port: { type: 'integer', minimum: 0, maximum: 65535 },
          max_header_bytes: {
            type: 'integer',
            minimum: 1024,
            description: `@default ${D.listener.max_header_bytes}`,
          },
          max_headers_count: {
            type: 'integer',
            minimum: 1,
            maximum: 10_000,
            description: `Most header lines a request may have; more are answered 431. @default ${D.listener.max_headers_count}`,
          },
          idle_timeout_ms: {
            type: 'integer',
            minimum: 1,
            description: `How long an idle client keep-alive connection stays open. @default ${D.listener.idle_timeout_ms}`,
          },
          headers_timeout_ms: {
            type: 'integer',
            minimum: 1,
            description: `Longest time to receive a request head (slowloris); answered 408 and closed. @default ${D.listener.headers_timeout_ms}`,
          },
          request_timeout_ms: {
            type: 'integer',
            minimum: 0,
            description: `Longest time to receive a whole request (head and body); 0 = no limit. @default ${D.listener.request_timeout_ms}`,
          },
          priority_header: {
            type: 'string',
            description: `Request header that picks the priority (value "high"). @default ${D.listener.priority_header}`,
          },
          routes: { type: 'array', minItems: 1, items: route },
          tls: listenerTls,
          http_server: {
            enum: ['node', 'own'],
            description: `What reads the client connections: own, a purpose-built parser for bodyless HTTP/1.1 requests that hands anything else to node's server (plain HTTP only: not with tls), or node's http server. Changing it needs a restart. @default ${D.listener.http_server} (node on a listener with tls, and on a Node without node's internal HTTP parser that own needs)`,
          },
        },
      },
    },
    clusters: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'hosts'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' },
          hosts: {
            type: 'array',
            minItems: 1,
            items: { type: 'string', pattern: '^(https?://)?[^/\\s]+:[0-9]{1,5}$' },
            description: 'host:port, http://host:port or https://host:port',
          },
          lb_policy: {
            enum: ['round_robin', 'least_request'],
            description: `@default ${D.cluster.lb_policy}`,
          },
          connect_timeout_ms: {
            type: 'integer',
            minimum: 1,
            description: `@default ${D.cluster.connect_timeout_ms}`,
          },
          request_timeout_ms: {
            ...ms,
            description: `Headers and body idle time; 0 disables. @default ${D.cluster.request_timeout_ms}`,
          },
          idle_timeout_ms: {
            type: 'integer',
            minimum: 1,
            description: `Keep-alive of idle upstream connections. @default ${D.cluster.idle_timeout_ms}`,
          },
          circuit_breakers: {
            type: 'object',
            additionalProperties: false,
            properties: { thresholds: { type: 'array', maxItems: 2, items: threshold } },
          },
          breaker,
          shared_state: sharedState,
          record_trace: recordTrace,
          outlier_detection: outlier,
          tls: upstreamTls,
        },
      },
    },
  },
} as const;

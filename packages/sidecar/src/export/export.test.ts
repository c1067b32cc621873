import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import type { SidecarConfig } from '../config/schema.js';
import { toEnvoy, toIstio } from './export.js';

const cfg: SidecarConfig = {
  listeners: [{ port: 8080, routes: [{ cluster: 'pay' }] }],
  clusters: [
    {
      name: 'pay',
      hosts: ['10.0.0.1:8080', 'http://pay.internal:9000'],
      lb_policy: 'least_request',
      connect_timeout_ms: 250,
      circuit_breakers: {
        thresholds: [
          {
            priority: 'default',
            max_connections: 10,
            max_pending_requests: 5,
            max_requests: 20,
            max_retries: 2,
          },
          {
            priority: 'high',
            max_connections: 30,
            retry_budget: { budget_percent: 25, min_retry_concurrency: 4 },
          },
        ],
      },
      outlier_detection: {
        consecutive_5xx: 3,
        consecutive_gateway_failure: 2,
        base_ejection_time_ms: 15_000,
        max_ejection_percent: 50,
        failure_percentage_threshold: 80,
      },
    },
    { name: 'plain', hosts: ['127.0.0.1:1'] },
  ],
};

test('envoy: clusters with thresholds per priority and outlier_detection', () => {
  const doc = parse(toEnvoy(cfg));
  const [pay, plain] = doc.static_resources.clusters;
  assert.equal(pay.name, 'pay');
  assert.equal(pay.lb_policy, 'LEAST_REQUEST');
  assert.equal(pay.connect_timeout, '0.25s');
  const eps = pay.load_assignment.endpoints[0].lb_endpoints.map(
    (e: { endpoint: { address: { socket_address: unknown } } }) => e.endpoint.address.socket_address,
  );
  assert.deepEqual(eps, [
    { address: '10.0.0.1', port_value: 8080 },
    { address: 'pay.internal', port_value: 9000 },
  ]);
  const [d, h] = pay.circuit_breakers.thresholds;
  assert.deepEqual(d, {
    priority: 'DEFAULT',
    max_connections: 10,
    max_pending_requests: 5,
    max_requests: 20,
    max_retries: 2,
  });
  assert.equal(h.priority, 'HIGH');
  assert.deepEqual(h.retry_budget, { budget_percent: { value: 25 }, min_retry_concurrency: 4 });
  assert.equal(h.max_retries, undefined);
  assert.equal(pay.outlier_detection.consecutive_5xx, 3);
  assert.equal(pay.outlier_detection.consecutive_gateway_failure, 2);
  assert.equal(pay.outlier_detection.base_ejection_time, '15s');
  assert.equal(pay.outlier_detection.max_ejection_percent, 50);
  assert.equal(pay.outlier_detection.failure_percentage_threshold, 80);
  // defaults as in Envoy
  assert.equal(plain.circuit_breakers.thresholds[0].max_connections, 1024);
  assert.equal(plain.outlier_detection.interval, '10s');
  assert.equal(plain.outlier_detection.max_ejection_time, '300s');
});

test('istio: one DestinationRule per cluster with connectionPool and outlierDetection', () => {
  const docs = parseAllDocuments(toIstio(cfg)).map((d) => d.toJS());
  assert.equal(docs.length, 2);
  const pay = docs[0];
  assert.equal(pay.kind, 'DestinationRule');
  assert.equal(pay.apiVersion, 'networking.istio.io/v1');
  assert.equal(pay.spec.host, 'pay');
  const tp = pay.spec.trafficPolicy;
  assert.equal(tp.connectionPool.tcp.maxConnections, 10);
  assert.equal(tp.connectionPool.http.http1MaxPendingRequests, 5);
  assert.equal(tp.connectionPool.http.http2MaxRequests, 20);
  assert.equal(tp.connectionPool.http.maxRetries, 2);
  assert.equal(tp.outlierDetection.consecutive5xxErrors, 3);
  assert.equal(tp.outlierDetection.consecutiveGatewayErrors, 2);
  assert.equal(tp.outlierDetection.baseEjectionTime, '15s');
  assert.equal(tp.loadBalancer.simple, 'LEAST_REQUEST');
  assert.equal(docs[1].spec.trafficPolicy.loadBalancer.simple, 'ROUND_ROBIN');
});

const tlsCfg: SidecarConfig = {
  listeners: [
    {
      name: 'public',
      port: 8443,
      tls: {
        cert_file: '/certs/proxy.pem',
        key_file: '/certs/proxy.key',
        ca_file: '/certs/clients.pem',
        request_client_cert: true,
      },
      routes: [
        { prefix: '/api', host: 'api.example.com', cluster: 'mtls', timeout_ms: 2000 },
        { prefix: '/', cluster: 'simple', retry: { attempts: 2, retry_on: [503, 'connect-failure'] } },
      ],
    },
    { port: 8080, routes: [{ cluster: 'pay' }] },
  ],
  clusters: [
    {
      name: 'mtls',
      hosts: ['https://10.0.0.5:8443'],
      tls: {
        ca_file: '/certs/ca.pem',
        cert_file: '/certs/client.pem',
        key_file: '/certs/client.key',
        servername: 'pay.internal',
      },
    },
    { name: 'simple', hosts: ['https://api.internal:443'] },
    { name: 'pay', hosts: ['10.0.0.1:8080'] },
  ],
};

test('envoy: UpstreamTlsContext on https clusters, DownstreamTlsContext and routes on listeners', () => {
  const doc = parse(toEnvoy(tlsCfg)).static_resources;
  const [mtls, simple, pay] = doc.clusters;
  const up = mtls.transport_socket;
  assert.equal(up.name, 'envoy.transport_sockets.tls');
  assert.equal(
    up.typed_config['@type'],
    'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  );
  assert.equal(up.typed_config.sni, 'pay.internal');
  assert.deepEqual(up.typed_config.common_tls_context, {
    tls_certificates: [
      {
        certificate_chain: { filename: '/certs/client.pem' },
        private_key: { filename: '/certs/client.key' },
      },
    ],
    validation_context: {
      trusted_ca: { filename: '/certs/ca.pem' },
      match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'pay.internal' } }],
    },
  });
  // No tls block: the host name is the SNI, the system CAs are trusted.
  assert.equal(simple.transport_socket.typed_config.sni, 'api.internal');
  assert.equal(
    simple.transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename,
    '/etc/ssl/certs/ca-certificates.crt',
  );
  assert.equal(pay.transport_socket, undefined);

  const [pub, plain] = doc.listeners;
  assert.deepEqual(pub.address, { socket_address: { address: '127.0.0.1', port_value: 8443 } });
  const down = pub.filter_chains[0].transport_socket.typed_config;
  assert.equal(
    down['@type'],
    'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  );
  assert.equal(down.require_client_certificate, true);
  assert.deepEqual(down.common_tls_context, {
    tls_certificates: [
      { certificate_chain: { filename: '/certs/proxy.pem' }, private_key: { filename: '/certs/proxy.key' } },
    ],
    validation_context: { trusted_ca: { filename: '/certs/clients.pem' } },
  });
  assert.equal(plain.filter_chains[0].transport_socket, undefined);
  const hcm = pub.filter_chains[0].filters[0].typed_config;
  const [api, rest] = hcm.route_config.virtual_hosts;
  assert.deepEqual(api.domains, ['api.example.com', 'api.example.com:*']);
  assert.deepEqual(
    api.routes.map((r: { route: { cluster: string } }) => r.route.cluster),
    ['mtls', 'simple'],
  );
  assert.equal(api.routes[0].route.timeout, '2s');
  assert.deepEqual(rest.domains, ['*']);
  assert.deepEqual(rest.routes[0].route.retry_policy.retry_on, 'connect-failure,retriable-status-codes');
  assert.deepEqual(rest.routes[0].route.retry_policy.retriable_status_codes, [503]);
});

test('istio: trafficPolicy.tls MUTUAL or SIMPLE for https clusters', () => {
  const docs = parseAllDocuments(toIstio(tlsCfg)).map((d) => d.toJS());
  assert.deepEqual(docs[0].spec.trafficPolicy.tls, {
    mode: 'MUTUAL',
    clientCertificate: '/certs/client.pem',
    privateKey: '/certs/client.key',
    caCertificates: '/certs/ca.pem',
    sni: 'pay.internal',
    subjectAltNames: ['pay.internal'],
  });
  assert.deepEqual(docs[1].spec.trafficPolicy.tls, {
    mode: 'SIMPLE',
    sni: 'api.internal',
    subjectAltNames: ['api.internal'],
  });
  assert.equal(docs[2].spec.trafficPolicy.tls, undefined);
  const insecure = toIstio({
    listeners: [{ port: 1, routes: [{ cluster: 'x' }] }],
    clusters: [{ name: 'x', hosts: ['https://10.0.0.9:443'], tls: { reject_unauthorized: false } }],
  });
  assert.deepEqual(parse(insecure).spec.trafficPolicy.tls, { mode: 'SIMPLE', insecureSkipVerify: true });
});

test('record_trace has no Envoy or Istio equivalent: a comment per cluster names it', () => {
  const recorded: SidecarConfig = {
    listeners: [{ port: 8080, routes: [{ cluster: 'pay' }] }],
    clusters: [
      { name: 'pay', hosts: ['127.0.0.1:1'], record_trace: { file: '/var/log/pay.ndjson' } },
      { name: 'own', hosts: ['127.0.0.1:2'] },
    ],
  };
  for (const [out, target] of [
    [toEnvoy(recorded), 'Envoy'],
    [toIstio(recorded), 'Istio'],
  ] as const) {
    const comments = out.split('\n').filter((l) => l.startsWith('#'));
    assert.ok(
      comments.includes(`# cluster pay: record_trace (/var/log/pay.ndjson) has no ${target} equivalent:`),
      comments.join('\n'),
    );
    assert.ok(!comments.some((l) => l.includes('cluster own')));
    assert.ok(parseAllDocuments(out).every((d) => d.errors.length === 0));
  }
});

test('shared_state has no Envoy or Istio equivalent: a comment per cluster names it, without the password', () => {
  const shared: SidecarConfig = {
    listeners: [{ port: 8080, routes: [{ cluster: 'pay' }] }],
    clusters: [
      {
        name: 'pay',
        hosts: ['127.0.0.1:1'],
        shared_state: { url: 'redis://:s3cret@redis:6379', mode: 'fleet' },
      },
      { name: 'own', hosts: ['127.0.0.1:2'] },
      { name: 'ring', hosts: ['127.0.0.1:3'], shared_state: { cluster: ['r1:7000', 'r2:7000'] } },
    ],
  };
  for (const [out, target] of [
    [toEnvoy(shared), 'Envoy'],
    [toIstio(shared), 'Istio'],
  ] as const) {
    const comments = out.split('\n').filter((l) => l.startsWith('#'));
    assert.ok(
      comments.includes(
        `# cluster pay: shared_state (fleet mode, prefix tripswitch, redis://redis:6379) has no ${target} equivalent:`,
      ),
      comments.join('\n'),
    );
    assert.ok(
      comments.some((l) =>
        l.startsWith(
          '# cluster ring: shared_state (local mode, prefix tripswitch, Redis Cluster r1:7000,r2:7000)',
        ),
      ),
    );
    assert.ok(!comments.some((l) => l.includes('cluster own')));
    assert.ok(!out.includes('s3cret'), 'the password stays out of the export');
    // still one valid YAML document set
    for (const d of parseAllDocuments(out)) assert.deepEqual(d.errors, []);
  }
});

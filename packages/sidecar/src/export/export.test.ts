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

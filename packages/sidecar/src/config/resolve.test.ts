import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { toEnvoy } from '../export/export.js';
import { Limiter } from '../proxy/limits.js';
import { ownServerProblem } from '../proxy/llhttp.js';
import { CONFIG_DEFAULTS, defaultHttpServer, resolveConfig } from './resolve.js';
import { configSchema } from './schema.js';

const minimal = {
  listeners: [{ port: 0, routes: [{ cluster: 'api' }] }],
  clusters: [{ name: 'api', hosts: ['127.0.0.1:1'] }],
};

test('a minimal config resolves to CONFIG_DEFAULTS everywhere', () => {
  const r = resolveConfig(minimal);
  const D = CONFIG_DEFAULTS;
  assert.deepEqual(r.admin, { ...D.admin, token: undefined, allowed_hosts: [] });
  assert.equal(r.drain_timeout_ms, D.drain_timeout_ms);
  const l = r.listeners[0]!;
  assert.equal(l.key, `${D.listener.address}:0`);
  assert.equal(l.max_header_bytes, D.listener.max_header_bytes);
  assert.equal(l.idle_timeout_ms, D.listener.idle_timeout_ms);
  assert.equal(l.priority_header, D.listener.priority_header);
  assert.equal(l.http_server, 'own');
  assert.equal(D.listener.http_server, 'own');
  const route = l.routes[0]!;
  assert.equal(route.prefix, D.route.prefix);
  assert.equal(route.timeout_ms, D.cluster.request_timeout_ms);
  assert.deepEqual(route.retry, { ...D.retry, retry_on: [...D.retry.retry_on] });
  const c = r.clusters[0]!;
  for (const p of ['default', 'high'] as const)
    assert.deepEqual(c.thresholds[p], { priority: p, ...D.threshold, retry_budget: undefined });
  assert.deepEqual(c.outlier_detection, { ...D.outlier_detection, failure_percentage_threshold: undefined });
  assert.deepEqual(c.breaker, {});
  // The runtime and the exporter read the same numbers.
  const lim = new Limiter(c.thresholds.default);
  assert.equal(lim.maxRequests, D.threshold.max_requests);
  assert.match(toEnvoy(minimal), new RegExp(`max_pending_requests: ${D.threshold.max_pending_requests}`));
});

test('explicit values win; a route takes its cluster request timeout; enabled: false drops the breaker', () => {
  const r = resolveConfig({
    listeners: [
      {
        port: 1,
        routes: [
          { cluster: 'api', retry: { attempts: 2 } },
          { cluster: 'api', timeout_ms: 7 },
        ],
      },
    ],
    clusters: [
      {
        name: 'api',
        hosts: ['127.0.0.1:1'],
        request_timeout_ms: 99,
        breaker: { enabled: false },
        circuit_breakers: {
          thresholds: [{ priority: 'high', max_requests: 5, retry_budget: { budget_percent: 50 } }],
        },
      },
    ],
  });
  const [a, b] = r.listeners[0]!.routes;
  assert.equal(a!.timeout_ms, 99);
  assert.equal(a!.retry.attempts, 2);
  assert.equal(a!.retry.backoff_base_ms, CONFIG_DEFAULTS.retry.backoff_base_ms);
  assert.equal(b!.timeout_ms, 7);
  const c = r.clusters[0]!;
  assert.equal(c.breaker, undefined);
  assert.equal(c.thresholds.high.max_requests, 5);
  assert.deepEqual(c.thresholds.high.retry_budget, {
    budget_percent: 50,
    min_retry_concurrency: CONFIG_DEFAULTS.retry_budget.min_retry_concurrency,
  });
  assert.equal(c.thresholds.default.max_requests, CONFIG_DEFAULTS.threshold.max_requests);
});

test('http_server without the field: own on a plain listener, node on a tls listener; explicit values win', () => {
  const routes = [{ cluster: 'api' }];
  const config = {
    listeners: [
      { port: 1, routes },
      { port: 2, routes, tls: { cert_file: 'c.pem', key_file: 'k.pem' } },
      { port: 3, routes, http_server: 'node' as const },
      { port: 4, routes, http_server: 'own' as const },
    ],
    clusters: minimal.clusters,
  };
  assert.deepEqual(
    resolveConfig(config).listeners.map((l) => l.http_server),
    ['own', 'node', 'node', 'own'],
  );
  assert.equal(defaultHttpServer({ port: 1, routes }), 'own');
  assert.equal(
    defaultHttpServer({ port: 1, routes, tls: { cert_file: 'c.pem', key_file: 'k.pem' } }),
    'node',
  );
});

test("http_server without the field on a Node without the parser own needs: node (explicit own is parseConfig's to refuse)", () => {
  const routes = [{ cluster: 'api' }];
  const lacks = () => 'node:_http_common does not load (gone)';
  const config = {
    listeners: [
      { port: 1, routes },
      { port: 2, routes, http_server: 'own' as const },
    ],
    clusters: minimal.clusters,
  };
  assert.deepEqual(
    resolveConfig(config, lacks).listeners.map((l) => l.http_server),
    ['node', 'own'],
  );
  assert.equal(defaultHttpServer({ port: 1, routes }, lacks), 'node');
  // The check is not made where it cannot matter (a tls listener gets node anyway) ...
  let asked = 0;
  const counting = () => {
    asked++;
    return undefined;
  };
  resolveConfig(
    { ...config, listeners: [{ port: 1, routes, tls: { cert_file: 'c', key_file: 'k' } }] },
    counting,
  );
  assert.equal(asked, 0);
  // ... and on this Node (20-24) own can run.
  assert.equal(ownServerProblem(), undefined);
});

/** Every `[block, field, value]` leaf of CONFIG_DEFAULTS, with `(top)` for top-level fields. */
function leaves(): [string, string, string][] {
  const out: [string, string, string][] = [];
  const show = (v: unknown) => (Array.isArray(v) ? `[${v.join(', ')}]` : String(v));
  for (const [k, v] of Object.entries(CONFIG_DEFAULTS)) {
    if (typeof v !== 'object') out.push(['(top)', k, show(v)]);
    else for (const [f, x] of Object.entries(v)) out.push([k, f, show(x)]);
  }
  return out;
}

test('the defaults table of docs/sidecar.md is CONFIG_DEFAULTS', () => {
  const doc = readFileSync(new URL('../../../../docs/sidecar.md', import.meta.url), 'utf8');
  const rows = new Map<string, string>();
  // A value may carry a note in parentheses after it (http_server: `own` (`node` with tls)).
  for (const m of doc.matchAll(/^\| ([^|]+) \| ([a-z_A-Z0-9]+) \| `([^`]*)`(?: \([^|]*\))? \|$/gm))
    rows.set(`${m[1]!.replace(' (last_good)', '').replace('fallback', 'last_good')}.${m[2]}`, m[3]!);
  for (const [block, field, value] of leaves())
    assert.equal(rows.get(`${block}.${field}`), value, `docs/sidecar.md defaults table: ${block} ${field}`);
});

test("the schema's @default texts are CONFIG_DEFAULTS", () => {
  // Collect "@default X" of every property, keyed by its field name; compare where the field is a
  // CONFIG_DEFAULTS leaf of the same name (names are unique enough across blocks to spot drift).
  const found: [string, string][] = [];
  const walk = (node: unknown, key: string) => {
    if (Array.isArray(node)) for (const x of node) walk(x, key);
    else if (node && typeof node === 'object') {
      const d = (node as { description?: unknown }).description;
      if (typeof d === 'string') {
        // The value, less a note in parentheses after it (http_server's: node with tls).
        const m = /@default (.+?)(?: \([^()]*\))?$/.exec(d);
        if (m) found.push([key, m[1]!]);
      }
      for (const [k, v] of Object.entries(node)) walk(v, k === 'properties' || k === 'items' ? key : k);
    }
  };
  walk(configSchema, '');
  const byField = new Map<string, Set<string>>();
  for (const [, f, v] of leaves()) byField.set(f, (byField.get(f) ?? new Set()).add(v));
  let compared = 0;
  for (const [field, text] of found) {
    const want = byField.get(field);
    if (!want) continue;
    compared++;
    assert.ok(want.has(text), `schema ${field}: @default ${text}, CONFIG_DEFAULTS has ${[...want]}`);
  }
  assert.ok(compared >= 25, `${compared} compared`);
});

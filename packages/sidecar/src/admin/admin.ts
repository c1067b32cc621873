/**
 * The admin listener: `/metrics` (Prometheus text), `/breakers` (JSON), `POST /breakers/:name/open|close|reset`,
 * `/healthz`, `/ready`, and the dashboard when `packages/sidecar/src/dashboard` provides a handler.
 * Off loopback it refuses to start without a token, and with a token every request needs
 * `Authorization: Bearer <token>`. Browser requests from other origins, and (without a token) any
 * request naming a Host that is not the admin's own, get 403 (see `origin.ts`).
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { prometheusMetrics } from '@tripswitch/prometheus';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Sidecar } from '../proxy/server.js';
import { readOutcomes } from '../proxy/shared-breaker.js';
import { perWorkerCounter } from '../proxy/shared-counters.js';
import { readLimits } from '../proxy/shared-limits.js';
import { CLUSTER_COUNTERS, type ClusterBlocks } from '../proxy/shared-plan.js';
import { gcMetrics } from './gc-metrics.js';
import { adminNames, browserRefusal } from './origin.js';

/**
 * A handler the dashboard can mount under the admin listener; returns false when not its URL.
 *
 * @example
 * ```ts
 * const hello: AdminHandler = (req, res) => req.url === '/hello' && (res.end('hi'), true);
 * ```
 */
export type AdminHandler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

/**
 * Options of {@link startAdmin}.
 *
 * @example
 * ```ts
 * const options: AdminOptions = { address: '0.0.0.0', port: 9901, token: process.env.ADMIN_TOKEN };
 * ```
 */
export interface AdminOptions {
  /** @default config admin.address (127.0.0.1) */
  address?: string;
  /** @default config admin.port (9901) */
  port?: number;
  /** @default config admin.token ?? env TRIPSWITCH_ADMIN_TOKEN */
  token?: string;
  /** Host names the admin is reached by besides loopback and `address`. @default config admin.allowed_hosts */
  allowedHosts?: string[];
  /** Extra handler tried before the built-in routes (the dashboard). */
  dashboard?: AdminHandler;
}

/**
 * True for 127.0.0.0/8, ::1 and localhost.
 * @example
 * ```ts
 * isLoopback('127.0.0.1'); // true
 * ```
 */
export function isLoopback(address: string): boolean {
  return (
    address === 'localhost' ||
    address === '::1' ||
    address.startsWith('127.') ||
    address === '::ffff:127.0.0.1'
  );
}

/**
 * A prom-client registry whose metrics read the sidecar's counters at scrape time; `dispose()`
 * detaches it from the breakers.
 *
 * @example
 * ```ts
 * const registry: SidecarRegistry = sidecarRegistry(sidecar);
 * registry.dispose();
 * ```
 */
export type SidecarRegistry = Registry & { dispose(): void };

/**
 * The sidecar's metrics. The breakers are exposed by `@tripswitch/prometheus` itself (the
 * `circuit_breaker_*` families, `service` = cluster name), so the Grafana dashboard that serves a
 * library user serves the sidecar; the proxy's own families are `tripswitch_proxy_*` with `cluster`
 * (and `priority` where limits are per priority) labels; `nodejs_gc_duration_seconds{kind}` counts
 * this thread's garbage collections and their pauses (`gc-metrics.ts`).
 * @example
 * ```ts
 * const text = await sidecarRegistry(sidecar).metrics();
 * ```
 */
export function sidecarRegistry(sidecar: Sidecar): SidecarRegistry {
  const registry = new Registry();
  const breakers = prometheusMetrics({ registry: sidecar.breakers, register: registry });
  const labels = ['cluster'];
  const counter = (name: string, help: string, read: (c: ReturnType<typeof clusterList>[number]) => number) =>
    new Counter({
      name,
      help,
      labelNames: labels,
      registers: [registry],
      collect() {
        this.reset();
        for (const c of clusterList()) this.inc({ cluster: c.name }, read(c));
      },
    });
  const clusterList = () => [...sidecar.clusters.values()];
  counter('tripswitch_proxy_requests_total', 'Requests routed to the cluster.', (c) => c.counters.requests);
  new Counter({
    name: 'tripswitch_proxy_responses_total',
    help: 'Responses sent for the cluster by status class.',
    labelNames: ['cluster', 'class'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of clusterList()) {
        this.inc({ cluster: c.name, class: '2xx' }, c.counters.responses2xx);
        this.inc({ cluster: c.name, class: '3xx' }, c.counters.responses3xx);
        this.inc({ cluster: c.name, class: '4xx' }, c.counters.responses4xx);
        this.inc({ cluster: c.name, class: '5xx' }, c.counters.responses5xx);
      }
    },
  });
  new Counter({
    name: 'tripswitch_proxy_overflow_total',
    help: 'Requests refused with 503 x-tripswitch-overloaded (pending queue full) or retries skipped.',
    labelNames: ['cluster', 'priority', 'kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of clusterList())
        for (const p of ['default', 'high'] as const) {
          this.inc({ cluster: c.name, priority: p, kind: 'pending' }, c.limits[p].pendingOverflow);
          this.inc({ cluster: c.name, priority: p, kind: 'retry' }, c.limits[p].retryOverflow);
        }
    },
  });
  new Gauge({
    name: 'tripswitch_proxy_open_requests',
    help: 'Requests in flight (rq_open) and waiting (rq_pending_open) per priority.',
    labelNames: ['cluster', 'priority', 'kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of clusterList())
        for (const p of ['default', 'high'] as const) {
          this.set({ cluster: c.name, priority: p, kind: 'active' }, c.limits[p].active);
          this.set({ cluster: c.name, priority: p, kind: 'pending' }, c.limits[p].pending);
          this.set({ cluster: c.name, priority: p, kind: 'retry' }, c.limits[p].retries);
        }
    },
  });
  counter(
    'tripswitch_proxy_circuit_open_total',
    'Requests refused by the open breaker.',
    (c) => c.counters.circuitOpen,
  );
  counter('tripswitch_proxy_retries_total', 'Upstream retries.', (c) => c.counters.retries);
  counter('tripswitch_proxy_upstream_timeouts_total', 'Upstream timeouts (504).', (c) => c.counters.timeouts);
  counter('tripswitch_proxy_upstream_resets_total', 'Upstream resets (502).', (c) => c.counters.resets);
  counter(
    'tripswitch_proxy_upstream_connect_failures_total',
    'Upstream connect failures.',
    (c) => c.counters.connectFailures,
  );
  counter('tripswitch_proxy_fallbacks_total', 'Fallback responses served.', (c) => c.counters.fallbacks);
  counter(
    'tripswitch_proxy_client_aborts_total',
    'Requests the client abandoned.',
    (c) => c.counters.clientAborts,
  );
  counter(
    'tripswitch_proxy_upstream_stale_connection_retries_total',
    'Requests sent again on a fresh connection after a reused one closed before any response byte.',
    (c) => c.counters.staleConnectionRetries,
  );
  counter('tripswitch_proxy_outlier_ejections_total', 'Host ejections.', (c) => c.outlier.ejectionsTotal);
  new Counter({
    name: 'tripswitch_proxy_no_route_total',
    help: 'Requests that matched no route (404).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sidecar.noRoute);
    },
  });
  new Counter({
    name: 'tripswitch_proxy_refused_total',
    help: 'Requests refused before routing (Host, request-target, header count, Expect, Content-Length), answered 4xx/505 with the connection closed.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sidecar.refused);
    },
  });
  new Gauge({
    name: 'tripswitch_proxy_hosts_ejected',
    help: 'Hosts currently ejected.',
    labelNames: labels,
    registers: [registry],
    collect() {
      this.reset();
      const now = sidecar.clock.now();
      for (const c of clusterList()) this.set({ cluster: c.name }, c.outlier.ejectedCount(now));
    },
  });
  const stopGc = gcMetrics(registry);
  return Object.assign(registry, {
    dispose: () => {
      stopGc();
      breakers.dispose();
    },
  });
}

/**
 * `workers: N`: each worker's share of a cluster's figures (the totals are the cluster's own
 * fields); `outcomes` are the calls of each worker the main thread's breaker recorded (the one
 * trip decision), its probes, and the outcomes its ring dropped.
 */
function perWorker(b: ClusterBlocks) {
  const counter = (k: (typeof CLUSTER_COUNTERS)[number]) => perWorkerCounter(CLUSTER_COUNTERS, b.counters, k);
  const requests = counter('requests');
  const circuitOpen = counter('circuitOpen');
  const limits = [readLimits(b.limits, 0).perWorker, readLimits(b.limits, 1).perWorker];
  const outcomes = b.breaker ? readOutcomes(b.breaker) : undefined;
  return requests.map((r, w) => ({
    worker: w,
    requests: r,
    circuitOpen: circuitOpen[w],
    active: { default: limits[0]![w]!.active, high: limits[1]![w]!.active },
    pending: { default: limits[0]![w]!.pending, high: limits[1]![w]!.pending },
    ...(outcomes ? { outcomes: outcomes[w] } : {}),
  }));
}

function send(res: ServerResponse, status: number, body: string, type = 'application/json'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * The JSON served at /breakers: per cluster, breaker state and stats, limits, counters, hosts.
 * @example
 * ```ts
 * console.log(JSON.stringify(breakersJson(sidecar), null, 2));
 * ```
 */
export function breakersJson(sidecar: Sidecar): unknown[] {
  const now = sidecar.clock.now();
  return [...sidecar.clusters.values()].map((c) => ({
    name: c.name,
    state: c.breaker?.state ?? 'none',
    stats: c.breaker?.stats(),
    limits: Object.fromEntries(
      (['default', 'high'] as const).map((p) => [
        p,
        { active: c.limits[p].active, pending: c.limits[p].pending, retries: c.limits[p].retries },
      ]),
    ),
    counters: { ...c.counters },
    ...(c.share ? { workers: perWorker(c.share.blocks) } : {}),
    hosts: c.hosts.map((h) => ({
      address: h.address,
      active: h.active,
      ejected: h.ejectedUntil > now,
      ejectedUntil: h.ejectedUntil > now ? h.ejectedUntil : undefined,
      ejections: h.ejections,
    })),
  }));
}

/**
 * A running admin listener.
 *
 * @example
 * ```ts
 * const admin: AdminServer = await startAdmin(sidecar);
 * console.log(`admin on 127.0.0.1:${admin.port}`);
 * await admin.close();
 * ```
 */
export interface AdminServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Starts the admin listener. Rejects when bound off loopback without a token.
 * @example
 * ```ts
 * const admin = await startAdmin(sidecar, { port: 9901 });
 * ```
 */
export async function startAdmin(sidecar: Sidecar, options: AdminOptions = {}): Promise<AdminServer> {
  const cfg = sidecar.resolved.admin;
  const address = options.address ?? cfg.address;
  const port = options.port ?? cfg.port;
  const token = options.token ?? cfg.token ?? process.env.TRIPSWITCH_ADMIN_TOKEN;
  if (!isLoopback(address) && !token) {
    throw new Error(
      `admin listener on non-loopback address ${address} needs a token: set admin.token in the config or TRIPSWITCH_ADMIN_TOKEN`,
    );
  }
  const expected = token ? Buffer.from(`Bearer ${token}`) : undefined;
  const names = adminNames(address, options.allowedHosts ?? cfg.allowed_hosts);
  const registry = sidecarRegistry(sidecar);
  const server = createServer(async (req, res) => {
    try {
      const refusal = browserRefusal(req, names, !token);
      if (refusal) {
        send(res, 403, JSON.stringify({ error: refusal }));
        return;
      }
      if (expected) {
        const got = Buffer.from(req.headers.authorization ?? '');
        if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
          res.setHeader('www-authenticate', 'Bearer');
          send(res, 401, '{"error":"unauthorized"}');
          return;
        }
      }
      const url = new URL(req.url ?? '/', 'http://admin');
      const path = url.pathname;
      if (options.dashboard && (await options.dashboard(req, res))) return;
      if (req.method === 'GET' && path === '/metrics') {
        send(res, 200, await registry.metrics(), registry.contentType);
        return;
      }
      if (req.method === 'GET' && path === '/breakers') {
        send(res, 200, JSON.stringify(breakersJson(sidecar)));
        return;
      }
      if (req.method === 'GET' && path === '/healthz') {
        send(res, 200, 'ok\n', 'text/plain');
        return;
      }
      if (req.method === 'GET' && path === '/ready') {
        const ready = !sidecar.stopping && sidecar.addresses().length > 0;
        send(res, ready ? 200 : 503, ready ? 'ready\n' : 'not ready\n', 'text/plain');
        return;
      }
      const m = /^\/breakers\/([^/]+)\/(open|close|reset)$/.exec(path);
      if (m) {
        if (req.method !== 'POST') {
          res.setHeader('allow', 'POST');
          send(res, 405, '{"error":"use POST"}');
          return;
        }
        const c = sidecar.clusters.get(decodeURIComponent(m[1]!));
        if (!c?.breaker) {
          send(res, 404, '{"error":"no such breaker"}');
          return;
        }
        if (m[2] === 'open') c.breaker.isolate();
        else if (m[2] === 'close') c.breaker.forceClose();
        else {
          // a closed breaker's reset makes no transition: tell the workers' calls it is a new period
          const closed = c.breaker.state === 'closed';
          c.breaker.reset();
          if (closed) c.sharedBreaker?.newPeriod();
        }
        send(res, 200, JSON.stringify({ name: c.name, state: c.breaker.state }));
        return;
      }
      send(res, 404, '{"error":"not found"}');
    } catch (err) {
      if (!res.headersSent) send(res, 500, JSON.stringify({ error: String(err) }));
      else res.destroy();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        registry.dispose();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

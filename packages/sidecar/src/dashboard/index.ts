/**
 * The live dashboard: an HTTP handler any Node app can mount, showing every breaker of a registry
 * (or a sidecar, or any `{ breakers() }`): an overview grid (state, reason, probe countdown, error
 * % and rate over the trip rule's window, p99; sortable and filterable) and a detail per breaker
 * (counts by outcome, percentiles, redacted last failure, five-minute charts), updated by deltas
 * over server-sent events.
 *
 * Routes (under `basePath`, default `/dashboard`): `GET /dashboard` (the page), `GET
 * /dashboard/events` (`text/event-stream`), `GET /dashboard/snapshot.json`, `GET
 * /dashboard/breaker.json?name=`. The collector follows the breakers from the handler's creation
 * (`keepHistory`), holding no timer; the tick timer runs only while a page is connected.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { breakerRegistry } from 'tripswitch';
 * import { createDashboardHandler } from '@tripswitch/sidecar';
 *
 * const registry = breakerRegistry();
 * const dashboard = createDashboardHandler(registry);
 * createServer((req, res) => {
 *   if (dashboard(req, res)) return;
 *   res.writeHead(404).end();
 * }).listen(8080, '127.0.0.1');
 * ```
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock, TimerHandle } from 'tripswitch';
import { realClock } from '../clock.js';
import { Collector, type DashboardSnapshot, type DashboardSource } from './collector.js';
import { DeltaEncoder } from './delta.js';
import { DATA_CSP, PAGE_CSP, renderPage } from './page.js';

export {
  type BreakerSource,
  type BreakerView,
  type ClusterView,
  Collector,
  type CollectorOptions,
  type DashboardSnapshot,
  type DashboardSource,
  type LatencyView,
  type OutcomeCounts,
  type SeriesView,
  type WindowView,
  type SidecarLike,
  toBreakerSource,
} from './collector.js';
export type { DeltaEvent, OverviewEvent, OverviewRow } from './delta.js';

/**
 * Options of {@link createDashboardHandler}.
 *
 * @example
 * ```ts
 * createDashboardHandler(registry, { basePath: '/ops/breakers', intervalMs: 1_000 });
 * ```
 */
export interface DashboardOptions {
  /** Mount point; `''` or `'/'` mounts at the root. @default '/dashboard' */
  basePath?: string;
  /** Least time between two periodic snapshots on the event stream (state changes are sent at once). @default 1000 */
  intervalMs?: number;
  /** Source of time and timers. @default the source's `clock` (a Sidecar's), else realClock */
  clock?: Clock;
  /** Page title. @default 'tripswitch breakers' */
  title?: string;
  /** Durations kept per breaker for latency percentiles. @default 1024 */
  latencySamples?: number;
  /** One-second chart points kept per breaker. @default 120 */
  seriesPoints?: number;
  /** Seconds summed into each breaker's `recent` counts. @default 10 */
  recentSeconds?: number;
  /** Concurrent event-stream clients; more are answered 503. @default 32 */
  maxClients?: number;
  /**
   * Follow the breakers from the handler's creation, so the charts show what happened before a
   * page was opened (fixed memory per breaker, no timer). `false`: only while a page is connected.
   * @default true
   */
  keepHistory?: boolean;
  /**
   * Turns a breaker's last failure into the text shown on the page and in the data (`undefined`
   * hides it). Without it no failure message is kept or sent: messages can carry connection
   * strings and tokens.
   */
  redact?: (error: unknown, breaker: string) => string | undefined;
}

/**
 * A request handler: returns true when it answered the request (a dashboard URL), false otherwise
 * (call the next handler). Also exposes the collector and a way to end every event stream.
 *
 * @example
 * ```ts
 * app.use((req, res, next) => (dashboard(req, res) ? undefined : next()));
 * ```
 */
export interface DashboardHandler {
  (req: IncomingMessage, res: ServerResponse): boolean;
  /** Event-stream clients connected now. */
  readonly clients: number;
  /** Bytes and frames written to event streams since creation (all clients together). */
  readonly streamed: { bytes: number; frames: number };
  /** The collector (active only while a client is connected). */
  readonly collector: Collector;
  /** What `/snapshot.json` would return now. */
  snapshot(): DashboardSnapshot;
  /** Ends every event stream (the collector then stops unless `keepHistory`). The handler keeps serving afterwards. */
  close(): void;
  /** Ends every stream and stops following the breakers (drops the history). */
  dispose(): void;
}

const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const;

function normalizeBase(raw: string | undefined): string {
  if (raw === undefined) return '/dashboard';
  if (typeof raw !== 'string' || (raw !== '' && !/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/.test(raw)))
    throw new TypeError(`dashboard: basePath must be '' or a path starting with '/', got ${String(raw)}`);
  return raw.replace(/\/+$/, '');
}

/** A sidecar's own clock, so a sidecar run on a TestClock gets a dashboard on the same clock. */
function sourceClock(source: DashboardSource): Clock | undefined {
  const c = (source as { clock?: Partial<Clock> }).clock;
  return typeof c === 'object' &&
    c !== null &&
    typeof c.now === 'function' &&
    typeof c.setTimeout === 'function'
    ? (c as Clock)
    : undefined;
}

function positive(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new RangeError(`dashboard: ${name} must be a finite number > 0, got ${String(v)}`);
  return v;
}

/**
 * Creates the dashboard handler for a core `BreakerRegistry`, a sidecar `Sidecar` (its clusters
 * are re-read on every tick, so reloads show up), or any `{ breakers(): Iterable<[name, breaker]> }`.
 *
 * @example
 * ```ts
 * const dashboard = createDashboardHandler(registry, { basePath: '/dashboard' });
 * http.createServer((req, res) => dashboard(req, res) || next(req, res));
 * ```
 */
export function createDashboardHandler(
  source: DashboardSource,
  options: DashboardOptions = {},
): DashboardHandler {
  const base = normalizeBase(options.basePath);
  const intervalMs = positive('intervalMs', options.intervalMs, 1000);
  const maxClients = positive('maxClients', options.maxClients, 32);
  const clock = options.clock ?? sourceClock(source) ?? realClock;
  const page = renderPage({ basePath: base, title: options.title ?? 'tripswitch breakers' });
  const pageBytes = Buffer.byteLength(page);
  const clients = new Set<ServerResponse>();
  let timer: TimerHandle | undefined;
  let seq = 0;
  let pushQueued = false;

  const schedulePush = () => {
    if (pushQueued || clients.size === 0) return;
    pushQueued = true;
    // Coalesces the transitions of one synchronous burst into one event.
    queueMicrotask(() => {
      pushQueued = false;
      broadcast();
    });
  };

  const collector = new Collector(source, {
    clock,
    latencySamples: options.latencySamples,
    seriesPoints: options.seriesPoints,
    recentSeconds: options.recentSeconds,
    onStateChange: schedulePush,
    onSourceChange: schedulePush,
    redact: options.redact,
  });
  const keepHistory = options.keepHistory !== false;
  if (keepHistory) collector.start();

  const encoder = new DeltaEncoder();
  /** Clients that missed a delta (socket buffer full): they get a full snapshot when they drain. */
  const stale = new Set<ServerResponse>();
  let bytesSent = 0;
  let framesSent = 0;

  const frame = (event: 'snapshot' | 'delta', data: unknown) =>
    `id: ${++seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

  function write(res: ServerResponse, data: string): void {
    bytesSent += Buffer.byteLength(data);
    framesSent++;
    res.write(data);
  }

  function broadcast(): void {
    if (clients.size === 0) return;
    const delta = encoder.delta(collector.snapshot({ series: false }));
    const data = delta === undefined ? undefined : frame('delta', delta);
    let full: string | undefined;
    for (const res of clients) {
      if (res.writableNeedDrain) {
        // Deltas build on each other: a skipped client is resynchronised with a full snapshot.
        if (data !== undefined) stale.add(res);
        continue;
      }
      if (stale.delete(res)) {
        full ??= frame('snapshot', encoder.full());
        write(res, full);
      } else if (data !== undefined) write(res, data);
    }
  }

  function tick(): void {
    timer = undefined;
    if (clients.size === 0) return;
    broadcast();
    timer = clock.setTimeout(tick, intervalMs);
    timer.unref();
  }

  function removeClient(res: ServerResponse): void {
    if (!clients.delete(res)) return;
    if (clients.size > 0) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    if (!keepHistory) collector.stop();
  }

  function send(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, {
      ...COMMON_HEADERS,
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'content-security-policy': DATA_CSP,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  function events(req: IncomingMessage, res: ServerResponse): void {
    if (clients.size >= maxClients) {
      res.setHeader('retry-after', '5');
      send(req, res, 503, 'application/json', '{"error":"too many dashboard clients"}');
      return;
    }
    res.writeHead(200, {
      ...COMMON_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'content-security-policy': DATA_CSP,
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.socket?.setNoDelay(true);
    clients.add(res);
    res.on('close', () => {
      stale.delete(res);
      removeClient(res);
    });
    if (clients.size === 1) {
      collector.start();
      timer = clock.setTimeout(tick, intervalMs);
      timer.unref();
    }
    // Bring every other client up to date first, so the newcomer's snapshot is the base of the next delta.
    const others = clients.size > 1;
    if (others) clients.delete(res);
    if (others) broadcast();
    else encoder.delta(collector.snapshot({ series: false }));
    clients.add(res);
    write(res, `retry: 2000\n\n${frame('snapshot', encoder.full())}`);
  }

  const handler = ((req: IncomingMessage, res: ServerResponse): boolean => {
    const path = new URL(req.url ?? '/', 'http://dashboard').pathname;
    let route: 'page' | 'events' | 'snapshot' | 'breaker' | 'missing';
    if (path === base || path === `${base}/`) route = 'page';
    else if (path === `${base}/events`) route = 'events';
    else if (path === `${base}/snapshot.json`) route = 'snapshot';
    else if (path === `${base}/breaker.json`) route = 'breaker';
    else if (base !== '' && path.startsWith(`${base}/`)) route = 'missing';
    else return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(req, res, 405, 'application/json', '{"error":"method not allowed"}');
      return true;
    }
    switch (route) {
      case 'page':
        res.writeHead(200, {
          ...COMMON_HEADERS,
          'content-type': 'text/html; charset=utf-8',
          'content-length': pageBytes,
          'content-security-policy': PAGE_CSP,
        });
        res.end(req.method === 'HEAD' ? undefined : page);
        return true;
      case 'events':
        events(req, res);
        return true;
      case 'snapshot':
        send(req, res, 200, 'application/json', JSON.stringify(collector.snapshot()));
        return true;
      case 'breaker': {
        const name = new URL(req.url ?? '/', 'http://dashboard').searchParams.get('name');
        const one = name === null ? undefined : collector.snapshot({ only: name }).breakers[0];
        if (one === undefined) send(req, res, 404, 'application/json', '{"error":"no such breaker"}');
        else send(req, res, 200, 'application/json', JSON.stringify(one));
        return true;
      }
      default:
        send(req, res, 404, 'application/json', '{"error":"not found"}');
        return true;
    }
  }) as DashboardHandler;

  Object.defineProperties(handler, {
    clients: { get: () => clients.size, enumerable: true },
    streamed: { get: () => ({ bytes: bytesSent, frames: framesSent }), enumerable: true },
    collector: { value: collector, enumerable: true },
    snapshot: { value: () => collector.snapshot(), enumerable: true },
    close: {
      value: () => {
        for (const res of [...clients]) {
          removeClient(res);
          res.end();
        }
      },
      enumerable: true,
    },
    dispose: {
      value: () => {
        for (const res of [...clients]) {
          removeClient(res);
          res.end();
        }
        collector.stop();
      },
      enumerable: true,
    },
  });
  return handler;
}

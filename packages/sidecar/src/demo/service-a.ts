/**
 * Service A of the cascade demo: a consumer of Service B with two routes.
 *
 * The model (what makes the cascade real): A handles at most `workers` requests at a time, like a
 * server with a thread pool of that size; requests beyond it wait in one FIFO queue. `GET /orders`
 * holds a worker while it calls B through a shared undici Agent limited to `upstreamConnections`
 * connections; `GET /profile` never calls B, it only needs a worker. When B hangs, every worker
 * ends up waiting on B, and `/profile` waits in the same queue behind them.
 *
 * Unprotected, the call to B has no timeout of its own: only the HTTP client's headers/body timeout,
 * set to `clientTimeoutMs` (undici's default is 300 s; the demo caps it so a run ends). Protected,
 * it goes through `wrap(fallback({ lastGood }), retry, circuitBreaker, timeout)` as docs/policies.md
 * recommends (see read-policy.ts: a slow-call rule, no retry of a timeout). A fallback answer is
 * marked with `x-fallback: 1` and `x-fallback-kind: last-good` (with `x-last-good-age-ms` and
 * `x-last-good-ttl-ms`) or `degraded` (past the TTL or before any good answer: 200, `x-degraded: 1`,
 * a body with `degraded: true`, empty `orders` and the reason). With `metrics`, `GET /metrics`
 * serves Prometheus text (see metrics.ts).
 *
 * `POST /orders` (a JSON body with an `id`) is a write to B. Unprotected it is forwarded as is, and
 * an error is a 5xx to the client: the write is lost. Protected it goes through a `writeQueue` on the
 * same breaker (policy `wrap(breaker, timeout)`), stored in a `fileWriteStore` in a fresh temporary
 * directory, and sent with `idempotency-key: <the queue's id>`: 201 when B took it at once, 202 when
 * it was queued to be replayed when the breaker closes. Like every request it needs a worker.
 *
 * @module
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InstrumentablePolicy } from '@tripswitch/prometheus';
import {
  type BreakerRegistry,
  type CircuitBreaker,
  timeout,
  type WriteQueue,
  wrap,
  writeQueue,
} from 'tripswitch';
import { fileWriteStore } from 'tripswitch/file-store';
import { Agent, request } from 'undici';
import { realClock } from '../clock.js';
import { demoMetrics, type Outcome } from './metrics.js';
import { BREAKER_NAME, type ProtectedRead, protectedRead } from './read-policy.js';

export { BREAKER_NAME };

/**
 * A handler that answers some requests (the dashboard): true when it handled `req`. Its `close()`,
 * if any, is called when Service A closes (the dashboard ends its event streams).
 */
export type SideHandler = ((req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>) & {
  close?: () => void;
};

/** Options of {@link startServiceA}. */
export interface ServiceAOptions {
  /** Base URL of Service B. */
  upstreamUrl: string;
  /** Call B through tripswitch policies (true) or plainly (false). */
  protected: boolean;
  /** Requests A handles at once; the rest queue (its "thread pool"). @default 10 */
  workers?: number;
  /** Connections of the shared pool to B. @default 10 */
  upstreamConnections?: number;
  /** Protected: the per-attempt timeout in ms. @default 300 */
  timeoutMs?: number;
  /** The HTTP client's headers and body timeout for calls to B, both modes. @default 10_000 */
  clientTimeoutMs?: number;
  /** Protected: how long the breaker stays open before a probe, in ms. @default 1_000 */
  openDurationMs?: number;
  /** Protected: consecutive failures that open the breaker. @default 5 */
  tripThreshold?: number;
  /** Protected: how long a last good answer may be served, in ms. @default 60_000 */
  lastGoodTtlMs?: number;
  /** Protected: the registry the breaker is created in (name `service-b`). Required when protected. */
  registry?: BreakerRegistry;
  /** Served before the routes (outside the worker pool), e.g. the dashboard. */
  sideHandler?: SideHandler;
  /** Serve `GET /metrics` (Prometheus text). @default false (the measured runs do not pay for it) */
  metrics?: boolean;
  /** Port to listen on (127.0.0.1). @default 0 (an ephemeral port) */
  port?: number;
}

/** A write to B, as `POST /orders` takes it: a JSON object with an `id` (other fields are passed on). */
export interface OrderWrite {
  id: string | number;
  [field: string]: unknown;
}

/** A running Service A. */
export interface ServiceA {
  readonly url: string;
  readonly port: number;
  /** The breaker guarding B (protected mode only). */
  readonly breaker: CircuitBreaker | undefined;
  /** The queue of writes to B (protected mode only); closed by `close()`, its directory removed. */
  readonly writes: WriteQueue<OrderWrite, number> | undefined;
  /** The write queue's file (protected mode only); its temporary directory is removed by `close()`. */
  readonly writeStorePath: string | undefined;
  /** Workers busy and requests waiting for one. */
  load(): { active: number; queued: number };
  /** Protected: the last good answer's age in ms (undefined before the first) and its TTL. */
  readonly lastGood: { ageMs(): number | undefined; readonly ttlMs: number } | undefined;
  /** Protected: the timeout per attempt in ms. */
  readonly timeoutMs: number | undefined;
  close(): Promise<void>;
}

/** A FIFO concurrency limit: at most `size` tasks run; the others wait in order. */
export class WorkerPool {
  readonly size: number;
  #active = 0;
  readonly #queue: (() => void)[] = [];
  #head = 0;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('WorkerPool: size must be an integer >= 1');
    this.size = size;
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#queue.length - this.#head;
  }

  async run<T>(task: () => Promise<T> | T): Promise<T> {
    if (this.#active >= this.size) await new Promise<void>((resolve) => this.#queue.push(resolve));
    else this.#active++;
    try {
      return await task();
    } finally {
      this.#release();
    }
  }

  #release() {
    if (this.#head < this.#queue.length) {
      const next = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as never;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#head);
        this.#head = 0;
      }
      next(); // the slot passes to the next waiter; #active is unchanged
    } else this.#active--;
  }
}

/** A status B answered that A treats as a failure (>= 500), or passes back (4xx on a write). */
class UpstreamStatusError extends Error {
  constructor(readonly status: number) {
    super(`service b answered ${status}`);
    this.name = 'UpstreamStatusError';
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  if (res.destroyed || res.writableEnded) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** Reads a small JSON body with an `id`; undefined when it is not one (or over 4 KiB). */
async function readOrder(req: IncomingMessage): Promise<OrderWrite | undefined> {
  let body = '';
  req.setEncoding('utf8');
  for await (const chunk of req) {
    body += chunk as string;
    if (body.length > 4_096) return undefined;
  }
  try {
    const v = JSON.parse(body) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    const id = (v as { id?: unknown }).id;
    if ((typeof id !== 'string' && typeof id !== 'number') || String(id).length === 0) return undefined;
    return v as OrderWrite;
  } catch {
    return undefined;
  }
}

/**
 * Starts Service A on 127.0.0.1 (an ephemeral port).
 *
 * @example
 * ```ts
 * const a = await startServiceA({ upstreamUrl: b.url, protected: true, registry: breakerRegistry() });
 * ```
 */
export async function startServiceA(options: ServiceAOptions): Promise<ServiceA> {
  const pool = new WorkerPool(options.workers ?? 10);
  // undici wants whole milliseconds.
  const clientTimeoutMs = Math.ceil(options.clientTimeoutMs ?? 10_000);
  const agent = new Agent({
    connections: options.upstreamConnections ?? 10,
    headersTimeout: clientTimeoutMs,
    bodyTimeout: clientTimeoutMs,
  });
  const ordersUrl = `${options.upstreamUrl.replace(/\/$/, '')}/orders`;

  const callB = async (signal?: AbortSignal): Promise<unknown> => {
    const r = await request(ordersUrl, { dispatcher: agent, signal });
    if (r.statusCode >= 500) {
      await r.body.dump();
      throw new UpstreamStatusError(r.statusCode);
    }
    return await r.body.json();
  };

  /** POSTs one write to B; B's status, or an UpstreamStatusError for >= 400. */
  const postB = async (order: OrderWrite, signal?: AbortSignal, key?: string): Promise<number> => {
    const r = await request(ordersUrl, {
      method: 'POST',
      dispatcher: agent,
      signal,
      body: JSON.stringify(order),
      headers: {
        'content-type': 'application/json',
        ...(key !== undefined ? { 'idempotency-key': key } : {}),
      },
    });
    await r.body.dump();
    if (r.statusCode >= 400) throw new UpstreamStatusError(r.statusCode);
    return r.statusCode;
  };
  const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

  let breaker: CircuitBreaker | undefined;
  let read: ProtectedRead<unknown> | undefined;
  /** Answers GET /orders; resolves with what the answer was, for the metrics. */
  let orders: (res: ServerResponse) => Promise<Outcome>;
  let write: (order: OrderWrite, res: ServerResponse) => Promise<Outcome>;
  let writes: WriteQueue<OrderWrite, number> | undefined;
  let storeDir: string | undefined;
  let storePath: string | undefined;
  if (options.protected) {
    if (options.registry === undefined) throw new TypeError('startServiceA: protected mode needs a registry');
    const r = protectedRead<unknown>({
      registry: options.registry,
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.openDurationMs !== undefined ? { openDurationMs: options.openDurationMs } : {}),
      ...(options.tripThreshold !== undefined ? { tripThreshold: options.tripThreshold } : {}),
      ...(options.lastGoodTtlMs !== undefined ? { lastGoodTtlMs: options.lastGoodTtlMs } : {}),
    });
    read = r;
    breaker = r.breaker;
    orders = async (res) => {
      const a = await r.execute((signal) => callB(signal));
      if (a.kind === 'fresh') {
        json(res, 200, a.value);
        return 'ok';
      }
      const headers: Record<string, string> = {
        'x-fallback': '1',
        'x-fallback-kind': a.kind,
        'x-last-good-ttl-ms': String(a.ttlMs),
      };
      if (a.ageMs !== undefined) headers['x-last-good-age-ms'] = String(Math.round(a.ageMs));
      if (a.kind === 'last-good') {
        json(res, 200, a.value, headers);
        return 'last-good';
      }
      // Past the TTL (or before any good answer): an answer that says what it is, not an error.
      json(
        res,
        200,
        { orders: [], degraded: true, reason: a.reason, servedBy: 'service-a' },
        { ...headers, 'x-degraded': '1' },
      );
      return 'degraded';
    };
    // Writes: the same breaker and timeout (no retry: the queue replays), kept on disk while B is down.
    storeDir = await mkdtemp(join(tmpdir(), 'tripswitch-demo-'));
    storePath = join(storeDir, 'orders-outbox.jsonl');
    const queue = writeQueue<OrderWrite, number>({
      breaker,
      policy: wrap(breaker, timeout({ ms: options.timeoutMs ?? 300 })),
      store: fileWriteStore(storePath),
      // A 4xx from B will not get better by replaying it.
      retryable: (err) => !(err instanceof UpstreamStatusError && err.status < 500),
      send: (order, { signal, id }) => postB(order, signal, id),
    });
    writes = queue;
    write = async (order, res) => {
      try {
        const r = await queue.submit(order);
        json(res, r.status === 'sent' ? 201 : 202, { id: order.id, writeId: r.id, status: r.status });
        return r.status === 'sent' ? 'ok' : 'queued';
      } catch (err) {
        const status = err instanceof UpstreamStatusError && err.status < 500 ? err.status : 503;
        json(res, status, { error: errorText(err) });
        return 'error';
      }
    };
  } else {
    orders = async (res) => {
      try {
        json(res, 200, await callB());
        return 'ok';
      } catch (err) {
        const status = err instanceof UpstreamStatusError ? 502 : 504;
        json(res, status, { error: err instanceof Error ? err.message : String(err) });
        return 'error';
      }
    };
    write = async (order, res) => {
      try {
        await postB(order);
        json(res, 201, { id: order.id, status: 'sent' });
        return 'ok';
      } catch (err) {
        const status = err instanceof UpstreamStatusError ? (err.status < 500 ? err.status : 502) : 504;
        json(res, status, { error: errorText(err) });
        return 'error';
      }
    };
  }

  const profile = (res: ServerResponse): Outcome => {
    json(res, 200, { user: 'demo', plan: 'pro', servedBy: 'service-a' });
    return 'ok';
  };
  const metrics =
    options.metrics === true
      ? demoMetrics({
          protected: options.protected,
          load: () => ({ active: pool.active, queued: pool.queued, size: pool.size }),
          ...(read !== undefined
            ? {
                registry: options.registry,
                policy: read.policy,
                lastGood: { ageMs: read.lastGoodAgeMs, ttlMs: read.ttlMs },
              }
            : {}),
          ...(writes !== undefined ? { writes: writes as unknown as InstrumentablePolicy } : {}),
        })
      : undefined;
  /** Runs a route in a worker and records its answer (the clock starts when the request arrived). */
  const inWorker = async (route: string, res: ServerResponse, handle: () => Outcome | Promise<Outcome>) => {
    const start = realClock.now();
    const outcome = await pool.run(async () => {
      if (res.destroyed) return undefined; // the client left while it was queued
      return await handle();
    });
    if (outcome !== undefined)
      metrics?.observe(route, res.statusCode, outcome, (realClock.now() - start) / 1000);
  };

  const server: Server = createServer((req, res) => {
    void (async () => {
      if (options.sideHandler !== undefined && (await options.sideHandler(req, res))) return;
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'POST' && path === '/orders') {
        const order = await readOrder(req);
        if (order === undefined)
          return json(res, 400, { error: 'body: a JSON object with an "id" (at most 4 KiB)' });
        return inWorker('POST /orders', res, () => write(order, res));
      }
      if (req.method !== 'GET') return json(res, 405, { error: 'GET only (and POST /orders)' });
      if (path === '/orders') return inWorker('/orders', res, () => orders(res));
      if (path === '/profile') return inWorker('/profile', res, () => profile(res));
      if (path === '/metrics' && metrics !== undefined) {
        const text = await metrics.text();
        res.writeHead(200, { 'content-type': metrics.contentType });
        return void res.end(text);
      }
      if (path === '/stats')
        return json(res, 200, {
          workers: pool.size,
          active: pool.active,
          queued: pool.queued,
          breaker: breaker?.state,
          ...(read !== undefined
            ? { lastGoodAgeMs: read.lastGoodAgeMs() ?? null, lastGoodTtlMs: read.ttlMs }
            : {}),
          ...(writes !== undefined ? { writesQueued: writes.size } : {}),
        });
      json(res, 404, {
        error: `routes: GET /orders, POST /orders, GET /profile, GET /stats${metrics !== undefined ? ', GET /metrics' : ''}`,
      });
    })().catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: String(err) });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  const closeWrites = async () => {
    await writes?.close();
    if (storeDir !== undefined) await rm(storeDir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
  } catch (err) {
    server.close(); // a failed listen (port taken) still holds a handle until closed
    metrics?.dispose();
    await closeWrites();
    await agent.destroy();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    breaker,
    writes,
    writeStorePath: storePath,
    load: () => ({ active: pool.active, queued: pool.queued }),
    lastGood: read && { ageMs: read.lastGoodAgeMs, ttlMs: read.ttlMs },
    timeoutMs: read?.timeoutMs,
    close() {
      closing ??= (async () => {
        options.sideHandler?.close?.();
        metrics?.dispose();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        // Before the agent: close() aborts a replay in flight; stored writes stay in the file until rm.
        await closeWrites();
        await agent.destroy();
        await closed;
      })();
      return closing;
    },
  };
}

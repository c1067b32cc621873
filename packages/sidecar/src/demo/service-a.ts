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
 * recommends, and a fallback answer is marked with the header `x-fallback: 1`.
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
import {
  type BreakerRegistry,
  type CircuitBreaker,
  exponentialBackoff,
  fallback,
  retry,
  timeout,
  type WriteQueue,
  wrap,
  writeQueue,
} from 'tripswitch';
import { fileWriteStore } from 'tripswitch/file-store';
import { Agent, request } from 'undici';

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
  close(): Promise<void>;
}

/** The name of the breaker guarding Service B. */
export const BREAKER_NAME = 'service-b';

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
  let orders: (res: ServerResponse) => Promise<void>;
  let write: (order: OrderWrite, res: ServerResponse) => Promise<void>;
  let writes: WriteQueue<OrderWrite, number> | undefined;
  let storeDir: string | undefined;
  let storePath: string | undefined;
  if (options.protected) {
    if (options.registry === undefined) throw new TypeError('startServiceA: protected mode needs a registry');
    breaker = options.registry.get(BREAKER_NAME, {
      trip: { kind: 'consecutive', threshold: options.tripThreshold ?? 5 },
      openDuration: options.openDurationMs ?? 1_000,
      halfOpen: { maxProbes: 1, successesToClose: 1 },
    });
    const policy = wrap(
      fallback<unknown>({ lastGood: { ttlMs: options.lastGoodTtlMs ?? 60_000 } }),
      retry({
        maxAttempts: 2,
        backoff: exponentialBackoff({ initialDelay: 50, maxDelay: 200 }),
        budget: { percent: 20 },
      }),
      breaker,
      timeout({ ms: options.timeoutMs ?? 300 }),
    );
    orders = async (res) => {
      let fresh: unknown;
      try {
        const value = await policy.execute(async ({ signal }) => {
          const v = await callB(signal);
          fresh = v;
          return v;
        });
        const fellBack = fresh === undefined || value !== fresh;
        json(res, 200, value, fellBack ? { 'x-fallback': '1' } : {});
      } catch (err) {
        json(res, 503, { error: err instanceof Error ? err.message : String(err) });
      }
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
      } catch (err) {
        const status = err instanceof UpstreamStatusError && err.status < 500 ? err.status : 503;
        json(res, status, { error: errorText(err) });
      }
    };
  } else {
    orders = async (res) => {
      try {
        json(res, 200, await callB());
      } catch (err) {
        const status = err instanceof UpstreamStatusError ? 502 : 504;
        json(res, status, { error: err instanceof Error ? err.message : String(err) });
      }
    };
    write = async (order, res) => {
      try {
        await postB(order);
        json(res, 201, { id: order.id, status: 'sent' });
      } catch (err) {
        const status = err instanceof UpstreamStatusError ? (err.status < 500 ? err.status : 502) : 504;
        json(res, status, { error: errorText(err) });
      }
    };
  }

  const profile = (res: ServerResponse) =>
    json(res, 200, { user: 'demo', plan: 'pro', servedBy: 'service-a' });

  const server: Server = createServer((req, res) => {
    void (async () => {
      if (options.sideHandler !== undefined && (await options.sideHandler(req, res))) return;
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'POST' && path === '/orders') {
        const order = await readOrder(req);
        if (order === undefined)
          return json(res, 400, { error: 'body: a JSON object with an "id" (at most 4 KiB)' });
        await pool.run(async () => {
          if (res.destroyed) return; // the client left while it was queued
          await write(order, res);
        });
        return;
      }
      if (req.method !== 'GET') return json(res, 405, { error: 'GET only (and POST /orders)' });
      if (path === '/orders' || path === '/profile') {
        await pool.run(async () => {
          if (res.destroyed) return; // the client left while it was queued
          if (path === '/orders') await orders(res);
          else profile(res);
        });
        return;
      }
      if (path === '/stats')
        return json(res, 200, {
          workers: pool.size,
          active: pool.active,
          queued: pool.queued,
          breaker: breaker?.state,
          ...(writes !== undefined ? { writesQueued: writes.size } : {}),
        });
      json(res, 404, { error: 'routes: GET /orders, POST /orders, GET /profile, GET /stats' });
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
      server.listen(0, '127.0.0.1', () => resolve());
    });
  } catch (err) {
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
    close() {
      closing ??= (async () => {
        options.sideHandler?.close?.();
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

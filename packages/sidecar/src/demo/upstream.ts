/**
 * Service B of the cascade demo: an unstable upstream on 127.0.0.1 whose behaviour is switched at
 * runtime, by `setMode()` or by `POST /mode` (body or `?mode=` is the mode name).
 *
 * Modes: `healthy` (200 at once), `slow` (200 after `slowMs`), `failing` (500 at once), `hanging`
 * (never answers: the request stays open until the client gives up or the server closes),
 * `recovering` (the first `recoveringFailures` requests after the switch get 503, then healthy).
 *
 * `POST /orders` takes a small JSON body with an `id` and applies it once: it dedupes on the
 * `idempotency-key` header (or the body's `id` without one), answering 201 for a new write and 200
 * for a repeat. The modes apply to POSTs as to GETs; a write is applied only when B answers it
 * successfully. `GET /writes` (and `stats().writes`) counts them; `appliedIds()` lists their body ids.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { realClock } from '../clock.js';
import type { TimerHandle } from 'tripswitch';

/** The behaviours of the upstream. */
export type UpstreamMode = 'healthy' | 'slow' | 'failing' | 'hanging' | 'recovering';

/** Every mode, in the order they are documented. */
export const UPSTREAM_MODES: readonly UpstreamMode[] = [
  'healthy',
  'slow',
  'failing',
  'hanging',
  'recovering',
];

/** Options of {@link startUpstream}. */
export interface UpstreamOptions {
  /** Starting mode. @default 'healthy' */
  mode?: UpstreamMode;
  /** Delay of the `slow` mode in ms. @default 2000 */
  slowMs?: number;
  /** Requests answered 503 after a switch to `recovering`, before it answers like `healthy`. @default 2 */
  recoveringFailures?: number;
  /** Port to listen on. @default 0 (an ephemeral port) */
  port?: number;
}

/** Counts of the requests the upstream has seen. */
export interface UpstreamStats {
  received: number;
  ok: number;
  failed: number;
  /** Requests closed by the client (or the server shutting down) before an answer. */
  abandoned: number;
  /** Requests waiting right now (slow or hanging). */
  pending: number;
  /** `POST /orders`: received (any outcome), applied (distinct keys), repeats of an applied key. */
  writes: { received: number; applied: number; duplicates: number };
}

/** A running upstream. */
export interface Upstream {
  readonly url: string;
  readonly port: number;
  readonly mode: UpstreamMode;
  setMode(mode: UpstreamMode): void;
  stats(): UpstreamStats;
  /** The body `id`s of the writes applied, in the order they were applied (each once). */
  appliedIds(): ReadonlySet<string>;
  /** Stops listening and closes every connection, including hanging requests. */
  close(): Promise<void>;
}

/** Whether `s` names an upstream mode. */
export function isUpstreamMode(s: unknown): s is UpstreamMode {
  return typeof s === 'string' && (UPSTREAM_MODES as readonly string[]).includes(s);
}

/**
 * Starts Service B on 127.0.0.1.
 *
 * @example
 * ```ts
 * const b = await startUpstream({ slowMs: 50 });
 * b.setMode('hanging');
 * await b.close();
 * ```
 */
export async function startUpstream(options: UpstreamOptions = {}): Promise<Upstream> {
  const slowMs = options.slowMs ?? 2_000;
  const recoveringFailures = options.recoveringFailures ?? 2;
  let mode: UpstreamMode = options.mode ?? 'healthy';
  let recoveringLeft = 0;
  let seq = 0;
  const counts = { received: 0, ok: 0, failed: 0, abandoned: 0 };
  const pending = new Set<ServerResponse>();
  const timers = new Set<TimerHandle>();
  const writes = { received: 0, applied: 0, duplicates: 0 };
  const appliedKeys = new Set<string>();
  const appliedIds = new Set<string>();

  const setMode = (m: UpstreamMode) => {
    if (!isUpstreamMode(m)) throw new TypeError(`unknown upstream mode "${String(m)}"`);
    mode = m;
    if (m === 'recovering') recoveringLeft = recoveringFailures;
  };
  setMode(mode);

  const send = (res: ServerResponse, status: number, body: unknown) => {
    pending.delete(res);
    if (res.destroyed || res.writableEnded) return;
    if (status < 400) counts.ok++;
    else counts.failed++;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const orders = () => ({ orders: [{ id: ++seq, item: 'widget', qty: 1 }], servedBy: 'service-b' });

  const handleMode = (req: IncomingMessage, res: ServerResponse, url: URL) => {
    if (req.method === 'GET') return send(res, 200, { mode });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      if (body.length < 100) body += c;
    });
    req.on('end', () => {
      const m = url.searchParams.get('mode') ?? body.trim();
      if (!isUpstreamMode(m))
        return send(res, 400, { error: `mode must be one of ${UPSTREAM_MODES.join(', ')}` });
      setMode(m);
      send(res, 200, { mode });
    });
  };

  /** Answers a request to /orders as the mode says; `ok` makes the success answer (a GET's or a POST's). */
  const answer = (res: ServerResponse, ok: () => [number, unknown]) => {
    const m = mode;
    const succeed = () => {
      const [status, body] = ok();
      send(res, status, body);
    };
    if (m === 'healthy') return succeed();
    if (m === 'failing') return send(res, 500, { error: 'service b: internal error' });
    if (m === 'recovering') {
      if (recoveringLeft > 0) {
        recoveringLeft--;
        return send(res, 503, { error: 'service b: still warming up' });
      }
      return succeed();
    }
    pending.add(res);
    res.on('close', () => {
      if (pending.delete(res)) counts.abandoned++;
    });
    if (m === 'slow') {
      const t = realClock.setTimeout(() => {
        timers.delete(t);
        // The client may have gone meanwhile: then nothing is applied.
        if (pending.has(res) && !res.destroyed) succeed();
      }, slowMs);
      timers.add(t);
    }
    // hanging: no answer at all; the response stays in `pending` until the socket closes.
  };

  const handleWrite = (req: IncomingMessage, res: ServerResponse) => {
    writes.received++;
    let body = '';
    let tooLarge = false;
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      if (body.length + c.length > 4_096) tooLarge = true;
      else body += c;
    });
    req.on('end', () => {
      let id: unknown;
      try {
        id = (JSON.parse(body) as { id?: unknown } | null)?.id;
      } catch {
        id = undefined;
      }
      if (tooLarge || (typeof id !== 'string' && typeof id !== 'number') || String(id).length === 0)
        return send(res, tooLarge ? 413 : 400, { error: 'body: a JSON object with an "id" (at most 4 KiB)' });
      const orderId = String(id);
      const header = req.headers['idempotency-key'];
      const key = typeof header === 'string' && header.length > 0 ? `k:${header}` : `id:${orderId}`;
      answer(res, () => {
        if (appliedKeys.has(key)) {
          writes.duplicates++;
          return [200, { id: orderId, duplicate: true, servedBy: 'service-b' }];
        }
        appliedKeys.add(key);
        appliedIds.add(orderId);
        writes.applied++;
        return [201, { id: orderId, duplicate: false, servedBy: 'service-b' }];
      });
    });
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/mode') return handleMode(req, res, url);
    if (url.pathname === '/writes' && req.method === 'GET') return send(res, 200, { ...writes });
    counts.received++;
    if (req.method === 'POST' && url.pathname === '/orders') return handleWrite(req, res);
    answer(res, () => [200, orders()]);
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      // A failed listen (port taken) still holds a handle until closed.
      server.close();
      reject(err);
    });
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get mode() {
      return mode;
    },
    setMode,
    stats: () => ({ ...counts, pending: pending.size, writes: { ...writes } }),
    appliedIds: () => appliedIds,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) realClock.clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

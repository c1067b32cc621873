/**
 * Service B of the cascade demo: an unstable upstream on 127.0.0.1 whose behaviour is switched at
 * runtime, by `setMode()` or by `POST /mode` (body or `?mode=` is the mode name).
 *
 * Modes: `healthy` (200 at once), `slow` (200 after `slowMs`), `failing` (500 at once), `hanging`
 * (never answers: the request stays open until the client gives up or the server closes),
 * `recovering` (the first `recoveringFailures` requests after the switch get 503, then healthy).
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

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
}

/** A running upstream. */
export interface Upstream {
  readonly url: string;
  readonly port: number;
  readonly mode: UpstreamMode;
  setMode(mode: UpstreamMode): void;
  stats(): UpstreamStats;
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
  const timers = new Set<NodeJS.Timeout>();

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

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/mode') return handleMode(req, res, url);
    counts.received++;
    const m = mode;
    if (m === 'healthy') return send(res, 200, orders());
    if (m === 'failing') return send(res, 500, { error: 'service b: internal error' });
    if (m === 'recovering') {
      if (recoveringLeft > 0) {
        recoveringLeft--;
        return send(res, 503, { error: 'service b: still warming up' });
      }
      return send(res, 200, orders());
    }
    pending.add(res);
    res.on('close', () => {
      if (pending.delete(res)) counts.abandoned++;
    });
    if (m === 'slow') {
      const t = setTimeout(() => {
        timers.delete(t);
        send(res, 200, orders());
      }, slowMs);
      timers.add(t);
    }
    // hanging: no answer at all; the response stays in `pending` until the socket closes.
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
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
    stats: () => ({ ...counts, pending: pending.size }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

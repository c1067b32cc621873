/**
 * The sidecar proxy: HTTP/1.1 listeners, routing, per-cluster limits, breaker, outlier detection,
 * retries, fallbacks, hot reload and graceful drain. Upstream requests go through undici's
 * `Pool.stream()` straight into the client's response (no per-request `stream.pipeline()`).
 * HTTP/1.1 Upgrade (WebSocket) requests are tunnelled over a connection of their own (`Tunnel`).
 * @module
 */
import {
  type ClientRequest,
  createServer,
  type IncomingMessage,
  request,
  STATUS_CODES,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { type AddressInfo, isIP, connect as netConnect, type Socket } from 'node:net';
import { type Duplex, PassThrough } from 'node:stream';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type BreakerRegistry, breakerRegistry, type Clock, type Permit, type TimerHandle } from 'tripswitch';
import { realClock } from '../clock.js';
import type { Dispatcher } from 'undici';
import {
  type ResolvedConfig,
  type ResolvedFallback,
  type ResolvedListener,
  type ResolvedRoute,
  resolveConfig,
} from '../config/resolve.js';
import type { SidecarConfig } from '../config/schema.js';
import { type TlsMaterial, tlsMaterial } from '../config/tls.js';
import { Cluster, type UpstreamHost } from './cluster.js';
import { checkHead, isClientFault, refuse, refusedBefore, refuseRaw } from './head.js';
import type { Limiter } from './limits.js';

/**
 * Where the sidecar reports what it does (message first; pino's argument order is the other way round).
 *
 * @example
 * ```ts
 * const logger: Logger = { info: (m, f) => log.info(f, m), warn: (m, f) => log.warn(f, m), error: (m, f) => log.error(f, m) };
 * ```
 */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const line = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
  process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
/**
 * JSON lines on stderr.
 * @example
 * ```ts
 * stderrLogger.info('listening', { port: 8080 });
 * ```
 */
export const stderrLogger: Logger = { info: line('info'), warn: line('warn'), error: line('error') };

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
  'expect',
  'http2-settings',
]);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

interface CompiledRetry {
  attempts: number;
  statuses: Set<number>;
  connectFailure: boolean;
  reset: boolean;
  baseMs: number;
  maxMs: number;
  nonIdempotent: boolean;
  /** Largest request body read into memory for replay; 0 = bodies are never retried. */
  bufferBodyBytes: number;
}

interface CachedResponse {
  status: number;
  /** Flat name/value list, as given to writeHead. */
  headers: string[];
  body: Buffer;
}

interface CompiledRoute {
  prefix: string;
  host: string | undefined;
  cluster: Cluster;
  high: boolean;
  timeoutMs: number;
  retry: CompiledRetry | undefined;
  fallback: ResolvedFallback | undefined;
  /** Last good GET responses by URL, when the fallback is `last_good`. */
  lastGood: Map<string, CachedResponse> | undefined;
  maxCacheBody: number;
}

interface ListenerSlot {
  key: string;
  config: ResolvedListener;
  server: Server | HttpsServer;
  /** The TLS files in force (HTTPS listeners). */
  tls: TlsMaterial | undefined;
  routes: CompiledRoute[];
  priorityHeader: string;
  maxHeadersCount: number;
}

/**
 * The listener's limits on a client connection, set as properties so that a reload changes them
 * for new requests: Node enforces headersTimeout/requestTimeout on a timer every
 * connectionsCheckingInterval (fixed when the server is made), and reads maxHeadersCount when a
 * connection's parser is set up (one more than the limit, so that the excess is seen and refused).
 */
function applyConnectionLimits(server: Server | HttpsServer, l: ResolvedListener): void {
  const request = l.request_timeout_ms;
  const headers = l.headers_timeout_ms;
  server.requestTimeout = request;
  server.headersTimeout = request > 0 ? Math.min(headers, request) : headers;
  server.keepAliveTimeout = l.idle_timeout_ms;
  server.maxHeadersCount = l.max_headers_count + 1;
}

/** How often Node looks for connections past their header or request timeout. */
function checkingInterval(l: ResolvedListener): number {
  const headers = l.headers_timeout_ms;
  return Math.max(10, Math.min(1000, Math.floor(headers / 4)));
}

/**
 * Options of {@link Sidecar}.
 *
 * @example
 * ```ts
 * const options: SidecarOptions = { logger, clock: new TestClock(), random: () => 0.5 }; // deterministic tests
 * ```
 */
export interface SidecarOptions {
  /** @default realClock */
  clock?: Clock;
  /** @default stderrLogger */
  logger?: Logger;
  /** Randomness for backoff jitter. @default Math.random */
  random?: () => number;
}

function compileRoute(
  r: ResolvedRoute,
  clusters: Map<string, Cluster>,
  previous?: CompiledRoute,
): CompiledRoute {
  const cluster = clusters.get(r.cluster)!;
  const rt = r.retry;
  const on = rt.retry_on;
  const f = r.fallback;
  const lastGood = f !== undefined && 'last_good' in f;
  return {
    prefix: r.prefix,
    host: r.host,
    cluster,
    high: r.priority === 'high',
    timeoutMs: r.timeout_ms,
    retry:
      rt.attempts > 0
        ? {
            attempts: rt.attempts,
            statuses: new Set(on.filter((x): x is number => typeof x === 'number')),
            connectFailure: on.includes('connect-failure'),
            reset: on.includes('reset'),
            baseMs: rt.backoff_base_ms,
            maxMs: rt.backoff_max_ms,
            nonIdempotent: rt.retry_non_idempotent,
            bufferBodyBytes: rt.buffer_body_bytes,
          }
        : undefined,
    fallback: f,
    lastGood: lastGood ? (previous?.lastGood ?? new Map()) : undefined,
    maxCacheBody: lastGood ? f.max_body_bytes : 0,
  };
}

function hostMatches(pattern: string, hostHeader: string | undefined): boolean {
  if (!hostHeader) return false;
  let h = hostHeader.toLowerCase();
  const colon = h.lastIndexOf(':');
  if (colon > 0 && !h.endsWith(']')) h = h.slice(0, colon);
  if (pattern.startsWith('*.')) return h.endsWith(pattern.slice(1));
  return h === pattern;
}

// OpenSSL's certificate verification results, as node reports them in err.code.
const CERT_ERRORS = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'EPROTO',
]);

type FailKind = 'connect-failure' | 'tls' | 'timeout' | 'reset';
function classify(err: unknown): FailKind {
  const code = (err as { code?: string })?.code;
  if (
    code !== undefined &&
    (CERT_ERRORS.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))
  )
    return 'tls';
  if (
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'ECONNREFUSED' ||
    code === 'ENOTFOUND' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENETUNREACH' ||
    code === 'EAI_AGAIN'
  )
    return 'connect-failure';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'timeout';
  return 'reset';
}

function plain(res: ServerResponse, status: number, text: string, extra?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'content-type': 'text/plain',
    'content-length': Buffer.byteLength(text),
    ...extra,
  });
  res.end(text);
}

/** Response headers from undici's raw list: hop-by-hop and Connection-listed ones removed. */
// Set by responseHeaders (no tuple allocation): the Content-Length it saw, or -1.
let seenContentLength = -1;

// Only names of these lengths can be hop-by-hop or Content-Length: other names skip the
// lower-casing and the set lookup (most response headers).
const CHECK_LENGTH: boolean[] = [];
for (const h of HOP_BY_HOP) CHECK_LENGTH[h.length] = true;
CHECK_LENGTH['content-length'.length] = true;

function responseHeaders(raw: Buffer[]): string[] {
  const out: string[] = [];
  let listed: string[] | undefined;
  seenContentLength = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toString('latin1');
    if (CHECK_LENGTH[k.length] === true) {
      const lk = k.toLowerCase();
      if (lk === 'content-length') seenContentLength = Number(raw[i + 1]!.toString('latin1'));
      else if (HOP_BY_HOP.has(lk)) {
        if (lk === 'connection') {
          const tokens = raw[i + 1]!.toString('latin1').toLowerCase().split(',');
          for (const t of tokens) {
            const tt = t.trim();
            if (tt === 'close' || tt === 'keep-alive' || tt === '') continue;
            listed ??= [];
            listed.push(tt);
          }
        }
        continue;
      }
    }
    out.push(k, raw[i + 1]!.toString('latin1'));
  }
  if (listed) {
    const kept: string[] = [];
    for (let i = 0; i < out.length; i += 2)
      if (!listed.includes(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!);
    return kept;
  }
  return out;
}

const kExchange = Symbol('tripswitch.exchange');
// One shared listener instead of a closure per request.
function onResponseClose(this: ServerResponse & { [kExchange]?: Exchange }): void {
  this[kExchange]!.onClose();
}

/**
 * One client request and its upstream attempts. It is also the undici dispatch handler (the
 * legacy onConnect/onHeaders/onData/onComplete/onError shape, which undici calls without an
 * adapter): response bytes go straight to `res.write` with backpressure through `resume`, with
 * no intermediate stream, promise or AbortController.
 */
class Exchange {
  permit: Permit | undefined;
  waiter: { cancel(): void } | undefined;
  host: UpstreamHost | undefined;
  abortUpstream: ((err?: Error) => void) | undefined;
  resume: (() => void) | undefined;
  status = 0;
  attempt = 0;
  retrying = false;
  retryHeld = false;
  fallingBack = false;
  /** The current attempt's body is not for the client (a retry or a fallback follows). */
  discard = false;
  closed = false;
  clientGone = false;
  holdsSlot = false;
  drainHooked = false;
  /** Body bytes still expected when the upstream sent Content-Length, else -1. */
  remaining = -1;
  tail: Buffer | undefined;
  cache: Buffer[] | undefined;
  cacheSize = 0;
  cacheHeaders: string[] | undefined;
  readonly hasBody: boolean;
  /** The whole request body, read before the first attempt so that retries can replay it. */
  body: Buffer | undefined;
  /**
   * The bytes of a chunked body read before it outgrew the limit: sent ahead of the rest of the
   * request (which stays paused until then) as one stream.
   */
  head: Buffer[] | undefined;
  /** While the body is being read: detaches the listeners and the timer. */
  stopBuffering: (() => void) | undefined;
  headers: string[] | undefined;

  constructor(
    readonly proxy: Sidecar,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly route: CompiledRoute,
    readonly lim: Limiter,
  ) {
    const cl = req.headers['content-length'];
    this.hasBody = cl !== undefined ? cl !== '0' : req.headers['transfer-encoding'] !== undefined;
    (res as ServerResponse & { [kExchange]?: Exchange })[kExchange] = this;
    res.once('close', onResponseClose);
  }

  start(): void {
    if (!this.hasBody) {
      this.admit();
      return;
    }
    const limit = this.bufferLimit();
    if (limit === 0) {
      this.admit();
      return;
    }
    if (this.req.headers['transfer-encoding'] !== undefined) {
      // Node's parser rejects Transfer-Encoding with Content-Length, or not ending in chunked.
      this.bufferChunked(limit);
      return;
    }
    const n = Number(this.req.headers['content-length']);
    if (Number.isSafeInteger(n) && n > 0 && n <= limit) this.bufferBody(n);
    else this.admit();
  }

  /**
   * The route's `buffer_body_bytes` when the request would be retryable but for its body (a
   * retry policy, and an idempotent method or `retry_non_idempotent`), else 0.
   */
  bufferLimit(): number {
    const r = this.route.retry;
    if (r === undefined) return 0;
    if (!r.nonIdempotent && !IDEMPOTENT.has(this.req.method!)) return 0;
    return r.bufferBodyBytes;
  }

  /**
   * Reads the body into one Buffer of the announced length, bounded by the route timeout, then
   * admits the request. No breaker permit or limiter slot is held while the client uploads. A
   * client that goes away ends it in onClose; one that stalls past the timeout gets a 408.
   */
  bufferBody(length: number): void {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    this.readBody(
      (chunk, stop) => {
        if (got + chunk.length > length) {
          // Node's parser stops at Content-Length, so this is only a guard.
          stop();
          this.res.shouldKeepAlive = false;
          plain(this.res, 400, 'request body longer than content-length\n');
          return;
        }
        chunk.copy(buf, got);
        got += chunk.length;
      },
      () => {
        if (got !== length) {
          this.res.shouldKeepAlive = false;
          plain(this.res, 400, 'request body shorter than content-length\n');
          return;
        }
        this.body = buf;
        this.admit();
      },
    );
  }

  /**
   * Listens to the request body with the route timeout armed (408 when the client is too slow):
   * `onData` gets each chunk and the function that stops listening (and the timer); `onEnd` runs
   * after both are stopped. A client abort calls the same stop through `stopBuffering`.
   */
  readBody(onData: (chunk: Buffer, stop: () => void) => void, onEnd: () => void): void {
    const { req, route } = this;
    const clock = route.cluster.clock;
    const data = (chunk: Buffer) => onData(chunk, stop);
    const end = () => {
      stop();
      onEnd();
    };
    const timer = clock.setTimeout(() => {
      stop();
      route.cluster.counters.responses4xx++;
      this.res.shouldKeepAlive = false;
      plain(this.res, 408, 'request timeout\n', { connection: 'close' });
    }, route.timeoutMs);
    const stop = () => {
      this.stopBuffering = undefined;
      clock.clearTimeout(timer);
      req.off('data', data);
      req.off('end', end);
    };
    this.stopBuffering = stop;
    req.on('data', data);
    req.on('end', end);
  }

  /**
   * Reads a chunked body (no Content-Length) like {@link Exchange.bufferBody}: same route-timeout
   * bound (408), same client-abort handling, no permit or slot held meanwhile. If it ends within
   * `limit` bytes it becomes one Buffer, replayed on retries. The upstream then gets it with a
   * Content-Length rather than chunked framing: undici writes a Buffer body and its headers in one
   * corked write, the same Buffer serves every attempt unchanged, and an upstream that refuses
   * chunked requests (411) accepts it. If the body grows past `limit`, reading pauses at once and
   * the request goes on unbuffered and without retries: the bytes read so far, then the rest of
   * the request, as one stream (see {@link Exchange.streamBody}), which undici sends chunked.
   */
  bufferChunked(limit: number): void {
    const chunks: Buffer[] = [];
    let got = 0;
    this.readBody(
      (chunk, stop) => {
        chunks.push(chunk);
        got += chunk.length;
        if (got <= limit) return;
        // Pause before the listener goes: a flowing stream without a 'data' listener drops bytes.
        this.req.pause();
        stop();
        this.head = chunks;
        this.admit();
      },
      () => {
        this.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, got);
        this.admit();
      },
    );
  }

  /**
   * The request body as a stream for undici: the bytes {@link Exchange.bufferChunked} read (if
   * any), then the rest of the request. A pass-through so that undici destroying the body on an
   * upstream error does not take the client's socket with it (the client still gets its 502/503).
   * `pipe` resumes the paused request, or waits for 'drain' when the head already fills the
   * pass-through, so bytes keep their order and none is lost.
   */
  streamBody(): PassThrough {
    const pt = new PassThrough();
    const head = this.head;
    if (head !== undefined) {
      this.head = undefined;
      for (const c of head) pt.write(c);
    }
    return this.req.pipe(pt);
  }

  admit(): void {
    const cluster = this.route.cluster;
    const b = cluster.breaker;
    if (b) {
      const p = b.tryAcquire();
      if (!p) {
        cluster.counters.circuitOpen++;
        this.respondLocal(503, 'circuit-open');
        return;
      }
      this.permit = p;
    }
    if (this.lim.tryEnter()) {
      this.holdsSlot = true;
      this.send();
      return;
    }
    this.waiter = this.lim.wait(() => {
      this.waiter = undefined;
      this.holdsSlot = true;
      this.send();
    });
    if (!this.waiter) {
      this.permit?.neutral();
      this.permit = undefined;
      this.respondLocal(503, 'overloaded');
    }
  }

  send(): void {
    if (this.closed) {
      this.settle(undefined, undefined);
      return;
    }
    const { route, req } = this;
    const cluster = route.cluster;
    const host = cluster.hosts.length === 1 ? cluster.hosts[0]! : cluster.balancer.pick(cluster.clock.now());
    this.host = host;
    host.active++;
    this.headers ??= this.proxy.upstreamHeaders(req);
    this.status = 0;
    this.discard = false;
    this.retrying = false;
    this.fallingBack = false;
    this.abortUpstream = undefined;
    const t = route.timeoutMs;
    host.pool.dispatch(
      {
        path: req.url ?? '/',
        method: req.method as Dispatcher.HttpMethod,
        headers: this.headers,
        body: this.body ?? (this.hasBody ? this.streamBody() : null),
        headersTimeout: t,
        bodyTimeout: t,
      },
      this as unknown as Dispatcher.DispatchHandler,
    );
  }

  retryable(): boolean {
    const r = this.route.retry;
    return (
      r !== undefined &&
      this.attempt < r.attempts &&
      (!this.hasBody || this.body !== undefined) &&
      (r.nonIdempotent || IDEMPOTENT.has(this.req.method!)) &&
      !this.closed
    );
  }

  // --- undici dispatch handler -------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone) abort(new Error('client closed'));
    else this.abortUpstream = abort;
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    if (status < 200) return true;
    this.status = status;
    const { route, res } = this;
    if (this.retryable() && route.retry!.statuses.has(status) && this.lim.tryRetry()) {
      this.retrying = true;
      this.discard = true;
      return true;
    }
    if (status >= 500 && route.fallback && this.hasFallback()) {
      this.fallingBack = true;
      this.discard = true;
      return true;
    }
    if (res.destroyed) {
      this.discard = true;
      return true;
    }
    const headers = responseHeaders(raw);
    this.remaining = seenContentLength;
    res.writeHead(status, headers);
    this.resume = resume;
    if (route.lastGood && status === 200 && this.req.method === 'GET') {
      this.cache = [];
      this.cacheHeaders = headers;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.discard) return true;
    if (this.clientGone) return false;
    if (this.cache) {
      this.cacheSize += chunk.length;
      if (this.cacheSize > this.route.maxCacheBody) this.cache = undefined;
      else this.cache.push(chunk);
    }
    // The chunk that completes a known Content-Length is sent with end(): one write instead of
    // write() + end() (most small responses arrive as one chunk).
    if (chunk.length === this.remaining) {
      this.tail = chunk;
      this.remaining = 0;
      return true;
    }
    if (this.remaining > 0) this.remaining -= chunk.length;
    if (this.res.write(chunk)) return true;
    if (!this.drainHooked) {
      this.drainHooked = true;
      this.res.on('drain', () => this.resume?.());
    }
    return false;
  }

  onComplete(): void {
    if (!this.discard && !this.res.destroyed) {
      const tail = this.tail;
      this.tail = undefined;
      this.res.end(tail);
      if (this.cache) {
        const body = Buffer.concat(this.cache);
        const cache = this.route.lastGood!;
        const url = this.req.url!;
        if (cache.size >= 1000 && !cache.has(url)) cache.delete(cache.keys().next().value!);
        cache.set(url, { status: this.status, headers: this.cacheHeaders!, body });
        this.cache = undefined;
      }
    }
    this.done();
  }

  onError(err: Error): void {
    this.failed(err);
  }

  // -----------------------------------------------------------------------------------------

  hasFallback(): boolean {
    const f = this.route.fallback;
    if (!f) return false;
    if ('status' in f) return true;
    return this.req.method === 'GET' && this.route.lastGood!.has(this.req.url!);
  }

  releaseAttempt(): void {
    this.abortUpstream = undefined;
    this.host!.active--;
    if (this.retryHeld) {
      this.retryHeld = false;
      this.lim.retryDone();
    }
  }

  done(): void {
    this.releaseAttempt();
    const status = this.status;
    const cluster = this.route.cluster;
    cluster.outlier.record(
      this.host!,
      status < 500 ? 'success' : status === 502 || status === 503 || status === 504 ? 'gateway' : 'error-5xx',
    );
    if (this.retrying) {
      this.retryHeld = true;
      this.scheduleRetry();
      return;
    }
    this.settle(status, undefined);
    if (this.fallingBack) this.fallback(`upstream-${status}`);
  }

  failed(err: unknown): void {
    this.releaseAttempt();
    const cluster = this.route.cluster;
    if (this.clientGone) {
      cluster.counters.clientAborts++;
      this.settle(undefined, undefined);
      return;
    }
    if (isClientFault(err)) {
      // undici refused what the client sent: a 400, neutral for the breaker, the host and retries.
      this.settle(undefined, undefined);
      cluster.counters.responses4xx++;
      refuse(this.req, this.res, 400, `request refused: ${(err as { message?: string }).message ?? ''}`);
      return;
    }
    const kind = classify(err);
    cluster.outlier.record(this.host!, 'gateway');
    // A failed TLS handshake (certificate not trusted, wrong name, client certificate refused) is a
    // connect failure for counters and retry_on, answered 502: a host answered, but not acceptably.
    if (kind === 'timeout') cluster.counters.timeouts++;
    else if (kind === 'reset') cluster.counters.resets++;
    else cluster.counters.connectFailures++;
    const r = this.route.retry;
    if (
      !this.res.headersSent &&
      this.retryable() &&
      (kind === 'connect-failure' || kind === 'tls' ? r!.connectFailure : kind === 'reset' && r!.reset) &&
      this.lim.tryRetry()
    ) {
      this.retryHeld = true;
      this.scheduleRetry();
      return;
    }
    const status = kind === 'connect-failure' ? 503 : kind === 'timeout' ? 504 : 502;
    this.settle(status, err ?? new Error(kind));
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    if (this.route.fallback && this.hasFallback()) this.fallback(kind);
    else plain(this.res, status, `upstream ${kind}\n`, { 'x-tripswitch-upstream-error': kind });
  }

  scheduleRetry(): void {
    const r = this.route.retry!;
    this.attempt++;
    this.route.cluster.counters.retries++;
    const exp = Math.min(r.maxMs, r.baseMs * 2 ** (this.attempt - 1));
    const delay = exp * (0.5 + this.proxy.random() / 2);
    if (delay < 1) this.send();
    else this.route.cluster.clock.setTimeout(() => this.send(), delay);
  }

  /** Ends the exchange's hold on limits and the breaker; `status` undefined = neutral. */
  settle(status: number | undefined, err: unknown): void {
    if (this.retryHeld) {
      this.retryHeld = false;
      this.lim.retryDone();
    }
    if (this.holdsSlot) {
      this.holdsSlot = false;
      this.lim.release();
    }
    const c = this.route.cluster;
    const p = this.permit;
    this.permit = undefined;
    if (status === undefined) {
      p?.neutral();
      return;
    }
    if (status < 300) c.counters.responses2xx++;
    else if (status < 400) c.counters.responses3xx++;
    else if (status < 500) c.counters.responses4xx++;
    else c.counters.responses5xx++;
    if (!p) return;
    if (err !== undefined || c.isFailureStatus(status))
      p.failure(err ?? new Error(`upstream status ${status}`));
    else p.success();
  }

  respondLocal(status: number, kind: 'circuit-open' | 'overloaded'): void {
    if (this.head !== undefined) {
      // A chunked body that outgrew the limit was paused mid-read and will not be sent: let the
      // rest flow away, as Node does for a request body nobody read, so the connection can serve
      // the next request.
      this.head = undefined;
      this.req.resume();
    }
    if (this.route.fallback && this.hasFallback()) {
      this.fallback(kind);
      return;
    }
    this.route.cluster.counters.responses5xx++;
    plain(
      this.res,
      status,
      kind === 'overloaded' ? 'upstream overflow\n' : 'circuit open\n',
      kind === 'overloaded' ? { 'x-tripswitch-overloaded': 'true' } : { 'x-tripswitch-circuit-open': 'true' },
    );
  }

  fallback(reason: string): void {
    const f = this.route.fallback!;
    this.route.cluster.counters.fallbacks++;
    if (this.res.headersSent || this.res.destroyed) return;
    if ('status' in f) {
      const body = f.body;
      this.res.writeHead(f.status, {
        'content-length': Buffer.byteLength(body),
        ...f.headers,
        'x-tripswitch-fallback': reason,
      });
      this.res.end(body);
      return;
    }
    const hit = this.route.lastGood!.get(this.req.url!);
    if (!hit) return;
    const headers: string[] = [];
    for (let i = 0; i < hit.headers.length; i += 2) {
      const lk = hit.headers[i]!.toLowerCase();
      if (lk !== 'content-length' && lk !== 'x-tripswitch-fallback')
        headers.push(hit.headers[i]!, hit.headers[i + 1]!);
    }
    headers.push('content-length', String(hit.body.length), 'x-tripswitch-fallback', `last-good;${reason}`);
    this.res.writeHead(hit.status, headers);
    this.res.end(hit.body);
  }

  onClose(): void {
    this.closed = true;
    this.proxy.inflight--;
    if (!this.res.writableFinished) {
      this.clientGone = true;
      if (this.stopBuffering) {
        this.stopBuffering();
        this.route.cluster.counters.clientAborts++;
      }
      if (this.waiter) {
        this.waiter.cancel();
        this.waiter = undefined;
        this.settle(undefined, undefined);
      }
      this.abortUpstream?.(new Error('client closed'));
    }
    if (this.proxy.inflight === 0) this.proxy.onRequestClosed();
  }
}

/** Writes a whole plain-text response on a raw (upgrade or CONNECT) socket, then closes it. */
function rawReply(socket: Duplex, status: number, text: string, extra?: Record<string, string>): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(text)}\r\n`;
  if (extra) for (const k of Object.keys(extra)) head += `${k}: ${extra[k]}\r\n`;
  socket.end(`${head}\r\n${text}`);
  // Read (and drop) whatever the client still sends, so that its FIN is seen and the socket closes.
  socket.resume();
}

/** A response head from node's parsed status and raw header list. */
function rawHead(status: number, message: string | undefined, raw: string[], skip?: Set<string>): string {
  let head = `HTTP/1.1 ${status} ${message || STATUS_CODES[status] || ''}\r\n`;
  for (let i = 0; i < raw.length; i += 2)
    if (!skip?.has(raw[i]!.toLowerCase())) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return head;
}

// A refused upgrade's response is relayed with the connection closing after its body.
const REFUSED_SKIP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
]);

/**
 * One proxied HTTP/1.1 Upgrade (WebSocket): the request goes to the upstream on a connection of
 * its own (node's http client over `net.connect()` or `tls.connect()` with the cluster's tls
 * options); a 101 is relayed and both sockets are then piped to each other until either side
 * closes. The breaker permit is settled by the answer (or its absence); the limiter slot and the
 * host's `active` count are held until the tunnel closes and released exactly once in `finish()`.
 */
class Tunnel {
  upReq: ClientRequest | undefined;
  upstream: Duplex | undefined;
  timer: TimerHandle | undefined;
  connectTimer: TimerHandle | undefined;
  /** The upstream answered (or failed): the permit is settled. */
  answered = false;
  finished = false;

  constructor(
    readonly proxy: Sidecar,
    readonly req: IncomingMessage,
    readonly client: Duplex,
    readonly head: Buffer,
    readonly route: CompiledRoute,
    readonly lim: Limiter,
    readonly host: UpstreamHost,
    public permit: Permit | undefined,
  ) {}

  start(): void {
    const { req, client, route, host } = this;
    const cluster = route.cluster;
    const clock = cluster.clock;
    host.active++;
    client.on('error', () => this.close());
    client.on('close', () => this.close());
    const url = new URL(host.origin);
    const secure = url.protocol === 'https:';
    const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port) || (secure ? 443 : 80);
    const t = cluster.config.tls;
    const m = cluster.tls;
    const headers = this.proxy.upstreamHeaders(req);
    headers.push('connection', 'upgrade', 'upgrade', req.headers.upgrade ?? '');
    const upReq = request({
      method: 'GET',
      path: req.url ?? '/',
      headers,
      setHost: false,
      createConnection: () =>
        secure
          ? tlsConnect({
              host: hostname,
              port,
              // As for the pools: `servername`, else the hosts entry's name (no SNI for an IP).
              servername: t?.servername ?? (isIP(hostname) ? '' : hostname),
              ...(m?.ca ? { ca: m.ca } : {}),
              ...(m?.cert ? { cert: m.cert } : {}),
              ...(m?.key ? { key: m.key } : {}),
              rejectUnauthorized: t?.reject_unauthorized ?? true,
            })
          : netConnect({ host: hostname, port }),
    });
    this.upReq = upReq;
    upReq.on('socket', (s: Socket) => {
      s.once(secure ? 'secureConnect' : 'connect', () => this.clearConnectTimer());
    });
    upReq.on('upgrade', (res: IncomingMessage, sock: Duplex, upHead: Buffer) =>
      this.opened(res, sock, upHead),
    );
    upReq.on('response', (res: IncomingMessage) => this.refused(res));
    upReq.on('error', (err: Error) => this.fail(classify(err), err));
    this.connectTimer = clock.setTimeout(() => {
      const err = Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' });
      this.fail('connect-failure', err);
    }, cluster.config.connect_timeout_ms);
    this.timer = clock.setTimeout(
      () => this.fail('timeout', new Error('no upgrade answer in time')),
      route.timeoutMs,
    );
    upReq.end();
  }

  clearConnectTimer(): void {
    if (this.connectTimer === undefined) return;
    this.route.cluster.clock.clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }

  /** Settles the permit, counters and outlier record for an answer (or failure) of `status`. */
  answer(status: number, err: Error | undefined): void {
    this.answered = true;
    this.clearConnectTimer();
    const c = this.route.cluster;
    if (this.timer !== undefined) c.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (status === 101 || status < 300) c.counters.responses2xx++;
    else if (status < 400) c.counters.responses3xx++;
    else if (status < 500) c.counters.responses4xx++;
    else c.counters.responses5xx++;
    c.outlier.record(
      this.host,
      err !== undefined || status === 502 || status === 503 || status === 504
        ? 'gateway'
        : status >= 500
          ? 'error-5xx'
          : 'success',
    );
    const p = this.permit;
    this.permit = undefined;
    if (!p) return;
    if (err !== undefined || c.isFailureStatus(status))
      p.failure(err ?? new Error(`upstream status ${status}`));
    else p.success();
  }

  opened(res: IncomingMessage, sock: Duplex, upHead: Buffer): void {
    if (this.finished) {
      sock.destroy();
      return;
    }
    this.answer(101, undefined);
    const { client } = this;
    this.upstream = sock;
    sock.on('error', () => this.close());
    sock.on('close', () => this.close());
    client.write(`${rawHead(101, res.statusMessage, res.rawHeaders)}\r\n`);
    if (upHead.length > 0) client.write(upHead);
    if (this.head.length > 0) sock.write(this.head);
    // Either side's end is passed on (pipe), and once that reaches the other side the tunnel closes.
    client.on('finish', () => this.close());
    sock.on('finish', () => this.close());
    client.pipe(sock);
    sock.pipe(client);
  }

  refused(res: IncomingMessage): void {
    if (this.finished) return;
    this.answer(res.statusCode ?? 502, undefined);
    const { client } = this;
    res.on('error', () => this.close());
    client.on('finish', () => this.close());
    client.write(
      `${rawHead(res.statusCode!, res.statusMessage, res.rawHeaders, REFUSED_SKIP)}connection: close\r\n\r\n`,
    );
    client.resume();
    res.pipe(client);
  }

  fail(kind: FailKind, err: Error): void {
    if (this.finished) return;
    if (this.answered) {
      // An error after the answer (a refused upgrade's body cut short): just tear down.
      this.close();
      return;
    }
    const c = this.route.cluster;
    if (kind === 'timeout') c.counters.timeouts++;
    else if (kind === 'reset') c.counters.resets++;
    else c.counters.connectFailures++;
    const status = kind === 'timeout' ? 504 : 502;
    this.answer(status, err);
    this.upReq?.destroy();
    rawReply(this.client, status, `upstream ${kind}\n`, { 'x-tripswitch-upstream-error': kind });
    this.finish();
  }

  /** Tears both sides down (either side closed or failed, or shutdown). */
  close(): void {
    if (!this.answered && !this.finished) {
      // The client left before the upstream answered: neither success nor failure.
      this.answered = true;
      this.clearConnectTimer();
      if (this.timer !== undefined) this.route.cluster.clock.clearTimeout(this.timer);
      this.timer = undefined;
      this.route.cluster.counters.clientAborts++;
      this.permit?.neutral();
      this.permit = undefined;
    }
    this.upReq?.destroy();
    this.upstream?.destroy();
    this.client.destroy();
    this.finish();
  }

  /** Gives back the limiter slot, the host's count and the in-flight count, once. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.host.active--;
    this.lim.release();
    this.proxy.tunnelClosed(this);
  }
}

interface State {
  config: ResolvedConfig;
  clusters: Map<string, Cluster>;
}

/**
 * The proxy process: owns listeners and cluster runtimes; {@link Sidecar.reload} swaps them.
 *
 * @example
 * ```ts
 * const sidecar = new Sidecar(loadConfig('tripswitch.yaml'));
 * await sidecar.start();
 * process.on('SIGTERM', () => sidecar.shutdown().then(() => process.exit(0)));
 * ```
 */
export class Sidecar {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly random: () => number;
  /** The clusters' breakers, by cluster name (what `@tripswitch/prometheus` follows). */
  readonly breakers: BreakerRegistry;
  #state: State;
  #slots = new Map<string, ListenerSlot>();
  inflight = 0;
  #drainWaiters: (() => void)[] = [];
  #tunnels = new Set<Tunnel>();
  #stopping = false;
  /** Requests that matched no route. */
  noRoute = 0;
  /** Requests refused before routing (bad head: Host, target, header count, Expect), answered 4xx. */
  refused = 0;

  constructor(config: SidecarConfig, options: SidecarOptions = {}) {
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? stderrLogger;
    this.random = options.random ?? Math.random;
    this.breakers = breakerRegistry({ clock: this.clock });
    this.#state = this.#build(resolveConfig(config), undefined);
    for (const c of this.#state.clusters.values()) c.attachBreaker(this.breakers);
  }

  /** True once {@link Sidecar.shutdown} started (readiness turns false). */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** The configuration in force, as given. */
  get config(): SidecarConfig {
    return this.#state.config.source;
  }

  /** The configuration in force with every default applied (see `CONFIG_DEFAULTS`). */
  get resolved(): ResolvedConfig {
    return this.#state.config;
  }

  /** The clusters in force, by name. */
  get clusters(): ReadonlyMap<string, Cluster> {
    return this.#state.clusters;
  }

  #build(config: ResolvedConfig, previous: State | undefined): State {
    const clusters = new Map<string, Cluster>();
    for (const c of config.clusters)
      clusters.set(c.name, new Cluster(c, this.clock, previous?.clusters.get(c.name), this.breakers));
    return { config, clusters };
  }

  #compile(l: ResolvedListener, clusters: Map<string, Cluster>, old?: ListenerSlot): CompiledRoute[] {
    return l.routes.map((r, i) => compileRoute(r, clusters, old?.routes[i]));
  }

  static #key(l: ResolvedListener): string {
    return l.key;
  }

  /** The secure context options of an HTTPS listener (node's `tls.createServer()` names). */
  static #secureOptions(l: ResolvedListener, tls: TlsMaterial) {
    const mtls = l.tls?.request_client_cert === true;
    return {
      cert: tls.cert,
      key: tls.key,
      ...(tls.ca ? { ca: tls.ca } : {}),
      requestCert: mtls,
      rejectUnauthorized: mtls,
    };
  }

  /** Opens the listeners. */
  async start(): Promise<void> {
    for (const l of this.#state.config.listeners) {
      const slot = await this.#open(l, this.#state.clusters);
      this.#slots.set(slot.key, slot);
    }
  }

  /** Binds a listener (not yet registered); rejects on a listen error. */
  async #open(l: ResolvedListener, clusters: Map<string, Cluster>): Promise<ListenerSlot> {
    const key = Sidecar.#key(l);
    const tls = l.tls ? tlsMaterial(l.tls, `listener ${l.name ?? key} tls`) : undefined;
    // HTTP and HTTPS listeners share the parser options and the clientError handling below.
    // Host is checked in #handle (checkHead), where a refusal also ends the connection.
    const http = {
      maxHeaderSize: l.max_header_bytes,
      requireHostHeader: false,
      connectionsCheckingInterval: checkingInterval(l),
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => this.#handle(slot, req, res);
    const slot: ListenerSlot = {
      key,
      config: l,
      tls,
      routes: this.#compile(l, clusters),
      priorityHeader: l.priority_header,
      maxHeadersCount: l.max_headers_count,
      server: tls
        ? createHttpsServer({ ...http, ...Sidecar.#secureOptions(l, tls) }, handler)
        : createServer(http, handler),
    };
    applyConnectionLimits(slot.server, l);
    // Node answers an unmet Expect with 417 but keeps reading the connection: refuse instead.
    slot.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
      refuse(req, res, 417, 'only Expect: 100-continue is supported'),
    );
    slot.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#upgrade(slot, req, socket, head),
    );
    slot.server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      socket.on('error', () => socket.destroy());
      rawReply(socket, 501, 'CONNECT is not supported: this is a reverse proxy, not a forward proxy\n');
    });
    slot.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      // Node would answer 431 for oversized headers; every malformed request gets 400 here, and
      // the connection always closes (a desynchronised parser must not read another request).
      const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      const body = timeout ? 'request timeout\n' : `bad request: ${String(err.code ?? 'malformed')}\n`;
      socket.end(
        `HTTP/1.1 ${timeout ? '408 Request Timeout' : '400 Bad Request'}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      );
    });
    await new Promise<void>((resolve, reject) => {
      slot.server.once('error', reject);
      slot.server.listen(l.port, l.address, () => {
        slot.server.off('error', reject);
        resolve();
      });
    });
    const a = slot.server.address() as AddressInfo;
    this.logger.info('listening', { listener: l.name ?? key, address: `${a.address}:${a.port}` });
    return slot;
  }

  /** The bound address of each listener, in config order (port 0 resolved). */
  addresses(): { address: string; port: number }[] {
    return [...this.#slots.values()].map((s) => {
      const a = s.server.address() as AddressInfo;
      return { address: a.address, port: a.port };
    });
  }

  /** Builds the upstream request headers: hop-by-hop removed, X-Forwarded-* added. */
  upstreamHeaders(req: IncomingMessage): string[] {
    const raw = req.rawHeaders;
    const out: string[] = [];
    const conn = req.headers.connection;
    const listed = conn
      ? conn
          .toLowerCase()
          .split(',')
          .map((s) => s.trim())
      : undefined;
    let xff: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!;
      const lk = k.toLowerCase();
      if (HOP_BY_HOP.has(lk) || listed?.includes(lk)) continue;
      if (lk === 'x-forwarded-for') {
        xff = xff ? `${xff}, ${raw[i + 1]}` : raw[i + 1];
        continue;
      }
      if (lk === 'x-forwarded-proto' || lk === 'x-forwarded-host') continue;
      out.push(k, raw[i + 1]!);
    }
    const remote = req.socket.remoteAddress ?? 'unknown';
    const proto = (req.socket as Partial<TLSSocket>).encrypted === true ? 'https' : 'http';
    out.push('x-forwarded-for', xff ? `${xff}, ${remote}` : remote, 'x-forwarded-proto', proto);
    if (req.headers.host) out.push('x-forwarded-host', req.headers.host);
    return out;
  }

  /** The first route of the listener matching the request's Host and path. */
  static #route(slot: ListenerSlot, req: IncomingMessage): CompiledRoute | undefined {
    const url = req.url ?? '/';
    const routes = slot.routes;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (r.host !== undefined && !hostMatches(r.host, req.headers.host)) continue;
      if (!url.startsWith(r.prefix)) continue;
      return r;
    }
    return undefined;
  }

  #handle(slot: ListenerSlot, req: IncomingMessage, res: ServerResponse): void {
    // Pipelined behind a refused request on the same connection: dropped, the connection is closing.
    if (refusedBefore(req)) return;
    const refusal = checkHead(req, slot.maxHeadersCount);
    if (refusal) {
      this.refused++;
      refuse(req, res, refusal.status, refusal.reason);
      return;
    }
    this.inflight++;
    if (this.#stopping) res.shouldKeepAlive = false;
    const route = Sidecar.#route(slot, req);
    if (!route) {
      this.noRoute++;
      res.once('close', () => {
        this.inflight--;
        this.onRequestClosed();
      });
      plain(res, 404, 'no route\n');
      return;
    }
    route.cluster.counters.requests++;
    const high = route.high || req.headers[slot.priorityHeader] === 'high';
    const lim = high ? route.cluster.limits.high : route.cluster.limits.default;
    new Exchange(this, req, res, route, lim).start();
  }

  /**
   * An Upgrade request (node hands over the socket): routed, admitted (breaker permit, one limiter
   * slot for the tunnel's lifetime, no waiting) and tunnelled, or answered locally and closed.
   */
  #upgrade(slot: ListenerSlot, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const refusal = checkHead(req, slot.maxHeadersCount);
    if (refusal) {
      this.refused++;
      refuseRaw(socket, refusal.status, refusal.reason);
      return;
    }
    if (req.method !== 'GET') {
      rawReply(socket, 405, 'upgrade requests are proxied for GET only\n', { allow: 'GET' });
      return;
    }
    if (this.#stopping) {
      rawReply(socket, 503, 'shutting down\n');
      return;
    }
    const route = Sidecar.#route(slot, req);
    if (!route) {
      this.noRoute++;
      rawReply(socket, 404, 'no route\n');
      return;
    }
    const cluster = route.cluster;
    cluster.counters.requests++;
    const high = route.high || req.headers[slot.priorityHeader] === 'high';
    const lim = high ? cluster.limits.high : cluster.limits.default;
    let permit: Permit | undefined;
    if (cluster.breaker) {
      permit = cluster.breaker.tryAcquire();
      if (!permit) {
        cluster.counters.circuitOpen++;
        cluster.counters.responses5xx++;
        rawReply(socket, 503, 'circuit open\n', { 'x-tripswitch-circuit-open': 'true' });
        return;
      }
    }
    if (!lim.tryEnter()) {
      permit?.neutral();
      lim.pendingOverflow++;
      cluster.counters.responses5xx++;
      rawReply(socket, 503, 'upstream overflow\n', { 'x-tripswitch-overloaded': 'true' });
      return;
    }
    const host = cluster.hosts.length === 1 ? cluster.hosts[0]! : cluster.balancer.pick(cluster.clock.now());
    const t = new Tunnel(this, req, socket, head, route, lim, host, permit);
    this.inflight++;
    this.#tunnels.add(t);
    t.start();
  }

  /** @internal */
  tunnelClosed(t: Tunnel): void {
    if (!this.#tunnels.delete(t)) return;
    this.inflight--;
    this.onRequestClosed();
  }

  /** @internal */
  onRequestClosed(): void {
    if (this.inflight === 0 && this.#drainWaiters.length > 0) {
      for (const w of this.#drainWaiters.splice(0)) w();
    }
  }

  /**
   * Applies a new (already validated) config: routes and clusters swap at once; requests in flight
   * finish on the objects they started with; pools and breakers carry over where unchanged.
   */
  async reload(source: SidecarConfig): Promise<void> {
    const config = resolveConfig(source);
    // A bound server cannot switch between HTTP and HTTPS or start/stop asking for client
    // certificates: refuse before anything changes.
    for (const l of config.listeners) {
      const slot = this.#slots.get(Sidecar.#key(l));
      if (!slot) continue;
      const was = slot.config.tls;
      if (!was !== !l.tls || (was?.request_client_cert === true) !== (l.tls?.request_client_cert === true))
        throw new Error(
          `listener ${l.name ?? slot.key}: turning tls or request_client_cert on or off needs a restart (or a new port)`,
        );
    }
    const tlsNext = new Map<string, TlsMaterial>();
    for (const l of config.listeners)
      if (l.tls && this.#slots.has(Sidecar.#key(l)))
        tlsNext.set(Sidecar.#key(l), tlsMaterial(l.tls, `listener ${l.name ?? Sidecar.#key(l)} tls`));
    const old = this.#state;
    const next = this.#build(config, old);
    // New listeners are bound before anything changes, so a port in use leaves the old config
    // fully in force.
    const opened: ListenerSlot[] = [];
    try {
      for (const l of config.listeners)
        if (!this.#slots.has(Sidecar.#key(l))) opened.push(await this.#open(l, next.clusters));
    } catch (err) {
      for (const s of opened) s.server.close();
      for (const [name, c] of next.clusters) {
        const o = old.clusters.get(name);
        for (const pool of c.poolsNotIn(o)) void pool.destroy().catch(() => {});
      }
      throw err;
    }
    this.#state = next;
    // Breakers not carried over leave the registry before their replacements join it.
    for (const [name, c] of old.clusters)
      if (c.breaker && c.breaker !== next.clusters.get(name)?.breaker) this.breakers.delete(name);
    for (const c of next.clusters.values()) c.attachBreaker(this.breakers);
    for (const s of opened) this.#slots.set(s.key, s);
    const keys = new Set<string>();
    for (const l of config.listeners) {
      const key = Sidecar.#key(l);
      keys.add(key);
      const slot = this.#slots.get(key)!;
      if (opened.includes(slot)) continue;
      slot.routes = this.#compile(l, next.clusters, slot);
      const tls = tlsNext.get(key);
      if (tls && tls.digest !== slot.tls?.digest) {
        // New handshakes use the new certificate; open connections keep theirs.
        (slot.server as HttpsServer).setSecureContext(Sidecar.#secureOptions(l, tls));
        this.logger.info('listener tls reloaded', { listener: l.name ?? key });
      }
      slot.tls = tls;
      slot.config = l;
      slot.priorityHeader = l.priority_header;
      slot.maxHeadersCount = l.max_headers_count;
      applyConnectionLimits(slot.server, l);
    }
    for (const [key, slot] of this.#slots) {
      if (keys.has(key)) continue;
      this.#slots.delete(key);
      slot.server.close();
    }
    for (const [name, c] of old.clusters) {
      const n = next.clusters.get(name);
      for (const pool of c.poolsNotIn(n)) void pool.close().catch(() => {});
    }
    this.logger.info('config reloaded', { clusters: [...next.clusters.keys()] });
  }

  /**
   * Stops accepting, waits up to `drainMs` for requests in flight, then closes everything.
   * Resolves true when everything drained in time.
   */
  async shutdown(drainMs = this.#state.config.drain_timeout_ms): Promise<boolean> {
    this.#stopping = true;
    for (const s of this.#slots.values()) {
      s.server.close();
      s.server.closeIdleConnections();
    }
    let drained = true;
    if (this.inflight > 0) {
      drained = await new Promise<boolean>((resolve) => {
        const t = this.clock.setTimeout(() => resolve(false), drainMs).unref();
        this.#drainWaiters.push(() => {
          this.clock.clearTimeout(t);
          resolve(true);
        });
      });
    }
    for (const s of this.#slots.values()) s.server.closeAllConnections();
    for (const t of [...this.#tunnels]) t.close();
    this.#slots.clear();
    for (const c of this.#state.clusters.values()) {
      this.breakers.delete(c.name);
      await Promise.all(c.hosts.map((h) => (drained ? h.pool.close() : h.pool.destroy()).catch(() => {})));
    }
    return drained;
  }
}

/**
 * The upstream connection pool of one host: plain-HTTP requests whose body is absent or already
 * in memory go over purpose-built HTTP/1.1 keep-alive connections (one write per request head,
 * pipelining off, responses read by the strict parser in `h1-response.ts`); everything else (TLS
 * upstreams, streamed request bodies) goes to an undici Pool, as before. Both take the same
 * undici handler (`onRequestStart`, `onResponseStart`, ...), so the upstream filter does not know
 * which ran the attempt.
 *
 * What undici does that the fast path keeps: the request head as undici writes it (`host` first,
 * `connection: keep-alive`, Content-Length only for a body or a payload method, header values and
 * the path checked, a refusal reported as `UND_ERR_INVALID_ARG`), a HEAD request closing its
 * connection after the response, a body on a method that expects none ending the connection's
 * reuse, error codes the upstream filter classifies (`UND_ERR_CONNECT_TIMEOUT`,
 * `UND_ERR_HEADERS_TIMEOUT`, `UND_ERR_BODY_TIMEOUT`, `UND_ERR_SOCKET`, errno codes), the server's
 * `Keep-Alive: timeout` hint shortening the idle time, and the response timeout paused while the
 * client is not reading (backpressure). A refused response fails the attempt (502 upstream, the
 * connection closed, never reused).
 *
 * What undici does not do: a request lost with its reused connection before any byte of the
 * response (the keep-alive race: the server closed the idle connection as the request went out)
 * is sent once more on a fresh connection when that is safe (an idempotent method, or the
 * dispatch's `idempotent: true`; the body is in memory on this path), without its handler hearing
 * of the loss: the exchange counts no failure and no retry. The pool counts it
 * (`onStaleRetry`). A failure on a fresh connection, or once response bytes arrived, is the
 * handler's, as before.
 * @module
 */
import { connect } from 'node:net';
import type { Clock, TimerHandle } from 'tripswitch';
import type { Dispatcher, Pool } from 'undici';
import { realClock } from '../clock.js';
import { Connection, type PendingRequest, UpstreamPoolError } from './h1-connection.js';
import { IDEMPOTENT } from './http.js';

export { UpstreamPoolError } from './h1-connection.js';

/** Options of {@link UpstreamPool}. */
export interface UpstreamPoolOptions {
  /** Most connections open at once (fast path); more requests wait in order. */
  connections: number;
  connectTimeoutMs: number;
  /** An idle connection is closed after this long (or sooner, when the server says so). */
  idleTimeoutMs: number;
  /**
   * Time and the sweep's timer. Default: real time, as undici's own timeouts (socket I/O runs in
   * real time; the sidecar's clock, a TestClock in tests, times retries and the breaker).
   * @default realClock
   */
  clock?: Clock;
  /** Called for each request sent again after its reused connection turned out stale. */
  onStaleRetry?: () => void;
}

// What undici refuses in a path or header value (its invalidPathRegex and isValidHeaderValue).
const BAD_PATH = /[^\u0021-\u00ff]/;
const BAD_VALUE = /[\0\r\n]/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Methods whose requests carry a body by their semantics (undici's `expectsPayload`). */
function expectsPayload(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH';
}
/**
 * Response timeouts and idle limits are checked by one sweep per pool at this interval, against
 * deadlines the connections keep as plain numbers (a socket timer would be re-made on every
 * request: a Timeout and a bound function each time). A timeout is noticed up to this much late;
 * an idle connection is closed up to this much early.
 */
const SWEEP_MS = 100;

/**
 * One host's pool: the fast path for plain HTTP, undici for the rest; see the module comment.
 *
 * @example
 * ```ts
 * const pool = new UpstreamPool('http://127.0.0.1:3000', undiciPool, {
 *   connections: 64,
 *   connectTimeoutMs: 5000,
 *   idleTimeoutMs: 60_000,
 * });
 * pool.dispatch({ path: '/', method: 'GET', headers: ['host', 'api'] }, handler);
 * ```
 */
export class UpstreamPool {
  readonly #undici: Pool;
  readonly #options: UpstreamPoolOptions;
  readonly #fast: boolean;
  readonly #host: string;
  readonly #port: number;
  readonly #hostHeader: string;
  readonly #idle: Connection[] = [];
  readonly #busy = new Set<Connection>();
  #queue: PendingRequest[] = [];
  #opened = 0;
  #closing = false;
  #destroyed = false;
  #closed: (() => void) | undefined;
  #sweeper: TimerHandle | undefined;
  readonly clock: Clock;
  /** Requests sent on the fast path (for tests and the bench). */
  fastRequests = 0;

  constructor(origin: string, undici: Pool, options: UpstreamPoolOptions) {
    this.#undici = undici;
    this.#options = options;
    this.clock = options.clock ?? realClock;
    const url = new URL(origin);
    this.#fast = url.protocol === 'http:';
    this.#host = url.hostname.replace(/^\[|\]$/g, '');
    this.#port = Number(url.port || 80);
    this.#hostHeader = url.host;
  }

  /** The undici pool behind the fast path. */
  get undici(): Pool {
    return this.#undici;
  }

  /**
   * Sends one request (undici's `dispatch` contract: the handler hears of everything, the return
   * value is undici's backpressure hint, always true on the fast path).
   */
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const body = opts.body;
    if (!this.#fast || this.#closing || (body != null && !Buffer.isBuffer(body)))
      return this.#undici.dispatch(opts, handler);
    const method = opts.method;
    const path = opts.path;
    const bodyBuf = (body as Buffer | null | undefined) ?? null;
    let head: string;
    let reuse = true;
    try {
      if (!TOKEN.test(method)) throw new UpstreamPoolError('invalid request method', 'UND_ERR_INVALID_ARG');
      if (BAD_PATH.test(path)) throw new UpstreamPoolError('invalid request path', 'UND_ERR_INVALID_ARG');
      let host = this.#hostHeader;
      let lines = '';
      let declared = -1;
      const headers = opts.headers as string[] | null | undefined;
      if (headers != null)
        for (let i = 0; i < headers.length; i += 2) {
          const k = headers[i]!;
          const v = headers[i + 1]!;
          if (BAD_VALUE.test(v)) throw new UpstreamPoolError(`invalid ${k} header`, 'UND_ERR_INVALID_ARG');
          if (k.length === 4 && k.toLowerCase() === 'host') {
            host = v;
            continue;
          }
          if (k.length === 14 && k.toLowerCase() === 'content-length') {
            declared = Number(v);
            continue;
          }
          lines += `${k}: ${v}\r\n`;
        }
      const isHead = method === 'HEAD';
      // As undici: HEAD closes the connection after its response (a server that sends a body
      // anyway would desynchronise the next one); a body on a method that expects none too.
      head = `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\nconnection: ${isHead ? 'close' : 'keep-alive'}\r\n${lines}`;
      if (isHead) reuse = false;
      if (bodyBuf !== null) {
        if (declared > 0 && declared !== bodyBuf.length)
          throw new UpstreamPoolError(
            'request body length does not match content-length',
            'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
          );
        if (bodyBuf.length > 0 || expectsPayload(method)) head += `content-length: ${bodyBuf.length}\r\n`;
        if (!expectsPayload(method)) reuse = false;
      } else if (declared === 0 && expectsPayload(method)) head += 'content-length: 0\r\n';
      head += '\r\n';
      this.fastRequests++;
      const timeoutMs = opts.headersTimeout ?? 0;
      const replayable = opts.idempotent ?? IDEMPOTENT.has(method);
      const conn = this.#take();
      if (conn === undefined) {
        this.#queue.push({ head, body: bodyBuf, isHead, reuse, timeoutMs, replayable, handler });
        return true;
      }
      conn.start(head, bodyBuf, isHead, reuse, timeoutMs, replayable, handler);
    } catch (err) {
      handler.onResponseError?.(IDLE_CONTROLLER, err as Error);
    }
    return true;
  }

  /** An idle connection, a new one if the limit allows, else undefined (the request queues). */
  #take(): Connection | undefined {
    const idle = this.#idle.pop();
    if (idle !== undefined) {
      this.#busy.add(idle);
      return idle;
    }
    if (this.#opened >= this.#options.connections) return undefined;
    return this.#connect();
  }

  /** A new connection (counted against the limit by the caller's check). */
  #connect(): Connection {
    this.#opened++;
    const socket = connect({ host: this.#host, port: this.#port, noDelay: true });
    const conn = new Connection(this, socket, this.#options.connectTimeoutMs);
    this.#busy.add(conn);
    return conn;
  }

  /** A connection finished its response and may carry another request. */
  released(conn: Connection): void {
    const next = this.#queue.shift();
    if (next !== undefined) {
      conn.start(
        next.head,
        next.body,
        next.isHead,
        next.reuse,
        next.timeoutMs,
        next.replayable,
        next.handler,
      );
      return;
    }
    this.#busy.delete(conn);
    if (this.#closing) {
      conn.socket.destroy();
      return;
    }
    this.#idle.push(conn);
    conn.idle(this.#options.idleTimeoutMs);
  }

  /** Makes sure the sweep runs (a connection has a deadline or is idle). */
  watch(): void {
    if (this.#sweeper !== undefined) return;
    this.#sweeper = this.clock.setTimeout(this.#sweep, SWEEP_MS).unref();
  }

  /** Times out connections past their response deadline, closes those idle (nearly) too long. */
  readonly #sweep = (): void => {
    this.#sweeper = undefined;
    const now = this.clock.now();
    const idle = this.#idle;
    for (let i = idle.length - 1; i >= 0; i--) {
      const c = idle[i]!;
      if (now - c.idleSince >= c.idleLimit - SWEEP_MS) c.socket.destroy();
    }
    for (const c of this.#busy) c.checkDeadline(now);
    if (this.#busy.size > 0 || this.#idle.length > 0) this.watch();
  };

  /**
   * A connection closed (for whatever reason): the request it set aside to send again goes on a
   * fresh connection (never an idle one: it may be as stale), else a queued request gets one.
   */
  gone(conn: Connection): void {
    this.#opened--;
    this.#busy.delete(conn);
    const at = this.#idle.indexOf(conn);
    if (at !== -1) this.#idle.splice(at, 1);
    const again = conn.replay;
    if (again !== undefined) {
      conn.replay = undefined;
      if (this.#destroyed)
        again.handler.onResponseError?.(conn, new UpstreamPoolError('pool destroyed', 'UND_ERR_DESTROYED'));
      else {
        this.#options.onStaleRetry?.();
        const c = this.#connect();
        c.start(
          again.head,
          again.body,
          again.isHead,
          again.reuse,
          again.timeoutMs,
          false,
          again.handler,
          again.firstWaitMs,
        );
      }
      this.#checkClosed();
      return;
    }
    const next = this.#queue.shift();
    if (next !== undefined && !this.#closing) {
      const c = this.#take()!;
      c.start(next.head, next.body, next.isHead, next.reuse, next.timeoutMs, next.replayable, next.handler);
    }
    this.#checkClosed();
  }

  #checkClosed(): void {
    if (this.#closed !== undefined && this.#busy.size === 0 && this.#queue.length === 0) {
      const done = this.#closed;
      this.#closed = undefined;
      if (this.#sweeper !== undefined) this.clock.clearTimeout(this.#sweeper);
      this.#sweeper = undefined;
      done();
    }
  }

  /** Closes once the requests in flight finish (idle connections at once); then undici's pool. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const c of this.#idle.splice(0)) c.socket.destroy();
    await new Promise<void>((resolve) => {
      this.#closed = resolve;
      this.#checkClosed();
    });
    await this.#undici.close();
  }

  /** Closes every connection now; requests in flight fail. */
  async destroy(): Promise<void> {
    this.#closing = true;
    this.#destroyed = true;
    if (this.#sweeper !== undefined) this.clock.clearTimeout(this.#sweeper);
    this.#sweeper = undefined;
    const queued = this.#queue;
    this.#queue = [];
    for (const q of queued)
      q.handler.onResponseError?.(
        IDLE_CONTROLLER,
        new UpstreamPoolError('pool destroyed', 'UND_ERR_DESTROYED'),
      );
    for (const c of this.#idle.splice(0)) c.socket.destroy();
    for (const c of [...this.#busy]) c.fail(new UpstreamPoolError('pool destroyed', 'UND_ERR_DESTROYED'));
    await this.#undici.destroy();
  }
}

/** The controller of a request that never reached a connection. */
const IDLE_CONTROLLER: Dispatcher.DispatchController = {
  aborted: true,
  paused: false,
  reason: null,
  abort() {},
  pause() {},
  resume() {},
};

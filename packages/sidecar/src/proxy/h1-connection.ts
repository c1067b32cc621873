/**
 * One keep-alive connection of the upstream pool (`h1-pool.ts`): writes a request, feeds the
 * response to the strict parser (`h1-response.ts`), and is the controller of the request it
 * carries. It tells its owner when it can carry another request or has closed.
 * @module
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { Clock } from 'tripswitch';
import type { Dispatcher } from 'undici';
import { ResponseParser, type ResponseSink } from './h1-response.js';

/** An upstream failure on the fast path, with the code the upstream filter classifies. */
export class UpstreamPoolError extends Error {
  override name = 'UpstreamPoolError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** What a connection needs from its pool. */
export interface ConnectionOwner {
  readonly clock: Clock;
  /** The response ended and the connection may carry another request. */
  released(conn: Connection): void;
  /** The connection closed. */
  gone(conn: Connection): void;
  /** A deadline was set: the sweep must run. */
  watch(): void;
}

const NO_HEADERS: IncomingHttpHeaders = Object.freeze({}) as IncomingHttpHeaders;
// Closed a little before the server's announced idle limit, so that a request is not sent on a
// connection the server is closing (undici's keepAliveTimeoutThreshold).
const HINT_MARGIN_MS = 1000;

/**
 * One keep-alive connection; it is also the controller of the request it carries (one at a
 * time), so that a request allocates no controller of its own.
 */
export class Connection implements ResponseSink, Dispatcher.DispatchController {
  readonly parser = new ResponseParser();
  handler: Dispatcher.DispatchHandler | undefined;
  rawHeaders: string[] | null = null;
  #timeoutMs = 0;
  /** When the response times out (clock ms; 0 = no timeout), moved on by every read. */
  #deadline = 0;
  /** When the connection went idle (clock ms) and how long it may stay so. */
  idleSince = 0;
  idleLimit = 0;
  #connecting = true;
  #paused = false;
  #reason: Error | null = null;
  #reuse = true;
  /** The response ended inside the current read: release after the read is parsed. */
  #finished = false;
  #headSeen = false;
  #gone = false;

  constructor(
    readonly pool: ConnectionOwner,
    readonly socket: Socket,
    connectTimeoutMs: number,
  ) {
    socket.setTimeout(connectTimeoutMs);
    socket.once('connect', () => {
      this.#connecting = false;
      socket.setKeepAlive(true, 60_000);
      socket.setTimeout(0);
      if (this.handler !== undefined) this.#arm();
    });
    socket.on('data', (chunk: Buffer) => this.#data(chunk));
    socket.on('timeout', () => this.#timeout());
    socket.on('end', () => this.#end());
    socket.on('error', (err: Error) => this.fail(err));
    socket.on('close', () => this.#close());
  }

  get aborted(): boolean {
    return this.#reason !== null;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get reason(): Error | null {
    return this.#reason;
  }

  /** Sends a request: the head (and an in-memory body) in one write. */
  start(
    head: string,
    body: Buffer | null,
    isHead: boolean,
    reuse: boolean,
    timeoutMs: number,
    handler: Dispatcher.DispatchHandler,
  ): void {
    this.handler = handler;
    this.#reason = null;
    this.#paused = false;
    this.#reuse = reuse;
    this.#headSeen = false;
    this.#timeoutMs = timeoutMs;
    this.rawHeaders = null;
    this.parser.expect(isHead, this);
    if (!this.#connecting) this.#arm();
    handler.onRequestStart?.(this, undefined);
    if (this.handler !== handler) return; // aborted at its start
    if (body === null || body.length === 0) this.socket.write(head, 'latin1');
    else {
      this.socket.cork();
      this.socket.write(head, 'latin1');
      this.socket.write(body);
      this.socket.uncork();
    }
  }

  /** Parked in the pool: closed after `ms` unused (or the server's shorter hint), by the sweep. */
  idle(ms: number): void {
    const hint = this.parser.keepAliveHintMs;
    this.idleSince = this.pool.clock.now();
    this.idleLimit = hint > 0 ? Math.max(1, Math.min(ms, hint - HINT_MARGIN_MS)) : ms;
  }

  /** Starts the response timeout from now (none when the request has none). */
  #arm(): void {
    const ms = this.#timeoutMs;
    this.#deadline = ms > 0 ? this.pool.clock.now() + ms : 0;
    if (ms > 0) this.pool.watch();
  }

  /** The sweep: times the response out when its deadline passed (not while the client stalls). */
  checkDeadline(now: number): void {
    if (this.handler !== undefined && !this.#paused && this.#deadline > 0 && now >= this.#deadline)
      this.#timeout();
  }

  onHead(status: number, raw: string[]): void {
    this.#headSeen = true;
    this.rawHeaders = raw;
    this.handler!.onResponseStart?.(this, status, NO_HEADERS, '');
  }

  onBody(chunk: Buffer): void {
    this.handler?.onResponseData?.(this, chunk);
  }

  onEnd(): void {
    const h = this.handler!;
    this.handler = undefined;
    this.#finished = true;
    h.onResponseEnd?.(this, NO_HEADERS);
  }

  #data(chunk: Buffer): void {
    if (this.handler === undefined && !this.#finished) {
      // Bytes while idle: nothing was asked; the connection cannot be trusted.
      this.socket.destroy();
      return;
    }
    // The body timeout counts from the last read.
    if (this.#deadline > 0) this.#deadline = this.pool.clock.now() + this.#timeoutMs;
    const refused = this.parser.execute(chunk);
    if (refused !== undefined) {
      this.fail(new UpstreamPoolError(`invalid upstream response: ${refused}`, 'ERR_UPSTREAM_RESPONSE'));
      return;
    }
    if (this.#finished) this.#release();
  }

  #release(): void {
    this.#finished = false;
    if (!this.#reuse || !this.parser.keepAlive || this.socket.destroyed) {
      this.socket.destroy();
      return;
    }
    // A reader that paused on the response's last chunk has nobody left to resume it: the
    // response is over, so the connection reads again (the next request's answer, or stray bytes
    // while idle, which close it).
    if (this.#paused) {
      this.#paused = false;
      this.socket.resume();
    }
    this.pool.released(this);
  }

  #timeout(): void {
    if (this.handler === undefined) {
      this.socket.destroy();
      return;
    }
    const code = this.#connecting
      ? 'UND_ERR_CONNECT_TIMEOUT'
      : this.#headSeen
        ? 'UND_ERR_BODY_TIMEOUT'
        : 'UND_ERR_HEADERS_TIMEOUT';
    this.fail(
      new UpstreamPoolError(
        `upstream ${code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect' : 'response'} timeout`,
        code,
      ),
    );
  }

  #end(): void {
    // The server ended the connection: the end of a body that runs to the close, else a failure.
    if (this.handler === undefined) {
      this.socket.destroy();
      return;
    }
    const refused = this.parser.eof();
    if (refused !== undefined)
      this.fail(new UpstreamPoolError(`upstream closed: ${refused}`, 'UND_ERR_SOCKET'));
    else this.#finished = false;
    this.socket.destroy();
  }

  #close(): void {
    if (this.handler !== undefined)
      this.fail(new UpstreamPoolError('upstream connection closed', 'UND_ERR_SOCKET'));
    if (!this.#gone) {
      this.#gone = true;
      this.pool.gone(this);
    }
  }

  /** Fails the request in flight (if any) and closes the connection. */
  fail(err: Error): void {
    const h = this.handler;
    this.#deadline = 0;
    this.socket.destroy();
    if (h === undefined) return;
    this.handler = undefined;
    this.#reason = err;
    this.parser.detach();
    h.onResponseError?.(this, err);
  }

  abort(reason: Error): void {
    this.fail(reason);
  }

  pause(): void {
    if (this.#paused || this.handler === undefined) return;
    this.#paused = true;
    // Not reading is the client's doing: the response timer is ignored meanwhile.
    this.socket.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.socket.resume();
    if (this.handler !== undefined && this.#deadline > 0) this.#arm();
  }
}

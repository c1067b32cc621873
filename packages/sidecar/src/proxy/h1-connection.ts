/**
 * One keep-alive connection of the upstream pool (`h1-pool.ts`): writes a request, feeds the
 * response to the strict parser (`h1-response.ts`), and is the controller of the request it
 * carries. It tells its owner when it can carry another request or has closed, and, when it was
 * lost under a request it may send again, which request that was (see {@link Connection.replay}).
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

/** A request as the pool hands it to a connection (queued, or to send again). */
export interface PendingRequest {
  head: string;
  body: Buffer | null;
  isHead: boolean;
  reuse: boolean;
  timeoutMs: number;
  /** May be sent again on a fresh connection if this one turns out stale (see `Connection.replay`). */
  replayable: boolean;
  handler: Dispatcher.DispatchHandler;
  /**
   * Sent again: what is left of the wait for its response head (the route's timeout bounds the
   * whole wait, over both connections). Unset: `timeoutMs`.
   */
  firstWaitMs?: number;
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
  #firstWaitMs = 0;
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
  /** Requests started on this connection: past 1, the current one is on a reused connection. */
  #requests = 0;
  /** A byte of the current response arrived. */
  #got = false;
  // The current request, kept in case it is to be sent again (plain fields: no object per request).
  #head = '';
  #body: Buffer | null = null;
  #isHead = false;
  #replayable = false;
  /**
   * Set when this connection, reused, was lost before any byte of the current request's response
   * arrived and the request may be replayed: the request, for the pool to send again on a fresh
   * connection once this one is gone (its handler hears nothing of the loss).
   */
  replay: PendingRequest | undefined;

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
    socket.on('error', (err: Error) => this.#lost(err));
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
    replayable: boolean,
    handler: Dispatcher.DispatchHandler,
    firstWaitMs: number = timeoutMs,
  ): void {
    this.handler = handler;
    this.#requests++;
    this.#got = false;
    this.#head = head;
    this.#body = body;
    this.#isHead = isHead;
    this.#replayable = replayable;
    this.#reason = null;
    this.#paused = false;
    this.#reuse = reuse;
    this.#headSeen = false;
    this.#timeoutMs = timeoutMs;
    this.#firstWaitMs = firstWaitMs;
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
    // Until a byte of the response arrives, a request sent again waits only what was left.
    const ms = this.#got ? this.#timeoutMs : this.#firstWaitMs;
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
    this.#body = null;
    this.#finished = true;
    h.onResponseEnd?.(this, NO_HEADERS);
  }

  #data(chunk: Buffer): void {
    if (this.handler === undefined && !this.#finished) {
      // Bytes while idle: nothing was asked; the connection cannot be trusted.
      this.socket.destroy();
      return;
    }
    this.#got = true;
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
      this.#lost(new UpstreamPoolError(`upstream closed: ${refused}`, 'UND_ERR_SOCKET'));
    else this.#finished = false;
    this.socket.destroy();
  }

  #close(): void {
    if (this.handler !== undefined)
      this.#lost(new UpstreamPoolError('upstream connection closed', 'UND_ERR_SOCKET'));
    if (!this.#gone) {
      this.#gone = true;
      this.pool.gone(this);
    }
  }

  /**
   * The connection went (closed by the server, reset, a write failed) under the current request.
   * On a reused connection with nothing of the response read yet, this is the keep-alive race (the
   * server closed the idle connection as this request went out; it never processed it): a request
   * safe to replay is set aside for the pool to send once more on a fresh connection, unknown to
   * its handler. Anything else fails the request.
   */
  #lost(err: Error): void {
    const h = this.handler;
    if (h === undefined || this.#requests < 2 || this.#got || !this.#replayable) {
      this.fail(err);
      return;
    }
    // The wait for the head goes on from where it was: what is left of it, none when it had none.
    const left = this.#deadline > 0 ? this.#deadline - this.pool.clock.now() : this.#firstWaitMs;
    if (this.#deadline > 0 && left <= 0) {
      this.fail(err);
      return;
    }
    this.handler = undefined;
    this.#deadline = 0;
    this.parser.detach();
    this.replay = {
      firstWaitMs: left,
      head: this.#head,
      body: this.#body,
      isHead: this.#isHead,
      reuse: this.#reuse,
      timeoutMs: this.#timeoutMs,
      replayable: false,
      handler: h,
    };
    this.socket.destroy();
  }

  /** Fails the request in flight (if any) and closes the connection. */
  fail(err: Error): void {
    const h = this.handler;
    this.#deadline = 0;
    this.socket.destroy();
    if (h === undefined) return;
    this.handler = undefined;
    this.#body = null;
    this.#reason = err;
    this.parser.detach();
    h.onResponseError?.(this, err);
  }

  abort(reason: Error): void {
    // Aborted while set aside to be sent again: it fails here, and the pool does not send it.
    const r = this.replay;
    if (r !== undefined) {
      this.replay = undefined;
      this.#reason = reason;
      r.handler.onResponseError?.(this, reason);
      return;
    }
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

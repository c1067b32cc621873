/**
 * One client request through the filter chain, in the manner of Envoy's HTTP filters:
 *
 *   body (`body.ts`) -> admission (`admission.ts`) -> upstream (`upstream.ts`, the undici handler)
 *     -> retry (`retry.ts`) or fallback and last-good (`fallback.ts`) -> the client
 *
 * The exchange is the request's state, shared by the filters, and the glue between them: it sends
 * each attempt to a host the balancer picks, records outcomes for outlier detection, and settles
 * once (limiter slot, retry slot, breaker permit, response counters). What the client caused (a
 * request undici refuses) is a 400 and neutral for the breaker, the host and retries.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Permit } from 'tripswitch';
import type { Dispatcher } from 'undici';
import { admit } from './admission.js';
import { type BodyState, discardUnsentBody, hasBody, readRequestBody, streamBody } from './body.js';
import type { UpstreamHost } from './cluster.js';
import { classify } from './errors.js';
import { hasFallback, serveFallback } from './fallback.js';
import { isClientFault, refuse } from './head.js';
import { plain, upstreamHeaders } from './http.js';
import type { Limiter, Waiter } from './limits.js';
import { type RetryState, releaseRetry, retryOnFailure, retryOnStatus, scheduleRetry } from './retry.js';
import type { CompiledRoute } from './route.js';
import { UpstreamHandler } from './upstream.js';

/** What an exchange needs from the proxy that runs it. */
export interface ExchangeHost {
  /** Randomness for backoff jitter. */
  readonly random: () => number;
  /** The exchange's response closed (answered, or the client left). */
  exchangeClosed(): void;
}

const kExchange = Symbol('tripswitch.exchange');
// One shared listener instead of a closure per request, added with on() (once() would make a
// wrapper and its state per request): the link to the exchange is cut at the first close, so
// that a second one (none is expected) settles nothing twice.
function onResponseClose(this: ServerResponse & { [kExchange]?: Exchange }): void {
  const x = this[kExchange];
  if (x === undefined) return;
  this[kExchange] = undefined;
  x.onClose();
}

/** One client request and its upstream attempts; see the module comment. */
export class Exchange extends UpstreamHandler implements BodyState, RetryState {
  readonly hasBody: boolean;
  body: Buffer | undefined;
  head: Buffer[] | undefined;
  stopBuffering: (() => void) | undefined;
  permit: Permit | undefined;
  waiter: Waiter | undefined;
  /** A limiter slot is held (admitted, until settled). */
  holdsSlot = false;
  attempt = 0;
  lastDelay = 0;
  retryHeld = false;
  /** What follows the current attempt's answer when it is not relayed. */
  next: 'retry' | 'fallback' | undefined;
  /** The response closed: nothing more is sent upstream. */
  ended = false;
  host: UpstreamHost | undefined;
  #headers: string[] | undefined;
  readonly random: () => number;

  constructor(
    readonly proxy: ExchangeHost,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly route: CompiledRoute,
    readonly lim: Limiter,
  ) {
    super();
    this.random = proxy.random;
    this.hasBody = hasBody(req);
    (res as ServerResponse & { [kExchange]?: Exchange })[kExchange] = this;
    res.on('close', onResponseClose);
  }

  /** Runs the chain from its first filter. */
  start(): void {
    readRequestBody(this);
  }

  /** The admission filter (after the body filter). */
  admit(): void {
    switch (admit(this.route.cluster, this.lim, this)) {
      case 'admitted':
        this.holdsSlot = true;
        this.send();
        return;
      case 'queued':
        return;
      case 'circuit-open':
        this.respondLocal(503, 'circuit-open');
        return;
      case 'overloaded':
        this.respondLocal(503, 'overloaded');
    }
  }

  /** Admission let a queued request in. */
  granted(): void {
    this.waiter = undefined;
    this.holdsSlot = true;
    this.send();
  }

  /** Sends one attempt to a host the balancer picks. */
  send(): void {
    if (this.ended) {
      this.settle(undefined, undefined);
      return;
    }
    const { route, req } = this;
    const host = route.cluster.pick();
    this.host = host;
    host.active++;
    this.#headers ??= upstreamHeaders(req);
    this.next = undefined;
    this.newAttempt();
    const t = route.timeoutMs;
    host.pool.dispatch(
      {
        path: req.url ?? '/',
        method: req.method as Dispatcher.HttpMethod,
        headers: this.#headers,
        body: this.body ?? (this.hasBody ? streamBody(this) : null),
        headersTimeout: t,
        bodyTimeout: t,
        // `retry_non_idempotent` lets the pool send any method again after a stale connection
        // (undefined: its default, idempotent methods only).
        idempotent: route.retry?.nonIdempotent === true ? true : undefined,
      },
      this,
    );
  }

  protected forward(status: number): boolean {
    if (retryOnStatus(this, status)) {
      this.next = 'retry';
      return false;
    }
    if (status >= 500 && hasFallback(this.route, this.req)) {
      this.next = 'fallback';
      return false;
    }
    return true;
  }

  #endAttempt(): void {
    this.controller = undefined;
    this.host!.active--;
    releaseRetry(this);
  }

  protected attemptEnded(): void {
    this.#endAttempt();
    const status = this.status;
    this.route.cluster.outlier.record(
      this.host!,
      status < 500 ? 'success' : status === 502 || status === 503 || status === 504 ? 'gateway' : 'error-5xx',
    );
    if (this.next === 'retry') {
      scheduleRetry(this);
      return;
    }
    this.settle(status, undefined);
    if (this.next === 'fallback') serveFallback(this.route, this.req, this.res, `upstream-${status}`);
  }

  protected attemptFailed(err: Error): void {
    this.#endAttempt();
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
      refuse(this.req, this.res, 400, `request refused: ${err.message ?? ''}`);
      return;
    }
    const kind = classify(err);
    cluster.outlier.record(this.host!, 'gateway');
    // A failed TLS handshake (certificate not trusted, wrong name, client certificate refused) is a
    // connect failure for counters and retry_on, answered 502: a host answered, but not acceptably.
    if (kind === 'timeout') cluster.counters.timeouts++;
    else if (kind === 'reset') cluster.counters.resets++;
    else cluster.counters.connectFailures++;
    if (!this.res.headersSent && retryOnFailure(this, kind)) {
      scheduleRetry(this);
      return;
    }
    const status = kind === 'connect-failure' ? 503 : kind === 'timeout' ? 504 : 502;
    this.settle(status, err ?? new Error(kind));
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    if (hasFallback(this.route, this.req)) serveFallback(this.route, this.req, this.res, kind);
    else plain(this.res, status, `upstream ${kind}\n`, { 'x-tripswitch-upstream-error': kind });
  }

  /** Ends the exchange's hold on limits and the breaker; `status` undefined = neutral. */
  settle(status: number | undefined, err: unknown): void {
    releaseRetry(this);
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

  /** A refusal by admission: the fallback, else 503 with the reason's header. */
  respondLocal(status: number, kind: 'circuit-open' | 'overloaded'): void {
    discardUnsentBody(this);
    if (hasFallback(this.route, this.req)) {
      serveFallback(this.route, this.req, this.res, kind);
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

  /** The client's response closed: finished, or the client left mid-way (then everything stops). */
  onClose(): void {
    this.ended = true;
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
      this.controller?.abort(new Error('client closed'));
    }
    this.proxy.exchangeClosed();
  }
}

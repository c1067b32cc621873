/**
 * The tunnel filter: HTTP/1.1 Upgrade (WebSocket) requests, routed like any request and admitted by
 * the same `admit()` (no waiting), to a host the same balancer picks, over a connection of their
 * own.
 * @module
 */
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { Permit, TimerHandle } from 'tripswitch';
import { type Admittee, admit } from './admission.js';
import type { UpstreamHost } from './cluster.js';
import { classify, type FailKind } from './errors.js';
import { REFUSED_SKIP, rawHead, rawReply, upstreamHeaders } from './http.js';
import type { Limiter, Waiter } from './limits.js';
import type { CompiledRoute } from './route.js';

/** What a tunnel needs from the proxy that runs it. */
export interface TunnelHost {
  /** The tunnel closed (both sides torn down, slot released). */
  tunnelClosed(t: Tunnel): void;
}

/**
 * One proxied HTTP/1.1 Upgrade (WebSocket): the request goes to the upstream on a connection of
 * its own (node's http client over `net.connect()` or `tls.connect()` with the cluster's tls
 * options); a 101 is relayed and both sockets are then piped to each other until either side
 * closes. The breaker permit is settled by the answer (or its absence); the limiter slot and the
 * host's `active` count are held until the tunnel closes and released exactly once in `finish()`.
 */
export class Tunnel implements Admittee {
  upReq: ClientRequest | undefined;
  upstream: Duplex | undefined;
  timer: TimerHandle | undefined;
  connectTimer: TimerHandle | undefined;
  /** The upstream answered (or failed): the permit is settled. */
  answered = false;
  finished = false;

  permit: Permit | undefined;
  waiter: Waiter | undefined;
  host!: UpstreamHost;

  constructor(
    readonly proxy: TunnelHost,
    readonly req: IncomingMessage,
    readonly client: Duplex,
    readonly head: Buffer,
    readonly route: CompiledRoute,
    readonly lim: Limiter,
  ) {}

  /**
   * Admission (shared with requests, without waiting) and the host choice; or a 503 on the raw
   * socket (false). {@link Tunnel.start} then opens the upstream connection.
   */
  open(): boolean {
    const cluster = this.route.cluster;
    const a = admit(cluster, this.lim, this);
    if (a !== 'admitted') {
      cluster.counters.responses5xx++;
      if (a === 'circuit-open')
        rawReply(this.client, 503, 'circuit open\n', { 'x-tripswitch-circuit-open': 'true' });
      else rawReply(this.client, 503, 'upstream overflow\n', { 'x-tripswitch-overloaded': 'true' });
      return false;
    }
    this.host = cluster.pick();
    return true;
  }

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
    const headers = upstreamHeaders(req);
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

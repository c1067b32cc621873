/**
 * The request head as the proxy accepts it, judged before routing: the header count, one valid Host
 * (RFC 9112 section 3.2), the request-target form (origin, absolute, asterisk; section 3.2.2 to
 * 3.2.4), and the refusal that ends the connection. Node's parser has already rejected malformed
 * syntax; this covers what it lets through. A refused request closes its connection and marks the
 * socket, so that nothing Node parses after it on that connection is routed or forwarded.
 * @module
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { realClock } from '../clock.js';

const kRefused = Symbol('tripswitch.refused');
const kLast = Symbol('tripswitch.lastResponse');
const kOpen = Symbol('tripswitch.openResponses');
const kLinger = Symbol('tripswitch.linger');
type Marked = {
  [kRefused]?: true;
  [kLast]?: ServerResponse;
  /** This connection's responses, pruned of finished ones as requests come (usually 0 or 1 left). */
  [kOpen]?: ServerResponse[];
  [kLinger]?: true;
};

/** How long a refused client that keeps sending is read (and its bytes dropped) before the close. */
const LINGER_MS = 2000;

function destroyThis(this: Socket): void {
  this.destroy();
}

/** Bounds the reading of a refused connection: closed {@link LINGER_MS} after this at the latest. */
function lingerAtMost(s: Socket & Marked): void {
  if (s[kLinger] === true || s.destroyed) return;
  s[kLinger] = true;
  // Real time, whatever clock the Sidecar runs on: a bound on a socket, never part of a test's story.
  const t = realClock.setTimeout(destroyThis.bind(s), LINGER_MS).unref();
  s.once('close', () => realClock.clearTimeout(t));
}

/** Responses on the connection not yet finished (written out). */
function owedOn(s: Marked): number {
  let n = 0;
  for (const res of s[kOpen] ?? []) if (!res.writableFinished && !res.destroyed) n++;
  return n;
}

/** Why a request head is refused: the status (4xx, or 505 for a version) and a one-line reason. */
export interface Refusal {
  status: number;
  reason: string;
}

// RFC 3986 authority without userinfo: IP-literal, or reg-name / IPv4 (unreserved, pct-encoded,
// sub-delims), and an optional port. An empty Host is allowed (RFC 9112 section 3.2).
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::(\d{0,5}))?$/;
const ABSOLUTE = /^(https?):\/\/([^/?#]*)([^#]*)$/i;

// The last Host value found good: a client sends the same one on every request, and the match
// array of the check was most of what the head check allocated per request.
let goodAuthority: string | undefined;

function badAuthority(a: string): boolean {
  if (a === goodAuthority) return false;
  const m = AUTHORITY.exec(a);
  const bad = m === null || (m[1] !== undefined && m[1] !== '' && Number(m[1]) > 65_535);
  if (!bad) goodAuthority = a;
  return bad;
}

/**
 * Checks a request head and normalises an absolute-form target: `req.url` becomes the origin-form
 * path and the URI's authority replaces the Host header (section 3.2.2: a server ignores the Host
 * field then), so that routing and forwarding see one request shape. Returns the refusal, if any.
 *
 * @example
 * ```ts
 * const refusal = checkHead(req, 100);
 * if (refusal) refuse(req, res, refusal.status, refusal.reason);
 * ```
 */
export function checkHead(req: IncomingMessage, maxHeadersCount: number): Refusal | undefined {
  const raw = req.rawHeaders;
  if (raw.length / 2 > maxHeadersCount)
    return { status: 431, reason: `more than ${maxHeadersCount} header lines` };
  let hosts = 0;
  let hostAt = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length === 4 && k.toLowerCase() === 'host') {
      hosts++;
      hostAt = i;
    }
  }
  if (hosts > 1) return { status: 400, reason: 'more than one Host header' };
  // Node's parser takes lengths up to 2^64-1; past 2^53-1 they are not exact as numbers, and
  // undici refuses them on the way out (which would count against the upstream).
  const cl = req.headers['content-length'];
  if (cl !== undefined && cl.length > 15 && !Number.isSafeInteger(Number(cl)))
    return { status: 413, reason: 'Content-Length too large' };
  // "HTTP/2.0" in an HTTP/1 request line is no HTTP/2 (RFC 9112 section 2.3); Node's parser takes it.
  if (req.httpVersionMajor !== 1)
    return { status: 505, reason: `HTTP/${req.httpVersion} over HTTP/1 framing` };
  const v11 = req.httpVersionMinor >= 1;
  if (hosts === 0 && v11) return { status: 400, reason: 'no Host header' };
  if (hosts === 1 && badAuthority(raw[hostAt + 1]!)) return { status: 400, reason: 'invalid Host header' };
  // Node checks Expect on ordinary requests (the checkExpectation listener), not on upgrades.
  const expect = req.headers.expect;
  if (v11 && expect !== undefined && expect.toLowerCase() !== '100-continue')
    return { status: 417, reason: 'only Expect: 100-continue is supported' };
  const url = req.url ?? '';
  // A fragment is not part of a request-target (RFC 9112 section 3.2); Node's parser lets it through.
  if (url.includes('#')) return { status: 400, reason: 'a fragment (#) in the request-target' };
  if (url.charCodeAt(0) === 47 /* / */) return undefined;
  if (url === '*')
    return req.method === 'OPTIONS'
      ? undefined
      : { status: 400, reason: 'asterisk-form is for OPTIONS only' };
  const m = ABSOLUTE.exec(url);
  if (m === null) return { status: 400, reason: 'invalid request-target' };
  const authority = m[2]!;
  if (authority === '' || badAuthority(authority))
    return { status: 400, reason: 'invalid authority in the request-target' };
  const rest = m[3]!;
  req.url = rest === '' || rest.charCodeAt(0) === 63 /* ? */ ? `/${rest}` : rest;
  req.headers.host = authority;
  if (hostAt >= 0) raw[hostAt + 1] = authority;
  else raw.push('Host', authority);
  return undefined;
}

/**
 * Answers `status` with `Connection: close` and marks the connection, so that requests Node already
 * parsed behind this one are dropped unanswered (the connection closes after this response).
 *
 * @example
 * ```ts
 * refuse(req, res, 400, 'more than one Host header');
 * ```
 */
export function refuse(req: IncomingMessage, res: ServerResponse, status: number, reason: string): void {
  (req.socket as Marked)[kRefused] = true;
  res.shouldKeepAlive = false;
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = `${STATUS_CODES[status] ?? 'refused'}: ${reason}\n`;
  res.writeHead(status, {
    connection: 'close',
    'content-type': 'text/plain',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

// Node closes a connection after a response that must end it (an HTTP/1.0 client and no length),
// though it may have parsed requests pipelined behind it already: their responses, queued for a
// socket they never get, would never emit 'close', and whoever waits for it (the in-flight count,
// the limiter slot, drain on shutdown) would wait forever. They get their 'close' here, once.
function closeQueued(this: Socket & Marked): void {
  const open = this[kOpen];
  if (open === undefined) return;
  this[kOpen] = undefined;
  for (const res of open)
    if (res.socket === null && !res.writableFinished && !res.destroyed) {
      res.destroy();
      res.emit('close');
    }
}

/**
 * Registers a request on its connection and says whether to serve it now. False when not: an
 * earlier request (or bytes) on this connection was refused, so this one must not be read, routed
 * or answered (the connection closes once the refusal is written); or it was pipelined behind a
 * response still owed on this connection, and then `serve(arg, req, res)` runs once that response
 * is finished, unless it ended the connection. Node hands over every request a client pipelined
 * as soon as it is parsed, before the one ahead has an answer; whether that answer closes the
 * connection (HTTP/1.0 and no length, a refusal, shutdown, an upstream dying mid-body) is known
 * only when it is written, and a request forwarded behind it would reach the upstream but never
 * be answered (and the client, as RFC 9112 section 9.3.2 allows, sends it again). The connection
 * also remembers its responses still owed, so that a parse error never answers in their place.
 *
 * @example
 * ```ts
 * if (!serveOnConnection(req, res, serve, slot)) return;
 * serve(slot, req, res);
 * ```
 */
export function serveOnConnection<T>(
  req: IncomingMessage,
  res: ServerResponse,
  serve: (arg: T, req: IncomingMessage, res: ServerResponse) => void,
  arg: T,
): boolean {
  const s = req.socket as Socket & Marked;
  if (s[kRefused] === true) return false;
  s[kLast] = res;
  // No listener per request (hot path): one per connection, and a list pruned here.
  const open = s[kOpen];
  if (open === undefined) {
    s[kOpen] = [res];
    req.socket.once('close', closeQueued);
    return true;
  }
  let kept = 0;
  for (let i = 0; i < open.length; i++) {
    const r = open[i]!;
    if (!r.writableFinished && !r.destroyed) open[kept++] = r;
  }
  open.length = kept;
  open.push(res);
  if (kept === 0) return true;
  // Pipelined: responses finish in order, so the last one owed is the one to wait for.
  afterAnswer(open[kept - 1]!, s, () => serve(arg, req, res));
  return false;
}

/**
 * The same for an Upgrade request, whose socket Node hands over at once even when responses are
 * still owed on it: true to tunnel now; false when it must wait (`go` runs once the last owed
 * response is finished and the connection stays open) or never be tunnelled (refused, closing).
 *
 * @example
 * ```ts
 * if (!upgradeOnConnection(socket, () => tunnel(req, socket, head))) return;
 * ```
 */
export function upgradeOnConnection(socket: Duplex, go: () => void): boolean {
  const s = socket as Socket & Marked;
  let ahead: ServerResponse | undefined;
  for (const r of s[kOpen] ?? []) if (!r.writableFinished && !r.destroyed) ahead = r;
  if (ahead !== undefined) afterAnswer(ahead, s, go);
  // Behind a refusal already written: the connection is ending (Node ends it after that response).
  return ahead === undefined && s[kRefused] !== true;
}

/**
 * Runs `go` once `ahead` is finished and the connection stays open; else marks the connection
 * refused (what Node parsed behind gets its 'close' from `closeQueued`, nothing else).
 */
function afterAnswer(ahead: ServerResponse, s: Socket & Marked, go: () => void): void {
  const finished = () => {
    ahead.off('close', closed);
    // Node's own 'finish' listener runs first: after a response that ends the connection it has
    // ended the socket (no longer writable).
    if (s[kRefused] === true || !s.writable) s[kRefused] = true;
    else go();
  };
  // Closed unfinished: the client left, or the answer was cut (the connection goes with it).
  const closed = () => {
    ahead.off('finish', finished);
    s[kRefused] = true;
  };
  ahead.once('finish', finished);
  ahead.once('close', closed);
}

/**
 * The listener's `clientError`: Node's parser refused bytes on this connection (or the head or
 * request took too long). Nothing after them is read. When no response is owed, or the refused
 * bytes belong to the request whose answer has not started, the client gets 400 (408 for a timeout)
 * and the connection closes. When a complete earlier request is still being answered, writing now
 * would be read as that request's answer: the connection closes after it instead.
 *
 * @example
 * ```ts
 * server.on('clientError', answerClientError);
 * ```
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  const s = socket as Socket & Marked;
  if (err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  // Refused already (a refusal with connection: close, or an error handled before): the
  // connection is closing; more bytes get no second answer. Not destroyed here: the parser errs
  // again on each later read of what the client still sends (a refused upload, a header still
  // arriving; over TLS record by record), and closing with those bytes unread resets the
  // connection, a reset that can overtake the refusal (the client then gets no status at all).
  if (s[kRefused] === true) {
    lingerAtMost(s);
    return;
  }
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  s[kRefused] = true;
  const last = s[kLast];
  const owed = owedOn(s);
  if (err.code === 'HPE_CLOSED_CONNECTION') {
    // Bytes after a message that ends the connection (Connection: close, HTTP/1.0): its answer is
    // the last one; the connection closes after it (Node's response already says close).
    if (owed === 0) socket.end();
    return;
  }
  if (last !== undefined && owed > 0) {
    const req = last.req;
    if (req.complete) {
      // An earlier, whole request is still being answered: let it finish, then close.
      if (!last.headersSent) last.shouldKeepAlive = false;
      last.once('close', () => {
        if (last.writableFinished) socket.end();
        else socket.destroy();
      });
      return;
    }
    if (owed > 1 || last.headersSent) {
      // The bad bytes are in a request whose answer has started, or behind other answers: no
      // status line can be written that the client would match to the right request.
      socket.destroy();
      return;
    }
  }
  if (last !== undefined && owed === 0 && !last.req.complete) {
    // The bad bytes are in the body of a request that has had its one answer (given before its
    // body was read): close without a second.
    socket.end();
    return;
  }
  const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const status = timeout ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const body = timeout ? 'request timeout\n' : `bad request: ${String(err.code ?? 'malformed')}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  );
}

/**
 * Writes a refusal on a socket Node handed over (an Upgrade or CONNECT request) and closes it.
 *
 * @example
 * ```ts
 * refuseRaw(socket, 400, 'more than one Host header');
 * ```
 */
export function refuseRaw(socket: Duplex, status: number, reason: string): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${STATUS_CODES[status] ?? 'refused'}: ${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  socket.resume();
}

// Errors thrown for what the request carried (undici or node refusing an argument or header):
// the client's doing, never the upstream's.
const CLIENT_CODES = new Set([
  'UND_ERR_INVALID_ARG',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'ERR_INVALID_ARG_TYPE',
  'ERR_INVALID_ARG_VALUE',
  'ERR_INVALID_HTTP_TOKEN',
  'ERR_INVALID_CHAR',
  'ERR_HTTP_INVALID_HEADER_VALUE',
  'ERR_UNESCAPED_CHARACTERS',
]);

/**
 * True for an error caused by the client's request rather than the upstream (answered 4xx, and
 * never recorded by the breaker, outlier detection or the retry budget).
 *
 * @example
 * ```ts
 * if (isClientFault(err)) refuse(req, res, 400, 'request refused by the upstream client');
 * ```
 */
export function isClientFault(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CLIENT_CODES.has(code);
}

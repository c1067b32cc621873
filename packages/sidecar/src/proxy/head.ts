/**
 * The request head as the proxy accepts it, judged before routing: the header count, one valid Host
 * (RFC 9112 section 3.2), the request-target form (origin, absolute, asterisk; section 3.2.2 to
 * 3.2.4), and the refusal that ends the connection. Node's parser has already rejected malformed
 * syntax; this covers what it lets through. A refused request closes its connection and marks the
 * socket, so that nothing Node parses after it on that connection is routed or forwarded.
 * @module
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

const kRefused = Symbol('tripswitch.refused');
type Marked = { [kRefused]?: true };

/** Why a request head is refused: the status (4xx) and a one-line reason. */
export interface Refusal {
  status: number;
  reason: string;
}

// RFC 3986 authority without userinfo: IP-literal, or reg-name / IPv4 (unreserved, pct-encoded,
// sub-delims), and an optional port. An empty Host is allowed (RFC 9112 section 3.2).
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::(\d{0,5}))?$/;
const ABSOLUTE = /^(https?):\/\/([^/?#]*)([^#]*)$/i;

function badAuthority(a: string): boolean {
  const m = AUTHORITY.exec(a);
  return m === null || (m[1] !== undefined && m[1] !== '' && Number(m[1]) > 65_535);
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
  const v11 = req.httpVersionMajor === 1 && req.httpVersionMinor >= 1;
  if (hosts === 0 && v11) return { status: 400, reason: 'no Host header' };
  if (hosts === 1 && badAuthority(raw[hostAt + 1]!)) return { status: 400, reason: 'invalid Host header' };
  const url = req.url ?? '';
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

/**
 * True when an earlier request on this connection was refused: this one must not be read, routed
 * or answered (the connection closes once the refusal is written).
 *
 * @example
 * ```ts
 * if (refusedBefore(req)) return;
 * ```
 */
export function refusedBefore(req: IncomingMessage): boolean {
  return (req.socket as Marked)[kRefused] === true;
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

/**
 * HTTP/1.1 message plumbing shared by the request path and the tunnels: the hop-by-hop set, the
 * upstream request headers (X-Forwarded-*), the response headers relayed from undici's raw list,
 * and small local answers on a response or a raw socket.
 * @module
 */
import { type IncomingMessage, STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

export const HOP_BY_HOP = new Set([
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
/** Methods retried without `retry_non_idempotent`. */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Answers a short plain-text response, unless one was already started. */
export function plain(
  res: ServerResponse,
  status: number,
  text: string,
  extra?: Record<string, string>,
): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'content-type': 'text/plain',
    'content-length': Buffer.byteLength(text),
    ...extra,
  });
  res.end(text);
}

/**
 * Whether a Connection value is just `keep-alive` (any case), what most servers send on every
 * response: it lists no header and does not close, so the token split is skipped.
 */
export function isKeepAlive(value: string): boolean {
  return value.length === 10 && (value === 'keep-alive' || value.toLowerCase() === 'keep-alive');
}

// Set by responseHeaders (no tuple allocation): the Content-Length it saw, or -1.
export let seenContentLength = -1;

// Only names of these lengths can be hop-by-hop or Content-Length: other names skip the
// lower-casing and the set lookup (most response headers).
const CHECK_LENGTH: boolean[] = [];
for (const h of HOP_BY_HOP) CHECK_LENGTH[h.length] = true;
CHECK_LENGTH['content-length'.length] = true;

// undici's raw list holds Buffers; the fast pool's parser gives strings (latin1 already).
function latin1(x: Buffer | string): string {
  return typeof x === 'string' ? x : x.toString('latin1');
}

/** Response headers from a raw list: hop-by-hop and Connection-listed ones removed. */
export function responseHeaders(raw: (Buffer | string)[]): string[] {
  // A string list (the fast pool's, read once) is filtered in place: no second array.
  const out: string[] = typeof raw[0] === 'string' ? (raw as string[]) : [];
  let w = 0;
  let listed: string[] | undefined;
  seenContentLength = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const k = latin1(raw[i]!);
    if (CHECK_LENGTH[k.length] === true) {
      const lk = k.toLowerCase();
      if (lk === 'content-length') seenContentLength = Number(latin1(raw[i + 1]!));
      else if (HOP_BY_HOP.has(lk)) {
        if (lk === 'connection' && !isKeepAlive(latin1(raw[i + 1]!))) {
          const tokens = latin1(raw[i + 1]!)
            .toLowerCase()
            .split(',');
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
    const v = latin1(raw[i + 1]!);
    out[w++] = k;
    out[w++] = v;
  }
  out.length = w;
  if (listed) {
    const kept: string[] = [];
    for (let i = 0; i < out.length; i += 2)
      if (!listed.includes(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!);
    return kept;
  }
  return out;
}

/** Writes a whole plain-text response on a raw (upgrade or CONNECT) socket, then closes it. */
export function rawReply(socket: Duplex, status: number, text: string, extra?: Record<string, string>): void {
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
export function rawHead(
  status: number,
  message: string | undefined,
  raw: string[],
  skip?: Set<string>,
): string {
  let head = `HTTP/1.1 ${status} ${message || STATUS_CODES[status] || ''}\r\n`;
  for (let i = 0; i < raw.length; i += 2)
    if (!skip?.has(raw[i]!.toLowerCase())) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return head;
}

// A refused upgrade's response is relayed with the connection closing after its body.
export const REFUSED_SKIP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
]);

/** Builds the upstream request headers: hop-by-hop removed, X-Forwarded-* added. */
export function upstreamHeaders(req: IncomingMessage): string[] {
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

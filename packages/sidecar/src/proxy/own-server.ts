/**
 * `http_server: own` (per listener, plain HTTP only; the default of a listener without tls): a
 * purpose-built client-side HTTP/1.1 server for the common request shape, in place of node's `http`
 * server (llhttp + IncomingMessage/ServerResponse) where the proxy spends much of its CPU.
 *
 * The listener's `http.Server` keeps listening, but its 'connection' listener (node's
 * `connectionListener`) is replaced by {@link OwnServer}: each connection's request heads are read
 * and judged here, and a request of the fast shape (an HTTP/1.1 head with a known method, an
 * origin-form target, no Content-Length, Transfer-Encoding, Upgrade or Expect, no obs-fold, CRLF
 * line endings, within max_header_bytes) is served through the proxy's ordinary path (`serve`:
 * checkHead, routing, the Exchange and its filters) with two small adapters in place of
 * IncomingMessage and ServerResponse. Anything else (bodies, upgrades, CONNECT, HTTP/1.0,
 * malformed or oversized heads, anything unusual) hands the connection over to node's server at a
 * request boundary (nothing owed on it): the bytes read so far and the socket go to node's
 * `connectionListener`, which parses them as if it had read them itself, and the connection stays
 * node's from then on. Every head accepted here is one llhttp accepts with the same method,
 * target, version and headers (a differential property test, `own-server.test.ts`, checks it).
 *
 * Pipelined requests are served one after another (the next head is parsed once the response
 * ahead is written), as `serveOnConnection` does for node's server. Node's server parses what is
 * pipelined as it arrives, and bytes it cannot parse behind a request still being answered end the
 * connection after that answer with no status of their own (`answerClientError`); to give them
 * the same treatment, bytes that arrive here while a response is owed are checked with llhttp
 * itself (node's `HTTPParser`, configured as node's server configures it; see `llhttp.ts`, which
 * loads it on first use and tells when this Node lacks it) and, if it refuses them, the connection
 * closes after the response owed and they are never read as a request.
 * @module
 */
import { EventEmitter } from 'node:events';
import { type IncomingMessage, STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TimerHandle } from 'tripswitch';
import { realClock } from '../clock.js';
import type { ResolvedListener } from '../config/resolve.js';
import { LlhttpStream } from './llhttp.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: HTAB, SP, VCHAR, obs-text; no other control characters (nor CR or LF).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
// origin-form: "/" then visible ASCII (what llhttp takes in strict mode, and no more).
const TARGET = /^\/[\x21-\x7e]*$/;
/** Methods served here; any other goes to node (which knows the rest of llhttp's list). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE']);
/** Request headers node keeps the first of (its `matchKnownFields`); others are joined. */
const FIRST_WINS = new Set([
  'host',
  'content-type',
  'user-agent',
  'referer',
  'authorization',
  'proxy-authorization',
  'if-modified-since',
  'if-unmodified-since',
  'from',
  'location',
  'max-forwards',
  'retry-after',
  'etag',
  'last-modified',
  'server',
  'age',
  'expires',
]);
/** Pending bytes past which a connection stops reading while a response is owed. */
const MAX_PENDING = 65_536;

/** What the own server needs from the listener. */
export interface OwnServerHost {
  /** The listener's settings in force (limits and timeouts, swapped on reload). */
  config(): ResolvedListener;
  /** Serves one request (the proxy's request path after `serveOnConnection`). */
  serve(req: IncomingMessage, res: ServerResponse): void;
}

let dateSecond = -1;
let dateText = '';
/** The Date header line, computed at most once a second (as node's `utcDate`). */
function dateLine(): string {
  const now = realClock.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    // biome-ignore lint/style/noRestrictedGlobals: the Date header is wall-clock text
    dateText = `Date: ${new Date(now).toUTCString()}\r\n`;
  }
  return dateText;
}

// Status lines, made once per status code (a response's head is otherwise built per request).
const statusLines: string[] = [];
function statusLine(status: number): string {
  const known = statusLines[status];
  if (known !== undefined) return known;
  const line = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
  if (Number.isInteger(status) && status >= 100 && status < 600) statusLines[status] = line;
  return line;
}

// What writeHead saw among the caller's headers (bits).
const SEEN_DATE = 1;
const SEEN_LENGTH = 2;
const SEEN_TE = 4;
const SEEN_CONNECTION = 8;

/** The request, as the proxy's request path reads an IncomingMessage. */
export class OwnRequest {
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  readonly complete = true;
  readonly aborted = false;
  constructor(
    public method: string,
    public url: string,
    public headers: Record<string, string | string[]>,
    public rawHeaders: string[],
    readonly socket: Socket,
  ) {}
  // No body on this path: the stream methods do nothing.
  on(): this {
    return this;
  }
  once(): this {
    return this;
  }
  off(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  pause(): this {
    return this;
  }
}

/**
 * Parses a request head (`text`: request line and header lines, each ending CRLF, without the
 * empty line). Returns the request, or undefined when it is not of the fast shape (node's server
 * is to read it).
 */
export function parseHead(text: string, socket: Socket): { req: OwnRequest; close: boolean } | undefined {
  let eol = text.indexOf('\r\n');
  const sp1 = text.indexOf(' ');
  if (sp1 <= 0 || sp1 > eol) return undefined;
  const method = text.slice(0, sp1);
  if (!METHODS.has(method)) return undefined;
  const sp2 = text.indexOf(' ', sp1 + 1);
  if (sp2 === -1 || sp2 > eol) return undefined;
  if (eol - sp2 !== 9 || !text.startsWith('HTTP/1.1', sp2 + 1)) return undefined;
  const url = text.slice(sp1 + 1, sp2);
  if (!TARGET.test(url)) return undefined;
  const raw: string[] = [];
  const headers = Object.create(null) as Record<string, string | string[]>;
  let close = false;
  let pos = eol + 2;
  while (pos < text.length) {
    eol = text.indexOf('\r\n', pos);
    const colon = text.indexOf(':', pos);
    if (colon <= pos || colon > eol) return undefined;
    const name = text.slice(pos, colon);
    if (!TOKEN.test(name)) return undefined;
    let a = colon + 1;
    let b = eol;
    pos = eol + 2;
    while (a < b && (text.charCodeAt(a) === 32 || text.charCodeAt(a) === 9)) a++;
    while (b > a && (text.charCodeAt(b - 1) === 32 || text.charCodeAt(b - 1) === 9)) b--;
    const value = text.slice(a, b);
    if (BAD_VALUE.test(value)) return undefined;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'content-length':
      case 'transfer-encoding':
      case 'upgrade':
      case 'expect':
        return undefined;
      case 'connection':
      case 'proxy-connection': // llhttp reads both
        for (const t of value.toLowerCase().split(',')) if (t.trim() === 'close') close = true;
    }
    raw.push(name, value);
    const had = headers[lower];
    if (lower === 'set-cookie') {
      // An array, as node's IncomingMessage gives it.
      if (had === undefined) headers[lower] = [value];
      else (had as string[]).push(value);
    } else if (had === undefined) headers[lower] = value;
    else if (!FIRST_WINS.has(lower)) headers[lower] = `${had}${lower === 'cookie' ? '; ' : ', '}${value}`;
  }
  return { req: new OwnRequest(method, url, headers, raw, socket), close };
}

/** The response, as the proxy's request path writes a ServerResponse. */
export class OwnResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  /** False: the connection closes after this response (as node's ServerResponse). */
  shouldKeepAlive = true;
  /** The head, until it goes out with the first body bytes. */
  #head: string | undefined;
  #chunked = false;
  #noBody = false;
  /** The head said `Connection: close`. */
  closes = false;

  constructor(
    readonly conn: OwnConnection,
    readonly req: OwnRequest,
  ) {
    super();
  }

  get socket(): Socket {
    return this.conn.socket;
  }

  writeHead(status: number, headers?: string[] | Record<string, string | number | string[]>): this {
    if (this.headersSent) throw new Error('writeHead after the head was sent');
    this.statusCode = status;
    let head = statusLine(status);
    // Which framing and connection headers the caller gave (bits of SEEN_*).
    let seen = 0;
    if (Array.isArray(headers))
      for (let i = 0; i < headers.length; i += 2) {
        const k = headers[i]!;
        const v = headers[i + 1]!;
        seen |= this.#check(k, v);
        head += `${k}: ${v}\r\n`;
      }
    else if (headers !== undefined)
      for (const k of Object.keys(headers)) {
        const v = headers[k]!;
        for (const x of Array.isArray(v) ? v : [String(v)]) {
          seen |= this.#check(k, x);
          head += `${k}: ${x}\r\n`;
        }
      }
    if ((seen & SEEN_DATE) === 0) head += dateLine();
    if (!this.shouldKeepAlive || this.conn.closing) this.closes = true;
    if ((seen & SEEN_CONNECTION) === 0)
      head += this.closes ? 'Connection: close\r\n' : this.conn.own.keepAliveLines();
    this.#noBody = this.req.method === 'HEAD' || status === 204 || status === 304;
    if (!this.#noBody && (seen & (SEEN_LENGTH | SEEN_TE)) === 0) {
      this.#chunked = true;
      head += 'Transfer-Encoding: chunked\r\n';
    }
    this.#head = `${head}\r\n`;
    this.headersSent = true;
    return this;
  }

  /** Checks one header of the response; returns the SEEN_* bit it sets (0 for most). */
  #check(k: string, v: string): number {
    if (!TOKEN.test(k) || BAD_VALUE.test(v)) throw new Error(`invalid header ${k}`);
    const n = k.length;
    if (n !== 4 && n !== 10 && n !== 14 && n !== 17) return 0;
    const lk = k.toLowerCase();
    if (lk === 'date') return SEEN_DATE;
    if (lk === 'content-length') return SEEN_LENGTH;
    if (lk === 'transfer-encoding') return SEEN_TE;
    if (lk === 'connection') {
      if (v.toLowerCase().includes('close')) this.closes = true;
      return SEEN_CONNECTION;
    }
    return 0;
  }

  /** The bytes of one body chunk as they go out (head first, chunked framing). */
  #frame(chunk: Buffer | undefined, last: boolean): Buffer | undefined {
    const head = this.#head;
    this.#head = undefined;
    const body = chunk === undefined || this.#noBody || chunk.length === 0 ? undefined : chunk;
    let pre = head ?? '';
    let post = '';
    if (this.#chunked && !this.#noBody) {
      if (body !== undefined) {
        pre += `${body.length.toString(16)}\r\n`;
        post = '\r\n';
      }
      if (last) post += '0\r\n\r\n';
    }
    if (body === undefined) return pre === '' && post === '' ? undefined : Buffer.from(pre + post, 'latin1');
    if (pre === '' && post === '') return body;
    // One buffer, one write: the head (and framing) with the body.
    const out = Buffer.allocUnsafe(pre.length + body.length + post.length);
    out.write(pre, 0, 'latin1');
    body.copy(out, pre.length);
    if (post !== '') out.write(post, pre.length + body.length, 'latin1');
    return out;
  }

  write(chunk: Buffer | string): boolean {
    if (this.destroyed || this.writableEnded) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    const out = this.#frame(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, false);
    return out === undefined ? true : this.conn.socket.write(out);
  }

  end(chunk?: Buffer | string): this {
    if (this.writableEnded) return this;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (!this.headersSent) this.writeHead(this.statusCode, ['content-length', String(buf?.length ?? 0)]);
    this.writableEnded = true;
    if (this.destroyed) return this;
    const out = this.#frame(buf, true) ?? Buffer.alloc(0);
    this.conn.socket.write(out, this.conn.onWritten);
    return this;
  }

  destroy(): this {
    if (!this.destroyed) this.conn.socket.destroy();
    return this;
  }

  /** The response's bytes are all handed to the kernel ('close' follows, see {@link closed}). */
  finished(): void {
    this.writableFinished = true;
    this.emit('finish');
  }

  /** After 'finish' (and after the next pipelined request was taken, as node's server does). */
  closed(): void {
    this.destroyed = true;
    this.emit('close');
  }

  /** The connection closed before the response was finished. */
  aborted(): void {
    if (this.writableFinished || this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

/** One client connection served here (until handed to node). */
export class OwnConnection {
  #pending: Buffer | undefined;
  /** Where to look for the end of the head in #pending (a head arriving in pieces). */
  #from = 0;
  current: OwnResponse | undefined;
  /** No more requests are read: the connection ends after the response owed. */
  closing = false;
  #handedOff = false;
  /** Bad bytes were cut from #pending: the last request in it closes the connection. */
  #closeAfter = false;
  /**
   * llhttp reading the bytes pipelined behind the request being answered (see #judge), each byte
   * once: from a request boundary at or before the front of #pending, kept while the requests it
   * read are served here one by one, so that n requests pipelined at once are read n times, not
   * n^2 / 2. Undefined when no bytes are pipelined.
   */
  #shadow: LlhttpStream | undefined;
  /** Bytes at the front of #pending the shadow has read. */
  #shadowFed = 0;
  /** Whole requests the shadow read that were taken from #pending since (served here). */
  #shadowServed = 0;
  /** The shadow refused bytes and #judge drew the consequence: nothing is judged any more. */
  #judged = false;
  /**
   * When the connection went idle (or the partial head began), read from the clock then: not the
   * sweep's time ({@link OwnServer.now}), which is as old as the last sweep (up to an interval, more
   * on a busy event loop) and would close an idle connection that much before the
   * `Keep-Alive: timeout` its answer advertised (a client could send on it as it closes), or answer
   * 408 that much early. One clock read per request and per connection.
   */
  idleSince: number;
  readonly #onData = (chunk: Buffer) => this.#data(chunk);
  readonly #onEnd = () => this.#end();
  readonly #onClose = () => this.#close();
  readonly #onError = () => this.socket.destroy();
  readonly #onDrain = () => this.current?.emit('drain');
  /** The write callback of a response's last bytes (one function per connection). */
  readonly onWritten = (err?: Error | null) => this.#written(err);

  constructor(
    readonly own: OwnServer,
    readonly socket: Socket,
  ) {
    this.idleSince = realClock.now();
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('error', this.#onError);
    socket.on('drain', this.#onDrain);
  }

  #data(chunk: Buffer): void {
    if (this.#closeAfter) return; // behind bad bytes: never read (the connection is closing)
    const p = this.#pending;
    this.#pending = p === undefined ? chunk : Buffer.concat([p, chunk]);
    if (this.current !== undefined) {
      this.#judge(this.current);
      if (this.#pending !== undefined && this.#pending.length > MAX_PENDING) this.socket.pause();
      return;
    }
    this.#parse();
  }

  /** Reads the next request head in #pending (only when no response is owed). */
  #parse(): void {
    const buf = this.#pending;
    if (buf === undefined || this.closing) {
      this.#dropShadow();
      return;
    }
    const max = this.own.host.config().max_header_bytes;
    const end = buf.indexOf('\r\n\r\n', this.#from, 'latin1');
    if (end === -1) {
      // No answer owed: bytes that come now are not fed to the shadow, which starts again from the
      // next request boundary.
      this.#dropShadow();
      if (buf.length > max) {
        this.#handOff();
        return;
      }
      // A head arriving in pieces: the headers timeout counts from its first bytes.
      if (this.#from === 0) this.idleSince = realClock.now();
      this.#from = Math.max(0, buf.length - 3);
      return;
    }
    this.#from = 0;
    if (end + 4 > max) {
      this.#handOff();
      return;
    }
    const parsed = parseHead(buf.toString('latin1', 0, end + 2), this.socket);
    if (parsed === undefined) {
      this.#handOff();
      return;
    }
    this.#pending = end + 4 === buf.length ? undefined : buf.subarray(end + 4);
    if (this.#shadow !== undefined) {
      // A request the shadow read: what it read behind it stays read.
      if (this.#shadowFed >= end + 4) {
        this.#shadowFed -= end + 4;
        this.#shadowServed++;
      } else this.#dropShadow();
    }
    const res = new OwnResponse(this, parsed.req);
    if (parsed.close) {
      this.closing = true;
      res.shouldKeepAlive = false;
    }
    if (this.#closeAfter && this.#pending === undefined) {
      this.closing = true;
      res.shouldKeepAlive = false;
    }
    this.current = res;
    this.#judge(res);
    this.own.host.serve(parsed.req as unknown as IncomingMessage, res as unknown as ServerResponse);
  }

  /**
   * Bytes behind the request being answered (`res`): node's server would parse them now, and if
   * llhttp refuses them, the connection ends after that answer and they get none (as
   * `answerClientError` does). Judged whenever they grow while the answer is owed: the shadow
   * reads what it has not read yet, and only once it refuses is the verdict drawn (once).
   */
  #judge(res: OwnResponse): void {
    const p = this.#pending;
    if (p === undefined || this.closing || this.#closeAfter || this.#judged) return;
    const max = this.own.host.config().max_header_bytes;
    if (this.#shadow === undefined) {
      // #pending begins at a request boundary (the end of the head being answered).
      this.#shadow = new LlhttpStream(max);
      this.#shadowFed = 0;
      this.#shadowServed = 0;
    }
    if (p.length > this.#shadowFed) {
      this.#shadow.feed(this.#shadowFed === 0 ? p : p.subarray(this.#shadowFed));
      this.#shadowFed = p.length;
    }
    if (!this.#shadow.refused) return;
    // Whole requests in #pending ahead of the bad bytes.
    const ahead = this.#shadow.complete - this.#shadowServed;
    this.#judged = true;
    this.#dropShadow();
    // Requests of the fast shape at the front are served here, one by one, as node would queue
    // them; the bad bytes follow them, or a request of another shape does.
    let q = 0;
    let fast = 0;
    for (;;) {
      const end = p.indexOf('\r\n\r\n', q, 'latin1');
      if (end === -1 || end + 4 - q > max) break;
      const next = parseHead(p.toString('latin1', q, end + 2), this.socket);
      if (next === undefined) break;
      q = end + 4;
      fast++;
      if (next.close) return; // the connection ends after it: what follows is never read
    }
    // A whole request of another shape first: node's server gets these bytes at that request's
    // boundary and answers as it would have (the bad bytes behind one it owes).
    if (ahead > fast) return;
    if (q === 0) {
      this.closing = true;
      this.#pending = undefined;
      res.shouldKeepAlive = false;
    } else {
      // The requests before the bad bytes are answered; the last of them closes the connection.
      this.#pending = p.subarray(0, q);
      this.#closeAfter = true;
    }
  }

  #dropShadow(): void {
    this.#shadow?.close();
    this.#shadow = undefined;
    this.#shadowFed = 0;
    this.#shadowServed = 0;
  }

  #written(err?: Error | null): void {
    const res = this.current;
    if (res === undefined) return;
    if (err) {
      this.socket.destroy();
      return;
    }
    this.current = undefined;
    if (res.closes || !res.shouldKeepAlive) this.closing = true;
    res.finished();
    if (this.closing) {
      this.socket.end();
      this.socket.resume(); // read (and drop) what still comes, so that the client's FIN is seen
      res.closed();
      return;
    }
    this.idleSince = realClock.now();
    if (this.socket.isPaused()) this.socket.resume();
    // As node's server: a request pipelined behind is taken on 'finish', before the 'close' that
    // settles this one (a drain on shutdown sees it in flight).
    if (this.#pending !== undefined) this.#parse();
    else this.#dropShadow();
    res.closed();
  }

  #end(): void {
    // The client sent FIN: as node's server (httpAllowHalfOpen false), the connection ends now; a
    // response still owed is cut (its 'close' comes unfinished: the client left).
    this.closing = true;
    this.socket.end();
  }

  #close(): void {
    this.#dropShadow();
    this.own.connections.delete(this);
    this.current?.aborted();
  }

  /** Node's server reads the rest of this connection (from the bytes not yet parsed). */
  #handOff(): void {
    this.#handedOff = true;
    this.#dropShadow();
    const s = this.socket;
    s.off('data', this.#onData);
    s.off('end', this.#onEnd);
    s.off('close', this.#onClose);
    s.off('error', this.#onError);
    s.off('drain', this.#onDrain);
    this.own.connections.delete(this);
    let bytes = this.#pending;
    this.#pending = undefined;
    // What the stream holds while paused (not yet seen here) follows; then it flows again.
    if (s.isPaused()) {
      for (let b = s.read() as Buffer | null; b !== null; b = s.read() as Buffer | null)
        bytes = bytes === undefined ? b : Buffer.concat([bytes, b]);
    }
    this.own.handOff(s, bytes);
    if (s.isPaused()) s.resume();
  }

  /** Idle (no response owed, nothing pending): closed by shutdown and the idle sweep. */
  get idle(): boolean {
    return this.current === undefined && this.#pending === undefined && !this.#handedOff;
  }

  /** Bytes of a head not complete yet (the headers timeout applies). */
  get partial(): boolean {
    return this.current === undefined && this.#pending !== undefined;
  }
}

/** The connections of one listener served here; see the module comment. */
export class OwnServer {
  readonly connections = new Set<OwnConnection>();
  /** Time of the last sweep (ms); the connections stamp their own times (see `idleSince`). */
  now = realClock.now();
  readonly #node: (socket: Socket) => void;
  #sweeper: TimerHandle | undefined;
  readonly #interval: number;
  #closed = false;

  constructor(
    readonly server: Server,
    readonly host: OwnServerHost,
  ) {
    const node = server.listeners('connection')[0] as (socket: Socket) => void;
    server.removeListener('connection', node);
    this.#node = node;
    server.on('connection', (socket: Socket) => {
      this.connections.add(new OwnConnection(this, socket));
    });
    this.#interval = Math.max(10, Math.min(1000, Math.floor(host.config().headers_timeout_ms / 4)));
    this.#sweeper = realClock.setTimeout(this.#sweep, this.#interval).unref();
    server.once('close', () => {
      this.#closed = true;
      if (this.#sweeper !== undefined) realClock.clearTimeout(this.#sweeper);
    });
  }

  idleMs(): number {
    return this.host.config().idle_timeout_ms;
  }

  #keepAliveFor = -1;
  #keepAliveText = '';
  /** The Connection and Keep-Alive lines of a response that keeps the connection (per idle limit). */
  keepAliveLines(): string {
    const idle = this.idleMs();
    if (idle !== this.#keepAliveFor) {
      this.#keepAliveFor = idle;
      this.#keepAliveText = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(idle / 1000)}\r\n`;
    }
    return this.#keepAliveText;
  }

  /** Gives a socket (and the bytes read from it but not parsed) to node's http server. */
  handOff(socket: Socket, bytes: Buffer | undefined): void {
    this.#node.call(this.server, socket);
    if (bytes !== undefined && bytes.length > 0) socket.emit('data', bytes);
  }

  readonly #sweep = (): void => {
    this.#sweeper = this.#closed ? undefined : realClock.setTimeout(this.#sweep, this.#interval).unref();
    const now = realClock.now();
    this.now = now;
    const l = this.host.config();
    for (const c of this.connections) {
      if (c.partial && l.headers_timeout_ms > 0 && now - c.idleSince >= l.headers_timeout_ms) {
        const body = 'request timeout\n';
        c.closing = true;
        c.socket.end(
          `HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        );
      } else if (c.idle && l.idle_timeout_ms > 0 && now - c.idleSince >= l.idle_timeout_ms)
        c.socket.destroy();
    }
  };

  /** Closes the connections with no response owed (shutdown). */
  closeIdle(): void {
    for (const c of this.connections) if (c.idle) c.socket.destroy();
  }

  /** Closes every connection served here. */
  closeAll(): void {
    for (const c of this.connections) c.socket.destroy();
  }
}

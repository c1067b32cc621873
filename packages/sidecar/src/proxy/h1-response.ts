/**
 * A strict, incremental HTTP/1.1 response parser for the upstream pool (`h1-pool.ts`): one
 * response at a time (pipelining is off), framing per RFC 9112 section 6, and everything a
 * lenient parser would have to guess about refused. A refusal is a string (the reason); the pool
 * answers 502 and closes the connection, never reusing it. Refused, where llhttp (Node's parser)
 * also refuses: both Content-Length and Transfer-Encoding, duplicate Content-Length, a
 * Content-Length or chunk size that is not digits (hex digits), obs-fold, a bare CR or LF, a head
 * past the size limit, a body cut short by the connection closing. Refused where llhttp is more
 * lenient: a Transfer-Encoding other than exactly `chunked`, a status outside 100..599, a 101
 * (nothing here asks for an upgrade), whitespace before a header's colon, more than 16 interim
 * (1xx) responses.
 *
 * Interim responses (100, 102, 103) are skipped. Responses to HEAD, and 204 and 304, have no body
 * whatever their headers say. A response with neither Content-Length nor chunked framing runs to
 * the connection's end (and the connection is not reused); so does any HTTP/1.0 response or one
 * with `Connection: close`.
 * @module
 */
import { isKeepAlive } from './http.js';

/** What the parser reports, in order: one head, body chunks, then the end (or a refusal). */
export interface ResponseSink {
  /**
   * The final response's head: status and the raw header list (name, value, name, value...,
   * names as sent, values without surrounding whitespace). Body chunks follow.
   */
  onHead(status: number, raw: string[]): void;
  /** A piece of the body (a view into the bytes read: copy it to keep it). */
  onBody(chunk: Buffer): void;
  /** The response is complete. */
  onEnd(): void;
}

enum Mode {
  Head = 0,
  Length = 1,
  Chunked = 2,
  UntilClose = 3,
  Done = 4,
  Failed = 5,
  /** The attempt was abandoned: bytes are ignored (the pool closes the connection). */
  Detached = 6,
}

enum Chunk {
  Size = 0,
  Ext = 1,
  SizeLf = 2,
  Data = 3,
  DataCr = 4,
  DataLf = 5,
  Trailer = 6,
  /** A trailer line's CR ended a read: its LF comes next. */
  TrailerLf = 7,
}

/** Largest response head (status line and headers) accepted, as Node's default maxHeaderSize. */
export const MAX_HEAD_BYTES = 16_384;
const MAX_INTERIM = 16;
const MAX_SIZE_LINE = 1024;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: HTAB, SP, VCHAR, obs-text (RFC 9110 section 5.5); no other control characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const DIGITS = /^\d{1,15}$/;

/**
 * `HTTP/1.0` or `HTTP/1.1`, SP, a status 100..599, then nothing or SP and a reason phrase (HTAB,
 * SP, VCHAR, obs-text). The reason may be absent with or without its SP, as llhttp takes it;
 * control characters in it are refused (llhttp takes them).
 */
function statusLine(text: string, eol: number): boolean {
  if (eol < 12 || !text.startsWith('HTTP/1.', 0)) return false;
  const minor = text.charCodeAt(7);
  if ((minor !== 48 && minor !== 49) || text.charCodeAt(8) !== 32) return false;
  const d0 = text.charCodeAt(9);
  const d1 = text.charCodeAt(10);
  const d2 = text.charCodeAt(11);
  if (d0 < 49 || d0 > 53 || d1 < 48 || d1 > 57 || d2 < 48 || d2 > 57) return false;
  if (eol === 12) return true;
  if (text.charCodeAt(12) !== 32) return false;
  for (let i = 13; i < eol; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127 || c > 255) return false;
  }
  return true;
}

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 97 && b <= 102) return b - 87;
  if (b >= 65 && b <= 70) return b - 55;
  return -1;
}

/**
 * Parses the responses of one connection, one after another ({@link ResponseParser.expect} before
 * each). `execute` takes bytes as they arrive; `eof` says the connection ended.
 *
 * @example
 * ```ts
 * const p = new ResponseParser();
 * p.expect(false, { onHead: (s, h) => {}, onBody: (b) => {}, onEnd: () => {} });
 * const refused = p.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
 * // refused === undefined; p.done === true; p.keepAlive === true
 * ```
 */
export class ResponseParser {
  #sink: ResponseSink | undefined;
  #head = false;
  #mode = Mode.Done;
  /** Head bytes of an unfinished head (heads split across reads). */
  #pending: Buffer | undefined;
  #interim = 0;
  #remaining = 0;
  #chunk = Chunk.Size;
  #sizeDigits = 0;
  #lineBytes = 0;
  #trailerBytes = 0;
  /** The trailer line in progress is empty so far (an empty line ends the trailers). */
  #lineEmpty = true;
  /** The connection may carry another request after this response. */
  keepAlive = false;
  /** Bytes came after the end of the response (the connection must not be reused). */
  trailing = false;
  /** The idle limit the server announced (`Keep-Alive: timeout=N`) in ms, or -1. */
  keepAliveHintMs = -1;
  /** The last Keep-Alive value read and what it announced (ms, or -1). */
  #keepAliveSeen: string | undefined;
  #keepAliveSeenMs = -1;

  /** The response is complete (and nothing was refused). */
  get done(): boolean {
    return this.#mode === Mode.Done;
  }

  /** Starts a new response; `head` = it answers a HEAD request (no body, whatever it says). */
  expect(head: boolean, sink: ResponseSink): void {
    this.#sink = sink;
    this.#head = head;
    this.#mode = Mode.Head;
    this.#pending = undefined;
    this.#interim = 0;
    this.keepAlive = false;
    this.trailing = false;
    this.keepAliveHintMs = -1;
  }

  /** Stops reporting to the sink (the attempt was abandoned). */
  detach(): void {
    this.#sink = undefined;
    this.#mode = Mode.Detached;
    this.keepAlive = false;
  }

  /** Feeds bytes; returns the reason the response is refused, or undefined. */
  execute(buf: Buffer): string | undefined {
    let at = 0;
    while (at < buf.length) {
      switch (this.#mode) {
        case Mode.Head: {
          const r = this.#readHead(buf, at);
          if (typeof r === 'string') return this.#fail(r);
          at = r;
          break;
        }
        case Mode.Length: {
          const n = Math.min(this.#remaining, buf.length - at);
          this.#remaining -= n;
          const chunk = at === 0 && n === buf.length ? buf : buf.subarray(at, at + n);
          at += n;
          this.#sink!.onBody(chunk);
          if (this.#remaining === 0) this.#end();
          break;
        }
        case Mode.UntilClose:
          this.#sink!.onBody(at === 0 ? buf : buf.subarray(at));
          return undefined;
        case Mode.Chunked: {
          const r = this.#readChunked(buf, at);
          if (typeof r === 'string') return this.#fail(r);
          at = r;
          break;
        }
        case Mode.Done:
          // Pipelining is off: nothing may follow a response until the next request.
          this.trailing = true;
          this.keepAlive = false;
          return undefined;
        case Mode.Failed:
          return 'response already refused';
        case Mode.Detached:
          return undefined;
      }
    }
    return undefined;
  }

  /** The connection ended: ends a body that runs to the close; otherwise the reason to refuse. */
  eof(): string | undefined {
    if (this.#mode === Mode.UntilClose) {
      this.#end();
      return undefined;
    }
    if (this.#mode === Mode.Done || this.#mode === Mode.Failed || this.#mode === Mode.Detached)
      return undefined;
    return this.#fail(
      this.#mode === Mode.Head ? 'connection closed before the response head' : 'connection closed mid-body',
    );
  }

  #fail(reason: string): string {
    this.#mode = Mode.Failed;
    this.keepAlive = false;
    this.#sink = undefined;
    return reason;
  }

  #end(): void {
    const sink = this.#sink;
    if (sink === undefined) return;
    this.#mode = Mode.Done;
    this.#sink = undefined;
    sink.onEnd();
  }

  /** Reads head bytes from `at`; returns where the body starts in `chunk`, or the refusal. */
  #readHead(chunk: Buffer, at: number): number | string {
    const pending = this.#pending;
    this.#pending = undefined;
    // `buf` holds the head from `start`; a head split across reads is joined (rare).
    const buf = pending === undefined ? chunk : Buffer.concat([pending, chunk.subarray(at)]);
    const start = pending === undefined ? at : 0;
    // The terminator may straddle two reads: search from just before the new bytes.
    const from = pending === undefined ? at : Math.max(0, pending.length - 3);
    const end = buf.indexOf('\r\n\r\n', from, 'latin1');
    if (end === -1) {
      if (buf.length - start > MAX_HEAD_BYTES) return 'response head too large';
      if (bareLf(buf, start)) return 'bare LF in the response head';
      this.#pending = Buffer.from(buf.subarray(start));
      return chunk.length;
    }
    if (end + 4 - start > MAX_HEAD_BYTES) return 'response head too large';
    const refused = this.#head1(buf.toString('latin1', start, end + 2));
    if (refused !== undefined) return refused;
    const next = pending === undefined ? end + 4 : end + 4 - pending.length + at;
    // Still reading heads: that was an interim (1xx) response; the next head follows.
    if (this.#mode === Mode.Head && ++this.#interim > MAX_INTERIM) return 'too many interim (1xx) responses';
    return next;
  }

  /** Judges one complete head (status line and header lines, each ending CRLF). */
  #head1(text: string): string | undefined {
    let eol = text.indexOf('\r\n');
    // Status line by hand (a regex match would allocate per response).
    if (!statusLine(text, eol)) return 'invalid status line';
    const minor = text.charCodeAt(7) - 48;
    const status = Number(text.slice(9, 12));
    const raw: string[] = [];
    let contentLength = -1;
    let chunked = false;
    let te = false;
    let close = minor === 0;
    let pos = eol + 2;
    while (pos < text.length) {
      eol = text.indexOf('\r\n', pos);
      const c0 = text.charCodeAt(pos);
      if (c0 === 32 || c0 === 9) return 'obs-fold in the response head';
      const colon = text.indexOf(':', pos);
      if (colon <= pos || colon > eol) return 'header line without a name and colon';
      const name = text.slice(pos, colon);
      if (!TOKEN.test(name)) return 'invalid header name';
      let a = colon + 1;
      let b = eol;
      pos = eol + 2;
      while (a < b && (text.charCodeAt(a) === 32 || text.charCodeAt(a) === 9)) a++;
      while (b > a && (text.charCodeAt(b - 1) === 32 || text.charCodeAt(b - 1) === 9)) b--;
      const value = text.slice(a, b);
      if (BAD_VALUE.test(value)) return 'control character in a header value';
      const n = name.length;
      if (n === 14 || n === 17 || n === 10) {
        const lower = name.toLowerCase();
        if (lower === 'content-length') {
          if (contentLength !== -1) return 'duplicate Content-Length';
          if (!DIGITS.test(value)) return 'invalid Content-Length';
          contentLength = Number(value);
        } else if (lower === 'transfer-encoding') {
          if (te) return 'duplicate Transfer-Encoding';
          te = true;
          if (value.toLowerCase() !== 'chunked') return 'Transfer-Encoding other than chunked';
          chunked = true;
        } else if (lower === 'keep-alive') {
          // The server's idle limit (`timeout=5`): the pool closes an idle connection before it.
          // A server sends the same value on every response: parsed once per connection, not
          // once per response (the match array was 2% of the bytes allocated per request).
          if (value !== this.#keepAliveSeen) {
            this.#keepAliveSeen = value;
            const m = /(?:^|[,;\s])timeout=(\d{1,6})/i.exec(value);
            this.#keepAliveSeenMs = m === null ? -1 : Number(m[1]) * 1000;
          }
          if (this.#keepAliveSeenMs !== -1) this.keepAliveHintMs = this.#keepAliveSeenMs;
        } else if (lower === 'connection' && !isKeepAlive(value)) {
          for (const t of value.toLowerCase().split(',')) {
            // HTTP/1.0 keep-alive is not worth the guesswork: such a connection closes anyway.
            if (t.trim() === 'close') close = true;
          }
        }
      }
      raw.push(name, value);
    }
    if (te && contentLength !== -1) return 'both Content-Length and Transfer-Encoding';
    if (status < 200) {
      if (status === 101) return 'unexpected 101 Switching Protocols';
      return undefined; // interim: stays in Mode.Head
    }
    this.keepAlive = !close;
    const sink = this.#sink!;
    if (this.#head || status === 204 || status === 304) this.#mode = Mode.Done;
    else if (chunked) {
      this.#mode = Mode.Chunked;
      this.#chunk = Chunk.Size;
      this.#remaining = 0;
      this.#sizeDigits = 0;
      this.#lineBytes = 0;
    } else if (contentLength >= 0) {
      this.#mode = contentLength === 0 ? Mode.Done : Mode.Length;
      this.#remaining = contentLength;
    } else {
      this.#mode = Mode.UntilClose;
      this.keepAlive = false;
    }
    sink.onHead(status, raw);
    if (this.#mode === Mode.Done) this.#end();
    return undefined;
  }

  /** Reads chunked framing from `at`; returns where it stopped, or the refusal. */
  #readChunked(buf: Buffer, at: number): number | string {
    let i = at;
    const len = buf.length;
    while (i < len) {
      switch (this.#chunk) {
        case Chunk.Size: {
          const b = buf[i]!;
          const h = hexValue(b);
          if (h >= 0) {
            if (++this.#sizeDigits > 13) return 'chunk size too large';
            this.#remaining = this.#remaining * 16 + h;
            i++;
            break;
          }
          if (this.#sizeDigits === 0) return 'invalid chunk size';
          if (b === 13) this.#chunk = Chunk.SizeLf;
          else if (b === 59 /* ; */) this.#chunk = Chunk.Ext;
          else return 'invalid chunk size';
          i++;
          break;
        }
        case Chunk.Ext: {
          const b = buf[i]!;
          if (++this.#lineBytes > MAX_SIZE_LINE) return 'chunk extension too long';
          if (b === 13) this.#chunk = Chunk.SizeLf;
          else if ((b < 32 && b !== 9) || b === 127) return 'invalid chunk extension';
          i++;
          break;
        }
        case Chunk.SizeLf: {
          if (buf[i] !== 10) return 'bare CR after a chunk size';
          i++;
          this.#sizeDigits = 0;
          this.#lineBytes = 0;
          if (this.#remaining === 0) {
            this.#chunk = Chunk.Trailer;
            this.#trailerBytes = 0;
            this.#lineEmpty = true;
          } else this.#chunk = Chunk.Data;
          break;
        }
        case Chunk.Data: {
          const n = Math.min(this.#remaining, len - i);
          this.#remaining -= n;
          this.#sink!.onBody(buf.subarray(i, i + n));
          if (this.#mode !== Mode.Chunked) return len;
          i += n;
          if (this.#remaining === 0) this.#chunk = Chunk.DataCr;
          break;
        }
        case Chunk.DataCr:
          if (buf[i] !== 13) return 'chunk data longer than its size';
          this.#chunk = Chunk.DataLf;
          i++;
          break;
        case Chunk.DataLf:
          if (buf[i] !== 10) return 'bare CR after chunk data';
          this.#chunk = Chunk.Size;
          i++;
          break;
        case Chunk.Trailer: {
          // Trailer fields are read and dropped (nothing here relays trailers); their lines
          // follow the head's rules on line endings and folding.
          const b = buf[i]!;
          i++;
          if (++this.#trailerBytes > MAX_HEAD_BYTES) return 'trailer section too large';
          if (b === 13) {
            if (i >= len) {
              this.#chunk = Chunk.TrailerLf;
              this.#pendingCrEmpty = this.#lineEmpty;
              return i;
            }
            if (buf[i] !== 10) return 'bare CR in the trailer section';
            i++;
            if (this.#lineEmpty) {
              this.#end();
              return i;
            }
            this.#lineEmpty = true;
            break;
          }
          if (b === 10) return 'bare LF in the trailer section';
          if (this.#lineEmpty && (b === 32 || b === 9)) return 'obs-fold in the trailer section';
          if ((b < 32 && b !== 9) || b === 127) return 'control character in the trailer section';
          this.#lineEmpty = false;
          break;
        }
        case Chunk.TrailerLf: {
          if (buf[i] !== 10) return 'bare CR in the trailer section';
          i++;
          this.#chunk = Chunk.Trailer;
          if (this.#pendingCrEmpty) {
            this.#end();
            return i;
          }
          this.#lineEmpty = true;
        }
      }
    }
    return i;
  }

  #pendingCrEmpty = false;
}

/** True when an LF in `buf` from `from` is not preceded by CR, or a CR by anything but LF next. */
function bareLf(buf: Buffer, from: number): boolean {
  for (let i = buf.indexOf(10, from); i !== -1; i = buf.indexOf(10, i + 1))
    if (i === from || buf[i - 1] !== 13) return true;
  return false;
}

/**
 * The body-reading filter: decides whether a request body is read into memory before the request
 * is admitted (so that retries can replay it) or streamed, and does the reading. Nothing is held
 * meanwhile (no breaker permit, no limiter slot); the read is bounded by the route timeout (408),
 * and a client that leaves stops it through `stopBuffering`. Then it hands the request on with
 * `next()` (admission).
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { IDEMPOTENT, plain } from './http.js';
import type { CompiledRoute } from './route.js';

/** The request state this filter reads and fills in. */
export interface BodyState {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly route: CompiledRoute;
  readonly hasBody: boolean;
  /** The whole request body, read before the first attempt so that retries can replay it. */
  body: Buffer | undefined;
  /**
   * The bytes of a chunked body read before it outgrew the limit: sent ahead of the rest of the
   * request (which stays paused until then) as one stream.
   */
  head: Buffer[] | undefined;
  /** While the body is being read: detaches the listeners and the timer. */
  stopBuffering: (() => void) | undefined;
  /** The next filter (admission). */
  admit(): void;
}

/** True when the request carries a body (a Content-Length other than 0, or Transfer-Encoding). */
export function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return cl !== undefined ? cl !== '0' : req.headers['transfer-encoding'] !== undefined;
}

/** Reads the body first when a retry could replay it, else goes straight on; then `x.admit()`. */
export function readRequestBody(x: BodyState): void {
  if (!x.hasBody) {
    x.admit();
    return;
  }
  const limit = bufferLimit(x);
  if (limit === 0) {
    x.admit();
    return;
  }
  if (x.req.headers['transfer-encoding'] !== undefined) {
    // Node's parser rejects Transfer-Encoding with Content-Length, or not ending in chunked.
    bufferChunked(x, limit);
    return;
  }
  const n = Number(x.req.headers['content-length']);
  if (Number.isSafeInteger(n) && n > 0 && n <= limit) bufferBody(x, n);
  else x.admit();
}

/**
 * The route's `buffer_body_bytes` when the request would be retryable but for its body (a retry
 * policy, and an idempotent method or `retry_non_idempotent`), else 0.
 */
function bufferLimit(x: BodyState): number {
  const r = x.route.retry;
  if (r === undefined) return 0;
  if (!r.nonIdempotent && !IDEMPOTENT.has(x.req.method!)) return 0;
  return r.bufferBodyBytes;
}

/** Reads a body of the announced length into one Buffer. */
function bufferBody(x: BodyState, length: number): void {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  readBody(
    x,
    (chunk, stop) => {
      if (got + chunk.length > length) {
        // Node's parser stops at Content-Length, so this is only a guard.
        stop();
        x.res.shouldKeepAlive = false;
        plain(x.res, 400, 'request body longer than content-length\n');
        return;
      }
      chunk.copy(buf, got);
      got += chunk.length;
    },
    () => {
      if (got !== length) {
        x.res.shouldKeepAlive = false;
        plain(x.res, 400, 'request body shorter than content-length\n');
        return;
      }
      x.body = buf;
      x.admit();
    },
  );
}

/**
 * Listens to the request body with the route timeout armed (408 when the client is too slow):
 * `onData` gets each chunk and the function that stops listening (and the timer); `onEnd` runs
 * after both are stopped. A client abort calls the same stop through `stopBuffering`.
 */
function readBody(x: BodyState, onData: (chunk: Buffer, stop: () => void) => void, onEnd: () => void): void {
  const { req, route } = x;
  const clock = route.cluster.clock;
  const data = (chunk: Buffer) => onData(chunk, stop);
  const end = () => {
    stop();
    onEnd();
  };
  const timer = clock.setTimeout(() => {
    stop();
    route.cluster.counters.responses4xx++;
    x.res.shouldKeepAlive = false;
    plain(x.res, 408, 'request timeout\n', { connection: 'close' });
  }, route.timeoutMs);
  const stop = () => {
    x.stopBuffering = undefined;
    clock.clearTimeout(timer);
    req.off('data', data);
    req.off('end', end);
  };
  x.stopBuffering = stop;
  req.on('data', data);
  req.on('end', end);
}

/**
 * Reads a chunked body (no Content-Length). If it ends within `limit` bytes it becomes one Buffer,
 * replayed on retries; the upstream then gets it with a Content-Length rather than chunked framing
 * (undici writes a Buffer body and its headers in one corked write, the same Buffer serves every
 * attempt, and an upstream that refuses chunked requests accepts it). If it grows past `limit`,
 * reading pauses at once and the request goes on unbuffered and without retries: the bytes read
 * so far, then the rest of the request, as one stream ({@link streamBody}), sent chunked.
 */
function bufferChunked(x: BodyState, limit: number): void {
  const chunks: Buffer[] = [];
  let got = 0;
  readBody(
    x,
    (chunk, stop) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got <= limit) return;
      // Pause before the listener goes: a flowing stream without a 'data' listener drops bytes.
      x.req.pause();
      stop();
      x.head = chunks;
      x.admit();
    },
    () => {
      x.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, got);
      x.admit();
    },
  );
}

/**
 * The request body as a stream for undici: the bytes {@link bufferChunked} read (if any), then the
 * rest of the request. A pass-through so that undici destroying the body on an upstream error does
 * not take the client's socket with it (the client still gets its 502/503). `pipe` resumes the
 * paused request, or waits for 'drain' when the head already fills the pass-through, so bytes keep
 * their order and none is lost.
 */
export function streamBody(x: BodyState): PassThrough {
  const pt = new PassThrough();
  const head = x.head;
  if (head !== undefined) {
    x.head = undefined;
    for (const c of head) pt.write(c);
  }
  return x.req.pipe(pt);
}

/**
 * A request answered locally after a chunked body was paused mid-read: lets the rest flow away, as
 * Node does for a body nobody read, so the connection can serve the next request.
 */
export function discardUnsentBody(x: BodyState): void {
  if (x.head === undefined) return;
  x.head = undefined;
  x.req.resume();
}

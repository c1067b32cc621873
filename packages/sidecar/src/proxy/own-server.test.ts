/**
 * The own server's head parser (`http_server: own`, own-server.ts) against node's http server
 * (llhttp, as the listener configures it): a seeded differential property test generates request
 * heads, valid and broken (methods, targets, versions, separators, header names and values, line
 * endings, obs-fold, framing headers), and checks that every head the own parser accepts is one
 * node's server accepts with the same method, target, version, headers (the `headers` object and
 * `rawHeaders`) and keep-alive. The own parser may refuse more (it hands those to node's server),
 * never accept what llhttp refuses. Re-run a base: OWN_FUZZ_BASE=<seed> OWN_FUZZ_CASES=<n>.
 *
 * Plus the llhttp check that gives bytes pipelined behind a request being answered node's
 * treatment (`llhttpRefuses`).
 * @module
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { seededRandom } from 'tripswitch/chaos';
import { realClock } from '../clock.js';
import { resolveListener } from '../config/resolve.js';
import { llhttpJudge } from './llhttp.js';
import { OwnServer, parseHead } from './own-server.js';
import { until } from './test-helpers.js';

interface Verdict {
  ok: boolean;
  method?: string;
  url?: string;
  version?: string;
  headers?: Record<string, string | string[] | undefined>;
  raw?: string[];
  keepAlive?: boolean;
  reason?: string;
}

const MAX_HEADER_BYTES = 16_384;

/** The own parser's verdict on the bytes (as `OwnConnection` reads them: up to the first empty line). */
function ours(bytes: Buffer): Verdict {
  const end = bytes.indexOf('\r\n\r\n', 0, 'latin1');
  if (end === -1) return { ok: false, reason: 'no end of head' };
  if (end + 4 > MAX_HEADER_BYTES) return { ok: false, reason: 'too large' };
  const p = parseHead(bytes.toString('latin1', 0, end + 2), undefined as unknown as Socket);
  if (p === undefined) return { ok: false, reason: 'not the fast shape' };
  return {
    ok: true,
    method: p.req.method,
    url: p.req.url,
    version: p.req.httpVersion,
    headers: { ...p.req.headers },
    raw: p.req.rawHeaders,
    keepAlive: !p.close,
  };
}

/** Node's http server (options as the listener's) reading the bytes from an in-memory connection. */
function nodeServer(): (bytes: Buffer) => Promise<Verdict> {
  const waiting = new Map<Duplex, (v: Verdict) => void>();
  const server = createServer(
    { maxHeaderSize: MAX_HEADER_BYTES, requireHostHeader: false },
    (req: IncomingMessage, res: ServerResponse) => {
      waiting.get(req.socket as unknown as Duplex)?.({
        ok: true,
        method: req.method,
        url: req.url,
        version: req.httpVersion,
        headers: { ...req.headers },
        raw: req.rawHeaders,
        keepAlive: res.shouldKeepAlive,
      });
      req.socket.destroy();
    },
  );
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    waiting.get(socket)?.({ ok: false, reason: err.code ?? err.message });
    socket.destroy();
  });
  // Upgrade and CONNECT requests are heads llhttp accepted.
  const special = (req: IncomingMessage, socket: Duplex) =>
    waiting.get(socket)?.({
      ok: true,
      method: req.method,
      url: req.url,
      version: req.httpVersion,
      headers: { ...req.headers },
      raw: req.rawHeaders,
    });
  server.on('upgrade', special);
  server.on('connect', special);
  return (bytes) =>
    new Promise<Verdict>((resolve) => {
      const d = new Duplex({
        read() {},
        write(_c, _e, cb) {
          cb();
        },
      });
      d.on('error', () => {});
      const done = (v: Verdict) => {
        if (!waiting.delete(d)) return;
        resolve(v);
      };
      waiting.set(d, done);
      server.emit('connection', d);
      d.push(bytes);
      // A head llhttp still waits on (say a bare-LF line the own parser read as the end): after
      // the bytes are read, end of input; no answer by then is "not a request".
      setImmediate(() => {
        d.push(null);
        setImmediate(() => done({ ok: false, reason: 'incomplete' }));
      });
    });
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

const METHODS = [
  'GET',
  'GET',
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'OPTIONS',
  'PATCH',
  'TRACE',
  'CONNECT',
  'PURGE',
  'get',
  'GE T',
  'G\x00T',
  '',
  'GETS',
  'M-SEARCH',
] as const;
const TARGETS = [
  '/',
  '/a/b?c=d&e',
  '/%20x',
  '//x',
  '/a#frag',
  '*',
  'http://h/x',
  '/a b',
  '/\x7f',
  '/\xe9',
  '/\x01',
  '',
  'x',
  '/a\tb',
  "/~!$&'()*+,;=:@",
  '/a"b',
  '/{}|\\^`',
] as const;
const VERSIONS = [
  'HTTP/1.1',
  'HTTP/1.1',
  'HTTP/1.1',
  'HTTP/1.0',
  'HTTP/2.0',
  'HTTP/1.12',
  'http/1.1',
  'HTTP/1.1 ',
  'HTTP/ 1.1',
  'HTTP/1.',
  'HTTP/0.9',
  'HTTP/9.9',
  'HTTP/1.1\x00',
] as const;
const NAMES = [
  'Host',
  'host',
  'HOST',
  'X-A',
  'x-a',
  'Cookie',
  'cookie',
  'Set-Cookie',
  'User-Agent',
  'Accept',
  'Connection',
  'Content-Length',
  'Transfer-Encoding',
  'Upgrade',
  'Expect',
  'Keep-Alive',
  'Proxy-Connection',
  'Authorization',
  'X-Forwarded-For',
  'Bad Name',
  'X(',
  'X-\x00',
  '',
  'X\xe9',
  'X-A ',
  ' X-A',
  'Content-Length\t',
  'Referer',
  'Max-Forwards',
  'Date',
] as const;
const VALUES = [
  'x',
  'x',
  ' x ',
  'a, b',
  '\tv\t',
  '',
  ' ',
  'v\x01',
  'v\x7f',
  'v\xe9\xff',
  'close',
  'keep-alive',
  'Close, foo',
  'upgrade',
  'websocket',
  '100-continue',
  '0',
  '5',
  'chunked',
  'a=1; b=2',
  'v\x00',
  'x\ry',
  'x y  z',
  'CLOSE',
  ' close ',
  'keep-alive, close',
] as const;

/** One generated head (mostly of the fast shape, with a broken part now and then). */
function generate(r: () => number): Buffer {
  const chance = (p: number) => r() < p;
  const sp = () => (chance(0.98) ? ' ' : pick(r, ['  ', '\t', '']));
  const eol = () => (chance(0.98) ? '\r\n' : pick(r, ['\n', '\r', '\r\r\n', ' \r\n']));
  let head = `${chance(0.8) ? 'GET' : pick(r, METHODS)}${sp()}${chance(0.6) ? `/p/${Math.floor(r() * 1000)}` : pick(r, TARGETS)}${sp()}${chance(0.85) ? 'HTTP/1.1' : pick(r, VERSIONS)}${eol()}`;
  const n = Math.floor(r() * 7);
  for (let i = 0; i < n; i++) {
    const name = chance(0.85) ? pick(r, NAMES.slice(0, 11)) : pick(r, NAMES);
    const colon = chance(0.98) ? ':' : pick(r, [' :', '', '::']);
    const value = chance(0.8) ? pick(r, VALUES.slice(0, 5)) : pick(r, VALUES);
    head += `${name}${colon}${chance(0.9) ? ' ' : ''}${value}${eol()}`;
    // obs-fold: a continuation line.
    if (chance(0.04)) head += `${pick(r, [' ', '\t'])}folded${eol()}`;
  }
  head += chance(0.97) ? '\r\n' : pick(r, ['\n', '\r\n\r\n', '']);
  return Buffer.from(head, 'latin1');
}

test('seeded property test: every head the own parser accepts, node accepts the same (never more lenient)', async () => {
  const base = Number(process.env.OWN_FUZZ_BASE ?? 20_261_201);
  const CASES = Number(process.env.OWN_FUZZ_CASES ?? 3000);
  console.log(`own-server property test: OWN_FUZZ_BASE=${base}, ${CASES} cases`);
  const node = nodeServer();
  let accepted = 0;
  let refusedByBoth = 0;
  let stricter = 0;
  for (let i = 0; i < CASES; i++) {
    const seed = base + i;
    const bytes = generate(seededRandom(seed));
    const o = ours(bytes);
    const n = await node(bytes);
    const show = `seed ${seed} (OWN_FUZZ_BASE=${seed} OWN_FUZZ_CASES=1): ${JSON.stringify(bytes.toString('latin1'))}\nours ${JSON.stringify(o)}\nnode ${JSON.stringify(n)}`;
    if (o.ok) {
      accepted++;
      assert.deepEqual(n, o, `accepted differently (or what llhttp refuses): ${show}`);
    } else if (n.ok) stricter++;
    else refusedByBoth++;
  }
  console.log(
    `own-server property test: ${accepted} accepted by both, ${stricter} handed to node (node accepts), ${refusedByBoth} refused by both`,
  );
  // Not vacuous: the generator reaches all three outcomes.
  assert.ok(accepted > CASES / 4, `only ${accepted} accepted`);
  assert.ok(stricter > CASES / 50, `only ${stricter} handed to node`);
  assert.ok(refusedByBoth > CASES / 50, `only ${refusedByBoth} refused by both`);
});

test('llhttpJudge: bytes node would fail behind a request (what makes the own server close after the answer owed)', () => {
  const B = (s: string) => Buffer.from(s, 'latin1');
  const llhttpRefuses = (b: Buffer, max: number) => llhttpJudge(b, max).refused;
  assert.deepEqual(llhttpJudge(B('POST /p HTTP/1.1\r\nContent-Length: 1\r\n\r\nzNOT HTTP\r\n\r\n'), 1024), {
    refused: true,
    complete: 1,
  });
  assert.equal(llhttpRefuses(B('NOT HTTP\r\n\r\n'), MAX_HEADER_BYTES), true);
  assert.equal(llhttpRefuses(B('GET / HTTP/1.1\r\nA\x00: b\r\n\r\n'), MAX_HEADER_BYTES), true);
  assert.equal(llhttpRefuses(B(`GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}`), 1024), true);
  // Valid, or a valid beginning: node would read on.
  assert.equal(llhttpRefuses(B('GE'), MAX_HEADER_BYTES), false);
  assert.equal(
    llhttpRefuses(
      B('GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nab'),
      MAX_HEADER_BYTES,
    ),
    false,
  );
  // A version node's parser takes (the proxy answers 505 itself).
  assert.equal(llhttpRefuses(B('GET / HTTP/2.0\r\n\r\n'), MAX_HEADER_BYTES), false);
});

test('idle and header timeouts count from when the connection went idle or the head began, not from the sweep clock', async (t) => {
  // The sweep clock (`OwnServer.now`) is as old as the last sweep (up to 1 s by default, more on a
  // busy event loop): stamped from it, an idle connection was closed up to that much before
  // idle_timeout_ms (while its answer advertised Keep-Alive: timeout=idle_timeout_ms / 1000, so a
  // client could send on a connection being closed), and a head got 408 that much early.
  const server = createServer();
  const l = resolveListener({ port: 0, routes: [] }, new Map());
  const own = new OwnServer(server, { config: () => l, serve: (_req, res) => res.end('ok') });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const c = connect((server.address() as AddressInfo).port, '127.0.0.1');
  t.after(() => {
    c.destroy();
    own.closeAll();
    server.close();
  });
  let got = '';
  c.on('data', (b: Buffer) => {
    got += b.toString('latin1');
  });
  await until(() => own.connections.size === 1);
  const [conn] = own.connections;
  // As if the sweep had last run a minute ago.
  own.now -= 60_000;
  const served = realClock.now();
  c.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  await until(() => got.endsWith('\r\n\r\nok'));
  assert.ok(conn!.idle);
  assert.ok(conn!.idleSince >= served, `idle since ${served - conn!.idleSince} ms before the answer`);
  own.now -= 60_000;
  const began = realClock.now();
  c.write('GET /next HTTP/1.1\r\n');
  await until(() => conn!.partial);
  assert.ok(conn!.idleSince >= began, `head began ${began - conn!.idleSince} ms before its bytes`);
});

test('requests pipelined behind an answer owed are each read a bounded number of times, not once per request ahead', async (t) => {
  // Each request behind the answer owed was read again (its head parsed) for every answer ahead
  // of it, and whenever more bytes arrived: n requests pipelined at once cost n^2 / 2 head parses
  // (400: 80,000), a CPU lever for any client (56 KB in 28-byte writes: 5.7 s of CPU, node's
  // server 0.06 s). A head is parsed by taking its bytes as latin1 text: counted here.
  const server = createServer();
  const l = resolveListener({ port: 0, routes: [] }, new Map());
  let held: ServerResponse | undefined;
  const own = new OwnServer(server, {
    config: () => l,
    serve: (_req, res) => {
      if (held === undefined) held = res;
      else res.end('ok');
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const c = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const text = Buffer.prototype.toString;
  const restore = () => {
    Buffer.prototype.toString = text;
  };
  t.after(() => {
    restore();
    c.destroy();
    own.closeAll();
    server.close();
  });
  let answers = 0;
  c.on('data', (b: Buffer) => {
    answers += b.toString().split('HTTP/1.1 200 OK\r\n').length - 1;
  });
  c.write('GET /held HTTP/1.1\r\nHost: a\r\n\r\n');
  await until(() => held !== undefined);
  let reads = 0;
  Buffer.prototype.toString = function (this: Buffer, ...a: unknown[]) {
    if (a[0] === 'latin1') reads++;
    return (text as (...x: unknown[]) => string).apply(this, a);
  } as typeof text;
  const n = 400;
  const head = 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n';
  // Half at once, half in pieces of 10 requests and a bit (each piece ends inside a head).
  c.write(head.repeat(n / 2));
  const rest = head.repeat(n / 2);
  for (let i = 0; i < rest.length; i += 10 * head.length + 7)
    c.write(rest.slice(i, i + 10 * head.length + 7));
  // However much of it has arrived while the answer is owed (the bound holds for any split).
  held!.end('held');
  await until(() => answers === n + 1, 10_000);
  restore();
  assert.ok(reads <= 3 * n, `${reads} head reads for ${n} requests`);
});

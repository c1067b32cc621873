/**
 * The fast upstream pool (h1-pool.ts) through the proxy, against a raw TCP upstream that answers
 * canned bytes: keep-alive reuse, the request head as undici wrote it, and every response whose
 * framing is ambiguous answered 502 with its connection closed (the next request arrives on a new
 * connection), counted as a reset against the breaker and the host.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Sidecar } from './server.js';
import { proxy, raw, refusedPort, send, until } from './test-helpers.js';

interface Seen {
  conn: number;
  head: string;
}

/** A raw upstream: each request head is recorded with its connection number; `answer` replies. */
async function rawUpstream(answer: (path: string, s: Socket) => void) {
  const seen: Seen[] = [];
  const closed = new Set<number>();
  let conns = 0;
  const server: Server = createServer((s) => {
    const id = ++conns;
    let buf = '';
    s.on('error', () => {});
    s.on('close', () => closed.add(id));
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        const cl = /\r\ncontent-length: (\d+)/i.exec(head);
        const len = cl ? Number(cl[1]) : 0;
        if (buf.length < end + 4 + len) return;
        buf = buf.slice(end + 4 + len);
        seen.push({ conn: id, head });
        answer(head.split(' ')[1]!, s);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    seen,
    closed,
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
const BAD: Record<string, string> = {
  '/cl-te': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  '/dup-cl': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!',
  '/obs-fold': 'HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok',
  '/bare-lf': 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok',
  '/oversize': `HTTP/1.1 200 OK\r\nX-Big: ${'x'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\nok`,
  '/switch': 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n',
  '/te-gzip': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok',
};
// Framing refused after a valid head: the head may already be relayed, so the client's response is
// cut (never completed) instead of a 502.
const BAD_BODY: Record<string, string> = {
  '/bad-chunk': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n',
  '/long-chunk': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nok\r\n0\r\n\r\n',
};

describe('fast upstream pool', () => {
  let u: Awaited<ReturnType<typeof rawUpstream>>;
  let p: { sidecar: Sidecar; port: number };
  before(async () => {
    u = await rawUpstream((path, s) => {
      if (path in BAD) s.write(BAD[path]!);
      else if (path in BAD_BODY) s.write(BAD_BODY[path]!);
      else if (path === '/interim')
        s.write(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n${OK}`);
      else if (path === '/close')
        s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok');
      else if (path === '/mid-body') s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok');
      else if (path === '/to-close') s.end('HTTP/1.1 200 OK\r\n\r\nall of it');
      else if (path === '/head') s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n');
      else if (path === '/silent') return;
      else if (path === '/hint')
        s.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok');
      else if (path === '/stall-body') s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok');
      else if (path === '/slow-body') {
        // Pieces 200 ms apart (each under the 300 ms route timeout, 800 ms in all).
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n');
        let n = 0;
        const t = setInterval(() => {
          s.write('x');
          if (++n === 5) clearInterval(t);
        }, 200);
      } else s.write(OK);
    });
    p = await proxy([{ name: 'u', hosts: [u.host] }], [{ prefix: '/', cluster: 'u', timeout_ms: 300 }]);
  });
  after(async () => {
    await p.sidecar.shutdown();
    await u.close();
  });

  test('keep-alive: sequential requests share one upstream connection, on the fast path', async () => {
    const before = u.seen.length;
    for (let i = 0; i < 3; i++) assert.equal((await send(p.port, '/a')).body.toString(), 'ok');
    const conns = new Set(u.seen.slice(before).map((s) => s.conn));
    assert.equal(conns.size, 1);
    assert.ok(p.sidecar.clusters.get('u')!.hosts[0]!.pool.fastRequests >= 3);
  });

  test('the request head as undici wrote it: host first, keep-alive, hop-by-hop gone, X-Forwarded-*', async () => {
    await send(p.port, '/h?q=1', { headers: { 'x-a': 'b', connection: 'x-gone', 'x-gone': '1' } });
    const head = u.seen.at(-1)!.head.split('\r\n');
    assert.equal(head[0], 'GET /h?q=1 HTTP/1.1');
    assert.match(head[1]!, /^host: 127\.0\.0\.1:\d+$/);
    assert.equal(head[2], 'connection: keep-alive');
    assert.ok(head.includes('x-a: b'));
    assert.ok(!head.some((l) => /^x-gone/i.test(l)));
    assert.ok(head.some((l) => l.startsWith('x-forwarded-for: ')));
  });

  test('bodies: a POST without one says content-length: 0; a small body goes with its length', async () => {
    await send(p.port, '/p', { method: 'POST', headers: { 'content-length': '0' } });
    assert.ok(u.seen.at(-1)!.head.includes('\r\ncontent-length: 0'));
    const r = await send(p.port, '/p', { method: 'PUT', body: 'hello' });
    assert.equal(r.status, 200);
  });

  for (const path of Object.keys(BAD))
    test(`ambiguous framing ${path}: 502, counted as a reset, and the connection is not reused`, async () => {
      const c = p.sidecar.clusters.get('u')!;
      const resets = c.counters.resets;
      const r = await send(p.port, path);
      assert.equal(r.status, 502);
      assert.equal(c.counters.resets, resets + 1);
      const bad = u.seen.at(-1)!.conn;
      await send(p.port, '/after');
      assert.notEqual(u.seen.at(-1)!.conn, bad, 'the next request went on the refused connection');
    });

  for (const path of Object.keys(BAD_BODY))
    test(`bad framing inside the body ${path}: the response is cut, never completed; not reused`, async () => {
      const c = p.sidecar.clusters.get('u')!;
      const resets = c.counters.resets;
      const r = await raw(p.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal(r.closed, true);
      assert.ok(!r.data.endsWith('\r\n0\r\n\r\n'), r.data);
      assert.equal(c.counters.resets, resets + 1);
      const bad = u.seen.at(-1)!.conn;
      await send(p.port, '/after');
      assert.notEqual(u.seen.at(-1)!.conn, bad);
    });

  test('interim responses are skipped; the final answer is relayed', async () => {
    const r = await send(p.port, '/interim');
    assert.deepEqual([r.status, r.body.toString()], [200, 'ok']);
  });

  test('Connection: close from the upstream: relayed, then a new connection', async () => {
    assert.equal((await send(p.port, '/close')).status, 200);
    const was = u.seen.at(-1)!.conn;
    await send(p.port, '/after');
    assert.notEqual(u.seen.at(-1)!.conn, was);
  });

  test('a body that runs to the close is relayed whole; the connection is not reused', async () => {
    const r = await send(p.port, '/to-close');
    assert.deepEqual([r.status, r.body.toString()], [200, 'all of it']);
  });

  test('the upstream closing mid-body: the client connection is cut, never a short 200', async () => {
    const r = await raw(p.port, 'GET /mid-body HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(r.closed, true);
    assert.match(r.data, /^HTTP\/1\.1 200/);
    assert.ok(!r.data.endsWith('\r\n0\r\n\r\n'), 'a chunked response must not be completed');
  });

  test('HEAD: no body read whatever Content-Length says, and its connection is closed after', async () => {
    const r = await send(p.port, '/head', { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.match(u.seen.at(-1)!.head, /\r\nconnection: close/);
  });

  test('Keep-Alive: timeout=1 from the upstream: the idle connection is closed before that', async () => {
    await send(p.port, '/hint');
    const conn = u.seen.at(-1)!.conn;
    await until(() => u.closed.has(conn), 3000);
  });

  test('the route timeout counts from the last read: a body in slow pieces arrives whole', async () => {
    const r = await send(p.port, '/slow-body');
    assert.deepEqual([r.status, r.body.toString()], [200, 'xxxxx']);
  });

  test('a body that stops past the route timeout: cut, counted as a timeout, connection closed', async () => {
    const c = p.sidecar.clusters.get('u')!;
    const t = c.counters.timeouts;
    const r = await raw(p.port, 'GET /stall-body HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(r.closed, true);
    assert.equal(c.counters.timeouts, t + 1);
    const conn = u.seen.at(-1)!.conn;
    await until(() => u.closed.has(conn), 3000);
  });

  test('no answer within the route timeout: 504', async () => {
    const c = p.sidecar.clusters.get('u')!;
    const t = c.counters.timeouts;
    assert.equal((await send(p.port, '/silent')).status, 504);
    assert.equal(c.counters.timeouts, t + 1);
  });
});

test('a refused connection is a connect failure (503) on the fast path', async () => {
  const dead = await refusedPort();
  const p = await proxy([{ name: 'u', hosts: [dead.host] }], [{ prefix: '/', cluster: 'u' }]);
  try {
    assert.equal((await send(p.port, '/')).status, 503);
    assert.equal(p.sidecar.clusters.get('u')!.counters.connectFailures, 1);
  } finally {
    await p.sidecar.shutdown();
    await dead.close();
  }
});

test('a response that ends while its reader paused the connection leaves it reading for the next request', async () => {
  const { Pool } = await import('undici');
  const { UpstreamPool } = await import('./h1-pool.js');
  const u = await rawUpstream((_path, s) =>
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'),
  );
  const origin = `http://${u.host}`;
  const pool = new UpstreamPool(origin, new Pool(origin), {
    connections: 1,
    connectTimeoutMs: 1000,
    idleTimeoutMs: 10_000,
  });
  // A handler that pauses on every chunk (a client that is not reading) and never resumes.
  const get = () =>
    new Promise<string>((resolve) => {
      let status = 0;
      pool.dispatch(
        { path: '/', method: 'GET', headers: ['host', 'x'], headersTimeout: 1000, bodyTimeout: 1000 },
        {
          onResponseStart: (_c, s) => {
            status = s;
          },
          onResponseData: (c) => c.pause(),
          onResponseEnd: () => resolve(`end ${status}`),
          onResponseError: (_c, err) => resolve(`error ${(err as NodeJS.ErrnoException).code}`),
        },
      );
    });
  try {
    assert.equal(await get(), 'end 200');
    assert.equal(await get(), 'end 200');
    assert.equal(new Set(u.seen.map((s) => s.conn)).size, 1);
  } finally {
    await pool.destroy();
    await u.close();
  }
});

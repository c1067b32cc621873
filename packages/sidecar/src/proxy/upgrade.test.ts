import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import type { Duplex } from 'node:stream';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { proxy, raw, refusedPort, testCerts, until } from './test-helpers.js';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** What a raw upstream saw: each connection's request head and socket. */
interface RawUpstream {
  server: Server;
  host: string;
  heads: string[];
  sockets: Socket[];
  closed: number;
  close(): Promise<void>;
}

/**
 * A raw TCP upstream: reads a request head, then `answer` decides. The default answers 101 plus
 * `hello` and echoes every later byte.
 */
async function rawUpstream(answer?: (s: Socket, head: string) => void): Promise<RawUpstream> {
  const u: RawUpstream = {
    server: undefined as unknown as Server,
    host: '',
    heads: [],
    sockets: [],
    closed: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of u.sockets) s.destroy();
        u.server.close(() => resolve());
      }),
  };
  u.server = createServer((s) => {
    u.sockets.push(s);
    s.on('error', () => {});
    s.on('close', () => u.closed++);
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      const head = buf.subarray(0, end).toString('latin1');
      u.heads.push(head);
      const rest = buf.subarray(end + 4);
      if (answer) {
        answer(s, head);
        return;
      }
      s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello');
      if (rest.length > 0) s.write(rest);
      s.pipe(s);
    };
    s.on('data', onData);
  });
  await new Promise<void>((r) => u.server.listen(0, '127.0.0.1', r));
  u.host = `127.0.0.1:${(u.server.address() as AddressInfo).port}`;
  return u;
}

const UPGRADE = 'GET /chat HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n';

/** A raw client that sends an upgrade request and resolves with the response head and what follows. */
function upgradeClient(
  port: number,
  extra = '',
  head?: Buffer,
): Promise<{ socket: Socket; head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      resolve({ socket, head: buf.subarray(0, end).toString('latin1'), rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.write(`${UPGRADE}${extra}\r\n`);
    if (head) socket.write(head);
  });
}

/** Reads exactly `n` bytes (after `already`) from a paused socket. */
function readBytes(socket: Socket, n: number, already: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks = [already];
    let got = already.length;
    const done = () => {
      socket.off('data', onData);
      socket.pause();
      resolve(Buffer.concat(chunks));
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= n) done();
    };
    if (got >= n) {
      resolve(Buffer.concat(chunks));
      return;
    }
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed after ${got} of ${n} bytes`)));
    socket.resume();
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('upgrade (WebSocket) tunnels', () => {
  test('101 is relayed and 1 MB flows byte-exact both ways, with head bytes on both sides; X-Forwarded-* added', async () => {
    const u = await rawUpstream();
    const p = await proxy([{ name: 'ws', hosts: [u.host] }], [{ prefix: '/', cluster: 'ws' }]);
    cleanups.push(() => p.sidecar.shutdown(200), u.close);
    const early = Buffer.from('early-bytes');
    const c = await upgradeClient(
      p.port,
      'X-Forwarded-For: 10.0.0.1\r\nProxy-Authorization: Basic abc\r\nKeep-Alive: timeout=5\r\nSec-WebSocket-Key: abc==\r\n',
      early,
    );
    assert.match(c.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(c.head, /\r\nUpgrade: websocket/);
    assert.match(c.head, /\r\nConnection: Upgrade/);
    // The upstream's bytes right after its 101 head, then the client's early bytes echoed.
    const first = await readBytes(c.socket, 5 + early.length, c.rest);
    assert.equal(first.toString(), `hello${early}`);
    const upHead = u.heads[0]!.toLowerCase();
    assert.match(upHead, /^get \/chat http\/1\.1\r\n/);
    assert.match(upHead, /\r\nhost: ws\.example\r\n/);
    assert.match(upHead, /\r\nconnection: upgrade\r\n/);
    assert.match(upHead, /\r\nupgrade: websocket(\r\n|$)/);
    assert.match(upHead, /\r\nsec-websocket-key: abc==\r\n/);
    assert.match(upHead, /\r\nx-forwarded-for: 10\.0\.0\.1, 127\.0\.0\.1\r\n/);
    assert.match(upHead, /\r\nx-forwarded-proto: http\r\n/);
    assert.doesNotMatch(upHead, /proxy-authorization|keep-alive/);
    const payload = randomBytes(1 << 20);
    const back = readBytes(c.socket, payload.length);
    c.socket.write(payload);
    assert.equal(sha(await back), sha(payload));
    const cluster = p.sidecar.clusters.get('ws')!;
    assert.equal(cluster.limits.default.active, 1);
    assert.equal(cluster.counters.responses2xx, 1);
    c.socket.destroy();
    await until(() => u.closed === 1 && cluster.limits.default.active === 0);
    assert.equal(cluster.hosts[0]!.active, 0);
    assert.equal(p.sidecar.inflight, 0);
  });

  test('the upstream closing its side closes the client', async () => {
    const u = await rawUpstream((s) => {
      s.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nbye');
    });
    const p = await proxy([{ name: 'ws', hosts: [u.host] }], [{ prefix: '/', cluster: 'ws' }]);
    cleanups.push(() => p.sidecar.shutdown(200), u.close);
    const c = await upgradeClient(p.port);
    assert.match(c.head, /^HTTP\/1\.1 101 /);
    const rest: Buffer[] = [c.rest];
    c.socket.on('data', (d: Buffer) => rest.push(d));
    c.socket.resume();
    await new Promise((r) => c.socket.once('close', r));
    assert.equal(Buffer.concat(rest).toString(), 'bye');
    await until(() => p.sidecar.clusters.get('ws')!.limits.default.active === 0);
  });

  test('a non-101 answer is relayed as is and the connection closed', async () => {
    const u = await rawUpstream((s) => {
      s.write(
        'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nX-Why: no-ws\r\n\r\nnot here :-(',
      );
    });
    const p = await proxy([{ name: 'ws', hosts: [u.host] }], [{ prefix: '/', cluster: 'ws' }]);
    cleanups.push(() => p.sidecar.shutdown(200), u.close);
    const r = await raw(p.port, `${UPGRADE}\r\n`);
    assert.ok(r.closed);
    assert.match(r.data, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(r.data, /\r\nX-Why: no-ws\r\n/);
    assert.match(r.data, /\r\nconnection: close\r\n/);
    assert.ok(r.data.endsWith('\r\n\r\nnot here :-('));
    const cluster = p.sidecar.clusters.get('ws')!;
    assert.equal(cluster.counters.responses4xx, 1);
    await until(() => cluster.limits.default.active === 0 && u.closed === 1);
    assert.equal(cluster.breaker!.state, 'closed');
  });

  test('an upgrade request with a body is refused 400 without touching the upstream (its content would be read as the new protocol)', async () => {
    const u = await rawUpstream();
    const p = await proxy([{ name: 'ws', hosts: [u.host] }], [{ prefix: '/', cluster: 'ws' }]);
    cleanups.push(() => p.sidecar.shutdown(200), u.close);
    // A length no body follows (the fuzz case that held a tunnel, a limiter slot and the in-flight
    // count until the route timeout), a short body, and chunked framing.
    for (const framing of [
      'Content-Length: 4294967296\r\n\r\n',
      'Content-Length: 5\r\n\r\nhello',
      'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    ]) {
      const r = await raw(p.port, `${UPGRADE}${framing}`);
      assert.ok(r.closed, framing);
      assert.match(r.data, /^HTTP\/1\.1 400 Bad Request\r\n/, framing);
      assert.match(r.data, /\r\nconnection: close\r\n/, framing);
    }
    // A zero length is no body: tunnelled as usual.
    const c = await upgradeClient(p.port, 'Content-Length: 0\r\n');
    assert.match(c.head, /^HTTP\/1\.1 101 /);
    c.socket.destroy();
    const cluster = p.sidecar.clusters.get('ws')!;
    await until(() => p.sidecar.inflight === 0 && cluster.limits.default.active === 0);
    assert.equal(u.heads.length, 1);
    assert.equal(p.sidecar.refused, 3);
    assert.equal(cluster.hosts[0]!.active, 0);
  });

  test('an isolated breaker answers 503 without touching the upstream', async () => {
    const u = await rawUpstream();
    const p = await proxy([{ name: 'ws', hosts: [u.host] }], [{ prefix: '/', cluster: 'ws' }]);
    cleanups.push(() => p.sidecar.shutdown(200), u.close);
    const cluster = p.sidecar.clusters.get('ws')!;
    cluster.breaker!.isolate();
    const r = await raw(p.port, `${UPGRADE}\r\n`);
    assert.ok(r.closed);
    assert.match(r.data, /^HTTP\/1\.1 503 /);
    assert.match(r.data, /\r\nx-tripswitch-circuit-open: true\r\n/);
    assert.equal(u.heads.length, 0);
    assert.equal(u.sockets.length, 0);
    assert.equal(cluster.counters.circuitOpen, 1);
    assert.equal(cluster.limits.default.active, 0);
  });

  test('upstream down -> 502, counted as a breaker failure; no answer in time -> 504', async () => {
    const dead = await refusedPort();
    cleanups.push(dead.close);
    const silent = await rawUpstream(() => {});
    const p = await proxy(
      [
        {
          name: 'down',
          hosts: [dead.host],
          breaker: { trip: { kind: 'consecutive', threshold: 1 }, openDuration: 60_000 },
        },
        { name: 'slow', hosts: [silent.host] },
      ],
      [
        { prefix: '/slow', cluster: 'slow', timeout_ms: 150 },
        { prefix: '/', cluster: 'down' },
      ],
    );
    cleanups.push(() => p.sidecar.shutdown(200), silent.close);
    const r = await raw(p.port, `${UPGRADE}\r\n`);
    assert.ok(r.closed);
    assert.match(r.data, /^HTTP\/1\.1 502 /);
    assert.match(r.data, /\r\nx-tripswitch-upstream-error: connect-failure\r\n/);
    const down = p.sidecar.clusters.get('down')!;
    assert.equal(down.counters.connectFailures, 1);
    assert.equal(down.breaker!.state, 'open');
    assert.equal(down.limits.default.active, 0);
    // The breaker is open now: the next upgrade is refused locally.
    assert.match((await raw(p.port, `${UPGRADE}\r\n`)).data, /^HTTP\/1\.1 503 /);
    const t = await raw(p.port, `${UPGRADE.replace('/chat', '/slow')}\r\n`);
    assert.ok(t.closed);
    assert.match(t.data, /^HTTP\/1\.1 504 /);
    const slow = p.sidecar.clusters.get('slow')!;
    assert.equal(slow.counters.timeouts, 1);
    await until(() => silent.closed === 1 && slow.limits.default.active === 0);
  });

  test('max_requests=1: a second upgrade is refused while the first is open and accepted after it closes', async () => {
    const u = await rawUpstream();
    const p = await proxy(
      [
        {
          name: 'ws',
          hosts: [u.host],
          circuit_breakers: { thresholds: [{ priority: 'default', max_requests: 1 }] },
        },
      ],
      [{ prefix: '/', cluster: 'ws' }],
    );
    cleanups.push(() => p.sidecar.shutdown(200), u.close);
    const lim = p.sidecar.clusters.get('ws')!.limits.default;
    const first = await upgradeClient(p.port);
    assert.match(first.head, /^HTTP\/1\.1 101 /);
    const second = await raw(p.port, `${UPGRADE}\r\n`);
    assert.match(second.data, /^HTTP\/1\.1 503 /);
    assert.match(second.data, /\r\nx-tripswitch-overloaded: true\r\n/);
    assert.equal(u.heads.length, 1);
    // The client goes away: the upstream socket is torn down and the slot freed (once).
    first.socket.destroy();
    await until(() => u.closed === 1 && lim.active === 0);
    const third = await upgradeClient(p.port);
    assert.match(third.head, /^HTTP\/1\.1 101 /);
    assert.equal(lim.active, 1);
    third.socket.end();
    await until(() => u.closed === 2 && lim.active === 0);
  });

  test('no route -> 404; CONNECT -> 501; an Upgrade on POST -> 405; all close', async () => {
    const u = await rawUpstream();
    const p = await proxy([{ name: 'ws', hosts: [u.host] }], [{ prefix: '/api', cluster: 'ws' }]);
    cleanups.push(() => p.sidecar.shutdown(200), u.close);
    const nr = await raw(p.port, `${UPGRADE}\r\n`);
    assert.ok(nr.closed);
    assert.match(nr.data, /^HTTP\/1\.1 404 /);
    const cn = await raw(p.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    assert.ok(cn.closed);
    assert.match(cn.data, /^HTTP\/1\.1 501 [\s\S]*CONNECT is not supported/);
    const post = await raw(p.port, `${UPGRADE.replace('GET /chat', 'POST /api')}Content-Length: 0\r\n\r\n`);
    assert.ok(post.closed);
    assert.match(post.data, /^HTTP\/1\.1 405 /);
    assert.equal(u.heads.length, 0);
    assert.equal(p.sidecar.noRoute, 1);
  });

  test('shutdown waits for open tunnels up to the drain timeout, then closes them', async () => {
    const u = await rawUpstream();
    const p = await proxy([{ name: 'ws', hosts: [u.host] }], [{ prefix: '/', cluster: 'ws' }]);
    cleanups.push(u.close);
    const c = await upgradeClient(p.port);
    assert.match(c.head, /^HTTP\/1\.1 101 /);
    const closed = new Promise((r) => c.socket.once('close', r));
    c.socket.resume();
    const started = Date.now();
    assert.equal(await p.sidecar.shutdown(150), false);
    assert.ok(Date.now() - started >= 140);
    await closed;
    await until(() => u.closed === 1);
    assert.equal(p.sidecar.clusters.get('ws')!.limits.default.active, 0);
  });

  const certs = testCerts();
  test('an https host: tls.connect with the cluster tls options (CA, client certificate); an untrusted one -> 502 tls', {
    skip: certs ? false : 'openssl is not installed (or failed)',
  }, async () => {
    const c = certs!;
    const peers: (string | undefined)[] = [];
    const server = createHttpsServer({
      cert: readFileSync(c.server.cert),
      key: readFileSync(c.server.key),
      ca: readFileSync(c.ca),
      requestCert: true,
      rejectUnauthorized: true,
    });
    server.on('upgrade', (req: IncomingMessage, s: Duplex) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate() as PeerCertificate;
      peers.push(peer.subject ? String(peer.subject.CN) : undefined);
      s.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Proto: ${req.headers['x-forwarded-proto']}\r\n\r\n`,
      );
      s.pipe(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const p = await proxy(
      [
        {
          name: 'wss',
          hosts: [`https://127.0.0.1:${port}`],
          tls: { ca_file: c.ca, cert_file: c.client.cert, key_file: c.client.key },
        },
        { name: 'untrusted', hosts: [`https://127.0.0.1:${port}`] },
      ],
      [
        { prefix: '/untrusted', cluster: 'untrusted' },
        { prefix: '/', cluster: 'wss' },
      ],
    );
    cleanups.push(
      () => p.sidecar.shutdown(200),
      () =>
        new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        }),
    );
    const t = await upgradeClient(p.port);
    assert.match(t.head, /^HTTP\/1\.1 101 /);
    assert.match(t.head, /\r\nX-Proto: http(\r\n|$)/);
    assert.deepEqual(peers, ['test-client']);
    const back = readBytes(t.socket, 4, t.rest);
    t.socket.write('ping');
    assert.equal((await back).toString(), 'ping');
    t.socket.destroy();
    const bad = await raw(p.port, `${UPGRADE.replace('/chat', '/untrusted')}\r\n`);
    assert.match(bad.data, /^HTTP\/1\.1 502 /);
    assert.match(bad.data, /\r\nx-tripswitch-upstream-error: tls\r\n/);
    await until(() => p.sidecar.clusters.get('wss')!.limits.default.active === 0);
  });
});

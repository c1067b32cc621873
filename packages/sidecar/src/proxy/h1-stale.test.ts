/**
 * The keep-alive race through the proxy: an upstream that closes an idle connection just as the
 * pool reuses it. A raw upstream answers the first request on a connection with keep-alive and
 * closes (FIN, or RST) when the second request's bytes arrive, without answering: deterministic,
 * the request is on the wire when the connection goes. Such a request is sent once more on a fresh
 * connection when replaying it is safe, and counted as neither a failure nor a retry.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { afterEach, test } from 'node:test';
import type { RetryConfig } from '../config/schema.js';
import type { Cluster } from './cluster.js';
import { proxy, send } from './test-helpers.js';

/** What the upstream does with the `n`th request (from 1) on its `conn`th connection (from 1). */
type Act = 'answer' | 'fin' | 'rst' | 'partial';

interface Seen {
  conn: number;
  n: number;
  line: string;
}

async function rawUpstream(act: (conn: number, n: number) => Act) {
  const seen: Seen[] = [];
  let conns = 0;
  const server: Server = createServer((s: Socket) => {
    const id = ++conns;
    let n = 0;
    let buf = '';
    s.on('error', () => {});
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        const cl = /\r\ncontent-length: (\d+)/i.exec(head);
        const len = cl ? Number(cl[1]) : 0;
        if (buf.length < end + 4 + len) return;
        buf = buf.slice(end + 4 + len);
        seen.push({ conn: id, n: ++n, line: head.split('\r\n')[0]! });
        const a = act(id, n);
        if (a === 'answer') s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        else if (a === 'fin') s.destroy();
        else if (a === 'rst') s.resetAndDestroy();
        else {
          s.write('HTTP/1.1 200 OK\r\nContent-Le');
          s.destroy();
        }
        if (a !== 'answer') return;
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    seen,
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The proxy in front of an upstream acting by `act`; one request warms the connection up
 * (unless `warmUp` is false). */
async function start(act: (conn: number, n: number) => Act, retry?: RetryConfig, warmUp = true) {
  const u = await rawUpstream(act);
  cleanups.push(() => u.close());
  const p = await proxy(
    [
      {
        name: 'u',
        hosts: [u.host],
        breaker: { trip: { kind: 'consecutive', threshold: 100 }, openDuration: 60_000 },
      },
    ],
    [{ prefix: '/', cluster: 'u', timeout_ms: 2000, ...(retry ? { retry } : {}) }],
  );
  cleanups.push(() => p.sidecar.shutdown(1000));
  const c = p.sidecar.clusters.get('u')!;
  if (warmUp) assert.equal((await send(p.port, '/warm')).status, 200);
  return { u, p, c };
}

/** Nothing was counted against the upstream: no breaker failure, no reset, no gateway outcome. */
function noFailure(c: Cluster): void {
  assert.equal(c.breaker!.stats().failures, 0);
  assert.equal(c.counters.resets + c.counters.timeouts + c.counters.connectFailures, 0);
  assert.equal(c.counters.retries, 0);
  assert.equal(c.hosts[0]!.consecutiveGateway, 0);
  assert.equal(c.hosts[0]!.windowFailures, 0);
}

/** One failure counted: the breaker, a reset, the host. */
function oneFailure(c: Cluster): void {
  assert.equal(c.breaker!.stats().failures, 1);
  assert.equal(c.counters.resets, 1);
  assert.equal(c.hosts[0]!.consecutiveGateway, 1);
}

for (const close of ['fin', 'rst'] as const) {
  test(`a GET on a reused connection the upstream closes (${close}) is sent again on a fresh one: 200, no failure`, async () => {
    const { u, p, c } = await start((conn, n) => (conn === 1 && n === 2 ? close : 'answer'));
    const r = await send(p.port, '/x');
    assert.deepEqual([r.status, r.body.toString()], [200, 'ok']);
    assert.deepEqual(
      u.seen.map((s) => [s.conn, s.line]),
      [
        [1, 'GET /warm HTTP/1.1'],
        [1, 'GET /x HTTP/1.1'],
        [2, 'GET /x HTTP/1.1'],
      ],
    );
    noFailure(c);
    assert.equal(c.counters.staleConnectionRetries, 1);
    assert.equal(c.counters.responses2xx, 2);
  });
}

test('PUT and DELETE with a body in memory are replayed too (idempotent)', async () => {
  // A retry policy (not on resets) so that the PUT's body is read into memory first.
  const { u, p, c } = await start(
    (conn, n) => (n === 2 ? (conn === 1 ? 'rst' : conn === 2 ? 'fin' : 'answer') : 'answer'),
    { attempts: 1, retry_on: [503] },
  );
  assert.equal((await send(p.port, '/put', { method: 'PUT', body: 'hello' })).status, 200);
  assert.equal((await send(p.port, '/del', { method: 'DELETE' })).status, 200);
  assert.deepEqual(
    u.seen.map((s) => [s.conn, s.line]),
    [
      [1, 'GET /warm HTTP/1.1'],
      [1, 'PUT /put HTTP/1.1'],
      [2, 'PUT /put HTTP/1.1'],
      [2, 'DELETE /del HTTP/1.1'],
      [3, 'DELETE /del HTTP/1.1'],
    ],
  );
  noFailure(c);
  assert.equal(c.counters.staleConnectionRetries, 2);
});

for (const method of ['POST', 'PATCH'])
  test(`a ${method} on a reused connection the upstream closes is not replayed: 502, counted`, async () => {
    const { u, p, c } = await start((conn, n) => (conn === 1 && n === 2 ? 'rst' : 'answer'));
    const r = await send(p.port, '/x', { method, headers: { 'content-length': '0' } });
    assert.equal(r.status, 502);
    assert.deepEqual(
      u.seen.map((s) => [s.conn, s.line]),
      [
        [1, 'GET /warm HTTP/1.1'],
        [1, `${method} /x HTTP/1.1`],
      ],
      'sent once, on the reused connection',
    );
    oneFailure(c);
    assert.equal(c.counters.staleConnectionRetries, 0);
  });

test('a POST is replayed when the route allows retrying non-idempotent requests', async () => {
  // retry_on without `reset`: the replay, not a retry, is what saves the request.
  const { u, p, c } = await start((conn, n) => (conn === 1 && n === 2 ? 'fin' : 'answer'), {
    attempts: 1,
    retry_on: [503],
    retry_non_idempotent: true,
  });
  const r = await send(p.port, '/x', { method: 'POST', body: 'data' });
  assert.equal(r.status, 200);
  assert.deepEqual(
    u.seen.map((s) => [s.conn, s.line]),
    [
      [1, 'GET /warm HTTP/1.1'],
      [1, 'POST /x HTTP/1.1'],
      [2, 'POST /x HTTP/1.1'],
    ],
  );
  noFailure(c);
  assert.equal(c.counters.staleConnectionRetries, 1);
});

test('the replay failing too on its fresh connection is a real failure: 502, counted once, not replayed again', async () => {
  const { u, p, c } = await start((conn, n) => ((conn === 1 && n === 2) || conn === 2 ? 'rst' : 'answer'));
  const r = await send(p.port, '/x');
  assert.equal(r.status, 502);
  assert.deepEqual(
    u.seen.map((s) => [s.conn, s.n]),
    [
      [1, 1],
      [1, 2],
      [2, 1],
    ],
  );
  oneFailure(c);
  assert.equal(c.counters.staleConnectionRetries, 1);
});

test('a failure on a fresh connection is not replayed: 502, counted', async () => {
  const { u, p, c } = await start((_conn, n) => (n === 1 ? 'rst' : 'answer'), undefined, false);
  const r = await send(p.port, '/x');
  assert.equal(r.status, 502);
  assert.equal(u.seen.length, 1, 'the upstream got it once');
  oneFailure(c);
  assert.equal(c.counters.staleConnectionRetries, 0);
});

test('a response byte already received: not replayed (502, counted)', async () => {
  const { u, p, c } = await start((conn, n) => (conn === 1 && n === 2 ? 'partial' : 'answer'));
  const r = await send(p.port, '/x');
  assert.equal(r.status, 502);
  assert.deepEqual(
    u.seen.map((s) => [s.conn, s.n]),
    [
      [1, 1],
      [1, 2],
    ],
  );
  oneFailure(c);
  assert.equal(c.counters.staleConnectionRetries, 0);
});

test('a request aborted while set aside to be sent again fails with the abort reason and is not sent', async () => {
  const { Connection } = await import('./h1-connection.js');
  const { connect } = await import('node:net');
  const u = await rawUpstream((_conn, n) => (n === 2 ? 'rst' : 'answer'));
  cleanups.push(() => u.close());
  const [host, port] = u.host.split(':');
  const events: string[] = [];
  let gone: () => void = () => {};
  const isGone = new Promise<void>((r) => {
    gone = r;
  });
  const owner = {
    clock: { now: () => 0 } as never,
    released: (c: InstanceType<typeof Connection>) => {
      events.push('released');
      c.start('GET /b HTTP/1.1\r\nhost: x\r\n\r\n', null, false, true, 0, true, handler('b'));
    },
    gone: (c: InstanceType<typeof Connection>) => {
      events.push(`gone replay=${c.replay !== undefined}`);
      gone();
    },
    watch: () => {},
  };
  function handler(name: string) {
    return {
      onResponseEnd: () => events.push(`${name} end`),
      onResponseError: (_c: unknown, err: Error) => events.push(`${name} error ${err.message}`),
    };
  }
  const socket = connect({ host: host!, port: Number(port) });
  const conn = new Connection(owner, socket, 1000);
  // Runs right after the connection's own 'error' listener set the request aside, before 'close'.
  socket.on('error', () => conn.abort(new Error('client closed')));
  conn.start('GET /a HTTP/1.1\r\nhost: x\r\n\r\n', null, false, true, 0, true, handler('a'));
  await isGone;
  assert.deepEqual(events, ['a end', 'released', 'b error client closed', 'gone replay=false']);
  assert.equal(u.seen.length, 2);
});

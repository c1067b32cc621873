/**
 * Requests pipelined behind a response that ends the connection (raw sockets). Node parses and
 * hands over every request in a client's write at once, before the first one's response exists; a
 * request behind a response that then closes the connection can never be answered, so it must
 * never reach the upstream (an unanswered request is one the client may send again: sent twice).
 * What the upstream receives is counted for each way a response can end a connection.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { after, describe, test } from 'node:test';
import type { Cluster } from './cluster.js';
import { proxy, raw, send, until, upstream } from './test-helpers.js';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** An upstream that records request lines; /nolength answers without a length, /cut dies mid-body. */
async function start() {
  const seen: string[] = [];
  const held: ServerResponse[] = [];
  const u = await upstream((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    if (req.url === '/hold') {
      held.push(res);
      return;
    }
    if (req.url === '/nolength') {
      res.write('a');
      res.end('b');
      return;
    }
    if (req.url === '/close') {
      res.setHeader('connection', 'close');
      res.end('ok');
      return;
    }
    if (req.url === '/cut') {
      res.writeHead(200, { 'content-length': '10' });
      res.write('abc', () => res.destroy());
      return;
    }
    res.end('ok');
  });
  const p = await proxy([{ name: 'c', hosts: [u.host] }], [{ prefix: '/', cluster: 'c' }]);
  cleanups.push(u.close, () => {
    for (const r of held) r.destroy();
  });
  cleanups.push(() => p.sidecar.shutdown(1000));
  return { p, seen, held, cluster: p.sidecar.clusters.get('c')! };
}

/** The status codes in a raw read. */
function statuses(data: string): number[] {
  return [...data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/** Resolves once a request sent afterwards on a new connection has been answered. */
async function barrier(port: number, seen: string[]): Promise<void> {
  assert.equal((await send(port, '/barrier')).status, 200);
  // Anything forwarded before the barrier has reached the upstream by now.
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(seen.at(-1), 'GET /barrier');
  seen.pop();
}

async function settled(p: Awaited<ReturnType<typeof start>>['p'], c: Cluster): Promise<void> {
  await until(
    () =>
      p.sidecar.inflight === 0 &&
      c.limits.default.active === 0 &&
      c.limits.default.pending === 0 &&
      c.hosts.every((h) => h.active === 0),
  );
}

const NEXT = 'GET /next HTTP/1.1\r\nHost: x\r\n\r\n';
const UPGRADE = 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n';

describe('a request pipelined behind a response that closes the connection is never forwarded', () => {
  for (const [name, first, status] of [
    ['HTTP/1.0 without keep-alive', 'GET /a HTTP/1.0\r\n\r\n', 200],
    ['Connection: close on the request', 'GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 200],
    [
      'HTTP/1.0 keep-alive, and the upstream answers without a length (the response must close)',
      'GET /nolength HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
      200,
    ],
    ['the request is refused (no Host)', 'GET /a HTTP/1.1\r\n\r\n', 400],
  ] as const) {
    test(name, async () => {
      const { p, seen, cluster } = await start();
      const r = await raw(p.port, `${first}${NEXT}`);
      assert.deepEqual(statuses(r.data), [status], r.data);
      assert.equal(r.closed, true);
      await barrier(p.port, seen);
      assert.deepEqual(
        seen.filter((s) => s === 'GET /next'),
        [],
        `the upstream got: ${seen}`,
      );
      await settled(p, cluster);
    });
  }

  test('an Upgrade request behind it (Node hands its socket over at once): not tunnelled', async () => {
    const { p, seen, cluster } = await start();
    const r = await raw(p.port, `GET /nolength HTTP/1.0\r\nConnection: keep-alive\r\n\r\n${UPGRADE}`);
    assert.deepEqual(statuses(r.data), [200], r.data);
    assert.equal(r.closed, true);
    await barrier(p.port, seen);
    assert.deepEqual(seen, ['GET /nolength']);
    await settled(p, cluster);
  });

  test('the upstream dies mid-response (the client connection is cut): nothing after it forwarded', async () => {
    const { p, seen, cluster } = await start();
    const r = await raw(p.port, `GET /cut HTTP/1.1\r\nHost: x\r\n\r\n${NEXT}`);
    assert.equal(r.closed, true);
    await barrier(p.port, seen);
    assert.deepEqual(seen, ['GET /cut']);
    await settled(p, cluster);
  });

  test('during shutdown: the request read while draining closes the connection, the one behind it is not forwarded', async () => {
    const { p, seen, held, cluster } = await start();
    const s = connect(p.port, '127.0.0.1');
    let data = '';
    s.on('data', (c) => {
      data += c.toString('latin1');
    });
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.length === 1);
    const drained = p.sidecar.shutdown(5000);
    s.write(`GET /a HTTP/1.1\r\nHost: x\r\n\r\n${NEXT}`);
    // Both are parsed by now (one local write, read in one go).
    await new Promise((r) => setTimeout(r, 50));
    held[0]!.end('held');
    await closed;
    assert.equal(await drained, true);
    assert.deepEqual(statuses(data), [200, 200], data);
    assert.deepEqual(seen, ['GET /hold', 'GET /a']);
    await settled(p, cluster);
  });
});

describe('pipelining that keeps the connection still works', () => {
  test('requests behind a slow one are answered in order, each forwarded once', async () => {
    const { p, seen, held, cluster } = await start();
    const reply = raw(
      p.port,
      `GET /hold HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    await until(() => held.length === 1);
    held[0]!.end('held');
    const r = await reply;
    assert.deepEqual(statuses(r.data), [200, 200, 200], r.data);
    assert.match(r.data, /held[\s\S]*ok[\s\S]*ok$/);
    assert.equal(r.closed, true);
    assert.deepEqual(seen, ['GET /hold', 'GET /b', 'GET /c']);
    await settled(p, cluster);
  });

  test('an Upgrade request behind a slow one is tunnelled after its answer, not in the middle of it', async () => {
    const { p, seen, held, cluster } = await start();
    const reply = raw(p.port, `GET /hold HTTP/1.1\r\nHost: x\r\n\r\n${UPGRADE}`);
    await until(() => held.length === 1);
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(seen, ['GET /hold'], 'the upgrade waits for the answer ahead of it');
    held[0]!.end('held');
    const r = await reply;
    // The upstream (plain HTTP) answers the upgrade 200: relayed, then the connection closes.
    assert.deepEqual(statuses(r.data), [200, 200], r.data);
    assert.match(r.data, /held[\s\S]*ok$/);
    assert.deepEqual(seen, ['GET /hold', 'GET /ws']);
    await settled(p, cluster);
  });

  test("the upstream's own Connection: close is hop-by-hop: the client's connection stays, the next request is answered", async () => {
    const { p, seen, cluster } = await start();
    const r = await raw(
      p.port,
      `GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    assert.deepEqual(statuses(r.data), [200, 200], r.data);
    assert.deepEqual(seen, ['GET /close', 'GET /next']);
    await settled(p, cluster);
  });
});

describe('a refused connection', () => {
  test('a client that keeps sending after its 400 is read (not reset under it) and closed within about 2 s', async () => {
    const { p } = await start();
    // Half-open: the client does not end its side when the proxy ends its own.
    const s = connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true });
    let data = '';
    s.on('data', (c) => {
      data += c.toString('latin1');
    });
    s.on('error', () => {});
    const t0 = Date.now();
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.write('NOT HTTP\r\n\r\n');
    const more = setInterval(() => {
      if (s.writable) s.write('zzzz\r\n');
    }, 20);
    await closed;
    clearInterval(more);
    assert.match(data, /^HTTP\/1\.1 400 /);
    const ms = Date.now() - t0;
    assert.ok(ms >= 1500 && ms < 6000, `closed after ${ms} ms`);
  });
});

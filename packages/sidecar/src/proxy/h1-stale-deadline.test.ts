/**
 * A request sent again after the keep-alive race keeps the response deadline it started with: the
 * route's timeout bounds the wait for the response head however many connections it took, so an
 * upstream that holds a reused connection silent and then closes it cannot double the wait.
 * Driven on a TestClock through the pool itself (the sweep runs on the pool's clock).
 */
import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { TestClock } from 'tripswitch/testing';
import { type Dispatcher, Pool } from 'undici';
import { UpstreamPool } from './h1-pool.js';

test('a request sent again after a stale connection times out at its first deadline, not a new one', async () => {
  const clock = new TestClock();
  const sockets: Socket[] = [];
  const requests: { conn: number; path: string }[] = [];
  let onRequest: (conn: number, n: number, s: Socket) => void = () => {};
  const server = createServer((s) => {
    const conn = sockets.push(s);
    let n = 0;
    let buf = '';
    s.on('error', () => {});
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, end).split(' ')[1]!;
        buf = buf.slice(end + 4);
        requests.push({ conn, path });
        onRequest(conn, ++n, s);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const undici = new Pool(origin);
  const pool = new UpstreamPool(origin, undici, {
    connections: 1,
    connectTimeoutMs: 5_000,
    idleTimeoutMs: 60_000,
    clock,
  });
  const call = (path: string) =>
    new Promise<{ status?: number; error?: Error }>((resolve) => {
      let status: number | undefined;
      const handler: Dispatcher.DispatchHandler = {
        onResponseStart: (_c, code) => {
          status = code;
        },
        onResponseData: () => {},
        onResponseEnd: () => resolve({ status }),
        onResponseError: (_c, error) => resolve({ error }),
      };
      pool.dispatch({ path, method: 'GET', headers: ['host', 'u'], headersTimeout: 1_000 }, handler);
    });
  try {
    onRequest = (_conn, _n, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    assert.equal((await call('/warm')).status, 200);

    let replayed!: () => void;
    const onSecond = new Promise<void>((r) => {
      replayed = r;
    });
    onRequest = (conn, n, s) => {
      if (conn === 1 && n === 2) {
        // Silent for 600 of the request's 1,000 ms, then the connection goes: the race.
        clock.advance(600);
        s.destroy();
      } else if (conn === 2) replayed(); // the fresh connection: never answered
    };
    const result = call('/x');
    await onSecond;
    assert.deepEqual(
      requests.map((r) => [r.conn, r.path]),
      [
        [1, '/warm'],
        [1, '/x'],
        [2, '/x'],
      ],
    );
    // 400 ms of the first deadline are left (plus the sweep's 100 ms of lateness).
    let settled = false;
    void result.then(() => {
      settled = true;
    });
    clock.advance(499);
    for (let i = 0; i < 10; i++) await Promise.resolve();
    const early = settled;
    clock.advance(1_000);
    const r = await result;
    assert.ok(r.error, 'the request timed out');
    assert.equal(early, true, 'timed out within the first deadline (+ one sweep), not a fresh one');
  } finally {
    await pool.destroy();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

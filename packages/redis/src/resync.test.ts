// Reading thousands of breakers' shared state against a Redis that answers slowly (start-up,
// recovery): the reads go in a bounded window and a read that times out is retried for its
// breaker alone, so the store gets ready instead of degrading over and over. The slowness is made
// by a proxy that passes Redis's replies at a fixed byte rate: a bound on answers per second that
// does not depend on this machine's speed (a slower machine only makes the old behaviour fail more).
import assert from 'node:assert/strict';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { circuitBreaker, isCircuitOpenError } from 'tripswitch';
import { RedisServer, skipNoRedis, uniquePrefix, waitFor } from './server.test.util.js';
import { type RedisStore, redisStore } from './store.js';

/** A TCP proxy to Redis that delivers replies at `bytesPerSecond` per connection. */
async function throttlingProxy(
  upstreamPort: number,
  bytesPerSecond: number,
): Promise<{ port: number; delivered: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let delivered = 0;
  const server: Server = createServer((client) => {
    const upstream = connect({ port: upstreamPort, host: '127.0.0.1' });
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    const backlog: Buffer[] = [];
    const perTick = Math.max(1, Math.round(bytesPerSecond / 100));
    const tick = setInterval(() => {
      let budget = perTick;
      while (budget > 0 && backlog.length > 0) {
        const head = backlog[0] as Buffer;
        const part = head.subarray(0, budget);
        client.write(part);
        delivered += part.length;
        budget -= part.length;
        if (part.length === head.length) backlog.shift();
        else backlog[0] = head.subarray(part.length);
      }
    }, 10);
    upstream.on('data', (d: Buffer) => backlog.push(d));
    const end = () => {
      clearInterval(tick);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    /** Reply bytes passed to clients so far (all connections). */
    delivered: () => delivered,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('reading thousands of breakers from a slow Redis', { skip: skipNoRedis }, () => {
  let redis: RedisServer;
  let proxy: Awaited<ReturnType<typeof throttlingProxy>>;
  const stores: RedisStore[] = [];
  before(async () => {
    redis = await RedisServer.start();
    // about 25 bytes per read reply: 2,000 reads take about 2 s to come back, far more than the
    // 250 ms command timeout, while a window of reads comes back in well under it
    proxy = await throttlingProxy(redis.port, 25_000);
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await proxy?.close();
    await redis?.stop();
  });

  test('2,000 breakers attached in one tick all get synchronised; the store does not degrade', async () => {
    const prefix = uniquePrefix('bulk');
    // a few breakers open in Redis, set by an instance that talks to Redis directly
    const direct = redisStore({ url: redis.url, prefix, logger: false });
    stores.push(direct);
    const openers = ['b7', 'b1000', 'b1999'].map((name) =>
      circuitBreaker({
        name,
        store: direct,
        trip: { kind: 'consecutive', threshold: 1 },
        openDuration: 600_000,
      }),
    );
    assert.equal(await direct.ready(5000), true);
    for (const b of openers) await b.execute(() => Promise.reject(new Error('down'))).catch(() => {});
    const raw = new Redis(redis.port, { lazyConnect: false });
    const stored = await raw.hget(`${prefix}:{b1999}:s`, 'st');
    raw.disconnect();
    assert.equal(stored, 'open');

    const store = redisStore({ url: `redis://127.0.0.1:${proxy.port}`, prefix, logger: false });
    stores.push(store);
    let degraded = 0;
    const why: string[] = [];
    store.on('degraded', ({ error }) => {
      degraded++;
      why.push(String(error));
    });
    // Attached in the tick the store is made, before it connects (a service starting up): the
    // reads start once it is connected, from the event loop. Attached after ready(), the first
    // window of reads went out during this loop of 2,000 constructions, which on a loaded host
    // took longer than the 250 ms command timeout; the proxy, in this process, could not pass
    // those reads on until the loop ended, so they timed out with nothing answered, and the store
    // degraded (4 of 5 runs under load here; a 300 ms busy loop after the constructions fails it
    // every time). Before connecting, the loop holds no read in flight.
    const breakers = Array.from({ length: 2000 }, (_, i) =>
      circuitBreaker({
        name: `b${i}`,
        store,
        trip: { kind: 'consecutive', threshold: 3 },
        openDuration: 600_000,
      }),
    );
    const t0 = Date.now();
    const open = () => breakers.filter((b) => b.state === 'open').map((b) => b.name);
    await waitFor(
      () => open().length === 3,
      'every breaker holding the stored state within 15 s (the reads need about 2 s)',
      15_000,
      20,
    );
    assert.equal(await store.ready(15_000), true, 'ready once every breaker was read');
    const readyMs = Date.now() - t0;
    assert.deepEqual(open(), ['b7', 'b1000', 'b1999']);
    assert.equal(degraded, 0, `a slow Redis is not an outage: ${why.join('; ')}`);
    console.log(`# 2,000 reads at 25 KB/s of replies: ready after ${readyMs} ms, ${degraded} degradations`);
  });

  test("cold start under that load: a breaker's first call waits for its own read, not for the 1,999 before it", async () => {
    const prefix = uniquePrefix('bulkcold');
    const direct = redisStore({ url: redis.url, prefix, logger: false });
    stores.push(direct);
    const last = circuitBreaker({
      name: 'b1999',
      store: direct,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 600_000,
    });
    assert.equal(await direct.ready(5000), true);
    await last.execute(() => Promise.reject(new Error('down'))).catch(() => {});
    assert.equal(last.state, 'open');

    // What the call waited for is judged by the replies the proxy had passed when it settled, not
    // by a race with the wait's bound: with the default 250 ms bound, a process descheduled for
    // 250 ms right after the call (a loaded host; forced by a 300 ms busy loop there) let the call
    // through before its read came back. commandTimeoutMs 20 s is a bound this test never meets.
    const store = redisStore({
      url: `redis://127.0.0.1:${proxy.port}`,
      prefix,
      logger: false,
      commandTimeoutMs: 20_000,
    });
    stores.push(store);
    assert.equal(await store.ready(10_000), true);
    const start = proxy.delivered();
    const breakers = Array.from({ length: 2000 }, (_, i) =>
      circuitBreaker({ name: `b${i}`, store, trip: { kind: 'consecutive', threshold: 3 } }),
    );
    let reached = 0;
    const err = await (breakers[1999] as (typeof breakers)[number])
      .execute(async () => {
        reached++;
        return 1;
      })
      .catch((e: unknown) => e);
    const atSettle = proxy.delivered() - start;
    assert.equal(reached, 0, 'the call did not reach the dependency the fleet holds open');
    assert.ok(isCircuitOpenError(err), `refused as open, got ${String(err)}`);
    // its read went out ahead of the ones still waiting: it came back behind at most a window of
    // reads in flight (64), not behind the other 1,999
    assert.equal(await store.ready(15_000), true, 'every read done');
    const all = proxy.delivered() - start;
    assert.ok(
      atSettle < all / 10,
      `settled after ${atSettle} of the ${all} reply bytes of the 2,000 reads: it waited for the others`,
    );
  });

  test('a process stalled past the command timeout (its event loop blocked) does not call answered reads timeouts', async () => {
    const prefix = uniquePrefix('stall');
    const store = redisStore({ url: redis.url, prefix, logger: false, commandTimeoutMs: 100 });
    stores.push(store);
    let degraded = 0;
    store.on('degraded', () => degraded++);
    assert.equal(await store.ready(10_000), true);
    const breakers = Array.from({ length: 50 }, (_, i) => circuitBreaker({ name: `s${i}`, store }));
    // the reads are on their way; this process now holds its CPU for 3 x the timeout, while
    // Redis (another process) answers them
    const until = Date.now() + 300;
    while (Date.now() < until) {
      // busy: no timer, no I/O runs
    }
    assert.equal(await store.ready(10_000), true);
    assert.equal(degraded, 0, 'replies waiting in the socket are answers, not timeouts');
    assert.equal(breakers.length, 50);
  });

  test('a cold-start call in a process stalled past the command timeout is judged on the reply already in its socket', async () => {
    const prefix = uniquePrefix('stallcold');
    const direct = redisStore({ url: redis.url, prefix, logger: false });
    stores.push(direct);
    const opener = circuitBreaker({
      name: 'held',
      store: direct,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 600_000,
    });
    assert.equal(await direct.ready(5000), true);
    await opener.execute(() => Promise.reject(new Error('down'))).catch(() => {});
    assert.equal(opener.state, 'open');

    const store = redisStore({ url: redis.url, prefix, logger: false, commandTimeoutMs: 100 });
    stores.push(store);
    assert.equal(await store.ready(10_000), true);
    // its read goes out now; the call waits for it, bounded by the 100 ms command timeout
    const fresh = circuitBreaker({ name: 'held', store, trip: { kind: 'consecutive', threshold: 3 } });
    let reached = 0;
    const call = fresh
      .execute(async () => {
        reached++;
        return 1;
      })
      .catch((e: unknown) => e);
    // the process holds its CPU for 3 x that bound while Redis answers: when the loop runs again
    // the bound is over and the answer is in the socket; the answer is read first
    const until = Date.now() + 300;
    while (Date.now() < until) {
      // busy: no timer, no I/O runs
    }
    const err = await call;
    assert.equal(reached, 0, 'the call did not reach the dependency the fleet holds open');
    assert.ok(isCircuitOpenError(err), `refused as open, got ${String(err)}`);
  });
});

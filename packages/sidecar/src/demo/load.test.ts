import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { TestClock } from 'tripswitch/testing';
import { runLoad, runWriter, splitClients } from './load.js';

/** A stand-in for Service A: /profile answers at once, /orders as `orders` says. */
async function fakeA(
  orders: 'ok' | 'fallback' | 'hang' | 'error',
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/profile') return res.end('{}');
    if (req.method === 'POST') {
      // Echo the write's id, so the writer's test can check the bodies.
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c;
      });
      req.on('end', () => {
        if (orders === 'hang') return;
        res.statusCode = orders === 'error' ? 503 : 201;
        res.end(body);
      });
      return;
    }
    if (orders === 'hang') return;
    if (orders === 'error') {
      res.statusCode = 503;
      return res.end('{}');
    }
    if (orders === 'fallback') res.setHeader('x-fallback', '1');
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

test('splitClients: profileShare of the clients on /profile, at least one per route', () => {
  assert.deepEqual(splitClients(20, 0.2), { orders: 16, profile: 4 });
  assert.deepEqual(splitClients(4, 0.2), { orders: 3, profile: 1 });
  assert.deepEqual(splitClients(2, 0.2), { orders: 1, profile: 1 });
  assert.deepEqual(splitClients(10, 0.9), { orders: 1, profile: 9 });
  assert.throws(() => splitClients(1, 0.2), RangeError);
  assert.throws(() => splitClients(4, 0), RangeError);
  assert.throws(() => splitClients(4, 1), RangeError);
});

test('bounded in count: stops after maxRequests, samples per route with status and fallback', async () => {
  const a = await fakeA('fallback');
  try {
    const r = await runLoad({ baseUrl: a.url, concurrency: 4, durationMs: 60_000, maxRequests: 50 });
    assert.equal(r.sent, 50);
    assert.equal(r.samples.length, 50);
    assert.equal(r.cutOff, 0);
    assert.deepEqual(r.clients, { orders: 3, profile: 1 });
    const orders = r.samples.filter((s) => s.route === 'orders');
    const profile = r.samples.filter((s) => s.route === 'profile');
    assert.ok(orders.length > 0 && profile.length > 0);
    assert.ok(orders.every((s) => s.status === 200 && s.fallback));
    assert.ok(profile.every((s) => s.status === 200 && !s.fallback));
    assert.ok(r.samples.every((s) => s.latency >= 0 && s.start >= 0));
  } finally {
    await a.close();
  }
});

test('bounded in time: stops sending at durationMs, cuts off what is still in flight after drainMs', async () => {
  // On a TestClock: the verdict must not depend on how fast this machine sends (a loaded machine
  // once let 100 ms of real time pass before every client had sent).
  const a = await fakeA('hang');
  const clock = new TestClock();
  const t0 = clock.now();
  try {
    let ordersSent = 0;
    let profileAnswered = 0;
    let sentAfterEnd = 0;
    let ended = false;
    // The /profile client always has one request in flight: it answers at once, and the client
    // then finds durationMs over and stops.
    let profileDone!: () => void;
    const profileStopped = new Promise<void>((r) => {
      profileDone = r;
    });
    let resolve!: () => void;
    const ready = new Promise<void>((r) => {
      resolve = r;
    });
    const run = runLoad({
      baseUrl: a.url,
      concurrency: 4,
      durationMs: 100,
      drainMs: 100,
      clock,
      onSend: (s) => {
        if (ended) sentAfterEnd++;
        if (s.route === 'orders' && ++ordersSent === 3 && profileAnswered > 0) resolve();
      },
      onSample: (s) => {
        if (s.route !== 'profile') return;
        if (ended) profileDone();
        else if (++profileAnswered === 1 && ordersSent === 3) resolve();
      },
    });
    await ready;
    clock.advance(100); // durationMs is over: no client sends again
    ended = true;
    await profileStopped;
    clock.advance(99);
    assert.equal(clock.nextTimerAt(), t0 + 200, 'the drain deadline is still pending');
    clock.advance(1); // drainMs is over: the hung /orders requests are cut off
    const r = await run;
    const orders = r.samples.filter((s) => s.route === 'orders');
    assert.equal(
      orders.length,
      3,
      `each /orders client sent one request, which hung: ${JSON.stringify(orders)}`,
    );
    assert.ok(orders.every((s) => s.status === 0 && s.error === 'cut off' && s.latency === 200));
    assert.equal(r.cutOff, 3);
    const profile = r.samples.filter((s) => s.route === 'profile');
    assert.ok(profile.length > 0);
    assert.ok(profile.every((s) => s.status === 200));
    assert.equal(sentAfterEnd, 0, 'nothing is sent after durationMs');
    assert.equal(r.sent, r.samples.length);
    assert.equal(r.elapsedMs, 200);
  } finally {
    await a.close();
  }
});

test('errors are recorded with their status; an abort stops the load early', async () => {
  const a = await fakeA('error');
  try {
    const ac = new AbortController();
    let n = 0;
    const r = await runLoad({
      baseUrl: a.url,
      concurrency: 2,
      durationMs: 60_000,
      signal: ac.signal,
      onSample: () => {
        if (++n === 20) ac.abort();
      },
    });
    assert.ok(r.samples.length >= 20 && r.samples.length <= 22, `${r.samples.length} samples`);
    assert.ok(r.samples.filter((s) => s.route === 'orders').every((s) => s.status === 503 || s.status === 0));
  } finally {
    await a.close();
  }
});

test('runWriter: one POST with a new id per tick until durationMs, every write answered', async () => {
  const a = await fakeA('ok');
  try {
    const ids: string[] = [];
    const r = await runWriter({
      baseUrl: a.url,
      intervalMs: 20,
      concurrency: 2,
      durationMs: 200,
      onSample: (s) => ids.push(s.id),
    });
    // Ticks at 0, 20, ..., 180 ms: at most 10, fewer only if timers ran late.
    assert.ok(r.submitted >= 1 && r.submitted + r.skipped <= 10, `${r.submitted} sent, ${r.skipped} skipped`);
    assert.equal(r.samples.length, r.submitted);
    assert.equal(r.cutOff, 0);
    assert.ok(r.samples.every((s) => s.status === 201 && s.start < 200 && s.latency >= 0));
    assert.equal(new Set(ids).size, r.submitted, 'every write has its own id');
    assert.deepEqual(
      r.samples.map((s) => s.id).sort(),
      Array.from({ length: r.submitted }, (_, i) => `w${i + 1}`).sort(),
    );
  } finally {
    await a.close();
  }
});

test('runWriter: at most concurrency writes in flight (busy ticks are skipped), cut off after drainMs', async () => {
  const a = await fakeA('hang');
  const clock = new TestClock();
  const t0 = clock.now();
  try {
    const run = runWriter({
      baseUrl: a.url,
      intervalMs: 10,
      concurrency: 2,
      durationMs: 100,
      drainMs: 100,
      clock,
    });
    // Ticks at 0, 10, ..., 90 ms: the first two send, the other eight find both writers busy.
    for (let t = 10; t <= 100; t += 10) clock.advance(10);
    // The drain deadline (200 ms) is scheduled once the ticks are over.
    for (let i = 0; i < 1000 && clock.nextTimerAt() === undefined; i++) await Promise.resolve();
    assert.equal(clock.nextTimerAt(), t0 + 200);
    clock.advance(100);
    const r = await run;
    assert.equal(r.submitted, 2, 'both writer clients hung on their first write');
    assert.equal(r.skipped, 8);
    assert.equal(r.cutOff, 2);
    assert.ok(r.samples.every((s) => s.status === 0 && s.error === 'cut off'));
    await assert.rejects(runWriter({ baseUrl: a.url, durationMs: 10, concurrency: 0 }), RangeError);
  } finally {
    await a.close();
  }
});

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { breakerRegistry } from 'tripswitch';
import { Agent, request } from 'undici';
import { BREAKER_NAME, startServiceA, WorkerPool } from './service-a.js';
import { startUpstream } from './upstream.js';

async function get(url: string, dispatcher?: Agent) {
  const r = await request(url, dispatcher ? { dispatcher } : {});
  return { status: r.statusCode, fallback: r.headers['x-fallback'] === '1', body: await r.body.json() };
}

async function until(cond: () => boolean, what: string) {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

test('WorkerPool: at most size tasks at once, the rest wait in FIFO order; a failure frees its slot', async () => {
  const pool = new WorkerPool(2);
  const order: number[] = [];
  const gates: (() => void)[] = [];
  const task = (i: number, fail = false) =>
    pool.run(async () => {
      order.push(i);
      await new Promise<void>((r) => gates.push(r));
      if (fail) throw new Error(`task ${i}`);
      return i;
    });
  const p1 = task(1, true);
  const p2 = task(2);
  const p3 = task(3);
  const p4 = task(4);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [1, 2]);
  assert.equal(pool.active, 2);
  assert.equal(pool.queued, 2);
  gates[0]!();
  await assert.rejects(p1, /task 1/);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [1, 2, 3]);
  assert.equal(pool.active, 2);
  assert.equal(pool.queued, 1);
  for (let i = 1; i < 4; i++) {
    await new Promise((r) => setImmediate(r));
    gates[i]!();
  }
  assert.deepEqual(await Promise.all([p2, p3, p4]), [2, 3, 4]);
  assert.deepEqual(order, [1, 2, 3, 4]);
  assert.equal(pool.active, 0);
  assert.equal(pool.queued, 0);
  assert.throws(() => new WorkerPool(0), RangeError);
});

test('unprotected A: /orders passes B through (502 when B fails), /profile never calls B', async () => {
  const b = await startUpstream();
  const a = await startServiceA({ upstreamUrl: b.url, protected: false });
  try {
    assert.equal(a.breaker, undefined);
    assert.equal((await get(`${a.url}/orders`)).status, 200);
    b.setMode('failing');
    const failed = await get(`${a.url}/orders`);
    assert.equal(failed.status, 502);
    assert.equal(failed.fallback, false);
    const seen = b.stats().received;
    assert.equal((await get(`${a.url}/profile`)).status, 200);
    assert.equal(b.stats().received, seen, '/profile did not call B');
    assert.equal((await get(`${a.url}/nope`)).status, 404);
  } finally {
    await a.close();
    await b.close();
  }
});

test('the cascade model: with B hanging, /profile waits in the same worker queue as /orders', async () => {
  const b = await startUpstream({ mode: 'hanging' });
  const a = await startServiceA({ upstreamUrl: b.url, protected: false, workers: 1 });
  const agent = new Agent({ connections: 4 });
  try {
    const orders = get(`${a.url}/orders`, agent);
    await until(() => b.stats().pending === 1, '/orders to reach B');
    let profileDone = false;
    const profile = get(`${a.url}/profile`, agent).finally(() => {
      profileDone = true;
    });
    await until(() => a.load().queued === 1, '/profile to queue for a worker');
    assert.equal(profileDone, false, '/profile is stuck behind /orders');
    await b.close(); // B's connections close: /orders fails, the worker is free again
    assert.equal((await orders).status, 504);
    assert.equal((await profile).status, 200);
  } finally {
    await agent.close();
    await a.close();
    await b.close();
  }
});

test('protected A: a failing B gets the last good answer with x-fallback: 1, and the breaker opens', async () => {
  const b = await startUpstream();
  const registry = breakerRegistry();
  const a = await startServiceA({ upstreamUrl: b.url, protected: true, registry, tripThreshold: 3 });
  try {
    assert.equal(registry.get(BREAKER_NAME), a.breaker);
    const fresh = await get(`${a.url}/orders`);
    assert.equal(fresh.status, 200);
    assert.equal(fresh.fallback, false);
    b.setMode('failing');
    for (let i = 0; i < 3; i++) {
      const r = await get(`${a.url}/orders`);
      assert.equal(r.status, 200);
      assert.equal(r.fallback, true);
      assert.deepEqual(r.body, fresh.body, 'the last good answer');
    }
    assert.equal(a.breaker!.state, 'open');
    const seen = b.stats().received;
    assert.equal((await get(`${a.url}/orders`)).fallback, true);
    assert.equal(b.stats().received, seen, 'an open breaker does not call B');
    const stats = await get(`${a.url}/stats`);
    assert.equal((stats.body as { breaker: string }).breaker, 'open');
  } finally {
    await a.close();
    await b.close();
  }
});

test('protected A: a hanging B is cut off by the timeout; no last good answer means an explicit degraded answer', async () => {
  const b = await startUpstream({ mode: 'hanging' });
  const a = await startServiceA({
    upstreamUrl: b.url,
    protected: true,
    registry: breakerRegistry(),
    timeoutMs: 50,
  });
  try {
    const r = await request(`${a.url}/orders`);
    const body = (await r.body.json()) as { orders: unknown[]; degraded: boolean; reason: string };
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['x-fallback'], '1');
    assert.equal(r.headers['x-fallback-kind'], 'degraded');
    assert.equal(r.headers['x-degraded'], '1');
    assert.equal(r.headers['x-last-good-ttl-ms'], '60000');
    assert.equal(r.headers['x-last-good-age-ms'], undefined, 'no good answer yet');
    assert.deepEqual(body.orders, []);
    assert.equal(body.degraded, true);
    assert.match(body.reason, /did not answer within 50 ms; no good answer from it yet/);
    await until(() => b.stats().abandoned >= 1, 'B to see A give up');
    assert.equal(b.stats().received, 1, 'the timed-out call was not retried');
  } finally {
    await a.close();
    await b.close();
  }
});

test('/metrics on both A: answers by route and outcome; the protected one has the breaker, the fallback and the last-good age', async () => {
  const b = await startUpstream();
  const plain = await startServiceA({ upstreamUrl: b.url, protected: false, metrics: true });
  const prot = await startServiceA({
    upstreamUrl: b.url,
    protected: true,
    registry: breakerRegistry(),
    metrics: true,
    tripThreshold: 2,
  });
  try {
    assert.equal((await get(`${plain.url}/orders`)).status, 200);
    assert.equal((await get(`${prot.url}/orders`)).status, 200);
    b.setMode('failing');
    assert.equal((await get(`${plain.url}/orders`)).status, 502);
    const fb = await get(`${prot.url}/orders`);
    assert.equal(fb.fallback, true);
    const text = async (url: string) => {
      const r = await request(`${url}/metrics`);
      assert.equal(r.statusCode, 200);
      assert.match(String(r.headers['content-type']), /text\/plain/);
      return await r.body.text();
    };
    const u = await text(plain.url);
    assert.match(
      u,
      /demo_requests_total\{route="\/orders",status="200",outcome="ok",service="service-a-unprotected"\} 1/,
    );
    assert.match(
      u,
      /demo_requests_total\{route="\/orders",status="502",outcome="error",service="service-a-unprotected"\} 1/,
    );
    assert.match(u, /demo_workers\{state="size",service="service-a-unprotected"\} 10/);
    assert.doesNotMatch(u, /circuit_breaker_state/);
    const p = await text(prot.url);
    assert.match(
      p,
      /demo_requests_total\{route="\/orders",status="200",outcome="last-good",service="service-a-protected"\} 1/,
    );
    assert.match(
      p,
      /circuit_breaker_state\{service="service-b"\} 1/,
      'two fast failures (a 500 and its retry) opened it',
    );
    assert.match(p, /demo_last_good_ttl_seconds\{service="service-a-protected"\} 60/);
    assert.match(p, /demo_last_good_age_seconds\{service="service-a-protected"\} \d/);
    assert.match(
      p,
      /tripswitch_fallbacks_total\{policy="service-b",outcome="failure",service="service-a-protected"\} 1/,
    );
    assert.equal((await request(`${b.url.replace(/\d+$/, String(plain.port))}/nope`)).statusCode, 404);
  } finally {
    await plain.close();
    await prot.close();
    await b.close();
  }
});

test('protected mode needs a registry', async () => {
  await assert.rejects(startServiceA({ upstreamUrl: 'http://127.0.0.1:1', protected: true }), /registry/);
});

test('a fractional client timeout still reaches B (undici wants whole ms)', async () => {
  const b = await startUpstream();
  const a = await startServiceA({ upstreamUrl: b.url, protected: false, clientTimeoutMs: 1363.6 });
  try {
    assert.equal((await get(`${a.url}/orders`)).status, 200);
    assert.equal(b.stats().received, 1);
  } finally {
    await a.close();
    await b.close();
  }
});

async function postOrder(url: string, id: string) {
  const r = await request(`${url}/orders`, {
    method: 'POST',
    body: JSON.stringify({ id, item: 'widget' }),
    headers: { 'content-type': 'application/json' },
  });
  return {
    status: r.statusCode,
    body: (await r.body.json()) as { id?: string; status?: string; error?: string },
  };
}

test('unprotected A: POST /orders is forwarded (201); while B fails it is a 502 and the write is lost', async () => {
  const b = await startUpstream();
  const a = await startServiceA({ upstreamUrl: b.url, protected: false });
  try {
    assert.equal(a.writes, undefined);
    assert.equal((await postOrder(a.url, 'o1')).status, 201);
    b.setMode('failing');
    for (const id of ['o2', 'o3', 'o4']) assert.equal((await postOrder(a.url, id)).status, 502);
    b.setMode('healthy');
    assert.equal((await postOrder(a.url, 'o5')).status, 201);
    assert.equal((await postOrder(a.url, '')).status, 400);
    // Nothing kept the failed writes: B never gets them.
    assert.deepEqual([...b.appliedIds()], ['o1', 'o5']);
  } finally {
    await a.close();
    await b.close();
  }
});

test('protected A: POST /orders answers 202 while B fails; after B recovers every write is applied once', async () => {
  const b = await startUpstream();
  const a = await startServiceA({
    upstreamUrl: b.url,
    protected: true,
    registry: breakerRegistry(),
    tripThreshold: 2,
    openDurationMs: 50,
  });
  const storePath = a.writeStorePath;
  try {
    assert.ok(a.writes !== undefined && storePath !== undefined);
    const queue = a.writes;
    const sent = await postOrder(a.url, 'p1');
    assert.equal(sent.status, 201);
    assert.equal(sent.body.status, 'sent');
    b.setMode('failing');
    const ids = ['p2', 'p3', 'p4', 'p5', 'p6'];
    for (const id of ids) {
      const r = await postOrder(a.url, id);
      assert.equal(r.status, 202, `${id} is queued, not lost`);
      assert.equal(r.body.status, 'queued');
    }
    assert.equal(queue.size, ids.length);
    assert.ok(existsSync(storePath), 'the queued writes are in the file store');
    assert.deepEqual([...b.appliedIds()], ['p1']);
    // B recovers: after its backoff (or at once when the breaker closes) the queue replays until empty.
    const drained = new Promise<void>((resolve) => queue.on('drained', () => resolve()));
    b.setMode('healthy');
    await drained;
    assert.equal(queue.size, 0);
    assert.deepEqual([...b.appliedIds()], ['p1', ...ids], 'every write applied, in order');
    assert.equal(b.stats().writes.applied, 1 + ids.length);
    assert.equal(a.breaker!.state, 'closed');
    assert.equal((await postOrder(a.url, 'p7')).status, 201);
  } finally {
    await a.close();
    await b.close();
  }
  assert.equal(existsSync(dirname(storePath!)), false, "close() removes the queue's temporary directory");
});

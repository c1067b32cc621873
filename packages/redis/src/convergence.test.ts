// Every instance ends on the state stored in Redis, whatever the order in which it hears things.
// An instance talks to Redis on two connections (commands, subscriber), so a message published
// before one of its commands ran can reach it after that command's reply. These tests put a
// reordering proxy (proxy.test.util.ts) between some stores and Redis: held frames make one
// such order happen on purpose; random delays, drawn from a seed, explore many of them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { CircuitState } from './contract.js';
import { FakeBreaker } from './fake-breaker.test.util.js';
import { type Link, type ReorderingProxy, reorderingProxy } from './proxy.test.util.js';
import { sharedRedis, skipNoRedis, uniquePrefix, waitFor } from './server.test.util.js';
import { type RedisStore, type RedisStoreOptions, redisStore } from './store.js';

const silent = { warn: () => {} };

describe('convergence when messages and replies arrive out of order', { skip: skipNoRedis }, () => {
  let url = '';
  let stop = async () => {};
  let redis: Redis;
  const stores: RedisStore[] = [];
  const proxies: ReorderingProxy[] = [];
  const make = async (opts: RedisStoreOptions): Promise<RedisStore> => {
    const s = redisStore({ url, logger: silent, ...opts });
    stores.push(s);
    assert.equal(await s.ready(5000), true, 'store connects');
    return s;
  };
  const attach = async (store: RedisStore, name: string): Promise<FakeBreaker> => {
    const b = new FakeBreaker(name);
    b.session = store.attach(b);
    assert.equal(await store.ready(5000), true, 'first read done');
    return b;
  };
  const upstreamPort = () => Number(new URL(url).port || 6379);
  before(async () => {
    ({ url, stop } = await sharedRedis());
    redis = new Redis(url);
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await Promise.all(proxies.map((p) => p.close()));
    const keys = await redis.keys(`tstest-*-${process.pid}-*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await stop();
  });

  test('a refused write adopted from its reply is not undone by an older message that arrives after it', async () => {
    const prefix = uniquePrefix('late');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({ prefix, url: proxy.url });
    const b = await make({ prefix });
    const c = await make({ prefix });
    const [bp, bb, bc] = [await attach(p, 'g'), await attach(b, 'g'), await attach(c, 'g')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    const all = (st: CircuitState) => waitFor(() => [bp, bb, bc].every((x) => x.state === st), `all ${st}`);
    bb.go('isolated', 'op');
    await all('isolated');
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    assert.ok(sub, 'the proxy saw the subscriber connection');
    // P hears nothing for now: B closes, then C disables, then P sets metrics-only (last in Redis)
    sub.hold();
    bb.go('closed', 'op');
    await waitFor(() => bc.state === 'closed', 'C hears the close');
    bc.go('disabled', 'op');
    await waitFor(() => bb.state === 'disabled', 'B hears the disable');
    bp.go('metrics-only', 'op');
    await waitFor(async () => (await stored()) === 'metrics-only' && bb.state === 'metrics-only', 'P wrote');
    await waitFor(() => sub.held === 3, 'three messages held for P');
    // P hears B's close only, and trips: refused (Redis holds P's manual state), P adopts the reply
    sub.release(1);
    await waitFor(() => bp.state === 'closed', "P hears B's close");
    bp.go('open', 'failures', 60_000);
    await waitFor(() => bp.state === 'metrics-only', 'P takes the stored state from the refusal');
    // now the rest arrives: C's disable (older than what P adopted), then P's own echo
    sub.release();
    await waitFor(() => sub.held === 0, 'delivered');
    assert.equal(await stored(), 'metrics-only');
    await waitFor(
      () => [bp, bb, bc].every((x) => x.state === 'metrics-only'),
      'every instance on the stored state',
      2000,
    ).catch(() => {
      assert.fail(`stored metrics-only, local ${[bp, bb, bc].map((x) => x.state).join(',')}`);
    });
  });

  test('a re-read overtaken only by messages older than itself is the truth (no giving up on an older state)', async () => {
    const prefix = uniquePrefix('older');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({ prefix, url: proxy.url });
    const b = await make({ prefix });
    const c = await make({ prefix });
    const [bp, bb, bc] = [await attach(p, 'g'), await attach(b, 'g'), await attach(c, 'g')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    bb.go('isolated', 'op');
    await waitFor(() => [bp, bb, bc].every((x) => x.state === 'isolated'), 'all isolated');
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    const cmd = proxy.links.find((l) => !l.subscriber) as Link;
    // P hears nothing for now: B closes, then B and C take turns 7 times, then P writes last
    sub.hold();
    bb.go('closed', 'op');
    await waitFor(() => bc.state === 'closed', 'C hears the close');
    for (let i = 0; i < 7; i++) {
      const [me, peer] = i % 2 === 0 ? [bc, bb] : [bb, bc];
      const to: CircuitState = i % 2 === 0 ? 'disabled' : 'isolated';
      me.go(to, 'op');
      await waitFor(() => peer.state === to, `turn ${i} heard`);
    }
    bp.go('metrics-only', 'op');
    await waitFor(async () => (await stored()) === 'metrics-only' && bb.state === 'metrics-only', 'P wrote');
    await waitFor(() => sub.held === 9, 'nine messages held for P');
    sub.release(1);
    await waitFor(() => bp.state === 'closed', "P hears B's close");
    // P trips (refused: Redis holds P's manual state); one older message reaches P before each
    // reply: the refusal's, then each re-read's
    cmd.hold();
    bp.go('open', 'failures', 60_000);
    let replies = 0;
    for (;;) {
      await waitFor(() => cmd.held === 1 || bp.state === 'metrics-only', 'a reply on its way, or settled');
      if (cmd.held === 0) break;
      const heard = bp.applied.length;
      sub.release(1);
      await waitFor(() => bp.applied.length > heard, 'P applies an older message');
      cmd.release(1);
      replies++;
      if (sub.held === 1) break; // only P's own echo left
    }
    cmd.release();
    sub.release();
    await waitFor(() => sub.held === 0, 'delivered');
    assert.equal(await stored(), 'metrics-only');
    await waitFor(
      () => [bp, bb, bc].every((x) => x.state === 'metrics-only'),
      'every instance on the stored state',
      2000,
    ).catch(() => {
      assert.fail(
        `stored metrics-only, local ${[bp, bb, bc].map((x) => x.state).join(',')} after ${replies} replies`,
      );
    });
  });
});

// Every instance ends on the state stored in Redis, whatever the order in which it hears things.
// An instance talks to Redis on two connections (commands, subscriber), so a message published
// before one of its commands ran can reach it after that command's reply. These tests put a
// reordering proxy (proxy.test.util.ts) between stores and Redis: held frames make one such order
// happen on purpose; in the property, fast-check draws when which frames are let through.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { TestClock } from 'tripswitch/testing';
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

  // The stored state these two tests end on is another instance's write. It must not be this
  // instance's own: the reply of an applied write sets the version floor too (see 'an older
  // message that arrives after the instance's own write' below), which would skip the older
  // messages these tests are about before the refused write is even answered.
  test('a refused write adopted from its reply is not undone by an older message that arrives after it', async () => {
    const prefix = uniquePrefix('late');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({ prefix, url: proxy.url });
    const b = await make({ prefix });
    const c = await make({ prefix });
    const [bp, bb, bc] = [await attach(p, 'g'), await attach(b, 'g'), await attach(c, 'g')];
    const [pb, ob] = [await attach(p, 'barrier'), await attach(b, 'barrier')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    const all = (st: CircuitState) => waitFor(() => [bp, bb, bc].every((x) => x.state === st), `all ${st}`);
    bb.go('isolated', 'op');
    await all('isolated');
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    assert.ok(sub, 'the proxy saw the subscriber connection');
    // P hears nothing for now: B closes, then C disables, then B sets metrics-only (last in Redis)
    sub.hold();
    bb.go('closed', 'op');
    await waitFor(() => bc.state === 'closed', 'C hears the close');
    bc.go('disabled', 'op');
    await waitFor(() => bb.state === 'disabled', 'B hears the disable');
    bb.go('metrics-only', 'op');
    await waitFor(async () => (await stored()) === 'metrics-only' && bc.state === 'metrics-only', 'B wrote');
    await waitFor(() => sub.held === 3, 'three messages held for P');
    // P hears B's close only, and trips: refused (Redis holds B's manual state), P adopts the reply
    sub.release(1);
    await waitFor(() => bp.state === 'closed', "P hears B's close");
    bp.go('open', 'failures', 60_000);
    await waitFor(() => bp.state === 'metrics-only', 'P takes the stored state from the refusal');
    const heard = bp.applied.length;
    // now the rest arrives: C's disable (older than what P adopted), then B's metrics-only; B's
    // isolation of another breaker after them is the barrier: once P applied it, P has handled
    // every message before it
    sub.release();
    ob.go('isolated', 'op');
    await waitFor(() => pb.state === 'isolated', 'P hears the barrier');
    assert.equal(await stored(), 'metrics-only');
    assert.deepEqual(
      bp.applied.slice(heard).map((a) => a.state),
      [],
      'P went back to an older state after adopting the stored one from the refusal',
    );
    assert.deepEqual(
      [bp, bb, bc].map((x) => x.state),
      ['metrics-only', 'metrics-only', 'metrics-only'],
    );
  });

  test('a re-read overtaken only by messages older than itself is the truth (no giving up on an older state)', async () => {
    const prefix = uniquePrefix('older');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({ prefix, url: proxy.url });
    const b = await make({ prefix });
    const c = await make({ prefix });
    const [bp, bb, bc] = [await attach(p, 'g'), await attach(b, 'g'), await attach(c, 'g')];
    const [pb, ob] = [await attach(p, 'barrier'), await attach(b, 'barrier')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    bb.go('isolated', 'op');
    await waitFor(() => [bp, bb, bc].every((x) => x.state === 'isolated'), 'all isolated');
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    const cmd = proxy.links.find((l) => !l.subscriber) as Link;
    // P hears nothing for now: B closes, then B and C take turns 7 times, then B sets
    // metrics-only (last in Redis)
    sub.hold();
    bb.go('closed', 'op');
    await waitFor(() => bc.state === 'closed', 'C hears the close');
    for (let i = 0; i < 7; i++) {
      const [me, peer] = i % 2 === 0 ? [bc, bb] : [bb, bc];
      const to: CircuitState = i % 2 === 0 ? 'disabled' : 'isolated';
      me.go(to, 'op');
      await waitFor(() => peer.state === to, `turn ${i} heard`);
    }
    bb.go('metrics-only', 'op');
    await waitFor(async () => (await stored()) === 'metrics-only' && bc.state === 'metrics-only', 'B wrote');
    await waitFor(() => sub.held === 9, 'nine messages held for P');
    sub.release(1);
    await waitFor(() => bp.state === 'closed', "P hears B's close");
    // P trips (refused: Redis holds B's manual state); one older message reaches P before each
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
      if (sub.held === 1) break; // only B's metrics-only left: the older messages are used up
    }
    cmd.release();
    // the reads are over and B's metrics-only, the one message that would set P right, is still
    // held: P must be on the state a read gave it
    await waitFor(() => bp.state === 'metrics-only', 'P on the state read', 2000).catch(() => {
      assert.fail(`stored metrics-only, local ${bp.state} after ${replies} replies`);
    });
    const heard = bp.applied.length;
    // the rest arrives (older messages, B's metrics-only), then the barrier: B's isolation of
    // another breaker
    sub.release();
    ob.go('isolated', 'op');
    await waitFor(() => pb.state === 'isolated', 'P hears the barrier');
    assert.equal(await stored(), 'metrics-only');
    assert.deepEqual(
      bp.applied.slice(heard).map((a) => a.state),
      [],
      'P went back to an older state after the read',
    );
    assert.deepEqual(
      [bp, bb, bc].map((x) => x.state),
      ['metrics-only', 'metrics-only', 'metrics-only'],
    );
  });

  // The half-open probe lease: a refused request carries the stored state, which the instance
  // takes over (a manual state, a close, an open period still running). That reply is ordered
  // with the command connection only, like a read's.
  test('a refused probe lease whose reply is older than a message already applied is not adopted', async () => {
    const prefix = uniquePrefix('lease-old');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({ prefix, url: proxy.url });
    const b = await make({ prefix });
    const c = await make({ prefix });
    const [bp, bb, bc] = [await attach(p, 'g'), await attach(b, 'g'), await attach(c, 'g')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    bb.go('open', 'failures', 60_000);
    await waitFor(() => [bp, bb, bc].every((x) => x.state === 'open'), 'all open');
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    const cmd = proxy.links.find((l) => !l.subscriber) as Link;
    // P does not hear B's metrics-only yet; its own open period ends (a local step) and it asks
    // for the probe lease: refused, the reply (metrics-only) held on P's command connection
    sub.hold();
    bb.go('metrics-only', 'op');
    await waitFor(async () => (await stored()) === 'metrics-only' && bc.state === 'metrics-only', 'B wrote');
    cmd.hold();
    bp.go('half-open', 'open period over');
    assert.equal(bp.session.requestProbe?.(), false, 'P asks for the lease');
    // settles once the reply has been handled (what a call waiting for the lease waits on)
    const decided = bp.session.awaitProbe?.();
    await waitFor(() => cmd.held === 1, "the lease's reply held");
    // C disables after the lease was refused; P hears both messages before the reply
    bc.go('disabled', 'op');
    await waitFor(async () => (await stored()) === 'disabled' && bb.state === 'disabled', 'C wrote');
    sub.release();
    await waitFor(() => bp.state === 'disabled', "P hears C's disable");
    const heard = bp.applied.length;
    cmd.release();
    assert.equal(await decided, false, 'the lease refused');
    assert.equal(await stored(), 'disabled');
    assert.deepEqual(
      bp.applied.slice(heard).map((a) => a.state),
      [],
      `P took an older state from the lease's reply (stored disabled, local ${bp.state})`,
    );
    assert.deepEqual(
      [bp, bb, bc].map((x) => x.state),
      ['disabled', 'disabled', 'disabled'],
    );
  });

  test('a state taken from a refused probe lease is not undone by an older message that arrives after it', async () => {
    const prefix = uniquePrefix('lease-late');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({ prefix, url: proxy.url });
    const b = await make({ prefix });
    const c = await make({ prefix });
    const [bp, bb, bc] = [await attach(p, 'g'), await attach(b, 'g'), await attach(c, 'g')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    bb.go('open', 'failures', 60_000);
    await waitFor(() => [bp, bb, bc].every((x) => x.state === 'open'), 'all open');
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    // P hears nothing for now: B isolates, then C closes (last in Redis)
    sub.hold();
    bb.go('isolated', 'op');
    await waitFor(() => bc.state === 'isolated', 'C hears the isolation');
    bc.go('closed', 'op');
    await waitFor(async () => (await stored()) === 'closed' && bb.state === 'closed', 'C wrote');
    await waitFor(() => sub.held === 2, 'two messages held for P');
    // P's open period ends (a local step); the lease is refused and P takes the stored close
    bp.go('half-open', 'open period over');
    assert.equal(bp.session.requestProbe?.(), false, 'P asks for the lease');
    assert.equal(await bp.session.awaitProbe?.(), false, 'the lease refused');
    assert.equal(bp.state, 'closed', 'P takes the stored state from the refusal');
    const heard = bp.applied.length;
    // now B's isolation (older than what P took) arrives, then C's close; B's disable after them
    // is the barrier: once P applied it, P has handled every message before it
    sub.release();
    bb.go('disabled', 'op');
    await waitFor(() => bp.state === 'disabled', "P hears B's disable");
    assert.deepEqual(
      bp.applied.slice(heard).map((a) => a.state),
      ['disabled'],
      'P went back to an older state after taking the stored one from the refusal',
    );
    assert.equal(await stored(), 'disabled');
  });

  test("a transition made while a probe lease request is on its way is not undone by the lease's reply", async () => {
    const prefix = uniquePrefix('lease-moved');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({ prefix, url: proxy.url });
    const b = await make({ prefix });
    const [bp, bb] = [await attach(p, 'g'), await attach(b, 'g')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    bp.go('open', 'failures', 60_000);
    await waitFor(() => bb.state === 'open', 'B hears the open');
    const cmd = proxy.links.find((l) => !l.subscriber) as Link;
    // P's open period ends and it asks for the lease (refused: the open period runs in Redis);
    // before the reply comes, P closes (and B hears it, and so does P: its own echo)
    cmd.hold();
    bp.go('half-open', 'open period over');
    assert.equal(bp.session.requestProbe?.(), false, 'P asks for the lease');
    const decided = bp.session.awaitProbe?.();
    bp.go('closed', 'op');
    await waitFor(async () => (await stored()) === 'closed' && bb.state === 'closed', 'P closed in Redis');
    cmd.release();
    assert.equal(await decided, false, 'the lease refused');
    // a re-read may follow the stale reply: wait for a settled state, then check it
    await waitFor(() => bp.state === 'closed', 'P on the stored state', 2000).catch(() => {
      assert.fail(`stored closed, local ${bp.state} (applied ${bp.applied.map((a) => a.state).join(',')})`);
    });
    assert.deepEqual(
      bp.applied.map((a) => a.state),
      [],
      "P took the lease's reply over its own later transition",
    );
  });

  // A breaker moves open -> half-open only when the store says so: a granted probe lease, which
  // carries no state to take over. This local step publishes nothing, and it is what makes the
  // echo of the instance's own write (its sequence no longer current) leave the state alone.
  test("an older message that arrives after the instance's own write does not undo it once the breaker moved on (open -> half-open on a granted lease, not published)", async () => {
    const prefix = uniquePrefix('own-late');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({ prefix, url: proxy.url });
    const b = await make({ prefix });
    const [bp, bb] = [await attach(p, 'g'), await attach(b, 'g')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    // P hears nothing for now: B isolates, then closes; P trips (accepted: Redis holds closed),
    // with a short open period
    sub.hold();
    bb.go('isolated', 'op');
    await waitFor(async () => (await stored()) === 'isolated', 'B isolated');
    bb.go('closed', 'op');
    await waitFor(async () => (await stored()) === 'closed', 'B closed');
    bp.go('open', 'failures', 100);
    await waitFor(async () => (await stored()) === 'open' && bb.state === 'open', 'P tripped');
    // a read on P's command connection after its write: once it is done, the write's reply was handled
    const pb = await attach(p, 'barrier');
    await waitFor(() => sub.held === 3, 'three messages held for P');
    // P's open period ends in Redis; P's next call asks for the probe lease, gets it, and the
    // breaker moves to half-open (a local step)
    await waitFor(async () => (await redis.pttl(`${prefix}:{g}:o`)) < 0, 'the open period over in Redis');
    assert.equal(bp.session.requestProbe?.(), false, 'P asks for the lease');
    assert.equal(await bp.session.awaitProbe?.(), true, 'the lease granted');
    assert.equal(bp.session.requestProbe?.(), true, 'the call takes it');
    bp.go('half-open', 'open-duration-elapsed');
    // then the older messages and P's own echo arrive, and a message on another breaker after
    // them (the barrier: P has handled everything before it)
    const heard = bp.applied.length;
    const ob = await attach(b, 'barrier');
    sub.release();
    ob.go('isolated', 'op');
    await waitFor(() => pb.state === 'isolated', 'P hears the barrier');
    // Redis holds P's open, its period over, and P's lease: P probes (half-open)
    assert.equal(await stored(), 'open');
    assert.notEqual(await redis.get(`${prefix}:{g}:p`), null, 'the lease held (by P: no one else asked)');
    assert.deepEqual(
      bp.applied.slice(heard).map((a) => a.state),
      [],
      `P went back to states older than its own write (stored open, local ${bp.state})`,
    );
    assert.equal(bp.state, 'half-open', 'P probes');
  });

  // A fleet-counted trip is written by the flush script and published under the instance's own
  // id, like its own transitions; P opens when it hears the echo.
  test("an older message that arrives after the instance's fleet trip does not undo it once the breaker moved on (a granted lease)", async () => {
    const prefix = uniquePrefix('fleet-late');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    // three failures fill a batch (sent at once) and trip the fleet rule, with a short open period
    const p = await make({
      prefix,
      url: proxy.url,
      mode: 'fleet',
      flushMaxOutcomes: 3,
      fleet: { minimumCalls: 3, failureRateThreshold: 0.5, openDurationMs: 100 },
    });
    const b = await make({ prefix });
    const [bp, bb] = [await attach(p, 'g'), await attach(b, 'g')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    const cmd = proxy.links.find((l) => !l.subscriber) as Link;
    // P hears nothing for now: B trips, then closes (an operator's reset)
    sub.hold();
    bb.go('open', 'failures', 60_000);
    await waitFor(async () => (await stored()) === 'open', 'B tripped');
    bb.go('closed', 'op');
    await waitFor(async () => (await stored()) === 'closed', 'B closed');
    // P counts three failures: the flush trips the fleet (accepted: Redis holds closed); its reply is held
    cmd.hold();
    for (let i = 0; i < 3; i++) bp.session.onOutcome?.('failure');
    await waitFor(
      async () => (await redis.hget(`${prefix}:{g}:s`, 'r')) === 'fleet-trip',
      'P tripped the fleet',
    );
    await waitFor(() => sub.held === 3 && cmd.held === 1, "three messages and the flush's reply held for P");
    // P hears B's trip (older than its own) before the flush's reply: P opens
    sub.release(1);
    await waitFor(() => bp.state === 'open', "P hears B's trip");
    cmd.release();
    // a read on P's command connection after the flush: once it is done, the flush's reply was handled
    const pb = await attach(p, 'barrier');
    // the fleet trip's open period ends in Redis; P's next call asks for the probe lease, gets it,
    // and the breaker moves to half-open (a local step)
    await waitFor(async () => (await redis.pttl(`${prefix}:{g}:o`)) < 0, 'the open period over in Redis');
    assert.equal(bp.session.requestProbe?.(), false, 'P asks for the lease');
    assert.equal(await bp.session.awaitProbe?.(), true, 'the lease granted');
    assert.equal(bp.session.requestProbe?.(), true, 'the call takes it');
    bp.go('half-open', 'open-duration-elapsed');
    // then B's close (older than the fleet trip) and P's own echo arrive, and a message on another
    // breaker after them (the barrier: P has handled everything before it)
    const heard = bp.applied.length;
    const ob = await attach(b, 'barrier');
    sub.release();
    ob.go('isolated', 'op');
    await waitFor(() => pb.state === 'isolated', 'P hears the barrier');
    // Redis holds P's fleet trip, its period over, and P's lease: P probes (half-open)
    assert.equal(await stored(), 'open');
    assert.equal(await redis.hget(`${prefix}:{g}:s`, 'r'), 'fleet-trip');
    assert.notEqual(await redis.get(`${prefix}:{g}:p`), null, 'the lease held (by P: no one else asked)');
    assert.deepEqual(
      bp.applied.slice(heard).map((a) => a.state),
      [],
      `P went back to a state older than its fleet trip (stored open, local ${bp.state})`,
    );
    assert.equal(bp.state, 'half-open', 'P probes');
  });

  test("messages older than a fleet trip that arrive after the flush's reply are skipped (the echo alone opens the instance)", async () => {
    const prefix = uniquePrefix('fleet-old');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({
      prefix,
      url: proxy.url,
      mode: 'fleet',
      flushMaxOutcomes: 3,
      fleet: { minimumCalls: 3, failureRateThreshold: 0.5, openDurationMs: 60_000 },
    });
    const b = await make({ prefix });
    const [bp, bb] = [await attach(p, 'g'), await attach(b, 'g')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    // P hears nothing for now: B isolates, then closes; P's flush trips the fleet
    sub.hold();
    bb.go('isolated', 'op');
    await waitFor(async () => (await stored()) === 'isolated', 'B isolated');
    bb.go('closed', 'op');
    await waitFor(async () => (await stored()) === 'closed', 'B closed');
    for (let i = 0; i < 3; i++) bp.session.onOutcome?.('failure');
    await waitFor(
      async () => (await redis.hget(`${prefix}:{g}:s`, 'r')) === 'fleet-trip',
      'P tripped the fleet',
    );
    // a read on P's command connection after the flush: once it is done, the flush's reply was handled
    const pb = await attach(p, 'barrier');
    await waitFor(() => sub.held === 3, 'three messages held for P');
    const ob = await attach(b, 'barrier');
    sub.release();
    ob.go('isolated', 'op');
    await waitFor(() => pb.state === 'isolated', 'P hears the barrier');
    assert.deepEqual(
      bp.applied.map((a) => `${a.state} ${a.reason}`),
      ['open remote:fleet-trip'],
      'P applied states older than its fleet trip after the reply',
    );
    assert.equal(bp.state, 'open');
  });

  // A granted lease carries the stored state's version: every message up to it was published
  // before the grant, and the instance already stands on the open state it speaks for.
  test('messages up to a granted probe lease that arrive after it do not move the probing instance (nor restart its open period)', async () => {
    const prefix = uniquePrefix('lease-granted');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({ prefix, url: proxy.url });
    const b = await make({ prefix });
    const [bp, bb] = [await attach(p, 'g'), await attach(b, 'g')];
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    // P trips (its own write: its reply sets the floor) and B hears it
    bp.go('open', 'failures', 60_000);
    await waitFor(() => bb.state === 'open', 'B hears the open');
    // a read on P's command connection after its write: once it is done, the write's reply was handled
    const pb = await attach(p, 'barrier');
    // P hears nothing for now: B isolates, closes, then trips with a short open period (last in Redis)
    sub.hold();
    bb.go('isolated', 'op');
    await waitFor(async () => (await stored()) === 'isolated', 'B isolated');
    bb.go('closed', 'op');
    await waitFor(async () => (await stored()) === 'closed', 'B closed');
    bb.go('open', 'failures', 100);
    await waitFor(async () => (await stored()) === 'open', 'B tripped');
    await waitFor(() => sub.held >= 3, "B's three messages held for P");
    // B's open period ends in Redis; P (open, its period over) asks for the lease, gets it, and
    // the breaker moves to half-open (a local step)
    await waitFor(async () => (await redis.pttl(`${prefix}:{g}:o`)) < 0, 'the open period over in Redis');
    assert.equal(bp.session.requestProbe?.(), false, 'P asks for the lease');
    assert.equal(await bp.session.awaitProbe?.(), true, 'the lease granted');
    assert.equal(bp.session.requestProbe?.(), true, 'the call takes it');
    bp.go('half-open', 'open-duration-elapsed');
    // then B's messages arrive, and a message on another breaker after them (the barrier)
    const heard = bp.applied.length;
    const ob = await attach(b, 'barrier');
    sub.release();
    ob.go('isolated', 'op');
    await waitFor(() => pb.state === 'isolated', 'P hears the barrier');
    assert.equal(await stored(), 'open');
    assert.notEqual(await redis.get(`${prefix}:{g}:p`), null, 'the lease held (by P: no one else asked)');
    assert.deepEqual(
      bp.applied.slice(heard).map((a) => a.state),
      [],
      `P applied messages the lease's reply already reflects (stored open, local ${bp.state})`,
    );
    assert.equal(bp.state, 'half-open', 'P probes');
  });

  // A grant is given on an open state whose period is over; any write after it (a manual state, a
  // new open period, a close by the holder) deletes the lease in Redis. Its reply, on the command
  // connection, can come after the instance heard of such a write, or after it made one itself:
  // the instance must not then take the lease (it would move to half-open and probe without it,
  // beside the instance that gets the lease next). P's store runs on a TestClock, so the lease it
  // took stays unused (the 250 ms give-back is a timer on that clock) until the test asks, however
  // slowly the machine runs.
  test("a granted probe lease whose reply comes after a newer message (another instance's trip) is not taken", async () => {
    const prefix = uniquePrefix('lease-stale');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const p = await make({ prefix, url: proxy.url, clock: new TestClock() });
    const b = await make({ prefix });
    const [bp, bb] = [await attach(p, 'g'), await attach(b, 'g')];
    const kLease = `${prefix}:{g}:p`;
    const periodOver = () =>
      waitFor(async () => (await redis.pttl(`${prefix}:{g}:o`)) < 0, 'the open period over in Redis');
    // B trips with a short open period; P hears it
    bb.go('open', 'failures', 100);
    await waitFor(() => bp.state === 'open', 'P hears the open');
    await periodOver();
    // P's call asks for the lease: granted, the reply held on P's command connection
    const cmd = proxy.links.find((l) => !l.subscriber) as Link;
    cmd.hold();
    assert.equal(bp.session.requestProbe?.(), false, 'P asks for the lease');
    const decided = bp.session.awaitProbe?.();
    await waitFor(() => cmd.held === 1, "the lease's reply held");
    assert.notEqual(await redis.get(kLease), null, "P's lease in Redis");
    // B is reset by an operator and trips again (each deletes the lease); P hears both before the reply
    const heard = bp.applied.length;
    bb.go('closed', 'op');
    bb.go('open', 'failures', 100);
    await waitFor(() => bp.applied.length === heard + 2, "P hears B's close and trip");
    assert.equal(await redis.get(kLease), null, 'the lease deleted by the trip');
    await periodOver();
    cmd.release();
    const taken = await decided;
    // B's open period is over too: B asks, gets the lease and probes
    assert.equal(bb.session.requestProbe?.(), false, 'B asks for the lease');
    assert.equal(await bb.session.awaitProbe?.(), true, 'B gets the lease');
    assert.equal(bb.session.requestProbe?.(), true, "B's call takes it");
    bb.go('half-open', 'open-duration-elapsed');
    // P's next call: it must ask Redis (and be refused), not probe on the lease given before B's trip
    const probes = bp.session.requestProbe?.();
    assert.deepEqual(
      { taken, probes },
      { taken: false, probes: false },
      'P took a lease its reply gave before B deleted it, and probes beside B',
    );
    assert.equal(await bp.session.awaitProbe?.(), false, 'refused: B holds the lease');
    assert.equal(bp.state, 'open', 'P stays open');
  });

  test('a granted probe lease whose reply comes after a local transition of the asking instance is not taken', async () => {
    const prefix = uniquePrefix('lease-stale-own');
    const proxy = await reorderingProxy(upstreamPort());
    proxies.push(proxy);
    const clock = new TestClock();
    const p = await make({ prefix, url: proxy.url, clock });
    const b = await make({ prefix });
    const [bp, bb] = [await attach(p, 'g'), await attach(b, 'g')];
    const kLease = `${prefix}:{g}:p`;
    const stored = async () => ((await redis.hget(`${prefix}:{g}:s`, 'st')) ?? 'closed') as CircuitState;
    const periodOver = () =>
      waitFor(async () => (await redis.pttl(`${prefix}:{g}:o`)) < 0, 'the open period over in Redis');
    bb.go('open', 'failures', 100);
    await waitFor(() => bp.state === 'open', 'P hears the open');
    await periodOver();
    // P asks for the lease: granted, the reply held; P hears nothing for now either (not even its
    // own echoes), so only its own transitions can tell it the grant is stale
    const cmd = proxy.links.find((l) => !l.subscriber) as Link;
    const sub = proxy.links.find((l) => l.subscriber) as Link;
    cmd.hold();
    sub.hold();
    assert.equal(bp.session.requestProbe?.(), false, 'P asks for the lease');
    const decided = bp.session.awaitProbe?.();
    await waitFor(() => cmd.held === 1, "the lease's reply held");
    assert.notEqual(await redis.get(kLease), null, "P's lease in Redis");
    // an operator resets P (its write deletes the lease), after the grant and before its reply
    bp.go('closed', 'op');
    await waitFor(async () => (await stored()) === 'closed' && bb.state === 'closed', 'P closed in Redis');
    assert.equal(await redis.get(kLease), null, 'the lease deleted by the reset');
    cmd.release();
    const taken = await decided;
    // P trips again with a short open period (on P's clock: what FakeBreaker.go does, on the
    // system clock); once it is over, B asks, gets the lease and probes
    bp.state = 'open';
    bp.session.onTransition({ from: 'closed', to: 'open', reason: 'failures', openUntil: clock.now() + 100 });
    await waitFor(async () => (await stored()) === 'open' && bb.state === 'open', 'P tripped');
    await periodOver();
    assert.equal(bb.session.requestProbe?.(), false, 'B asks for the lease');
    assert.equal(await bb.session.awaitProbe?.(), true, 'B gets the lease');
    assert.equal(bb.session.requestProbe?.(), true, "B's call takes it");
    bb.go('half-open', 'open-duration-elapsed');
    // P's next call: it must ask Redis (and be refused), not probe on the lease its reset deleted
    const probes = bp.session.requestProbe?.();
    assert.deepEqual(
      { taken, probes },
      { taken: false, probes: false },
      'P took a lease its own reset deleted, and probes beside B',
    );
    assert.equal(await bp.session.awaitProbe?.(), false, 'refused: B holds the lease');
    sub.release();
  });

  test('converges: whatever the order of transitions, replies and messages, every instance, a newcomer too, ends on the stored state', async () => {
    const targets = ['closed', 'open', 'isolated', 'disabled', 'metrics-only'] as const;
    // One step of a run: a local transition of one of the three instances; some frames from Redis
    // let through to one instance on one of its connections (everything else is held by its
    // proxy); a pause (with a short command timeout: long enough for commands to time out); or an
    // instance's open period ending and a call asking for the probe lease.
    const step = fc.oneof(
      fc.record({
        kind: fc.constant('go' as const),
        who: fc.integer({ min: 0, max: 2 }),
        to: fc.constantFrom(...targets),
      }),
      fc.record({
        kind: fc.constant('deliver' as const),
        who: fc.integer({ min: 0, max: 3 }),
        sub: fc.boolean(),
        n: fc.integer({ min: 1, max: 3 }),
      }),
      fc.record({ kind: fc.constant('pause' as const), ms: fc.constantFrom(0, 1, 30) }),
      fc.record({ kind: fc.constant('probe' as const), who: fc.integer({ min: 0, max: 2 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 30 }),
        fc.nat({ max: 30 }),
        // a short command timeout (30 ms, recheck 20 ms) that held replies exceed: degraded,
        // re-read, recovered
        fc.boolean(),
        // which connections of the three are held (the others pass everything at once): an
        // instance whose subscriber lags its command connection, or the other way round
        fc.array(fc.record({ sub: fc.boolean(), cmd: fc.boolean() }), { minLength: 3, maxLength: 3 }),
        async (steps, joinAt, timeouts, holds) => {
          const prefix = uniquePrefix('conv');
          const proxies: ReorderingProxy[] = [];
          const all: RedisStore[] = [];
          const start = async (held: boolean): Promise<FakeBreaker> => {
            const proxy = await reorderingProxy(upstreamPort(), { holdNew: held });
            proxies.push(proxy);
            const st = redisStore({
              url: proxy.url,
              prefix,
              logger: silent,
              probeRetryMs: 0,
              ...(timeouts ? { commandTimeoutMs: 30, recheckIntervalMs: 20 } : {}),
            });
            all.push(st);
            if (!held) assert.equal(await st.ready(5000), true, 'store connects');
            const b = new FakeBreaker('c');
            b.session = st.attach(b);
            return b;
          };
          try {
            const bs = await Promise.all([start(false), start(false), start(false)]);
            // from here on frames from Redis on a held connection wait for a 'deliver' step
            for (const [i, proxy] of proxies.entries()) {
              proxy.holdNew = true;
              const h = holds[i] as { sub: boolean; cmd: boolean };
              for (const link of proxy.links) if (link.subscriber ? h.sub : h.cmd) link.hold();
            }
            // an instance that starts mid-run (no ready()), held from its first frame; its first
            // call waits (bounded) for its first read
            let joined: Promise<void> | undefined;
            const join = async () => {
              const b = await start(true);
              bs.push(b);
              joined = Promise.resolve(b.session.untilSynced?.()).then(() => undefined);
            };
            for (const [i, s] of steps.entries()) {
              if (i === joinAt) await join();
              if (s.kind === 'go') {
                const b = bs[s.who] as FakeBreaker;
                if (b.state !== s.to) b.go(s.to, 'op', s.to === 'open' ? 60_000 : undefined);
              } else if (s.kind === 'probe') {
                // the open period ends here (a local step) and a call asks for the probe lease:
                // refused (open periods outlive the run), its reply carries the stored state
                const b = bs[s.who] as FakeBreaker;
                if (b.state === 'open') b.go('half-open', 'open period over');
                if (b.state === 'half-open') b.session.requestProbe?.();
              } else if (s.kind === 'deliver') {
                for (const link of proxies[s.who]?.links ?? [])
                  if (link.subscriber === s.sub) link.release(s.n);
                await new Promise((r) => setTimeout(r, 1));
              } else if (s.ms === 0) await new Promise((r) => setImmediate(r));
              else await new Promise((r) => setTimeout(r, s.ms));
            }
            if (joined === undefined) await join();
            for (const proxy of proxies) {
              proxy.holdNew = false;
              for (const link of proxy.links) link.release();
            }
            await joined; // never hangs: bounded by the command timeout
            const stored = async () => (await redis.hget(`${prefix}:{c}:s`, 'st')) ?? 'closed';
            await waitFor(
              async () => {
                const st = await stored();
                // a half-open breaker asks for the lease again on its next call
                for (const b of bs) if (b.state === 'half-open') b.session.requestProbe?.();
                return bs.every((b) => b.state === st);
              },
              'every instance on the stored state',
              // a bound, not a speed claim: a store whose command timed out re-reads after its
              // recheck interval
              10_000,
            ).catch(async (err: Error) => {
              const st = await stored();
              throw new Error(`${err.message}: stored ${st}, local ${bs.map((b) => b.state).join(',')}`);
            });
          } finally {
            await Promise.all(all.map((st) => st.close()));
            await Promise.all(proxies.map((p) => p.close()));
          }
        },
      ),
      { numRuns: Number(process.env.CONVERGE_RUNS ?? 25) },
    );
  });
});

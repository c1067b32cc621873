// redisStore through Redis Sentinel (a master, a replica and sentinels on loopback,
// topology.test.util.ts): failovers mid-run, by SENTINEL FAILOVER and by a killed master.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type CircuitBreaker, circuitBreaker, isCircuitOpenError } from 'tripswitch';
import { answers, uniquePrefix, waitFor } from './server.test.util.js';
import { type RedisStore, redisStore } from './store.js';
import { RedisSentinel, skipNoSentinel } from './topology.test.util.js';

const unhandled: unknown[] = [];
process.on('unhandledRejection', (err) => unhandled.push(err));

describe('redisStore through Redis Sentinel', { skip: skipNoSentinel, timeout: 180_000 }, () => {
  let sentinel: RedisSentinel;
  const stores: RedisStore[] = [];
  before(async () => {
    sentinel = await RedisSentinel.start({ sentinels: 1 });
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await sentinel?.stop();
    assert.deepEqual(unhandled, [], 'no unhandled rejections');
  });
  const make = async (prefix: string, form: 'options' | 'url' = 'options'): Promise<RedisStore> => {
    const where =
      form === 'options'
        ? { sentinel: { sentinels: sentinel.sentinelNodes, name: sentinel.masterName } }
        : {
            url: `redis-sentinel://${sentinel.sentinelNodes.map((n) => `${n.host}:${n.port}`).join(',')}#${sentinel.masterName}`,
          };
    const s = redisStore({
      ...where,
      prefix,
      logger: false,
      commandTimeoutMs: 500,
      recheckIntervalMs: 100,
    });
    stores.push(s);
    assert.equal(await s.ready(10_000), true, 'store connects through the sentinels');
    return s;
  };
  const breaker = (store: RedisStore, name: string): CircuitBreaker =>
    circuitBreaker({ name, store, trip: { kind: 'consecutive', threshold: 3 }, openDuration: 60_000 });
  const trip = async (b: CircuitBreaker) => {
    for (let i = 0; i < 3; i++)
      await b
        .execute(() => {
          throw new Error('upstream down');
        })
        .catch(() => {});
  };

  test('failovers mid-run (SENTINEL FAILOVER, then a killed master): no call fails, state reconverges', async () => {
    const prefix = uniquePrefix('sentinel');
    // the third one from a redis-sentinel:// URL
    const stores3 = [await make(prefix), await make(prefix), await make(prefix, 'url')];
    const names = ['inv', 'ship', 'tax'];
    const all = stores3.map((s) => names.map((n) => breaker(s, n)));
    let running = true;
    const stats = { ok: 0, failed: 0, rejected: 0 };
    const load = (async () => {
      while (running) {
        for (const row of all)
          for (const br of row)
            await br
              .execute(() => 'fine')
              .then(
                () => stats.ok++,
                (e: unknown) => (isCircuitOpenError(e) ? stats.rejected++ : stats.failed++),
              );
        await new Promise((r) => setTimeout(r, 2));
      }
    })();

    // The load stops however the test ends: a loop left running would keep this file's process
    // alive after a failed wait (seen once on a loaded machine: the whole run waited on it).
    let first: { failoverMs: number } | undefined;
    let second: { failoverMs: number } | undefined;
    try {
      // 1. an operator's failover: the old master stays up, demoted to a replica
      first = await sentinel.failover('command');
      await trip(all[0]![0]!);
      await waitFor(
        () => all[1]![0]!.state === 'open' && all[2]![0]!.state === 'open',
        'after SENTINEL FAILOVER a trip reaches the other instances',
        20_000,
      );

      // 2. the master dies; a trip made before the sentinels promote the replica
      const victim = await sentinel.master();
      const killing = sentinel.failover('kill');
      await waitFor(async () => !(await answers(victim)), 'the master is gone', 10_000);
      await trip(all[1]![1]!);
      second = await killing;
      await waitFor(
        () => all[0]![1]!.state === 'open' && all[2]![1]!.state === 'open',
        'the trip made during the failover reaches the other instances after it',
        20_000,
      );
      // and a change after it propagates the normal way
      await trip(all[2]![2]!);
      await waitFor(
        () => all[0]![2]!.state === 'open' && all[1]![2]!.state === 'open',
        'a trip after the failover propagates',
        10_000,
      );
    } finally {
      running = false;
      await load;
    }
    assert.equal(stats.failed, 0, `calls that failed: ${JSON.stringify(stats)}`);
    assert.ok(stats.ok > 0);
    await waitFor(() => stores3.every((s) => s.healthy), 'every store healthy again', 10_000);
    process.stdout.write(
      `# failovers took ${first?.failoverMs} ms (command) and ${second?.failoverMs} ms (kill); ${stats.ok} calls ran\n`,
    );
  });
});

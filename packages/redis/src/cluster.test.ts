// redisStore on a real Redis Cluster (3 masters + 3 replicas on loopback, topology.test.util.ts):
// per-breaker sharded channels, a caller's Cluster client, and a master killed mid-run.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster } from 'ioredis';
import { type CircuitBreaker, circuitBreaker, isCircuitOpenError } from 'tripswitch';
import { documentedAcl } from './acl.test.util.js';
import { answers, uniquePrefix, waitFor } from './server.test.util.js';
import { type RedisStore, type RedisStoreOptions, redisStore } from './store.js';
import { ask, RedisCluster, skipNoCluster } from './topology.test.util.js';

const unhandled: unknown[] = [];
process.on('unhandledRejection', (err) => unhandled.push(err));

describe('redisStore on a Redis Cluster', { skip: skipNoCluster, timeout: 180_000 }, () => {
  let cluster: RedisCluster;
  const stores: RedisStore[] = [];
  const clients: Cluster[] = [];
  before(async () => {
    cluster = await RedisCluster.start({ nodeTimeoutMs: 1000 });
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    for (const c of clients) c.disconnect();
    await cluster?.stop();
    assert.deepEqual(unhandled, [], 'no unhandled rejections');
  });
  const make = async (opts: RedisStoreOptions): Promise<RedisStore> => {
    const s = redisStore({ logger: false, commandTimeoutMs: 500, recheckIntervalMs: 100, ...opts });
    stores.push(s);
    assert.equal(await s.ready(10_000), true, 'store connects to the cluster');
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

  test('state changes travel on sharded pub/sub, one channel per breaker, on its slot', async () => {
    const prefix = uniquePrefix('cl-shard');
    const own = new Cluster(cluster.startupNodes, { redisOptions: { connectTimeout: 1000 } });
    own.on('error', () => {});
    clients.push(own);
    // one store made from nodes, one on a caller's Cluster client (its duplicate() subscribes)
    const a = await make({ cluster: cluster.startupNodes, prefix });
    const b = await make({ client: own, prefix });
    const ba = breaker(a, 'pay');
    const bb = breaker(b, 'pay');
    await trip(ba);
    assert.equal(ba.state, 'open');
    await waitFor(() => bb.state === 'open', 'the open reaches the store on the caller’s client', 5000);
    // a newcomer that names the nodes by hostname (ioredis swaps them for the cluster's own
    // addresses): no outage reported, and its first calls wait for the first read: rejected
    const byName = cluster.startupNodes.map((n) => ({ host: 'localhost', port: n.port }));
    const c = redisStore({ cluster: byName, prefix, logger: false, commandTimeoutMs: 3000 });
    stores.push(c);
    const outages: unknown[] = [];
    c.on('degraded', ({ error }) => outages.push(error));
    const bc = breaker(c, 'pay');
    let reached = 0;
    const first = await Promise.all(
      Array.from({ length: 5 }, () => bc.execute(() => ++reached).catch((e: unknown) => e)),
    );
    assert.ok(first.every(isCircuitOpenError), `a newcomer's first calls: ${first.map(String).join()}`);
    assert.equal(reached, 0);
    assert.equal(await c.ready(10_000), true);
    assert.deepEqual(outages, [], 'renaming startup nodes is no outage');
    const channel = `${prefix}:{pay}:events`;
    const master = await cluster.masterOf(channel);
    const sharded = (await ask(master, ['PUBSUB', 'SHARDCHANNELS', `${prefix}:*`])) as string[];
    assert.deepEqual(sharded, [channel], 'subscribed on the slot’s master');
    for (const port of cluster.ports) {
      const classic = (await ask(port, ['PUBSUB', 'CHANNELS', `${prefix}:*`])) as string[];
      assert.deepEqual(classic, [], `no classic channel on ${port}`);
    }
    // every key the scripts wrote carries the breaker's hash tag (one slot per breaker)
    const keys = (await ask(master, ['KEYS', `${prefix}:*`])) as string[];
    assert.ok(keys.length > 0);
    for (const k of keys) assert.match(k, new RegExp(`^${prefix}:\\{pay\\}:`));
    // the caller's client is left working
    await b.close();
    assert.equal(own.status, 'ready');
    assert.equal(await own.hget(`${prefix}:{pay}:s`, 'st'), 'open');
  });

  test('a user limited to the documented cluster ACL (on every node) runs everything; ACL LOG stays empty', async () => {
    const prefix = 'aclcl';
    const rules = documentedAcl('cluster').map((r) =>
      r.replaceAll('tripswitch:', `${prefix}:`).replace('>CHANGE-ME', '>acl-pw'),
    );
    for (const port of cluster.ports) {
      await ask(port, ['ACL', 'SETUSER', 'tripswitch', ...rules]);
      await ask(port, ['ACL', 'LOG', 'RESET']);
    }
    const limited = { username: 'tripswitch', password: 'acl-pw' };
    const opts: RedisStoreOptions = { cluster: cluster.startupNodes, prefix, redisOptions: limited };
    const [a, b] = [
      await make({ ...opts, mode: 'fleet', flushIntervalMs: 5 }),
      await make({ ...opts, mode: 'fleet', flushIntervalMs: 5 }),
    ];
    const [pa, pb] = [breaker(a!, 'pay'), breaker(b!, 'pay')];
    await trip(pa);
    await waitFor(() => pb.state === 'open', 'open propagated over sharded pub/sub', 5000);
    pb.isolate();
    await waitFor(() => pa.state === 'isolated', 'isolate propagated', 5000);
    pa.reset();
    await waitFor(() => pb.state === 'closed', 'reset propagated', 5000);
    // fleet counting up to a fleet-wide trip (the breakers' own rule needs 3 in a row: alternate)
    const [fa, fb] = [breaker(a!, 'agg'), breaker(b!, 'agg')];
    for (let i = 0; i < 12; i++) {
      await fa.execute(() => 'fine');
      await fb
        .execute(() => {
          throw new Error('down');
        })
        .catch(() => {});
    }
    await waitFor(() => fa.state === 'open' && fb.state === 'open', 'fleet trip', 5000);
    await a!.close();
    await b!.close();
    for (const port of cluster.ports) {
      const log = (await ask(port, ['ACL', 'LOG'])) as unknown[];
      assert.deepEqual(log, [], `commands refused on ${port}: ${JSON.stringify(log)}`);
    }
  });

  test('a master killed mid-run: no call fails, and a trip made during the failover reaches everyone after it', async () => {
    const prefix = uniquePrefix('cl-kill');
    const [a, b, c] = [
      await make({ cluster: cluster.startupNodes, prefix }),
      await make({ cluster: cluster.startupNodes, prefix }),
      await make({ cluster: cluster.startupNodes, prefix }),
    ];
    const names = ['inv', 'ship', 'tax', 'mail'];
    const all = [a!, b!, c!].map((s) => names.map((n) => breaker(s, n)));
    // calls keep flowing through every breaker while the cluster loses a master
    let running = true;
    const stats = { ok: 0, failed: 0, rejected: 0 };
    const load = (async () => {
      while (running) {
        for (const row of all.slice(1))
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
    const victim = await cluster.masterOf(`${prefix}:{inv}:s`);
    const killing = cluster.killMaster({ port: victim });
    await waitFor(async () => !(await answers(victim)), 'the master is gone', 10_000);
    // during the failover: 'inv' trips on a (its publish cannot reach the dead master)
    const invA = all[0]![0]!;
    await trip(invA);
    assert.equal(invA.state, 'open');
    const { failoverMs } = await killing;
    await waitFor(
      () => all[1]![0]!.state === 'open' && all[2]![0]!.state === 'open',
      'the trip made during the failover reaches the other instances',
      20_000,
    );
    // and after the failover a new change propagates the normal way
    await trip(all[1]![1]!);
    await waitFor(
      () => all[0]![1]!.state === 'open' && all[2]![1]!.state === 'open',
      'a trip after the failover propagates',
      10_000,
    );
    running = false;
    await load;
    assert.equal(stats.failed, 0, `calls that failed: ${JSON.stringify(stats)}`);
    assert.ok(stats.ok > 0);
    await waitFor(() => [a!, b!, c!].every((s) => s.healthy), 'every store healthy again', 10_000);
    // a restarted node rejoins as a replica; nothing to do for the store
    await cluster.restart(victim);
    process.stdout.write(`# failover took ${failoverMs} ms; ${stats.ok} calls ran during the run\n`);
  });
});

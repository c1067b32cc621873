// redisOutbox on a real Redis Cluster (3 masters, 3 replicas, started on loopback): every key of a
// queue on one slot, and the master of that slot killed mid-replay. Every write still arrives (at
// least once), writes of a key in order, never one key in flight twice.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster } from 'ioredis';
import { redisOutbox } from './outbox.js';
import { redisWriteStore } from './write-store.js';
import { uniquePrefix, waitFor } from './server.test.util.js';
import { RedisCluster, skipNoCluster } from './topology.test.util.js';

interface Job {
  key: string;
  seq: number;
}

test('redisOutbox and redisWriteStore on Redis Cluster: one slot per queue; a master killed mid-replay loses no outbox write, breaks no order', {
  skip: skipNoCluster,
  timeout: 90_000,
}, async () => {
  const cluster = await RedisCluster.start();
  const clients: Cluster[] = [];
  const outboxes: Array<ReturnType<typeof redisOutbox<Job, string>>> = [];
  try {
    const prefix = uniquePrefix('obcluster');
    const accepted: Array<{ key: string; seq: number; who: string }> = [];
    const busy = new Map<string, string>();
    const violations: string[] = [];
    const send = (who: string) => async (job: Job) => {
      const other = busy.get(job.key);
      if (other) violations.push(`${who} sent ${job.key}#${job.seq} while ${other} was sending ${job.key}`);
      if (!accepted.some((a) => a.key === job.key && a.seq === job.seq - 1) && job.seq > 0)
        violations.push(`${job.key}#${job.seq} sent before ${job.key}#${job.seq - 1}`);
      busy.set(job.key, who);
      await new Promise((r) => setTimeout(r, 10));
      busy.delete(job.key);
      accepted.push({ ...job, who });
      return 'ok';
    };
    for (const who of ['a', 'b']) {
      // Fail fast like the outbox's own connections: a command during the failover errors at once.
      const client = new Cluster(cluster.startupNodes, {
        enableOfflineQueue: false,
        redisOptions: { maxRetriesPerRequest: 0, commandTimeout: 1_000, connectTimeout: 1_000 },
        clusterRetryStrategy: () => 100,
      });
      client.on('error', () => {});
      clients.push(client);
      await waitFor(() => client.status === 'ready', 'the cluster client to connect', 10_000, 20);
      outboxes.push(
        redisOutbox<Job, string>({
          client,
          prefix,
          name: 'orders',
          consumer: who,
          pollIntervalMs: 25,
          claimTimeoutMs: 1_500,
          backoff: { delay: () => 50 },
          orderKey: (j) => j.key,
          send: send(who),
        }),
      );
    }
    await Promise.all(outboxes.map((o) => o.ready));
    const keys = ['c0', 'c1', 'c2'];
    const perKey = 30;
    for (let seq = 0; seq < perKey; seq++)
      for (const k of keys) await outboxes[seq % 2]!.enqueue({ key: k, seq });
    // Replication is asynchronous: make sure the replica has the writes before its master dies.
    const stream = `${prefix}:ob:{orders}:s`;
    const master = await cluster.masterOf(stream);
    // (WAIT counts acknowledgements of its own connection's writes: asked on each writer's
    // connection to that master, repeated until the replica is counted.)
    for (const c of clients) {
      const node = c.nodes('master').find((n) => n.options.port === master);
      assert.ok(node, `a connection to the master ${master}`);
      await waitFor(
        async () => Number(await node.call('WAIT', 1, 2_000)) >= 1,
        'the replica has the writes',
        30_000,
        50,
      );
    }
    // Every key of the queue is on the stream's slot.
    const slot = (k: string) => clients[0]!.call('CLUSTER', 'KEYSLOT', k);
    for (const k of [stream, `${prefix}:ob:{orders}:a`, `${prefix}:ob:{orders}:k:c0`])
      assert.equal(await slot(k), await slot(stream), k);

    // The per-instance write store on the same cluster: its stream and lock share one slot.
    const wsPrefix = uniquePrefix('wscluster');
    const ws = redisWriteStore<{ n: number }>({ client: clients[0]!, prefix: wsPrefix, name: 'pod-0' });
    assert.deepEqual(await ws.load(), []);
    await ws.append({ id: 'w1', data: { n: 1 }, enqueuedAt: 1 });
    await ws.append({ id: 'w2', data: { n: 2 }, enqueuedAt: 2 });
    await ws.remove('w1');
    await ws.close();
    const ws2 = redisWriteStore<{ n: number }>({ client: clients[1]!, prefix: wsPrefix, name: 'pod-0' });
    assert.deepEqual(await ws2.load(), [{ id: 'w2', data: { n: 2 }, enqueuedAt: 2 }]);
    await ws2.close();
    assert.equal(await slot(`${wsPrefix}:wq:{pod-0}:s`), await slot(`${wsPrefix}:wq:{pod-0}:l`));

    await waitFor(() => accepted.length >= 20, 'replays to be under way', 20_000, 10);
    const { failoverMs } = await cluster.killMaster({ key: stream });
    const total = keys.length * perKey;
    await waitFor(
      () => new Set(accepted.map((a) => `${a.key}#${a.seq}`)).size === total,
      `all ${total} writes replayed after the failover`,
      30_000,
      20,
    );
    assert.deepEqual(violations, []);
    for (const k of keys) {
      const firsts: number[] = [];
      for (const a of accepted) if (a.key === k && !firsts.includes(a.seq)) firsts.push(a.seq);
      assert.deepEqual(firsts, [...Array(perKey).keys()], `order of ${k}`);
    }
    console.log(`${total} writes, ${accepted.length} sends across a failover of ${failoverMs} ms`);
  } finally {
    await Promise.all(outboxes.map((o) => o.close()));
    for (const c of clients) c.disconnect();
    await cluster.stop();
  }
});

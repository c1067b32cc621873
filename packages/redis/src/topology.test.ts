// Self-test of the Cluster and Sentinel harnesses (topology.test.util.ts) that other tests build on:
// they start, serve data through ioredis, fail over for real, rejoin, and leave nothing behind.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { answers, waitFor } from './server.test.util.js';
import {
  ask,
  parseInfo,
  RedisCluster,
  RedisSentinel,
  skipNoCluster,
  skipNoSentinel,
} from './topology.test.util.js';

async function processesGone(ports: readonly number[], dir: string): Promise<void> {
  for (const p of ports) assert.equal(await answers(p), false, `port ${p} still answers after stop()`);
  assert.equal(existsSync(dir), false, `${dir} still exists after stop()`);
}

test('RedisCluster: 3 masters + 3 replicas, a killed master fails over, rejoins, and stop() leaves nothing', {
  skip: skipNoCluster,
  timeout: 90_000,
}, async () => {
  const cluster = await RedisCluster.start();
  let client: Cluster | undefined;
  try {
    const nodes = await cluster.nodes();
    assert.equal(nodes.filter((n) => n.role === 'master').length, 3);
    assert.equal(nodes.filter((n) => n.role === 'replica').length, 3);
    client = new Cluster(cluster.startupNodes, { redisOptions: { connectTimeout: 1_000 } });
    client.on('error', () => {});
    const key = 'tstest-topology:{k}';
    await client.set(key, 'before');
    const victim = await cluster.masterOf(key);
    // The replica must have the write before its master dies (replication is asynchronous). WAIT
    // counts the replicas that acknowledged the writes of its own connection, so it goes on the
    // connection that wrote, the one to the key's master (a Cluster client sends a keyless
    // command to any node), and is repeated until the replica is counted (one still syncing is not).
    const writer = client.nodes('master').find((n) => n.options.port === victim);
    assert.ok(writer, `the client has a connection to the master ${victim}`);
    await waitFor(
      async () => Number(await writer.call('WAIT', 1, 2_000)) >= 1,
      'the replica acknowledges the write',
      30_000,
      50,
    );
    const { killed, promoted, failoverMs } = await cluster.killMaster({ key });
    assert.equal(killed, victim);
    assert.notEqual(promoted, victim);
    assert.equal(await cluster.masterOf(key), promoted);
    assert.ok(failoverMs < 20_000, `failover took ${failoverMs} ms`);
    assert.equal(await answers(killed), false);
    // ioredis finds the new owner of the slot on its own (MOVED / refreshed slots).
    assert.equal(await client.get(key), 'before');
    await client.set(key, 'after');
    await cluster.restart(killed);
    const back = (await cluster.nodes()).find((n) => n.port === killed)!;
    assert.equal(back.role, 'replica', 'a restarted old master rejoins as a replica');
    assert.equal(await client.get(key), 'after');
  } finally {
    client?.disconnect();
    await cluster.stop();
    await cluster.stop(); // twice is fine
    await processesGone(cluster.ports, cluster.dir);
  }
});

test('RedisSentinel: SENTINEL FAILOVER and a killed master both move the master, sentinels agree, stop() leaves nothing', {
  skip: skipNoSentinel,
  timeout: 90_000,
}, async () => {
  const s = await RedisSentinel.start({ sentinels: 3 });
  let client: Redis | undefined;
  try {
    const first = await s.master();
    assert.equal(first, s.dataPorts[0]);
    client = new Redis({ sentinels: s.sentinelNodes, name: s.masterName, connectTimeout: 1_000 });
    client.on('error', () => {});
    await client.set('tstest-topology-s', '1');
    const c = client;
    await waitFor(
      async () => Number(await c.call('WAIT', 1, 2_000)) >= 1,
      'the replica acknowledges the write',
      30_000,
      50,
    );

    const a = await s.failover('command');
    assert.deepEqual([a.from, a.to], [s.dataPorts[0], s.dataPorts[1]]);
    assert.equal(await s.master(), s.dataPorts[1]);
    // The old master is still running and now replicates from the new one.
    const old = parseInfo(await ask(s.dataPorts[0]!, ['INFO', 'replication']));
    assert.equal(old.role, 'slave');

    const b = await s.failover('kill');
    assert.deepEqual([b.from, b.to], [s.dataPorts[1], s.dataPorts[0]]);
    assert.equal(await answers(b.from), false);
    // ioredis asks the sentinels again after the connection drops and finds the new master.
    assert.equal(await client.get('tstest-topology-s'), '1');
    await s.restart(b.from);
    assert.equal(await s.master(), s.dataPorts[0]);
  } finally {
    client?.disconnect();
    await s.stop();
    await processesGone([...s.dataPorts, ...s.sentinelPorts], s.dir);
  }
});

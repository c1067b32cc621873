// redisWriteStore against a real Redis: order and ids across a restart, one owner at a time, a dead
// owner's lock running out, and appends refused (not faked) while Redis is away.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { circuitBreaker, isInvalidOptionError, writeQueue } from 'tripswitch';
import {
  RedisServer,
  removeTestKeys,
  sharedRedis,
  skipNoRedis,
  uniquePrefix,
  waitFor,
} from './server.test.util.js';
import { redisWriteStore } from './write-store.js';

const w = (id: string, data: unknown = { id }) => ({ id, data, enqueuedAt: 1_000 });

test('redisWriteStore validates its options, naming the option', () => {
  const bad = (o: unknown, option: string) =>
    assert.throws(
      () => redisWriteStore(o as never),
      (e: unknown) =>
        isInvalidOptionError(e) && e.option === option && e.message.startsWith('redisWriteStore:'),
      option,
    );
  bad({}, 'name');
  bad({ name: 'a{b}' }, 'name');
  bad({ name: 'q', url: 'http://x' }, 'url');
  bad({ name: 'q', lockTtlMs: 5 }, 'lockTtlMs');
  bad({ name: 'q', nmae: 'x' }, 'nmae');
});

describe('redisWriteStore on a real Redis', { skip: skipNoRedis }, () => {
  let url = '';
  let stop = async () => {};
  before(async () => {
    ({ url, stop } = await sharedRedis());
  });
  after(async () => {
    await removeTestKeys(url);
    await stop();
  });

  test('keeps writes in order across a close and reopen, without the removed ones', async () => {
    const prefix = uniquePrefix('wq');
    const s1 = redisWriteStore({ url, prefix, name: 'outbox' });
    assert.deepEqual(await s1.load(), []);
    await s1.append(w('a'));
    await s1.append(w('b', [1, 'two', { three: null }]));
    await s1.append(w('c', undefined));
    await s1.append(w('d', ''));
    await s1.remove('a');
    await s1.close();
    const s2 = redisWriteStore({ url, prefix, name: 'outbox' });
    assert.deepEqual(await s2.load(), [w('b', [1, 'two', { three: null }]), w('c', undefined), w('d', '')]);
    await assert.rejects(s2.append(w('x', { n: 1n })), /data must be JSON-serialisable/);
    await s2.close();
    await assert.rejects(s2.append(w('late')), /queue "outbox" is closed/);
  });

  test('one process at a time: a second owner is refused, and takes over once a dead owner’s lock runs out', async () => {
    const prefix = uniquePrefix('wqlock');
    const client = new Redis(url);
    const first = redisWriteStore({ client, prefix, name: 'q', lockTtlMs: 300 });
    await first.load();
    await first.append(w('kept'));
    const refused = redisWriteStore({ url, prefix, name: 'q' });
    await assert.rejects(
      refused.load(),
      /queue "q" is in use by .*:\d+:\w+ \(lock tstest-wqlock-.*:wq:\{q\}:l, free in \d+ ms/,
    );
    await refused.close();
    // The owner dies without a goodbye: its connection goes, nothing renews the lock.
    client.disconnect();
    // A refused load() leaves the store unopened, so the same store may try again.
    const second = redisWriteStore({ url, prefix, name: 'q' });
    const got = await waitFor(
      async () => {
        try {
          return await second.load();
        } catch (err) {
          if (/in use/.test(String(err))) return undefined;
          throw err;
        }
      },
      "the dead owner's lock to run out",
      3000,
      50,
    );
    assert.deepEqual(
      got!.map((x) => x.id),
      ['kept'],
    );
    await second.close();
  });

  test('appends are refused while Redis is away (not reported stored), and work again after', async () => {
    const server = await RedisServer.start();
    try {
      const s = redisWriteStore({
        url: server.url,
        prefix: uniquePrefix('wqdown'),
        name: 'q',
        commandTimeoutMs: 200,
      });
      await s.load();
      await s.append(w('before'));
      await server.stop();
      await assert.rejects(s.append(w('during')));
      await server.start();
      await waitFor(
        async () => {
          try {
            await s.append(w('after'));
            return true;
          } catch {
            return false;
          }
        },
        'appends work again',
        5000,
        50,
      );
      await s.close();
    } finally {
      await server.stop();
    }
  });

  test('a writeQueue on it replays what a previous process stored', async () => {
    const prefix = uniquePrefix('wqreplay');
    const breaker = circuitBreaker({ name: 'orders' });
    breaker.isolate();
    const q1 = writeQueue({
      send: async () => 'never',
      store: redisWriteStore<string>({ url, prefix, name: 'o' }),
      breaker,
    });
    const ids = [(await q1.submit('a')).id, (await q1.submit('b')).id];
    await q1.close();
    breaker.reset();
    const seen: string[] = [];
    const q2 = writeQueue({
      send: async (data: string, { id }) => {
        seen.push(`${data}:${id}`);
        return 'ok';
      },
      store: redisWriteStore<string>({ url, prefix, name: 'o' }),
      breaker,
    });
    const drained = new Promise((resolve) => q2.on('drained', resolve));
    await q2.ready;
    await drained;
    assert.deepEqual(seen, [`a:${ids[0]}`, `b:${ids[1]}`]);
    await q2.close();
    const q3 = redisWriteStore({ url, prefix, name: 'o' });
    assert.deepEqual(await q3.load(), [], 'replayed writes left the stream');
    await q3.close();
  });
});

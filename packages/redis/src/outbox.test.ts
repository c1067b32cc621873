// redisOutbox against a real Redis, several outboxes in one process standing for instances: every
// write replayed once by the fleet, per-key order, take-over of a dead instance's writes with its
// attempt count, close() handing writes back at once, and submit's send-now / store-behind rules.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { circuitBreaker, isInvalidOptionError } from 'tripswitch';
import { type RedisOutbox, redisOutbox } from './outbox.js';
import { pruneScript } from './outbox-scripts.js';
import { removeTestKeys, sharedRedis, skipNoRedis, uniquePrefix, waitFor } from './server.test.util.js';

interface Job {
  key: string;
  seq: number;
}

test('redisOutbox validates its options, naming the option', () => {
  const send = async () => {};
  const bad = (o: unknown, option: string) =>
    assert.throws(
      () => redisOutbox(o as never),
      (e: unknown) => isInvalidOptionError(e) && e.option === option && e.message.startsWith('redisOutbox:'),
      option,
    );
  bad({ send }, 'name');
  bad({ name: 'a{b}', send }, 'name');
  bad({ name: 'q' }, 'send');
  bad({ name: 'q', send, url: 'http://x' }, 'url');
  bad({ name: 'q', send, claimTimeoutMs: 5 }, 'claimTimeoutMs');
  bad({ name: 'q', send, orderKey: 'customer' }, 'orderKey');
  bad({ name: 'q', send, consumer: 'released' }, 'consumer');
  bad({ name: 'q', send, clamTimeoutMs: 1 }, 'clamTimeoutMs');
});

describe('redisOutbox on a real Redis', { skip: skipNoRedis }, () => {
  let url = '';
  let stop = async () => {};
  const open: RedisOutbox<Job, unknown>[] = [];
  before(async () => {
    ({ url, stop } = await sharedRedis());
  });
  after(async () => {
    await Promise.all(open.map((o) => o.close()));
    await removeTestKeys(url);
    await stop();
  });

  /** A recording downstream: every send with who sent it and when it started and ended. */
  function downstream() {
    const sends: Array<{
      who: string;
      id: string;
      key: string;
      seq: number;
      attempt: number;
      t0: number;
      t1: number;
    }> = [];
    const inFlight = new Map<string, string>();
    const overlaps: string[] = [];
    const sendAs =
      (who: string, delayMs = () => 0) =>
      async (job: Job, ctx: { id: string; attempt: number }) => {
        const other = inFlight.get(ctx.id) ?? inFlight.get(`key:${job.key}`);
        if (other !== undefined)
          overlaps.push(`${who} sent ${job.key}#${job.seq} while ${other} was sending`);
        inFlight.set(ctx.id, who);
        if (job.key !== '') inFlight.set(`key:${job.key}`, who);
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, delayMs()));
        inFlight.delete(ctx.id);
        if (job.key !== '') inFlight.delete(`key:${job.key}`);
        sends.push({
          who,
          id: ctx.id,
          key: job.key,
          seq: job.seq,
          attempt: ctx.attempt,
          t0,
          t1: performance.now(),
        });
        return 'ok';
      };
    return { sends, overlaps, sendAs };
  }

  function outbox(
    prefix: string,
    who: string,
    send: (j: Job, ctx: { id: string; attempt: number }) => unknown,
    extra = {},
  ) {
    const o = redisOutbox<Job, unknown>({
      url,
      prefix,
      name: 'orders',
      consumer: who,
      pollIntervalMs: 20,
      orderKey: (j) => (j.key === '' ? undefined : j.key),
      send,
      ...extra,
    });
    open.push(o);
    return o;
  }

  test('three instances drain writes queued by any of them: each write once, per-key order kept, never two at once', async () => {
    const prefix = uniquePrefix('ob');
    const d = downstream();
    const jitter = () => Math.floor(Math.random() * 4);
    const [a, b, c] = ['a', 'b', 'c'].map((who) => outbox(prefix, who, d.sendAs(who, jitter)));
    // Enqueued by different instances, interleaved; key k<n> is enqueued by one instance in order.
    const ids: string[] = [];
    const writers = [a!, b!, c!];
    for (let seq = 0; seq < 15; seq++)
      for (let k = 0; k < 4; k++) ids.push(await writers[k % 3]!.enqueue({ key: `k${k}`, seq }));
    for (let seq = 0; seq < 10; seq++) ids.push(await writers[seq % 3]!.enqueue({ key: '', seq }));
    await waitFor(() => d.sends.length >= ids.length, 'every write to be sent', 20_000, 20);
    await new Promise((r) => setTimeout(r, 100)); // nothing more arrives
    assert.deepEqual(d.overlaps, []);
    assert.deepEqual(d.sends.map((s) => s.id).sort(), [...ids].sort(), 'each write sent exactly once');
    for (let k = 0; k < 4; k++) {
      const seqs = d.sends.filter((s) => s.key === `k${k}`).map((s) => s.seq);
      assert.deepEqual(
        seqs,
        [...seqs].sort((x, y) => x - y),
        `order of k${k}`,
      );
    }
    assert.ok(new Set(d.sends.map((s) => s.who)).size >= 2, 'more than one instance replayed');
    const r = new Redis(url);
    assert.equal(await r.xlen(`${prefix}:ob:{orders}:s`), 0, 'the stream is empty');
    assert.equal(await r.exists(`${prefix}:ob:{orders}:a`), 0, 'no attempt counts left');
    r.disconnect();
  });

  test('a dead instance’s write is taken over after claimTimeoutMs and keeps its attempt count; its send is aborted', async () => {
    const prefix = uniquePrefix('obdead');
    const client = new Redis(url);
    let aborted: unknown;
    let startedResolve = () => {};
    const started = {
      promise: new Promise<void>((r) => (startedResolve = r)),
      resolve: () => startedResolve(),
    };
    const dead = outbox(
      prefix,
      'dead',
      (_job, _ctx) =>
        new Promise((_r, reject) => {
          started.resolve();
          // Hangs until its claim is lost.
          (_ctx as unknown as { signal: AbortSignal }).signal.addEventListener('abort', (e) => {
            aborted = (e.target as AbortSignal).reason;
            reject(aborted);
          });
        }),
      { client, url: undefined, claimTimeoutMs: 300 },
    );
    await dead.enqueue({ key: 'c1', seq: 1 });
    await dead.enqueue({ key: 'c1', seq: 2 });
    await started.promise;
    // The instance is cut off: no more claim refreshes reach Redis.
    client.disconnect();
    const d = downstream();
    const t0 = performance.now();
    outbox(prefix, 'heir', d.sendAs('heir'), { claimTimeoutMs: 300 });
    await waitFor(() => d.sends.length === 2, 'the heir to send both writes', 10_000, 20);
    // Not before the claim timeout (300 ms after the last refresh, which came a little before t0;
    // the margin is for a loaded machine). Taking over at once would show up as ~20 ms (one poll).
    assert.ok(performance.now() - t0 >= 150, 'not taken over before the claim timeout');
    assert.deepEqual(
      d.sends.map((s) => [s.seq, s.attempt]),
      [
        [1, 2],
        [2, 1],
      ],
      'seq 1 is its second attempt (the dead instance made the first), in order',
    );
    await waitFor(() => aborted !== undefined, 'the cut-off instance to abort its send', 5_000, 20);
    assert.match(String(aborted), /claim/);
  });

  test('close() hands held writes back at once; attempts of failed replays add up across instances, then dead', async () => {
    const prefix = uniquePrefix('obclose');
    const fails: Array<[string, number]> = [];
    const dead: Array<[number, number]> = [];
    const failing = (who: string) => async (job: Job, ctx: { attempt: number }) => {
      fails.push([who, ctx.attempt]);
      throw new Error(`down (${job.seq})`);
    };
    const opts = { claimTimeoutMs: 60_000, maxAttempts: 3, backoff: { delay: () => 10 } };
    const a = outbox(prefix, 'a', failing('a'), opts);
    await a.enqueue({ key: 'x', seq: 1 });
    await waitFor(() => fails.length >= 2, 'two failed attempts in a', 5_000, 10);
    await a.close();
    const b = outbox(prefix, 'b', failing('b'), opts);
    b.on('dead', ({ data, attempts }) => dead.push([data.seq, attempts]));
    await waitFor(() => dead.length === 1, 'b to drop the write after its third attempt', 5_000, 10);
    assert.deepEqual(fails, [
      ['a', 1],
      ['a', 2],
      ['b', 3],
    ]);
    assert.deepEqual(dead, [[1, 3]]);
  });

  test('a failed submit waits a backoff before its first replay, also after an earlier write died of maxAttempts', async () => {
    // Two ways the wait was skipped: a pass already running (polling every 20 ms here) sent the new
    // write at once; and a past retryAt with a failure count, left by a write that then died, read
    // as "a wait is owed already", so none was started.
    const prefix = uniquePrefix('obdead');
    const sends: Array<[number, number, number]> = [];
    const dead: number[] = [];
    const a = outbox(
      prefix,
      'a',
      async (job: Job, ctx: { attempt: number }) => {
        sends.push([job.seq, ctx.attempt, performance.now()]);
        throw new Error('503');
      },
      { maxAttempts: 2, backoff: { delay: () => 300 } },
    );
    a.on('dead', ({ data }) => dead.push(data.seq));
    assert.equal((await a.submit({ key: '', seq: 1 })).status, 'queued');
    await waitFor(() => dead.length === 1, 'write 1 dead after its replay', 5_000, 10);
    // Past write 1's backoff: nothing is owed any more.
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await a.submit({ key: '', seq: 2 })).status, 'queued');
    await waitFor(() => dead.length === 2, 'write 2 dead after its replay', 5_000, 10);
    for (const seq of [1, 2]) {
      const mine = sends.filter(([s]) => s === seq);
      assert.deepEqual(
        mine.map(([, attempt]) => attempt),
        [1, 2],
      );
      // A timer may fire up to a millisecond early; load only makes the gap longer.
      const gap = mine[1]![2] - mine[0]![2];
      assert.ok(
        gap >= 290,
        `write ${seq} replayed ${gap.toFixed(1)} ms after its first attempt, inside the 300 ms backoff`,
      );
    }
  });

  test('submit sends now when it can, stores on failure for the fleet, and goes behind waiting writes of its key', async () => {
    const prefix = uniquePrefix('obsubmit');
    const breaker = circuitBreaker({ name: 'orders' });
    const d = downstream();
    let down = false;
    const a = outbox(
      prefix,
      'a',
      async (job: Job, ctx: { id: string; attempt: number }) => {
        if (down) throw new Error('503');
        return d.sendAs('a')(job, ctx);
      },
      { breaker, backoff: { delay: () => 100 } },
    );
    breaker.isolate();
    const first = await a.submit({ key: 'k', seq: 1 });
    assert.equal(first.status, 'queued');
    // k has a write waiting: the next one is stored behind it without being tried now.
    const second = await a.submit({ key: 'k', seq: 2 });
    assert.deepEqual([second.status, (second as { error?: unknown }).error], ['queued', undefined]);
    breaker.reset();
    await waitFor(() => d.sends.length === 2, 'both k writes replayed once the breaker closes', 5_000, 10);
    const other = await a.submit({ key: 'other', seq: 1 });
    assert.equal(other.status, 'sent');
    // A failed first attempt is stored with its count; the replay (after the backoff) is attempt 2.
    down = true;
    const failed = await a.submit({ key: 'z', seq: 1 });
    down = false;
    assert.equal(failed.status, 'queued');
    assert.match(String((failed as { error?: unknown }).error), /503/);
    await waitFor(() => d.sends.length === 4, 'z replayed', 5_000, 10);
    assert.deepEqual(
      d.sends.map((s) => [s.key, s.seq, s.attempt]),
      [
        ['k', 1, 1],
        ['k', 2, 1],
        ['other', 1, 1],
        ['z', 1, 2],
      ],
    );
  });

  test('consumers of gone instances are pruned only when nothing is pending with them', async () => {
    const prefix = uniquePrefix('obprune');
    const stream = `${prefix}:ob:{orders}:s`;
    const r = new Redis(url);
    try {
      await r.xgroup('CREATE', stream, 'replay', '0', 'MKSTREAM');
      await r.xadd(stream, '*', 'id', 'x');
      await r.xreadgroup('GROUP', 'replay', 'busy', 'COUNT', 1, 'STREAMS', stream, '>'); // holds x
      await r.xgroup('CREATECONSUMER', stream, 'replay', 'gone'); // holds nothing
      await r.xgroup('CREATECONSUMER', stream, 'replay', 'me');
      await new Promise((res) => setTimeout(res, 20));
      assert.equal(await r.eval(pruneScript, 1, stream, 'replay', 'me', '5'), 1);
      const names = ((await r.xinfo('CONSUMERS', stream, 'replay')) as string[][]).map((c) => c[1]).sort();
      assert.deepEqual(names, ['busy', 'me']);
      assert.equal(await r.eval(pruneScript, 1, stream, 'replay', 'me', '60000'), 0, 'not idle long enough');
    } finally {
      r.disconnect();
    }
  });

  test('a bare process that submits, sees the replay and closes exits on its own', async () => {
    const fixture = fileURLToPath(new URL('./outbox-bare.test.fixture.js', import.meta.url));
    const prefix = uniquePrefix('obbare');
    const t0 = performance.now();
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [fixture],
        { env: { ...process.env, OUTBOX_URL: url, OUTBOX_PREFIX: prefix }, timeout: 20_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      ),
    );
    assert.deepEqual(JSON.parse(out), { submitted: 'queued', value: 'sent on attempt 2' });
    assert.ok(performance.now() - t0 < 15_000);
  });

  test('concurrent submits of one key in one instance keep their order (the second waits for the first)', async () => {
    const prefix = uniquePrefix('obconc');
    const d = downstream();
    let calls = 0;
    const a = outbox(
      prefix,
      'a',
      async (job: Job, ctx: { id: string; attempt: number }) => {
        // The first attempt of seq 1 fails, slowly: seq 2 is submitted meanwhile.
        if (calls++ === 0) {
          await new Promise((r) => setTimeout(r, 100));
          throw new Error('503');
        }
        return d.sendAs('a')(job, ctx);
      },
      { backoff: { delay: () => 20 } },
    );
    const [first, second] = await Promise.all([
      a.submit({ key: 'c', seq: 1 }),
      a.submit({ key: 'c', seq: 2 }),
    ]);
    assert.deepEqual([first.status, second.status], ['queued', 'queued']);
    await waitFor(() => d.sends.length === 2, 'both replayed', 5_000, 10);
    assert.deepEqual(
      d.sends.map((s) => [s.seq, s.attempt]),
      [
        [1, 2],
        [2, 1],
      ],
    );
  });
});

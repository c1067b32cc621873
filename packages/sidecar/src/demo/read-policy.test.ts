import assert from 'node:assert/strict';
import { test } from 'node:test';
import { breakerRegistry } from 'tripswitch';
import { TestClock } from 'tripswitch/testing';
import { protectedRead, type ReadAnswer } from './read-policy.js';
import { WorkerPool } from './service-a.js';

/** A call to a hanging B: settles only when the policy's timeout aborts it. */
function hanging(attempts: number[]) {
  return (signal: AbortSignal, ctx: { attempt: number }) => {
    attempts.push(ctx.attempt);
    return new Promise<never>((_, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  };
}

test('B hanging from the start: 20 requests through 10 workers all answer within the timeout, no retry after a timeout', async () => {
  const clock = new TestClock();
  const read = protectedRead<string>({ registry: breakerRegistry(), timeoutMs: 300, clock });
  const pool = new WorkerPool(10);
  const attempts: number[] = [];
  const call = hanging(attempts);
  const t0 = clock.now();
  const done: { at: number; answer: ReadAnswer<string> }[] = [];
  const all = Promise.all(
    Array.from({ length: 20 }, () =>
      pool.run(() => read.execute(call)).then((answer) => done.push({ at: clock.now() - t0, answer })),
    ),
  );
  await clock.settle(all);
  assert.equal(done.length, 20);
  // Under the TestClock the margin is 0: the second half waited for a worker until the first wave
  // timed out, and then the open breaker answered at once.
  assert.ok(
    done.every((d) => d.at <= 300),
    `every answer by t=300 ms: ${done.map((d) => d.at).join(',')}`,
  );
  assert.deepEqual(attempts, Array(10).fill(1), 'B was called once per worker, never a second attempt');
  assert.equal(read.breaker.state, 'open');
  assert.ok(done.every((d) => d.answer.kind === 'degraded'));
  const first = done[0]!.answer;
  assert.equal(first.kind, 'degraded');
  assert.match(
    first.kind === 'degraded' ? first.reason : '',
    /did not answer within 300 ms; no good answer from it yet/,
  );
  const last = done[19]!.answer;
  assert.match(last.kind === 'degraded' ? last.reason : '', /breaker is open/);
});

test('requests arriving 1 ms apart: no one waits more than one timeout (the first hung call opens the breaker)', async () => {
  // The first wave's timeouts fire a few ms apart, as real arrivals do; a worker freed by the
  // first one takes a queued request at once. Were the breaker still closed then (a rule that
  // waits for 3 slow calls), that request would call the hung B and wait 300 ms more.
  const clock = new TestClock();
  const read = protectedRead<string>({ registry: breakerRegistry(), timeoutMs: 300, clock });
  const pool = new WorkerPool(10);
  const attempts: number[] = [];
  const call = hanging(attempts);
  const t0 = clock.now();
  const waits: number[] = [];
  const all: Promise<unknown>[] = [];
  for (let i = 0; i < 20; i++) {
    const sent = clock.now();
    all.push(pool.run(() => read.execute(call)).then(() => waits.push(clock.now() - sent)));
    await clock.advanceAsync(1);
  }
  await clock.settle(Promise.all(all));
  assert.equal(waits.length, 20);
  assert.ok(
    waits.every((w) => w <= 300),
    `every request answered within 300 ms of being sent: ${waits.join(',')}`,
  );
  assert.deepEqual(attempts, Array(10).fill(1), 'only the first wave reached B');
  assert.ok(clock.now() - t0 >= 300);
});

test('a timed-out call is not retried; a fast failure is, once', async () => {
  const clock = new TestClock();
  const read = protectedRead<string>({ registry: breakerRegistry(), timeoutMs: 300, clock });
  const attempts: number[] = [];
  const t0 = clock.now();
  const answer = await clock.settle(read.execute(hanging(attempts)));
  assert.equal(answer.kind, 'degraded');
  assert.deepEqual(attempts, [1]);
  assert.equal(clock.now() - t0, 300, 'answered when the one attempt timed out');

  const fast: number[] = [];
  const other = protectedRead<string>({ registry: breakerRegistry(), timeoutMs: 300, clock });
  const fails = await clock.settle(
    other.execute(async (_signal, ctx) => {
      fast.push(ctx.attempt);
      throw new Error('service b answered 500');
    }),
  );
  assert.deepEqual(fast, [1, 2], 'a 500 is retried');
  assert.equal(fails.kind, 'degraded');
});

test('one slow call opens the breaker (the slow-call rule); fast failures need 5 in a row', async () => {
  const clock = new TestClock();
  const read = protectedRead<string>({ registry: breakerRegistry(), timeoutMs: 300, clock });
  await clock.settle(read.execute(hanging([])));
  assert.equal(read.breaker.state, 'open', 'the first timed-out call opens it');

  // A slow success (250 ms > 80% of 300 ms) counts as slow too; a quicker one does not.
  const other = protectedRead<string>({ registry: breakerRegistry(), timeoutMs: 300, clock });
  const after = (ms: number) => () =>
    new Promise<string>((resolve) => {
      clock.setTimeout(() => resolve('ok'), ms);
    });
  for (let i = 0; i < 5; i++) assert.equal((await clock.settle(other.execute(after(200)))).kind, 'fresh');
  assert.equal(other.breaker.state, 'closed', '200 ms is not slow');
  assert.equal((await clock.settle(other.execute(after(250)))).kind, 'fresh');
  assert.equal(other.breaker.state, 'open');

  const fast = protectedRead<string>({ registry: breakerRegistry(), timeoutMs: 300, clock });
  const fail = async (): Promise<string> => {
    throw new Error('service b answered 500');
  };
  for (let i = 0; i < 2; i++) await clock.settle(fast.execute(fail)); // 2 calls, 4 attempts
  assert.equal(fast.breaker.state, 'closed', '4 fast failures: still closed');
  await clock.settle(fast.execute(fail));
  assert.equal(fast.breaker.state, 'open', 'the fifth in a row opens it');
});

test('the last good answer is served within its TTL with its age; after the TTL the answer is degraded, not an error', async () => {
  const clock = new TestClock();
  const read = protectedRead<string>({ registry: breakerRegistry(), lastGoodTtlMs: 60_000, clock });
  assert.equal(read.lastGoodAgeMs(), undefined);
  assert.deepEqual(await clock.settle(read.execute(async () => 'orders v1')), {
    kind: 'fresh',
    value: 'orders v1',
  });
  const down = async (): Promise<string> => {
    throw new Error('service b answered 500');
  };
  clock.advance(10_000);
  const lg = await clock.settle(read.execute(down));
  assert.equal(lg.kind, 'last-good');
  if (lg.kind === 'last-good') {
    assert.equal(lg.value, 'orders v1');
    assert.equal(lg.ageMs, 10_000 + 50, 'its age (the retry waited 50 ms)');
    assert.equal(lg.ttlMs, 60_000);
    assert.match(lg.reason, /answered 500/);
  }
  clock.advance(60_000);
  const d = await clock.settle(read.execute(down));
  assert.equal(d.kind, 'degraded');
  if (d.kind === 'degraded') {
    assert.ok(d.ageMs !== undefined && d.ageMs > 60_000);
    assert.match(d.reason, /the last good answer is 70\.\d s old, past its 60 s TTL/);
  }
});

test('options are validated with the field named', () => {
  assert.throws(
    () => protectedRead({ registry: breakerRegistry(), timeoutMs: -1 }),
    /protectedRead: option "timeoutMs" must be a positive number, got -1/,
  );
  assert.throws(
    () => protectedRead({ registry: breakerRegistry(), slowCallThreshold: 1.5 }),
    /protectedRead: option "slowCallThreshold" must be a positive integer, got 1.5/,
  );
  assert.throws(
    () => protectedRead({ registry: breakerRegistry(), lastGoodTtlMs: -5 }),
    /protectedRead: option "lastGoodTtlMs" must be a number >= 0, got -5/,
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestClock } from './test-clock.js';

test('TestClock fires timers in due order, at their due time', () => {
  const clock = new TestClock(0);
  const seen: Array<[string, number]> = [];
  clock.setTimeout(() => seen.push(['b', clock.now()]), 20);
  clock.setTimeout(() => seen.push(['a', clock.now()]), 10);
  const c = clock.setTimeout(() => seen.push(['c', clock.now()]), 15);
  clock.clearTimeout(c);
  clock.advance(9);
  assert.deepEqual(seen, []);
  clock.advance(11);
  assert.deepEqual(seen, [
    ['a', 10],
    ['b', 20],
  ]);
  assert.equal(clock.pending, 0);
  assert.throws(() => clock.advance(-1), /ms must be >= 0, got -1/);
});

test('TestClock.advanceAsync fires timers scheduled after an await', async () => {
  const clock = new TestClock(0);
  const seen: number[] = [];
  const sleep = (ms: number) => new Promise<void>((r) => clock.setTimeout(r, ms));
  void (async () => {
    await sleep(10);
    seen.push(clock.now());
    await sleep(10);
    seen.push(clock.now());
  })();
  await clock.advanceAsync(25);
  assert.deepEqual(seen, [10, 20]);
});

test('TestClock.nextTimerAt names the earliest pending due time', () => {
  const clock = new TestClock(1_000);
  assert.equal(clock.nextTimerAt(), undefined);
  const a = clock.setTimeout(() => {}, 50);
  clock.setTimeout(() => {}, 20);
  clock.setTimeout(() => {}, 90);
  assert.equal(clock.nextTimerAt(), 1_020);
  clock.advance(20);
  assert.equal(clock.nextTimerAt(), 1_050);
  clock.clearTimeout(a);
  assert.equal(clock.nextTimerAt(), 1_090);
  clock.setTimeout(() => {}, -5); // due now
  assert.equal(clock.nextTimerAt(), 1_020);
});

test('TestClock.advanceToNext jumps to the next due time, fires what is due then, and lets callbacks run', async () => {
  const clock = new TestClock(0);
  const seen: Array<[string, number]> = [];
  assert.equal(await clock.advanceToNext(), undefined, 'nothing pending: time stands still');
  assert.equal(clock.now(), 0);
  clock.setTimeout(() => seen.push(['a', clock.now()]), 30);
  clock.setTimeout(() => seen.push(['b', clock.now()]), 30);
  clock.setTimeout(() => seen.push(['c', clock.now()]), 70);
  assert.equal(await clock.advanceToNext(), 30);
  assert.deepEqual(seen, [
    ['a', 30],
    ['b', 30],
  ]);
  // A timer scheduled after a long chain of awaits, started before the step, is seen by the next one.
  void (async () => {
    for (let i = 0; i < 100; i++) await Promise.resolve();
    clock.setTimeout(() => seen.push(['d', clock.now()]), 10);
  })();
  assert.equal(await clock.advanceToNext(), 40);
  assert.equal(await clock.advanceToNext(), 70);
  assert.deepEqual(seen.slice(2), [
    ['d', 40],
    ['c', 70],
  ]);
  assert.equal(clock.pending, 0);
});

test('TestClock.settle advances timer by timer until the promise settles, through long await chains', async () => {
  const clock = new TestClock(0);
  const sleep = (ms: number) => new Promise<void>((r) => clock.setTimeout(r, ms));
  const work = async () => {
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 50; j++) await Promise.resolve(); // deeper than advanceAsync's 20 turns
      await sleep(1_000);
    }
    return clock.now();
  };
  assert.equal(await clock.settle(work()), 5_000);
  // A rejection is rethrown as it is.
  const boom = new Error('boom');
  await assert.rejects(
    clock.settle(
      (async () => {
        await sleep(10);
        throw boom;
      })(),
    ),
    (e) => e === boom,
  );
  // An already settled promise needs no timer.
  const before = clock.now();
  clock.setTimeout(() => {}, 500);
  assert.equal(await clock.settle(Promise.resolve('now')), 'now');
  assert.equal(clock.now(), before, 'time does not move for a settled promise');
  clock.runAll();
});

test('TestClock.settle throws a clear error instead of waiting forever', async () => {
  const clock = new TestClock(0);
  await assert.rejects(
    clock.settle(new Promise(() => {})),
    /TestClock\.settle: the promise is still pending and no timer is scheduled \(after 0 ms and 0 timers\)/,
  );
  // A loop that keeps scheduling timers hits the bound.
  const forever = async () => {
    for (;;) await new Promise<void>((r) => clock.setTimeout(r, 1_000));
  };
  await assert.rejects(
    clock.settle(forever(), { maxTimers: 5 }),
    /did not settle within 5 timers and 5000 ms \(limits: maxTimers 5, maxMs 86400000\); the next timer is due at \+6000 ms/,
  );
  const start = clock.now();
  await assert.rejects(
    clock.settle(forever(), { maxMs: 3_500 }),
    /did not settle within 3 timers and 3000 ms/,
  );
  assert.equal(clock.now() - start, 3_000, 'stops before a timer beyond maxMs');
  await assert.rejects(clock.settle(Promise.resolve(), { maxTimers: -1 }), /maxTimers must be >= 0, got -1/);
  await assert.rejects(clock.settle(Promise.resolve(), { maxMs: Number.NaN }), /maxMs must be >= 0, got NaN/);
});

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

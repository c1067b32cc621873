import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClock } from './test-clock.js';
import { type Waiter, WaiterQueue, type WaiterQueueOptions } from './waiter-queue.js';

/** A queue whose waiters log how they settle: `resolve <n>`, `reject <n> <reason>`. */
function setup(o: Partial<WaiterQueueOptions> = {}) {
  const clock = new TestClock();
  const log: string[] = [];
  const q = new WaiterQueue({
    clock,
    queueMs: 100,
    ref: true,
    idleTimer: 'clear',
    expire: () => 'expired',
    ...o,
  });
  const add = (n: number, signal?: AbortSignal) =>
    q.add(
      signal,
      () => n,
      () => log.push(`resolve ${n}`),
      (e) => log.push(`reject ${n} ${String(e)}`),
    );
  return { clock, log, q, add };
}

describe('WaiterQueue', () => {
  it('FIFO; an aborted waiter leaves from the middle; shift() on an empty queue is undefined', () => {
    const { q, add, log } = setup({ queueMs: Number.POSITIVE_INFINITY });
    const ac = new AbortController();
    add(1);
    add(2, ac.signal);
    add(3);
    assert.equal(q.size, 3);
    ac.abort('gone');
    ac.signal.dispatchEvent(new Event('abort')); // a second event finds it gone
    assert.deepEqual(log, ['reject 2 gone']);
    const order: unknown[] = [];
    for (let w: Waiter | undefined = q.shift(); w !== undefined; w = q.shift())
      order.push(w.fn(undefined as never));
    assert.deepEqual(order, [1, 3]);
    assert.equal(q.size, 0);
    assert.equal(q.head, undefined);
    assert.equal(q.shift(), undefined);
  });

  it('one timer for the head; waiters past the deadline reject with expire(), in order', () => {
    const { clock, q, add, log } = setup();
    add(1);
    clock.advance(40);
    add(2);
    assert.equal(clock.pending, 1);
    clock.advance(60);
    assert.deepEqual(log, ['reject 1 expired']);
    assert.equal(clock.pending, 1, 're-armed for the next head');
    clock.advance(40);
    assert.deepEqual(log, ['reject 1 expired', 'reject 2 expired']);
    assert.equal(q.size, 0);
    assert.equal(clock.pending, 0);
  });

  it("idleTimer 'clear': the timer goes with the last waiter", () => {
    const { clock, q, add } = setup();
    add(1);
    add(2);
    q.shift();
    assert.equal(clock.pending, 1, 'kept for the others');
    q.shift();
    assert.equal(clock.pending, 0);
  });

  it("idleTimer 'unref': the timer stays armed, unref'd, and is ref'd again for the next waiter", () => {
    const { clock, q, add } = setup({ idleTimer: 'unref' });
    add(1);
    q.shift();
    assert.deepEqual([clock.pending, clock.refed], [1, 0]);
    add(2);
    assert.deepEqual([clock.pending, clock.refed], [1, 1]);
  });

  it('ref: false never keeps the process alive', () => {
    const { clock, add } = setup({ ref: false, idleTimer: 'unref' });
    add(1);
    assert.deepEqual([clock.pending, clock.refed], [1, 0]);
  });
});

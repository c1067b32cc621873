import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Limiter } from './limits.js';

test('FIFO waiters, cancelled waiters skipped, overflow counted', () => {
  const l = new Limiter({
    priority: 'default',
    max_requests: 1,
    max_connections: 5,
    max_pending_requests: 2,
  });
  assert.equal(l.tryEnter(), true);
  assert.equal(l.tryEnter(), false);
  const order: string[] = [];
  const w1 = l.wait(() => order.push('1'))!;
  l.wait(() => order.push('2'));
  assert.equal(
    l.wait(() => order.push('3')),
    undefined,
  );
  assert.equal(l.pendingOverflow, 1);
  w1.cancel();
  assert.equal(l.pending, 1);
  l.release();
  assert.deepEqual(order, ['2']);
  assert.equal(l.active, 1);
  l.release();
  assert.equal(l.active, 0);
});

test('max_connections bounds concurrency like max_requests', () => {
  const l = new Limiter({ priority: 'default', max_connections: 2 });
  assert.ok(l.tryEnter() && l.tryEnter());
  assert.equal(l.tryEnter(), false);
});

test('max_retries and the retry budget', () => {
  const l = new Limiter({ priority: 'default', max_retries: 1 });
  assert.equal(l.tryRetry(), true);
  assert.equal(l.tryRetry(), false);
  assert.equal(l.retryOverflow, 1);
  l.retryDone();
  assert.equal(l.tryRetry(), true);
  const b = new Limiter({
    priority: 'default',
    retry_budget: { budget_percent: 10, min_retry_concurrency: 2 },
  });
  for (let i = 0; i < 50; i++) b.tryEnter();
  // 10% of 50 active = 5
  let granted = 0;
  for (let i = 0; i < 10; i++) if (b.tryRetry()) granted++;
  assert.equal(granted, 5);
  const small = new Limiter({
    priority: 'default',
    retry_budget: { budget_percent: 10, min_retry_concurrency: 2 },
  });
  small.tryEnter();
  assert.ok(small.tryRetry() && small.tryRetry());
  assert.equal(small.tryRetry(), false);
});

test('cancelled waiters do not pile up in the queue', () => {
  const l = new Limiter({ priority: 'default', max_requests: 1, max_pending_requests: 10 });
  l.tryEnter();
  for (let i = 0; i < 10_000; i++) l.wait(() => {})!.cancel();
  let granted = 0;
  l.wait(() => granted++);
  assert.equal(l.pending, 1);
  l.release();
  assert.equal(granted, 1);
  assert.equal(l.active, 1);
});

test('acquire(): a slot, else a place in the queue, else an overflow the limiter counts itself', () => {
  const l = new Limiter({ priority: 'default', max_requests: 1, max_pending_requests: 1 });
  assert.equal(l.acquire(undefined), true);
  // Without a grant callback (a tunnel) nothing waits: refused and counted.
  assert.equal(l.acquire(undefined), undefined);
  assert.equal(l.pendingOverflow, 1);
  let granted = 0;
  const w = l.acquire(() => granted++);
  assert.ok(w !== undefined && w !== true);
  assert.equal(l.pending, 1);
  assert.equal(
    l.acquire(() => granted++),
    undefined,
    'the queue is full',
  );
  assert.equal(l.pendingOverflow, 2);
  l.release();
  assert.equal(granted, 1);
  assert.deepEqual([l.active, l.pending], [1, 0]);
});

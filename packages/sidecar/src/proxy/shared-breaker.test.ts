import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CircuitBreakerOptions, circuitBreaker } from 'tripswitch';
import { TestClock } from 'tripswitch/testing';
import { OUTCOME, OutcomeRing, RING_RECORDS } from './outcome-ring.js';
import { newBreakerBlock, readOutcomes, SharedBreakerStore } from './shared-breaker.js';

// The main thread and two workers' stores in one thread, on one clock: the main thread's
// drain() is called by hand, so the order is exact (the rings' waitAsync drainer then finds
// nothing left). Runs on every Node (no port is shared).
function setup(trip: CircuitBreakerOptions['trip']) {
  const clock = new TestClock(1_000_000);
  const block = newBreakerBlock(2);
  const make = (worker: number) => {
    const store = new SharedBreakerStore(block, worker, clock);
    const breaker = circuitBreaker({
      name: 'api',
      trip,
      openDuration: 10_000,
      store,
      clock: store.breakerClock,
    });
    return { store, breaker };
  };
  const main = make(-1);
  const workers = [make(0), make(1)];
  /** One call in `w` as admission makes it, settled `ms` later with `kind`. */
  const call = (w: number, kind: 'success' | 'failure' | 'neutral', ms = 0) => {
    const { store, breaker } = workers[w]!;
    store.sync();
    const p = breaker.tryAcquire();
    if (p === undefined) return 'refused';
    const permit = store.permit(p, breaker.state === 'half-open');
    clock.advance(ms);
    permit[kind]();
    return 'ran';
  };
  const stop = () => {
    for (const x of [main, ...workers]) x.breaker.dispose();
  };
  return { clock, block, main, workers, call, stop };
}

test('main thread: consecutive failures of both workers trip the one breaker; workers only follow', () => {
  const { main, workers, call, block, stop } = setup({ kind: 'consecutive', threshold: 5 });
  try {
    for (const w of [0, 1, 0, 1]) assert.equal(call(w, 'failure'), 'ran');
    assert.equal(main.store.drain(), 4);
    assert.equal(main.breaker.state, 'closed');
    // no worker counted anything of its own
    assert.equal(workers[0]!.breaker.stats().failures, 0);
    assert.equal(workers[0]!.breaker.stats().neutral, 2);
    call(0, 'failure');
    main.store.drain();
    assert.equal(main.breaker.state, 'open');
    assert.equal(main.breaker.stats().failures, 5);
    assert.deepEqual(
      readOutcomes(block).map((o) => [o.failures, o.dropped]),
      [
        [3, 0],
        [2, 0],
      ],
    );
    assert.equal(call(0, 'success'), 'refused');
    assert.equal(call(1, 'success'), 'refused');
  } finally {
    stop();
  }
});

test('main thread: a success in either worker breaks the run of failures of the other', () => {
  const { main, call, stop } = setup({ kind: 'consecutive', threshold: 2 });
  try {
    for (const [w, kind] of [
      [0, 'failure'],
      [1, 'success'],
      [0, 'failure'],
    ] as const) {
      call(w, kind);
      main.store.drain();
    }
    assert.equal(main.breaker.state, 'closed');
    call(1, 'failure');
    main.store.drain();
    assert.equal(main.breaker.state, 'open');
  } finally {
    stop();
  }
});

test('main thread: durations measured in the worker make slow calls; neutral counts neither', () => {
  const { main, call, stop } = setup({
    kind: 'count',
    windowSize: 4,
    minimumCalls: 4,
    slowCallDuration: 100,
    slowCallRateThreshold: 0.5,
    failureRateThreshold: 1,
  });
  try {
    call(0, 'success', 150);
    call(1, 'success', 10);
    call(1, 'neutral', 500);
    call(0, 'success', 20);
    main.store.drain();
    assert.equal(main.breaker.state, 'closed');
    assert.equal(main.breaker.stats().slowCalls, 1);
    assert.equal(main.breaker.stats().neutral, 1);
    call(1, 'success', 101);
    main.store.drain();
    assert.equal(main.breaker.state, 'open');
    assert.equal(main.breaker.stats().slowCalls, 2);
  } finally {
    stop();
  }
});

test('main thread: a call admitted before a transition is not recorded after it', () => {
  const { main, workers, stop } = setup({ kind: 'consecutive', threshold: 1 });
  try {
    const w = workers[0]!;
    w.store.sync();
    const early = w.store.permit(w.breaker.tryAcquire()!, false);
    main.breaker.isolate();
    main.breaker.reset();
    early.failure();
    main.store.drain();
    assert.equal(main.breaker.state, 'closed');
    assert.equal(main.store.stale, 1);
    assert.equal(main.breaker.stats().failures, 0);
  } finally {
    stop();
  }
});

test('outcome ring: FIFO across the wrap, a full ring drops and counts, never blocks', () => {
  const sab = new SharedArrayBuffer(16 + RING_RECORDS * 16);
  const ring = new OutcomeRing(sab, 0);
  const seen: [number, number, number][] = [];
  for (let round = 0; round < 3; round++) {
    for (let k = 0; k < RING_RECORDS - 1; k++) assert.equal(ring.push(OUTCOME.failure, round, k), true);
    assert.equal(
      ring.drain((kind, period, ms) => seen.push([kind, period, ms])),
      RING_RECORDS - 1,
    );
    assert.deepEqual(seen[RING_RECORDS - 2], [OUTCOME.failure, round, RING_RECORDS - 2]);
    seen.length = 0;
  }
  for (let k = 0; k < RING_RECORDS; k++) assert.equal(ring.push(OUTCOME.success, 7, k), true);
  assert.equal(ring.push(OUTCOME.success, 7, 9999), false);
  assert.equal(ring.push(OUTCOME.success, 7, 9999), false);
  assert.equal(ring.dropped, 2);
  assert.equal(
    ring.drain((kind, period, ms) => seen.push([kind, period, ms])),
    RING_RECORDS,
  );
  assert.deepEqual(seen[0], [OUTCOME.success, 7, 0]);
  assert.deepEqual(seen.at(-1), [OUTCOME.success, 7, RING_RECORDS - 1]);
  assert.equal(ring.push(OUTCOME.neutral, 8, 1), true);
});

test("admin reset of a closed breaker with workers: a worker's call admitted before it is not recorded after it", async () => {
  const { startAdmin } = await import('../admin/admin.js');
  const { resolveConfig } = await import('../config/resolve.js');
  const { sharedPlan } = await import('./shared-plan.js');
  const { Sidecar } = await import('./server.js');
  const { memoryLogger } = await import('./test-helpers.js');
  const config = {
    workers: 2,
    listeners: [{ port: 0, routes: [{ prefix: '/', cluster: 'api' }] }],
    clusters: [
      {
        name: 'api',
        hosts: ['127.0.0.1:1'],
        breaker: { trip: { kind: 'consecutive' as const, threshold: 1 } },
      },
    ],
  };
  const plan = sharedPlan(resolveConfig(config), 2);
  // the main thread's view, as startWorkers makes it, and worker 0's store in this thread
  const view = new Sidecar(config, { logger: memoryLogger(), share: { plan, worker: -1 } });
  const admin = await startAdmin(view, { port: 0 });
  const ws = new SharedBreakerStore(plan.clusters.api!.breaker!, 0, view.clock);
  const wb = circuitBreaker({ name: 'api', trip: { kind: 'consecutive', threshold: 1 }, store: ws });
  try {
    const main = view.clusters.get('api')!;
    ws.sync();
    const early = ws.permit(wb.tryAcquire()!, false);
    const r = await fetch(`http://127.0.0.1:${admin.port}/breakers/api/reset`, { method: 'POST' });
    assert.equal(r.status, 200);
    early.failure();
    main.sharedBreaker!.drain();
    assert.equal(main.breaker!.state, 'closed');
    assert.equal(main.breaker!.stats().failures, 0);
    // a call admitted after the reset counts
    ws.sync();
    ws.permit(wb.tryAcquire()!, false).failure();
    main.sharedBreaker!.drain();
    assert.equal(main.breaker!.state, 'open');
  } finally {
    wb.dispose();
    await admin.close();
    await view.shutdown(0);
  }
});

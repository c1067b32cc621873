import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { newLimitsBlock, readLimits, releaseWorker, SharedLimiter } from './shared-limits.js';

const fixture = new URL('./shared-limits.test.fixture.js', import.meta.url);

function run(data: Record<string, unknown>, onMessage?: (m: unknown) => void) {
  const w = new Worker(fixture, { workerData: data });
  const messages: unknown[] = [];
  w.on('message', (m) => {
    messages.push(m);
    onMessage?.(m);
  });
  const exited = new Promise<{ code: number; error: Error | undefined }>((resolve) => {
    let error: Error | undefined;
    w.on('error', (e) => {
      error = e;
    });
    w.on('exit', (code) => resolve({ code, error }));
  });
  return { w, messages, exited };
}

test('two limiters on one block share max_requests and max_pending_requests', () => {
  const block = newLimitsBlock(2);
  const t = { priority: 'default' as const, max_requests: 3, max_pending_requests: 1 };
  const a = new SharedLimiter(t, block, 0, 0);
  const b = new SharedLimiter(t, block, 0, 1);
  const view = new SharedLimiter(t, block, 0, -1);
  assert.ok(a.tryEnter() && a.tryEnter() && b.tryEnter());
  assert.deepEqual([a.active, b.active], [2, 1], 'in a worker: its own share');
  assert.equal(a.tryEnter(), false);
  assert.equal(b.tryEnter(), false);
  assert.equal(view.active, 3);
  const w = b.wait(() => {});
  assert.ok(w);
  assert.equal(
    a.wait(() => {}),
    undefined,
    'the queue is full across workers',
  );
  assert.equal(view.pending, 1);
  assert.equal(view.pendingOverflow, 1);
  w.cancel();
  w.cancel();
  assert.equal(view.pending, 0);
  a.release();
  a.release();
  b.release();
  assert.deepEqual(readLimits(block, 0), {
    active: 0,
    pending: 0,
    retries: 0,
    perWorker: [
      { active: 0, pending: 0 },
      { active: 0, pending: 0 },
    ],
  });
  // the high priority has its own words
  const h = new SharedLimiter({ priority: 'high', max_requests: 1 }, block, 1, 0);
  assert.ok(h.tryEnter());
  assert.equal(view.active, 0);
  assert.equal(readLimits(block, 1).active, 1);
});

test('a slot freed in one worker goes to a request queued in another', async () => {
  const block = newLimitsBlock(2);
  const t = { priority: 'default' as const, max_requests: 1, max_pending_requests: 5 };
  const a = new SharedLimiter(t, block, 0, 0);
  const b = new SharedLimiter(t, block, 0, 1);
  assert.ok(a.tryEnter());
  const got = new Promise<void>((resolve) => {
    assert.ok(b.wait(resolve));
  });
  a.release();
  await got;
  assert.deepEqual(
    { active: readLimits(block, 0).active, pending: readLimits(block, 0).pending },
    { active: 1, pending: 0 },
  );
  assert.equal(readLimits(block, 0).perWorker[1]!.active, 1, 'the slot is counted to the worker that got it');
  b.release();
  assert.equal(readLimits(block, 0).active, 0);
});

test('retries are bounded across workers', () => {
  const block = newLimitsBlock(2);
  const t = { priority: 'default' as const, max_retries: 2 };
  const a = new SharedLimiter(t, block, 0, 0);
  const b = new SharedLimiter(t, block, 0, 1);
  assert.ok(a.tryRetry() && b.tryRetry());
  assert.equal(a.tryRetry(), false);
  assert.equal(a.retryOverflow, 1, "a worker's own count");
  assert.equal(b.retryOverflow, 0);
  assert.equal(new SharedLimiter(t, block, 0, -1).retryOverflow, 1, "the main thread's view: the sum");
  a.retryDone();
  assert.ok(b.tryRetry());
  b.retryDone();
  b.retryDone();
  assert.equal(readLimits(block, 0).retries, 0);
});

test('a flood from two worker threads never holds more than max_requests, and ends at 0', async () => {
  const block = newLimitsBlock(2);
  const probe = new SharedArrayBuffer(8);
  const limit = 3;
  const rounds = 200_000;
  const runs = [0, 1].map((worker) => run({ block, worker, mode: 'flood', limit, rounds, probe }));
  const results = await Promise.all(runs.map((r) => r.exited));
  for (const r of results) assert.deepEqual(r, { code: 0, error: undefined });
  const p = new Int32Array(probe);
  assert.ok(Atomics.load(p, 1) <= limit, `held ${Atomics.load(p, 1)} at once, limit ${limit}`);
  assert.ok(Atomics.load(p, 1) >= 1);
  const stats = runs.map((r) => r.messages[0] as { admitted: number; refused: number });
  for (const s of stats) assert.equal(s.admitted + s.refused, rounds);
  assert.deepEqual(readLimits(block, 0).active, 0);
  assert.equal(Atomics.load(p, 0), 0);
});

test('requests queued in a worker get the slots released in the main thread', async () => {
  const block = newLimitsBlock(2);
  const t = { priority: 'default' as const, max_requests: 1, max_pending_requests: 4 };
  const main = new SharedLimiter(t, block, 0, 1);
  assert.ok(main.tryEnter());
  let grants = 0;
  let queued: (() => void) | undefined;
  const isQueued = new Promise<void>((resolve) => {
    queued = resolve;
  });
  const r = run(
    { block, worker: 0, mode: 'queue', limit: 1, rounds: 3, probe: new SharedArrayBuffer(8) },
    (m) => {
      if ((m as { queued?: number }).queued !== undefined) queued!();
      if ((m as { granted?: number }).granted !== undefined) grants++;
    },
  );
  await isQueued;
  assert.equal(readLimits(block, 0).pending, 3);
  main.release(); // the worker's first waiter gets it, then each release passes it on in the worker
  await new Promise<void>((resolve) => {
    const check = () => (grants === 3 ? resolve() : setTimeout(check, 5));
    check();
  });
  assert.deepEqual(r.messages.at(-1), { granted: 3 });
  r.w.postMessage('exit');
  assert.equal((await r.exited).code, 0);
  assert.equal(readLimits(block, 0).active, 0);
  assert.equal(readLimits(block, 0).pending, 0);
});

test('a worker that dies holding slots: releaseWorker gives them back', async () => {
  const block = newLimitsBlock(2);
  const other = new SharedLimiter({ priority: 'default', max_requests: 2 }, block, 0, 1);
  const r = run(
    { block, worker: 0, mode: 'crash', limit: 2, rounds: 0, probe: new SharedArrayBuffer(8) },
    () => r.w.postMessage('crash'),
  );
  const { code, error } = await r.exited;
  assert.equal(code, 1);
  assert.match(String(error), /worker crash/);
  assert.deepEqual(
    { active: readLimits(block, 0).active, pending: readLimits(block, 0).pending },
    { active: 2, pending: 1 },
  );
  assert.equal(other.tryEnter(), false, 'the dead worker still holds both slots');
  assert.equal(releaseWorker(block, 0), 3);
  assert.deepEqual(
    { active: readLimits(block, 0).active, pending: readLimits(block, 0).pending },
    { active: 0, pending: 0 },
  );
  assert.ok(other.tryEnter());
  other.release();
});

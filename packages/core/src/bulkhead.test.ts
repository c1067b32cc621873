import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { bulkhead, isBulkheadRejectedError, isInvalidOptionError } from './index.js';
import { TestClock } from './test-clock.js';

function gate() {
  let open!: () => void;
  const promise = new Promise<void>((res) => {
    open = res;
  });
  return { promise, open };
}

describe('bulkhead', () => {
  it('validates options', () => {
    assert.throws(
      () => bulkhead({ maxConcurrent: 0 }),
      (e: unknown) =>
        isInvalidOptionError(e) && /"maxConcurrent" must be an integer >= 1, got 0/.test(String(e)),
    );
    assert.throws(
      () => bulkhead({ maxConcurrent: 1, maxQueue: 1.5 }),
      /"maxQueue" must be an integer >= 0, got 1.5/,
    );
    assert.throws(() => bulkhead({ maxConcurrent: 1, queueTimeoutMs: -1 }), /"queueTimeoutMs"/);
  });

  it('runs up to maxConcurrent, queues FIFO up to maxQueue, rejects the rest', async () => {
    const b = bulkhead({ maxConcurrent: 2, maxQueue: 2, clock: new TestClock() });
    const gates = [gate(), gate(), gate(), gate()];
    const order: number[] = [];
    const ps = gates.map((g, i) =>
      b.execute(async () => {
        order.push(i);
        await g.promise;
        return i;
      }),
    );
    await assert.rejects(
      b.execute(() => 99),
      (e: unknown) => isBulkheadRejectedError(e) && (e as { reason: string }).reason === 'full',
    );
    assert.deepEqual(b.stats(), {
      running: 2,
      queued: 2,
      maxConcurrent: 2,
      maxQueue: 2,
      executed: 2,
      rejected: 1,
    });
    gates[1]!.open();
    await ps[1];
    await Promise.resolve();
    assert.deepEqual(order, [0, 1, 2]);
    for (const g of gates) g.open();
    assert.deepEqual(await Promise.all(ps), [0, 1, 2, 3]);
    assert.equal(b.stats().running, 0);
    assert.equal(b.stats().executed, 4);
  });

  it('a failing call frees its slot', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1 });
    const first = b.execute(async () => {
      throw new Error('boom');
    });
    const second = b.execute(() => 'next');
    await assert.rejects(first, /boom/);
    assert.equal(await second, 'next');
    await assert.rejects(
      b.execute(() => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(b.stats().running, 0);
  });

  it('queue timeout rejects waiters in order with one shared timer', async () => {
    const clock = new TestClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 10, queueTimeoutMs: 100, clock });
    const g = gate();
    const running = b.execute(() => g.promise);
    const waits: Promise<unknown>[] = [];
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      waits.push(
        b.execute(() => 'ran').catch((e) => (isBulkheadRejectedError(e) ? times.push(clock.now()) : 0)),
      );
      clock.advance(10);
    }
    assert.equal(clock.pending, 1);
    await clock.advanceAsync(100);
    await Promise.all(waits);
    const t0 = clock.now() - 130;
    assert.deepEqual(times, [t0 + 100, t0 + 110, t0 + 120]);
    assert.equal(b.stats().queued, 0);
    assert.equal(clock.pending, 0);
    g.open();
    await running;
  });

  it('the queue timer keeps the process alive only while calls wait on it (ref)', async () => {
    const clock = new TestClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 2, queueTimeoutMs: 100, clock });
    const g = gate();
    const running = b.execute(() => g.promise);
    assert.equal(clock.pending, 0, 'no queue, no timer');
    const waiting = b.execute(() => 'ran');
    assert.deepEqual([clock.pending, clock.refed], [1, 1]);
    g.open();
    await running;
    assert.equal(await waiting, 'ran');
    assert.deepEqual([clock.pending, clock.refed], [1, 0], "the queue emptied: the timer is unref'd");
    const g2 = gate();
    const running2 = b.execute(() => g2.promise);
    const late = b.execute(() => 'late');
    assert.deepEqual([clock.pending, clock.refed], [1, 1], 'a new waiter refs the armed timer');
    clock.advance(50);
    const later = b.execute(() => 'later');
    clock.advance(50);
    await assert.rejects(late, (e: unknown) => isBulkheadRejectedError(e));
    assert.deepEqual([clock.pending, clock.refed], [1, 1], "re-armed, ref'd, for the later waiter");
    clock.advance(50);
    await assert.rejects(later, (e: unknown) => isBulkheadRejectedError(e));
    assert.equal(clock.pending, 0);
    g2.open();
    await running2;

    const off = bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 100, ref: false, clock });
    const g3 = gate();
    const r3 = off.execute(() => g3.promise);
    const w3 = off.execute(() => 3);
    assert.deepEqual([clock.pending, clock.refed], [1, 0]);
    g3.open();
    await r3;
    assert.equal(await w3, 3);
    assert.throws(
      () => bulkhead({ maxConcurrent: 1, ref: 'no' as unknown as boolean }),
      /option "ref" must be true or false/,
    );
  });

  it('abort while queued leaves the queue, rejects with the reason, removes the listener', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5, clock: new TestClock() });
    const g = gate();
    const running = b.execute(() => g.promise);
    const ac = new AbortController();
    let ran = false;
    const waiting = b.execute(() => {
      ran = true;
    }, ac.signal);
    const after = b.execute(() => 'after');
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    ac.abort(new Error('user left'));
    await assert.rejects(waiting, /user left/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    assert.equal(b.stats().queued, 1);
    g.open();
    await running;
    assert.equal(await after, 'after');
    assert.equal(ran, false);
  });

  it('a long queue is served in O(1) per step', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 50_000 });
    const ps: Promise<number>[] = [];
    for (let i = 0; i < 50_000; i++) ps.push(b.execute(async () => i));
    const out = await Promise.all(ps);
    assert.equal(out[49_999], 49_999);
    assert.equal(b.stats().queued, 0);
  });
});

describe('bulkhead (model)', () => {
  it('matches a simple model over random submit / finish / abort / time steps', async () => {
    const fc = await import('fast-check');
    const op = fc.oneof(
      fc.record({ kind: fc.constant('submit' as const), abortable: fc.boolean() }),
      fc.record({ kind: fc.constant('finish' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 60 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 3 }),
        fc.array(op, { maxLength: 60 }),
        async (maxConcurrent, maxQueue, ops) => {
          const clock = new TestClock(0);
          const b = bulkhead({ maxConcurrent, maxQueue, queueTimeoutMs: 100, clock });
          // Model
          const running: number[] = [];
          const queue: { id: number; at: number }[] = [];
          const finishers = new Map<number, () => void>();
          const aborters = new Map<number, AbortController>();
          const started: number[] = [];
          const expectStarted: number[] = [];
          let id = 0;
          const promote = () => {
            while (running.length < maxConcurrent && queue.length) {
              const w = queue.shift()!;
              running.push(w.id);
              expectStarted.push(w.id);
            }
          };
          for (const o of ops) {
            if (o.kind === 'submit') {
              const me = id++;
              const ac = o.abortable ? new AbortController() : undefined;
              if (ac) aborters.set(me, ac);
              const p = b.execute(
                () =>
                  new Promise<void>((res) => {
                    started.push(me);
                    finishers.set(me, res);
                  }),
                ac?.signal,
              );
              p.catch(() => {});
              if (running.length < maxConcurrent) {
                running.push(me);
                expectStarted.push(me);
              } else if (queue.length < maxQueue) queue.push({ id: me, at: clock.now() });
              else await assert.rejects(p, isBulkheadRejectedError);
            } else if (o.kind === 'finish' && running.length) {
              const victim = running.splice(o.pick % running.length, 1)[0]!;
              finishers.get(victim)!();
              await new Promise((r) => setImmediate(r));
              promote();
            } else if (o.kind === 'abort') {
              const qa = queue.filter((w) => aborters.has(w.id));
              if (qa.length) {
                const w = qa[o.pick % qa.length]!;
                aborters.get(w.id)!.abort(new Error('abort'));
                queue.splice(queue.indexOf(w), 1);
              }
            } else if (o.kind === 'tick') {
              clock.advance(o.ms);
              while (queue.length && queue[0]!.at + 100 <= clock.now()) queue.shift();
            }
            await new Promise((r) => setImmediate(r));
            const s = b.stats();
            assert.equal(s.running, running.length);
            assert.equal(s.queued, queue.length);
            assert.deepEqual(started, expectStarted);
          }
          for (const f of finishers.values()) f();
        },
      ),
      { numRuns: 80 },
    );
  });
});

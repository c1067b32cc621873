import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { isInvalidOptionError, isTimeoutError, timeout } from './index.js';
import { TestClock } from './test-clock.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('timeout', () => {
  it('validates options, naming the option', () => {
    assert.throws(
      () => timeout({ ms: 0 }),
      (e: unknown) =>
        isInvalidOptionError(e) && /option "ms" must be a number > 0.*got 0/.test((e as Error).message),
    );
    assert.throws(
      () => timeout({ ms: 10, strategy: 'brutal' as 'aggressive' }),
      /option "strategy" must be one of/,
    );
    assert.throws(() => timeout({ ms: 10, msec: 1 } as never), /option "msec"/);
  });

  it('cooperative: aborts the signal at the deadline and rejects with TimeoutError when fn rejects', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, clock });
    let seen: AbortSignal | undefined;
    const p = t.execute(
      ({ signal }) =>
        new Promise((_, reject) => {
          seen = signal;
          signal.addEventListener('abort', () => reject(signal.reason));
        }),
    );
    clock.advance(99);
    assert.equal(seen!.aborted, false);
    clock.advance(1);
    assert.equal(seen!.aborted, true);
    await assert.rejects(
      p,
      (e: unknown) => isTimeoutError(e) && (e as { timeoutMs: number }).timeoutMs === 100,
    );
    assert.equal(t.pending, 0);
  });

  it('cooperative: a result that arrives after the deadline is still returned', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 10, clock });
    const d = deferred<string>();
    const p = t.execute(() => d.promise);
    clock.advance(50);
    d.resolve('late');
    assert.equal(await p, 'late');
  });

  it('aggressive: rejects at the deadline even if fn ignores the signal', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, strategy: 'aggressive', clock });
    const d = deferred<string>();
    let fired = 0;
    t.on('timeout', () => fired++);
    const p = t.execute(() => d.promise);
    clock.advance(100);
    await assert.rejects(p, isTimeoutError);
    d.resolve('ignored');
    assert.equal(fired, 1);
    assert.equal(t.pending, 0);
  });

  it('resolves before the deadline and leaves nothing behind', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, clock });
    assert.equal(await t.execute(async () => 7), 7);
    assert.equal(await t.execute(() => 8), 8);
    assert.equal(t.pending, 0);
    // At most the policy's one shared timer is left; it does not re-arm once the list is empty.
    assert.ok(clock.pending <= 1);
    clock.advance(100);
    assert.equal(clock.pending, 0);
  });

  it('the deadline keeps the process alive only while a caller depends on it (ref)', async () => {
    const clock = new TestClock();
    // Cooperative, fn never reads the signal: it settles when fn does, the timer cannot help.
    const co = timeout({ ms: 100, clock });
    const d1 = deferred<number>();
    const p1 = co.execute(() => d1.promise);
    assert.deepEqual([clock.pending, clock.refed], [1, 0]);
    // A call that takes the signal may be settled by the abort: the shared timer is ref'd.
    const d2 = deferred<number>();
    const p2 = co.execute(({ signal }) => (signal.aborted ? 0 : d2.promise));
    assert.deepEqual([clock.pending, clock.refed], [1, 1]);
    d2.resolve(2);
    assert.equal(await p2, 2);
    assert.deepEqual([clock.pending, clock.refed], [1, 0], 'unref once no caller depends on it');
    d1.resolve(1);
    assert.equal(await p1, 1);
    // A signal read after the call settled holds nothing.
    let late: { signal: AbortSignal } | undefined;
    await co.execute(async (ctx) => {
      late = ctx;
    });
    assert.equal(late!.signal.aborted, false);
    assert.equal(clock.refed, 0);
    // A timer re-armed for a later head stays ref'd while that head's caller depends on it.
    const d3 = deferred<number>();
    const p3 = co.execute(
      ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(signal.reason))),
    );
    clock.advance(50);
    const p4 = co.execute(
      ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(signal.reason))),
    );
    clock.advance(50);
    await assert.rejects(p3, isTimeoutError);
    assert.deepEqual([clock.pending, clock.refed], [1, 1]);
    clock.advance(50);
    await assert.rejects(p4, isTimeoutError);
    assert.deepEqual([clock.pending, clock.refed], [0, 0]);
    d3.resolve(0);

    // Aggressive: every pending call depends on the timer.
    const ag = timeout({ ms: 100, strategy: 'aggressive', clock });
    const d5 = deferred<number>();
    const p5 = ag.execute(() => d5.promise);
    assert.deepEqual([clock.pending, clock.refed], [1, 1]);
    d5.resolve(5);
    assert.equal(await p5, 5);
    assert.deepEqual([clock.pending, clock.refed], [1, 0]);
    // A synchronous result never depends on the timer.
    assert.equal(await ag.execute(() => 6), 6);
    assert.equal(clock.refed, 0);
    const p7 = ag.execute(() => new Promise(() => {}));
    assert.equal(clock.refed, 1, "an armed, unref'd timer is ref'd again for a new caller");
    clock.advance(100);
    await assert.rejects(p7, isTimeoutError);
    assert.equal(clock.pending, 0);

    // ref: false never keeps the process alive.
    const off = timeout({ ms: 100, strategy: 'aggressive', ref: false, clock });
    const p8 = off.execute(() => new Promise(() => {}));
    const p9 = timeout({ ms: 100, ref: false, clock }).execute(
      ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(signal.reason))),
    );
    assert.deepEqual([clock.pending, clock.refed], [2, 0]);
    clock.advance(100);
    await assert.rejects(p8, isTimeoutError);
    await assert.rejects(p9, isTimeoutError);
    assert.throws(
      () => timeout({ ms: 1, ref: 1 as unknown as boolean }),
      /option "ref" must be true or false/,
    );
  });

  it('one timer serves many concurrent calls, firing each at its own deadline', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, strategy: 'aggressive', clock });
    const outcomes: string[] = [];
    const never = new Promise<never>(() => {});
    const ps: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) {
      ps.push(t.execute(() => never).catch((e) => outcomes.push(`${i}:${isTimeoutError(e)}@${clock.now()}`)));
      clock.advance(10);
    }
    assert.equal(clock.pending, 1);
    await clock.advanceAsync(100);
    await Promise.all(ps);
    const start = clock.now() - 150;
    assert.deepEqual(
      outcomes,
      [0, 1, 2, 3, 4].map((i) => `${i}:true@${start + 100 + i * 10}`),
    );
    assert.equal(clock.pending, 0);
  });

  it('does not make an AbortController unless fn reads ctx.signal', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, clock });
    const original = globalThis.AbortController;
    let made = 0;
    globalThis.AbortController = class extends original {
      constructor() {
        super();
        made++;
      }
    };
    try {
      await t.execute(async () => 1);
      assert.equal(made, 0);
      await t.execute(async ({ signal }) => signal.aborted);
      assert.equal(made, 1);
    } finally {
      globalThis.AbortController = original;
    }
  });

  it('composes the caller signal: abort propagates to ctx.signal with the caller reason', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, clock });
    const ac = new AbortController();
    const p = t.execute(
      ({ signal }) =>
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      ac.signal,
    );
    ac.abort(new Error('caller gone'));
    await assert.rejects(p, /caller gone/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });

  it('aggressive: the caller abort rejects at once', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, strategy: 'aggressive', clock });
    const ac = new AbortController();
    const p = t.execute(() => new Promise(() => {}), ac.signal);
    ac.abort(new Error('stop'));
    await assert.rejects(p, /stop/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });

  it('aggressive: a caller abort during the synchronous part of fn rejects at once', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, strategy: 'aggressive', clock });
    const ac = new AbortController();
    const p = t.execute(({ signal }) => {
      ac.abort(new Error('early'));
      assert.equal(signal.aborted, true);
      return new Promise(() => {});
    }, ac.signal);
    await assert.rejects(p, /early/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    assert.equal(t.pending, 0);
  });

  it('an already-aborted caller signal rejects without calling fn', async () => {
    const t = timeout({ ms: 100, clock: new TestClock() });
    let called = false;
    await assert.rejects(
      t.execute(
        () => {
          called = true;
        },
        AbortSignal.abort(new Error('pre')),
      ),
      /pre/,
    );
    assert.equal(called, false);
  });

  it('100,000 calls sharing one long-lived signal leave no listeners on it', async () => {
    const clock = new TestClock();
    const coop = timeout({ ms: 1_000, clock });
    const aggr = timeout({ ms: 1_000, strategy: 'aggressive', clock });
    const ac = new AbortController();
    for (let i = 0; i < 50_000; i++) {
      await coop.execute(async ({ signal }) => signal.aborted, ac.signal);
      await aggr.execute(async ({ signal }) => signal.aborted, ac.signal);
      if (i % 10_000 === 0) assert.ok(getEventListeners(ac.signal, 'abort').length === 0);
    }
    // Also with failures and timeouts.
    const pending = aggr.execute(() => new Promise(() => {}), ac.signal);
    clock.advance(1_000);
    await assert.rejects(pending, isTimeoutError);
    await assert.rejects(
      coop.execute(async () => Promise.reject(new Error('x')), ac.signal),
      /x/,
    );
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    assert.equal(coop.pending + aggr.pending, 0);
  });

  it('a synchronous throw rejects and unlinks', async () => {
    const t = timeout({ ms: 100, clock: new TestClock() });
    await assert.rejects(
      t.execute(() => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(t.pending, 0);
  });
});

describe('timeout (property)', () => {
  it('every call expires exactly at start + ms unless it settled before, whatever the interleaving', async () => {
    const fc = await import('fast-check');
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 50 }),
        fc.array(
          fc.record({
            gap: fc.integer({ min: 0, max: 30 }),
            life: fc.integer({ min: 0, max: 80 }),
            reads: fc.boolean(),
          }),
          { minLength: 1, maxLength: 25 },
        ),
        fc.constantFrom('cooperative' as const, 'aggressive' as const),
        async (ms, calls, strategy) => {
          const clock = new TestClock(0);
          const t = timeout({ ms, strategy, clock });
          const outcomes: {
            start: number;
            life: number;
            at: number;
            timedOut: boolean;
            aborted?: boolean;
          }[] = [];
          const settles: { at: number; run: () => void }[] = [];
          const done: Promise<unknown>[] = [];
          let now = 0;
          for (const c of calls) {
            now += c.gap;
            settles.push({
              at: now,
              run: () => {
                const start = clock.now();
                let finish!: () => void;
                let signal: AbortSignal | undefined;
                const p = t.execute((ctx) => {
                  if (c.reads) signal = ctx.signal;
                  return new Promise<void>((resolve, reject) => {
                    finish = () => (signal?.aborted ? reject(signal.reason) : resolve());
                  });
                });
                const rec = {
                  start,
                  life: c.life,
                  at: -1,
                  timedOut: false,
                  aborted: undefined as boolean | undefined,
                };
                outcomes.push(rec);
                done.push(
                  p.then(
                    () => {
                      rec.at = clock.now();
                    },
                    (e) => {
                      rec.at = clock.now();
                      rec.timedOut = isTimeoutError(e);
                    },
                  ),
                );
                settles.push({
                  at: start + c.life,
                  run: () => {
                    rec.aborted = signal?.aborted;
                    finish();
                  },
                });
              },
            });
          }
          // Drive time in 1 ms steps, running scheduled starts/settles at their instants.
          for (let time = 0; time <= now + 200; time++) {
            if (time > 0) await clock.advanceAsync(1);
            for (let i = 0; i < settles.length; i++) {
              if (settles[i]!.at === time) settles[i]!.run();
            }
            await Promise.resolve();
          }
          await Promise.all(done);
          for (let i = 0; i < outcomes.length; i++) {
            const o = outcomes[i]!;
            const expired = o.life >= ms; // the deadline timer runs before a settle at the same instant
            if (strategy === 'aggressive') {
              assert.equal(o.timedOut, expired);
              assert.equal(o.at, o.start + (expired ? ms : o.life));
            } else {
              assert.equal(o.at, o.start + o.life);
              // A function that read the signal saw it aborted iff the deadline passed, and then failed with TimeoutError.
              if (calls[i]!.reads) {
                assert.equal(o.aborted, expired);
                assert.equal(o.timedOut, expired);
              } else assert.equal(o.timedOut, false);
            }
          }
          assert.equal(t.pending, 0);
          clock.advance(ms);
          assert.equal(clock.pending, 0);
        },
      ),
      { numRuns: 60 },
    );
  });
});

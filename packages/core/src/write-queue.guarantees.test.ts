// Guarantees of writeQueue() that the survivors of `npm run mutation -- write-queue` showed
// unpinned after issue 11's first round: calls racing the store's load, the store contract (load
// before anything else), close() ending replays and later calls, a nested breaker's retryAt, and
// the backoff before the first replay of a write once an earlier write died.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CircuitOpenError,
  constantBackoff,
  isWriteQueueClosedError,
  memoryWriteStore,
  type Policy,
  type PolicyContext,
  type QueuedWrite,
  writeQueue,
} from './index.js';
import { TestClock } from './test-clock.js';

/** A memory store whose load resolves when `release()` is called, logging every operation. */
function slowStore() {
  const inner = memoryWriteStore<string>();
  const log: string[] = [];
  let release!: () => void;
  const loaded = new Promise<void>((r) => {
    release = r;
  });
  return {
    log,
    release,
    inner,
    store: {
      load: async (): Promise<QueuedWrite<string>[]> => {
        log.push('load');
        await loaded;
        log.push('loaded');
        return inner.load();
      },
      append: async (w: QueuedWrite<string>) => {
        log.push(`append ${w.data}`);
        await inner.append(w);
      },
      remove: (id: string) => inner.remove(id),
      close: async () => {
        log.push('close');
      },
    },
  };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('writeQueue: calls racing the load', () => {
  it('an enqueue made while the store loads stores nothing before the load resolved', async () => {
    const s = slowStore();
    const q = writeQueue({ send: async (d: string) => d, store: s.store, clock: new TestClock(0) });
    const e = q.enqueue('e');
    await tick();
    assert.deepEqual(s.log, ['load']);
    s.release();
    assert.equal(typeof (await e), 'string');
    assert.deepEqual(s.log.slice(0, 3), ['load', 'loaded', 'append e']);
    await q.close();
  });

  it('a submit then an enqueue made during the load keep their call order', async () => {
    const s = slowStore();
    const sent: string[] = [];
    const q = writeQueue({
      send: async (d: string) => {
        sent.push(d);
        return d;
      },
      store: s.store,
      clock: new TestClock(0),
    });
    const x = q.submit('x');
    const e = q.enqueue('e');
    await tick();
    s.release();
    assert.equal((await x).status, 'sent');
    assert.equal(typeof (await e), 'string');
    assert.deepEqual(sent.slice(0, 1), ['x']);
    await q.close();
  });

  it('an enqueue made after the load, while a submit that waited for it is not yet in, goes behind it', async () => {
    const s = slowStore();
    const sent: string[] = [];
    const q = writeQueue({
      send: async (d: string) => {
        sent.push(d);
        return d;
      },
      store: s.store,
      clock: new TestClock(0),
    });
    const x = q.submit('x');
    let e: Promise<string> | undefined;
    // Runs once the load is done, before x (which waited for it) is accepted.
    void q.ready.then(() => {
      e = q.enqueue('e');
    });
    s.release();
    assert.equal((await x).status, 'sent');
    await e;
    await q.close();
    assert.equal(sent[0], 'x');
  });

  it('once the callers that waited for the load are in, a call is accepted as it is made', async () => {
    const s = slowStore();
    const q = writeQueue({ send: async (d: string) => d, store: s.store, clock: new TestClock(0) });
    const e = q.enqueue('e');
    s.release();
    await e;
    // Accepted synchronously: close() waits for both.
    const z = q.submit('z');
    const f = q.enqueue('f');
    await q.close();
    assert.match((await z).status, /^(sent|queued)$/);
    assert.equal(typeof (await f), 'string');
  });
});

describe('writeQueue: after close()', () => {
  it('enqueue() after close() is refused and stores nothing', async () => {
    const s = slowStore();
    s.release();
    const q = writeQueue({ send: async (d: string) => d, store: s.store, clock: new TestClock(0) });
    await q.ready;
    await q.close();
    await assert.rejects(q.enqueue('late'), (e: unknown) => isWriteQueueClosedError(e));
    assert.deepEqual(s.log, ['load', 'loaded', 'close']);
  });

  it('drain() after close() resolves at once, even while a replay that ignores its abort is in flight', async () => {
    const clock = new TestClock(0);
    let finish!: () => void;
    const q = writeQueue({
      send: () =>
        new Promise<string>((resolve) => {
          finish = () => resolve('x');
        }),
      store: memoryWriteStore<string>(),
      clock,
    });
    await q.ready;
    await q.enqueue('a');
    await clock.advanceAsync(0); // the replay is in flight
    const closing = q.close();
    let drained = false;
    await q.drain().then(() => {
      drained = true;
    });
    assert.equal(drained, true);
    finish();
    await closing;
  });

  it('no drained event once closed, even when the replay in flight then succeeds', async () => {
    for (const writes of [['a'], ['a', 'b']]) {
      const clock = new TestClock(0);
      let finish!: () => void;
      const events: string[] = [];
      const q = writeQueue({
        send: (d: string) =>
          new Promise<string>((resolve) => {
            finish = () => resolve(d);
          }),
        store: memoryWriteStore<string>(),
        clock,
      });
      q.on('sent', ({ data }) => events.push(`sent ${data}`));
      q.on('drained', () => events.push('drained'));
      await q.ready;
      for (const w of writes) await q.enqueue(w);
      await clock.advanceAsync(0); // a's replay is in flight
      const closing = q.close();
      finish();
      await closing;
      assert.deepEqual(events, ['sent a']);
      assert.equal(q.size, writes.length - 1);
    }
  });
});

describe('writeQueue: when the next replay goes', () => {
  /** A policy standing for a breaker nested in `policy`: it rejects replays while `open()` says so. */
  function gatedPolicy(
    clock: TestClock,
    retryAt: () => number | undefined,
  ): Policy<PolicyContext> & { rejected: number } {
    const p = {
      rejected: 0,
      execute: <T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T) => {
        const at = retryAt();
        if (at !== undefined && at >= clock.now()) {
          p.rejected++;
          return Promise.reject(
            new CircuitOpenError({
              breakerName: 'inner',
              state: 'open',
              retryAt: at,
              retryAfter: at - clock.now(),
            }),
          );
        }
        return Promise.resolve().then(() => fn({ signal: new AbortController().signal }));
      },
    };
    return p;
  }

  it('a CircuitOpenError whose retryAt is now backs off instead of replaying at once', async () => {
    const clock = new TestClock(0);
    let openUntil: number | undefined;
    const policy = gatedPolicy(clock, () => openUntil);
    const sends: number[] = [];
    const q = writeQueue({
      send: async () => {
        sends.push(clock.now());
        return 1;
      },
      store: memoryWriteStore<string>(),
      policy,
      clock,
      backoff: constantBackoff(300),
    });
    await q.ready;
    openUntil = 0; // rejects with retryAt = now (0)
    await q.enqueue('a');
    await clock.advanceAsync(0);
    assert.equal(policy.rejected, 1);
    openUntil = undefined;
    await clock.advanceAsync(299);
    assert.deepEqual(sends, []);
    await clock.advanceAsync(1);
    assert.deepEqual(sends, [300]);
    await q.close();
  });

  it('a failed first attempt does not bring the replay before the retryAt a nested breaker gave', async () => {
    const clock = new TestClock(0);
    let replaysOpenUntil: number | undefined = 2_000;
    let down = true;
    // First attempts go through; replays are rejected until 2 000 (the breaker's retryAt).
    const sends: string[] = [];
    const inner = gatedPolicy(clock, () => replaysOpenUntil);
    const policy: Policy<PolicyContext> = {
      execute: (fn, signal) =>
        replaying ? inner.execute(fn, signal) : Promise.resolve().then(() => fn({ signal: signal! })),
    };
    let replaying = false;
    const q = writeQueue({
      send: async (d: string, ctx) => {
        sends.push(`${d}${ctx.replay ? ' replay' : ''}@${clock.now()}`);
        if (down) throw new Error('down');
        return d;
      },
      store: memoryWriteStore<string>(),
      policy,
      clock,
      ordered: false,
      backoff: constantBackoff(300),
    });
    await q.ready;
    replaying = true;
    await q.enqueue('a'); // its replay is rejected at 0 with retryAt 2 000
    await clock.advanceAsync(0);
    assert.equal(inner.rejected, 1);
    replaying = false;
    await clock.advanceAsync(100);
    assert.equal((await q.submit('b')).status, 'queued'); // fails at 100
    replaying = true;
    replaysOpenUntil = undefined;
    down = false;
    await clock.advanceAsync(1_899);
    assert.deepEqual(sends, ['b@100']);
    await clock.advanceAsync(1);
    assert.deepEqual(sends, ['b@100', 'a replay@2000', 'b replay@2000']);
    await q.close();
  });

  it('after a write died of maxAttempts, the next failed first attempt still waits a backoff before its replay', async () => {
    const clock = new TestClock(0);
    const sends: string[] = [];
    const dead: string[] = [];
    const q = writeQueue({
      send: async (d: string) => {
        sends.push(`${d}@${clock.now()}`);
        throw new Error('down');
      },
      store: memoryWriteStore<string>(),
      clock,
      maxAttempts: 2,
      backoff: constantBackoff(300),
    });
    q.on('dead', ({ data }) => dead.push(`${data}@${clock.now()}`));
    await q.ready;
    await q.submit('a'); // fails at 0; its replay at 300 is its last attempt
    await clock.advanceAsync(300);
    assert.deepEqual(dead, ['a@300']);
    await clock.advanceAsync(1_000);
    await q.submit('b'); // fails at 1 300
    await clock.advanceAsync(0);
    assert.deepEqual(sends, ['a@0', 'a@300', 'b@1300'], 'b is not replayed at once');
    await clock.advanceAsync(1_000);
    assert.deepEqual(sends, ['a@0', 'a@300', 'b@1300', 'b@1600']);
    assert.deepEqual(dead, ['a@300', 'b@1600']);
    await q.close();
  });
});

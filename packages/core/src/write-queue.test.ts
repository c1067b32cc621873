import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  type CircuitBreaker,
  circuitBreaker,
  constantBackoff,
  isCircuitOpenError,
  isInvalidOptionError,
  isWriteQueueClosedError,
  isWriteQueueFullError,
  isTimeoutError,
  memoryWriteStore,
  timeout,
  type WriteContext,
  wrap,
  type WriteQueueStore,
  writeQueue,
} from './index.js';
import { fileWriteStore } from './file-write-store.js';
import { TestClock } from './test-clock.js';

class Unavailable extends Error {
  readonly status = 503;
}

/** A downstream that fails while `down` is set and records every write it accepts. */
function downstream() {
  const state = {
    down: false,
    calls: [] as { data: string; ctx: WriteContext }[],
    accepted: [] as string[],
    send: async (data: string, ctx: WriteContext): Promise<string> => {
      state.calls.push({ data, ctx });
      if (state.down) throw new Unavailable(`down (${data})`);
      state.accepted.push(data);
      return `ok:${data}`;
    },
  };
  return state;
}

function setup(
  opts: { threshold?: number; openMs?: number; store?: WriteQueueStore<string>; breaker?: boolean } = {},
) {
  const clock = new TestClock();
  const ds = downstream();
  const breaker: CircuitBreaker | undefined =
    opts.breaker === false
      ? undefined
      : circuitBreaker({
          name: 'orders',
          clock,
          trip: { kind: 'consecutive', threshold: opts.threshold ?? 2 },
          openDuration: opts.openMs ?? 5_000,
        });
  return { clock, ds, breaker, store: opts.store ?? memoryWriteStore<string>() };
}

describe('writeQueue', () => {
  it('validates options, naming the option', () => {
    const { ds } = setup();
    const bad = (o: unknown, re: RegExp) =>
      assert.throws(
        () => writeQueue(o as never),
        (e: unknown) => isInvalidOptionError(e) && re.test((e as Error).message),
      );
    bad({ send: ds.send }, /writeQueue: option "store" must be a WriteQueueStore \(fileWriteStore\(path\)/);
    bad({ store: memoryWriteStore() }, /option "send" must be a function/);
    bad(
      { send: ds.send, store: memoryWriteStore(), maxItems: 0 },
      /option "maxItems" must be an integer >= 1, got 0/,
    );
    bad(
      { send: ds.send, store: memoryWriteStore(), breaker: {} },
      /option "breaker" must be a circuit breaker/,
    );
    bad({ send: ds.send, store: memoryWriteStore(), backof: constantBackoff(1) }, /option "backof"/);
    // Every option's message, and a store missing any one of its methods.
    const store = memoryWriteStore<string>();
    const send = ds.send;
    const cases: Array<[unknown, string]> = [
      [undefined, 'option "options" must be an object, got undefined'],
      [
        { send, store, extra: 1 },
        'option "extra" must be one of the known options (send, store, breaker, policy, maxItems, maxAttempts, retryable, ordered, backoff, random, clock), got 1',
      ],
      [{ send: 1, store }, 'option "send" must be a function (data, ctx) => result, got 1'],
      [{ send, store: null }, 'option "store" must be a WriteQueueStore'],
      [
        { send, store, breaker: null },
        'option "breaker" must be a circuit breaker made by circuitBreaker(), got null',
      ],
      [
        { send, store, breaker: { kind: 'retry' } },
        'option "breaker" must be a circuit breaker made by circuitBreaker()',
      ],
      [{ send, store, policy: {} }, 'option "policy" must be a policy with execute(fn, signal), got {}'],
      [{ send, store, policy: null }, 'option "policy" must be a policy with execute(fn, signal), got null'],
      [{ send, store, maxAttempts: 0 }, 'option "maxAttempts" must be an integer >= 1, got 0'],
      [{ send, store, maxAttempts: 1.5 }, 'option "maxAttempts" must be an integer >= 1, got 1.5'],
      [{ send, store, maxItems: 2.5 }, 'option "maxItems" must be an integer >= 1, got 2.5'],
      [{ send, store, retryable: 1 }, 'option "retryable" must be a function, got 1'],
      [{ send, store, ordered: 1 }, 'option "ordered" must be true or false, got 1'],
      [
        { send, store, backoff: {} },
        'option "backoff" must be a Backoff with delay(retry, previous, random), got {}',
      ],
      [
        { send, store, backoff: 5 },
        'option "backoff" must be a Backoff with delay(retry, previous, random), got 5',
      ],
      [{ send, store, random: 1 }, 'option "random" must be a function, got 1'],
      [
        { send, store, clock: {} },
        'option "clock" must be a Clock with now(), setTimeout() and clearTimeout(), got {}',
      ],
    ];
    for (const method of ['load', 'append', 'remove', 'close'] as const)
      cases.push([
        { send, store: { ...store, [method]: undefined } },
        'option "store" must be a WriteQueueStore',
      ]);
    for (const [o, message] of cases)
      assert.throws(
        () => writeQueue(o as never),
        (e: unknown) => isInvalidOptionError(e) && (e as Error).message.startsWith(`writeQueue: ${message}`),
        message,
      );
    const q = writeQueue({ send, store });
    assert.equal(q.kind, 'writeQueue');
    void q.close();
  });

  it('sends at once while the downstream is healthy: nothing is queued, no timer is held', async () => {
    const { clock, ds, breaker, store } = setup();
    const q = writeQueue({ send: ds.send, store, breaker, clock });
    const r = await q.submit('a');
    assert.equal(r.status, 'sent');
    assert.equal(r.status === 'sent' && r.value, 'ok:a');
    assert.equal(q.size, 0);
    assert.equal(clock.pending, 0);
    assert.equal(ds.calls[0]!.ctx.replay, false);
    assert.equal(ds.calls[0]!.ctx.id, r.id);
    await q.close();
  });

  it('queues writes while the breaker is open and replays them in order, the first replay being its probe', async () => {
    const { clock, ds, breaker, store } = setup({ threshold: 2, openMs: 5_000 });
    const q = writeQueue({ send: ds.send, store, breaker: breaker!, clock, backoff: constantBackoff(100) });
    const sent: string[] = [];
    q.on('sent', (e) => sent.push(`${e.data}#${e.attempts}`));
    let drained = 0;
    q.on('drained', () => drained++);
    ds.down = true;
    const r1 = await q.submit('w1');
    const r2 = await q.submit('w2');
    assert.equal(r1.status, 'queued');
    assert.equal(r2.status, 'queued');
    assert.equal(breaker!.state, 'closed', 'two failures, but w2 was queued behind w1 without a send');
    // Unordered would have sent w2; here w2 never reached the downstream.
    assert.deepEqual(
      ds.calls.map((c) => c.data),
      ['w1'],
    );
    // Replays w1 after the backoff: fails again, which opens the breaker.
    await clock.advanceAsync(100);
    assert.equal(breaker!.state, 'open');
    assert.equal(ds.calls.length, 2);
    const r3 = await q.submit('w3');
    assert.equal(r3.status, 'queued');
    assert.deepEqual(
      q.pending().map((p) => p.data),
      ['w1', 'w2', 'w3'],
    );
    assert.equal(clock.pending, 1, 'the breaker holds no timer (lazy); the queue holds one, for its probe');
    ds.down = false;
    await clock.advanceAsync(4_999);
    assert.equal(ds.calls.length, 2, 'nothing is sent before the open period ends');
    await clock.advanceAsync(1);
    assert.equal(breaker!.state, 'closed');
    assert.deepEqual(ds.accepted, ['w1', 'w2', 'w3']);
    assert.deepEqual(sent, ['w1#3', 'w2#1', 'w3#1']);
    assert.equal(drained, 1);
    assert.equal(q.size, 0);
    // Every replay of a write carries the id its first attempt had.
    const w1 = ds.calls.filter((c) => c.data === 'w1');
    assert.equal(new Set(w1.map((c) => c.ctx.id)).size, 1);
    assert.equal(w1[0]!.ctx.id, r1.id);
    assert.deepEqual(
      w1.map((c) => [c.ctx.attempt, c.ctx.replay]),
      [
        [1, false],
        [2, true],
        [3, true],
      ],
    );
    assert.equal(clock.pending, 0, 'idle again: no timer');
    await q.close();
  });

  it('a replay rejected by the open breaker is not an attempt and sends nothing', async () => {
    const { clock, ds, breaker, store } = setup({ threshold: 1, openMs: 1_000 });
    const q = writeQueue({ send: ds.send, store, breaker: breaker!, clock, maxAttempts: 2 });
    ds.down = true;
    await q.submit('a'); // fails, opens the breaker
    assert.equal(breaker!.state, 'open');
    await q.drain(); // forced replay while open: rejected by the breaker
    assert.equal(ds.calls.length, 1);
    assert.equal(q.pending()[0]!.attempts, 1);
    ds.down = false;
    await clock.advanceAsync(1_000);
    assert.deepEqual(ds.accepted, ['a']);
    await q.close();
  });

  it('waits out the backoff between failed replays, growing as configured', async () => {
    const { clock, ds, store } = setup({ breaker: false });
    const delays = [1_000, 2_000, 4_000];
    const q = writeQueue({
      send: ds.send,
      store,
      clock,
      backoff: { delay: (n) => delays[Math.min(n, 3) - 1]! },
    });
    const failed: number[] = [];
    q.on('replayFailed', (e) => failed.push(e.retryInMs));
    ds.down = true;
    await q.submit('x');
    await clock.advanceAsync(999);
    assert.equal(ds.calls.length, 1);
    await clock.advanceAsync(1);
    assert.equal(ds.calls.length, 2);
    await clock.advanceAsync(2_000);
    assert.equal(ds.calls.length, 3);
    ds.down = false;
    await clock.advanceAsync(3_999);
    assert.equal(ds.calls.length, 3);
    await clock.advanceAsync(1);
    assert.deepEqual(ds.accepted, ['x']);
    assert.deepEqual(failed, [2_000, 4_000]);
    await q.close();
  });

  it('ordered: a write submitted while an earlier first attempt is in flight waits behind it', async () => {
    const clock = new TestClock(0);
    const sent: string[] = [];
    const replayed: string[] = [];
    // A fails slowly, B would fail fast: B must still replay after A.
    const latency: Record<string, number> = { a: 300, b: 10, c: 10 };
    let down = true;
    const send = (data: string, ctx: WriteContext) =>
      new Promise<string>((resolve, reject) =>
        clock.setTimeout(
          () => {
            sent.push(data);
            if (down) reject(new Error(`down (${data})`));
            else {
              if (ctx.replay) replayed.push(data);
              resolve(data);
            }
          },
          ctx.replay ? 0 : latency[data]!,
        ),
      );
    const q = writeQueue({ send, store: memoryWriteStore<string>(), clock, backoff: constantBackoff(1_000) });
    const a = q.submit('a');
    const b = q.submit('b');
    await clock.advanceToNext(); // t = 300: A's attempt fails; B had not been sent
    assert.deepEqual(sent, ['a']);
    assert.equal((await a).status, 'queued');
    assert.equal((await b).status, 'queued', 'B went behind A in the queue');
    assert.deepEqual(
      q.pending().map((w) => w.data),
      ['a', 'b'],
    );
    down = false;
    await clock.settle(q.drain());
    assert.deepEqual(replayed, ['a', 'b']);

    // A succeeding lets B go at once after it (not queued): order holds on the success path too.
    const c = q.submit('c');
    const d = q.submit('d');
    latency.d = 0;
    assert.equal((await clock.settle(d)).status, 'sent');
    assert.equal((await c).status, 'sent');
    assert.deepEqual(sent.slice(-2), ['c', 'd']);
    await q.close();
  });

  it('close() waits for submits in flight and stores a failed first attempt for the next run', async () => {
    const clock = new TestClock(0);
    const store = memoryWriteStore<string>();
    const appends: string[] = [];
    const slowStore: WriteQueueStore<string> = {
      ...store,
      append: (w) =>
        new Promise<void>((resolve) =>
          clock.setTimeout(() => {
            appends.push(w.data);
            resolve(store.append(w));
          }, 50),
        ),
    };
    const send = (data: string) =>
      new Promise<string>((_, reject) => clock.setTimeout(() => reject(new Error(`down (${data})`)), 100));
    const q = writeQueue({ send, store: slowStore, clock });
    await q.ready; // from here on a submit is accepted as it is made
    const a = q.submit('a');
    const b = q.submit('b'); // waits behind a's attempt
    let closed = false;
    const closing = q.close().then(() => {
      closed = true;
    });
    await assert.rejects(q.submit('late'), (e: unknown) => isWriteQueueClosedError(e));
    await clock.advanceAsync(100); // a fails, its append starts
    assert.equal(closed, false, 'close waits for the attempt in flight');
    await clock.settle(closing);
    assert.equal(clock.now(), 200, 'a stored at 150, then b (not sent: the queue is closing) at 200');
    assert.deepEqual(appends, ['a', 'b']);
    assert.deepEqual([(await a).status, (await b).status], ['queued', 'queued']);
    const again = writeQueue({ send: async (d: string) => d, store, clock });
    await again.ready;
    assert.deepEqual(
      again.pending().map((w) => w.data),
      ['a', 'b'],
    );
    await again.close();
  });

  it('size and the queued/sent/dead events agree at every moment, even while the store removes slowly', async () => {
    // The demo once read `size` 0 with one `sent` event still to come (replayed 9 of 10 queued):
    // a write left `size` when its replay succeeded, but `sent` waited for the store's remove.
    const clock = new TestClock(0);
    const store = memoryWriteStore<string>();
    const slowRemove: WriteQueueStore<string> = {
      ...store,
      remove: (id) => new Promise<void>((resolve) => clock.setTimeout(() => resolve(store.remove(id)), 40)),
    };
    let down = true;
    const send = async (data: string) => {
      if (down || data === 'poison') throw new Unavailable(`down (${data})`);
      return data;
    };
    const q = writeQueue({
      send,
      store: slowRemove,
      clock,
      backoff: constantBackoff(100),
      retryable: (e) => !(e instanceof Unavailable && /poison/.test(e.message)) || down,
    });
    const counts = { queued: 0, sent: 0, dead: 0 };
    const broken: string[] = [];
    const check = (where: string) => {
      const expected = counts.queued - counts.sent - counts.dead;
      if (q.size !== expected) broken.push(`${where}: size ${q.size}, events say ${expected}`);
    };
    q.on('queued', () => {
      counts.queued++;
      check('queued');
    });
    q.on('sent', () => {
      counts.sent++;
      check('sent');
    });
    q.on('dead', () => {
      counts.dead++;
      check('dead');
    });
    await q.ready;
    for (const w of ['a', 'b', 'poison', 'c']) await q.submit(w);
    down = false;
    for (let at = clock.nextTimerAt(); at !== undefined; at = clock.nextTimerAt()) {
      await clock.advanceToNext();
      check(`t=${clock.now()}`);
    }
    assert.deepEqual(counts, { queued: 4, sent: 3, dead: 1 });
    assert.deepEqual(broken, []);
    await q.close();
  });

  it('unordered: a new write is sent at once even while others wait', async () => {
    const { clock, ds, store } = setup({ breaker: false });
    const q = writeQueue({ send: ds.send, store, clock, ordered: false, backoff: constantBackoff(1_000) });
    ds.down = true;
    await q.submit('old');
    ds.down = false;
    const r = await q.submit('new');
    assert.equal(r.status, 'sent');
    assert.deepEqual(ds.accepted, ['new']);
    await clock.advanceAsync(1_000);
    assert.deepEqual(ds.accepted, ['new', 'old']);
    await q.close();
  });

  it('does not queue what can never succeed: non-retryable errors rethrow, or drop a replay as dead', async () => {
    const { clock, store } = setup({ breaker: false });
    let status = 400;
    const send = async () => {
      const e = Object.assign(new Error(`status ${status}`), { status });
      throw e;
    };
    const q = writeQueue({
      send,
      store,
      clock,
      backoff: constantBackoff(10),
      retryable: (e) => (e as { status: number }).status >= 500,
    });
    await assert.rejects(q.submit('bad'), /status 400/);
    assert.equal(q.size, 0);
    status = 503;
    assert.equal((await q.submit('later-bad')).status, 'queued');
    const dead: string[] = [];
    q.on('dead', (e) => dead.push(`${e.data}:${(e.error as Error).message}:${e.attempts}`));
    status = 422;
    await clock.advanceAsync(10);
    assert.deepEqual(dead, ['later-bad:status 422:2']);
    assert.equal(q.size, 0);
    assert.deepEqual(await store.load(), [], 'a dead write leaves the store');
    await q.close();
  });

  it('gives up on a write after maxAttempts sends, then moves on to the next', async () => {
    const { clock, ds, store } = setup({ breaker: false });
    const q = writeQueue({ send: ds.send, store, clock, backoff: constantBackoff(10), maxAttempts: 3 });
    const dead: string[] = [];
    q.on('dead', (e) => dead.push(`${e.data}#${e.attempts}`));
    ds.down = true;
    await q.submit('a');
    await q.enqueue('b');
    await clock.advanceAsync(10); // a#2
    await clock.advanceAsync(10); // a#3: dead; b#1 fails at once
    assert.deepEqual(dead, ['a#3']);
    ds.down = false;
    await clock.advanceAsync(10);
    assert.deepEqual(ds.accepted, ['b']);
    await q.close();
  });

  it('refuses writes beyond maxItems with WriteQueueFullError carrying the original error', async () => {
    const { clock, ds, store } = setup({ breaker: false });
    const q = writeQueue({ send: ds.send, store, clock, maxItems: 2 });
    ds.down = true;
    await q.submit('1');
    await q.enqueue('2');
    const err = await q.submit('3').catch((e: unknown) => e);
    assert.ok(isWriteQueueFullError(err));
    assert.equal((err as Error).cause, undefined, 'ordered: the third never reached the downstream');
    const q2 = writeQueue({
      send: ds.send,
      store: memoryWriteStore<string>(),
      clock,
      maxItems: 1,
      ordered: false,
    });
    await q2.submit('x');
    const err2 = await q2.submit('y').catch((e: unknown) => e);
    assert.ok(isWriteQueueFullError(err2));
    assert.match(String((err2 as Error).cause), /down \(y\)/);
    assert.deepEqual(
      q.pending().map((p) => p.data),
      ['1', '2'],
      'nothing accepted is lost',
    );
    await q.close();
    await q2.close();
  });

  it("the caller's abort is not queued; a bad signal is named", async () => {
    const { clock, store } = setup({ breaker: false });
    const ac = new AbortController();
    const q = writeQueue({
      send: (_d: string, { signal }) =>
        new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      store,
      clock,
    });
    const p = q.submit('a', ac.signal);
    await Promise.resolve();
    ac.abort(new Error('client went away'));
    await assert.rejects(p, /client went away/);
    assert.equal(q.size, 0);
    await assert.rejects(q.submit('b', {} as AbortSignal), /option "signal" must be an AbortSignal/);
    await q.close();
  });

  it('an isolated breaker holds replays without a timer until it is reset', async () => {
    const { clock, ds, breaker, store } = setup();
    const q = writeQueue({ send: ds.send, store, breaker: breaker!, clock });
    breaker!.isolate();
    const r = await q.submit('a');
    assert.ok(r.status === 'queued' && isCircuitOpenError(r.error));
    assert.equal(clock.pending, 0);
    await clock.advanceAsync(60_000);
    assert.equal(ds.calls.length, 0);
    assert.equal(clock.pending, 0, 'no polling of an isolated breaker');
    breaker!.reset();
    await clock.advanceAsync(0);
    assert.deepEqual(ds.accepted, ['a']);
    await q.close();
  });

  it('a restarted queue replays what the previous one stored; close aborts a replay in flight and keeps it', async () => {
    const { clock, breaker } = setup();
    const store = memoryWriteStore<string>();
    const hang = {
      calls: 0,
      send: (_d: string, { signal }: WriteContext) => {
        hang.calls++;
        return new Promise<string>((_r, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason)),
        );
      },
    };
    const q1 = writeQueue({ send: hang.send, store, breaker: breaker!, clock });
    breaker!.isolate();
    await q1.submit('a');
    await q1.submit('b');
    breaker!.reset(); // replay of 'a' starts and hangs
    await clock.advanceAsync(0);
    assert.equal(hang.calls, 1);
    await q1.close();
    await assert.rejects(q1.submit('c'), (e: unknown) => isWriteQueueClosedError(e));
    breaker!.isolate();
    breaker!.reset(); // the closed queue no longer listens: nothing is sent
    await clock.advanceAsync(0);
    assert.equal(hang.calls, 1);

    const ds = downstream();
    const q2 = writeQueue({ send: ds.send, store, breaker: breaker!, clock });
    await q2.ready;
    await clock.advanceAsync(0);
    assert.deepEqual(ds.accepted, ['a', 'b']);
    assert.equal(q2.size, 0);
    await q2.close();
  });

  it('survives a restart on a file store, in order and with the same ids', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tripswitch-wq-'));
    const path = join(dir, 'outbox.jsonl');
    const { clock, breaker } = setup();
    const q1 = writeQueue({
      send: async () => 'never',
      store: fileWriteStore<string>(path),
      breaker: breaker!,
      clock,
    });
    breaker!.isolate();
    const ids = [(await q1.submit('a')).id, (await q1.submit('b')).id, await q1.enqueue('c')];
    await q1.close();
    breaker!.reset();
    const ds = downstream();
    const q2 = writeQueue({ send: ds.send, store: fileWriteStore<string>(path), breaker: breaker!, clock });
    // File I/O completes on the event loop, not in microtasks: wait for the queue to say it is done.
    const drained = new Promise((resolve) => q2.on('drained', resolve));
    await q2.ready;
    await drained;
    assert.deepEqual(ds.accepted, ['a', 'b', 'c']);
    assert.deepEqual(
      ds.calls.map((c) => c.ctx.id),
      ids,
    );
    await q2.close();
    const q3 = writeQueue({ send: ds.send, store: fileWriteStore<string>(path), clock });
    await q3.ready;
    assert.equal(q3.size, 0, 'replayed writes were removed from the file');
    await q3.close();
  });

  it('reports a store that cannot load through every call and a storeError event', async () => {
    const { clock, ds } = setup({ breaker: false });
    const broken: WriteQueueStore<string> = {
      load: async () => {
        throw new Error('disk gone');
      },
      append: async () => {},
      remove: async () => {},
      close: async () => {},
    };
    const errors: string[] = [];
    const q = writeQueue({ send: ds.send, store: broken, clock });
    q.on('storeError', (e) => errors.push(`${e.operation}:${(e.error as Error).message}`));
    await assert.rejects(q.ready, /disk gone/);
    await assert.rejects(q.submit('a'), /disk gone/);
    assert.equal(ds.calls.length, 0);
    assert.deepEqual(errors, ['load:disk gone']);
    await q.close();
  });

  it('runs sends under a composed policy: a hanging first attempt times out, is queued and replayed', async () => {
    const { clock, breaker, store } = setup({ threshold: 5 });
    let hang = true;
    const accepted: string[] = [];
    const q = writeQueue({
      breaker: breaker!,
      policy: wrap(breaker!, timeout({ ms: 100, clock })),
      store,
      clock,
      backoff: constantBackoff(1_000),
      send: (data: string, { signal }) => {
        if (hang)
          return new Promise<string>((_r, reject) =>
            signal.addEventListener('abort', () => reject(signal.reason)),
          );
        accepted.push(data);
        return 'ok';
      },
    });
    const p = q.submit('slow');
    await clock.advanceAsync(100);
    const r = await p;
    assert.ok(r.status === 'queued' && isTimeoutError(r.error));
    assert.equal(breaker!.stats().failures, 1, 'the breaker counted the timeout');
    hang = false;
    await clock.advanceAsync(1_000);
    assert.deepEqual(accepted, ['slow']);
    await q.close();
  });

  it('discard drops a waiting write from memory and store', async () => {
    const { clock, ds, store, breaker } = setup();
    const q = writeQueue({ send: ds.send, store, breaker: breaker!, clock });
    breaker!.isolate();
    const a = await q.submit('a');
    await q.submit('b');
    assert.equal(await q.discard(a.id), true);
    assert.equal(await q.discard('nope'), false);
    assert.deepEqual(
      (await store.load()).map((w) => w.data),
      ['b'],
    );
    breaker!.reset();
    await clock.advanceAsync(0);
    assert.deepEqual(ds.accepted, ['b']);
    await q.close();
  });
});

describe('writeQueue: guarantees pinned by mutation testing', () => {
  it('drain() during a replay joins it: the head write is sent once', async () => {
    const clock = new TestClock(0);
    const sends: string[] = [];
    const gates: Array<() => void> = [];
    const send = (data: string) => {
      sends.push(data);
      return new Promise<string>((resolve) => gates.push(() => resolve(data)));
    };
    const store = memoryWriteStore<string>();
    const q = writeQueue({ send, store, clock, backoff: constantBackoff(1_000) });
    await q.ready;
    await q.enqueue('a');
    await q.enqueue('b');
    await clock.advanceAsync(0); // the replay of 'a' is in flight
    assert.deepEqual(sends, ['a']);
    const d1 = q.drain();
    const d2 = q.drain();
    await clock.advanceAsync(0);
    assert.deepEqual(sends, ['a'], 'no second loop sends the head again');
    gates.shift()!();
    await clock.advanceAsync(0);
    assert.deepEqual(sends, ['a', 'b']);
    gates.shift()!();
    await Promise.all([d1, d2]);
    assert.equal(q.size, 0);
    await q.close();
  });

  it('close() waits for a replay that ignores its abort, then closes the store', async () => {
    const clock = new TestClock(0);
    const events: string[] = [];
    const store = memoryWriteStore<string>();
    let finish!: () => void;
    const q = writeQueue({
      // Ignores the abort: close must still wait for it before closing the store.
      send: () =>
        new Promise<string>((resolve) => {
          finish = () => {
            events.push('send done');
            resolve('x');
          };
        }),
      store: {
        ...store,
        remove: async (id) => {
          events.push('remove');
          await store.remove(id);
        },
        close: async () => {
          events.push('store closed');
        },
      },
      clock,
    });
    await q.ready;
    await q.enqueue('a');
    await clock.advanceAsync(0);
    let closed = false;
    const closing = q.close().then(() => {
      closed = true;
    });
    await clock.advanceAsync(0);
    assert.equal(closed, false);
    finish();
    await closing;
    // The send ignored the abort and succeeded: the write was delivered, so it is removed, and
    // only then is the store closed.
    assert.deepEqual(events, ['send done', 'remove', 'store closed']);
    assert.equal((await store.load()).length, 0);
  });

  it('an append that fails is not queued: submit and enqueue reject with the store error', async () => {
    const clock = new TestClock(0);
    const diskFull = new Error('ENOSPC');
    let fail = true;
    const store = memoryWriteStore<string>();
    const q = writeQueue({
      send: async () => {
        throw new Error('down');
      },
      store: {
        ...store,
        append: (w) =>
          new Promise<void>((resolve, reject) =>
            clock.setTimeout(() => (fail ? reject(diskFull) : resolve(store.append(w))), 10),
          ),
      },
      clock,
      backoff: constantBackoff(1_000),
    });
    let queued = 0;
    q.on('queued', () => queued++);
    await q.ready;
    await assert.rejects(clock.settle(q.submit('a')), (e) => e === diskFull);
    await assert.rejects(clock.settle(q.enqueue('b')), (e) => e === diskFull);
    assert.deepEqual([q.size, queued], [0, 0]);
    fail = false;
    assert.equal((await clock.settle(q.submit('c'))).status, 'queued');
    assert.deepEqual([q.size, queued], [1, 1]);
    await q.close();
  });

  it('the breaker closing replays at once, even inside a backoff wait', async () => {
    const clock = new TestClock(0);
    const breaker = circuitBreaker({ clock, trip: { kind: 'consecutive', threshold: 5 } });
    let down = true;
    const sends: number[] = [];
    const q = writeQueue({
      send: async (d: string) => {
        sends.push(clock.now());
        if (down) throw new Error(`down (${d})`);
        return d;
      },
      store: memoryWriteStore<string>(),
      breaker,
      clock,
      backoff: constantBackoff(60_000),
    });
    await q.ready;
    await q.submit('a'); // fails (the breaker stays closed): replay in 60 s
    assert.equal(q.size, 1);
    await clock.advanceAsync(60_000); // the replay fails too: the next one is 60 s away
    assert.deepEqual(sends, [0, 60_000]);
    down = false;
    breaker.isolate();
    breaker.reset(); // closed again: replay now, not in 60 s
    await clock.advanceAsync(0);
    assert.deepEqual(sends, [0, 60_000, 60_000]);
    assert.equal(q.size, 0);
    await q.close();
  });
});

describe('writeQueue: events and details pinned by mutation testing', () => {
  it('every event says what happened, with its numbers', async () => {
    const clock = new TestClock(1_000);
    const store = memoryWriteStore<string>();
    let down = true;
    const poison = new Error('poison');
    const q = writeQueue<string, string>({
      send: async (d) => {
        if (d === 'p' && !down) throw poison;
        if (down) throw new Unavailable(`down (${d})`);
        return `ok:${d}`;
      },
      store: {
        ...store,
        remove: async (id) => {
          if (removeFails) throw new Error('disk');
          await store.remove(id);
        },
      },
      clock,
      backoff: { delay: (n) => n * 100 },
      retryable: (e) => e !== poison,
    });
    let removeFails = false;
    const events: Array<[string, Record<string, unknown>]> = [];
    for (const name of ['queued', 'sent', 'replayFailed', 'dead', 'drained', 'storeError'] as const)
      q.on(name, (e) => events.push([name, { ...e }]));
    await q.ready;
    const a = await q.submit('a');
    const p = await q.submit('p');
    assert.equal(a.status, 'queued');
    const firstError = (a as { error: unknown }).error;
    await clock.advanceAsync(100); // replay of 'a' fails: backoff 2 * 100
    down = false;
    removeFails = true;
    await clock.advanceAsync(200); // 'a' sent (remove fails), 'p' dead
    assert.equal(q.size, 0);
    const shape = events.map(([name, e]) => {
      const { error, data, id, value, ...rest } = e;
      return [
        name,
        data,
        id === undefined ? '-' : id === a.id ? 'a' : id === p.id ? 'p' : '?',
        error === undefined
          ? '-'
          : error === firstError
            ? 'first'
            : error === poison
              ? 'poison'
              : String(error),
        value ?? '-',
        rest,
      ];
    });
    assert.deepEqual(shape, [
      ['queued', 'a', 'a', 'first', '-', { size: 1 }],
      ['queued', 'p', 'p', '-', '-', { size: 2 }],
      ['replayFailed', undefined, 'a', 'Error: down (a)', '-', { attempts: 2, retryInMs: 200 }],
      ['sent', 'a', 'a', '-', 'ok:a', { attempts: 3, queuedMs: 300 }],
      ['storeError', undefined, '-', 'Error: disk', '-', { operation: 'remove' }],
      ['dead', 'p', 'p', 'poison', '-', { attempts: 1 }],
      ['storeError', undefined, '-', 'Error: disk', '-', { operation: 'remove' }],
      ['drained', undefined, '-', '-', '-', { at: 1_300 }],
    ]);
    await q.close();
  });

  it('pending() lists waiting writes with their attempts; discard() drops one but not the one being sent', async () => {
    const clock = new TestClock(5);
    const gates: Array<() => void> = [];
    let down = true;
    const q = writeQueue<string, string>({
      send: (d) =>
        down
          ? Promise.reject(new Error(`down (${d})`))
          : new Promise<string>((resolve) => gates.push(() => resolve(d))),
      store: memoryWriteStore<string>(),
      clock,
      backoff: constantBackoff(10),
    });
    await q.ready;
    const a = await q.submit('a');
    const b = await q.submit('b');
    assert.deepEqual(q.pending(), [
      { id: a.id, data: 'a', enqueuedAt: 5, attempts: 1 },
      { id: b.id, data: 'b', enqueuedAt: 5, attempts: 0 },
    ]);
    down = false;
    await clock.advanceAsync(10); // 'a' is being sent
    assert.equal(await q.discard(a.id), false, 'not the write being sent');
    assert.equal(await q.discard('nope'), false);
    assert.equal(await q.discard(b.id), true);
    assert.deepEqual(
      q.pending().map((w) => w.data),
      ['a'],
    );
    gates.shift()!();
    await clock.advanceAsync(0);
    assert.equal(q.size, 0);
    await q.close();
    await q.drain(); // closed: nothing to do, resolves
    await q[Symbol.asyncDispose]();
  });

  it('a store that loads something else than an array is reported and rejects every call', async () => {
    const events: unknown[] = [];
    const q = writeQueue({
      send: async () => 1,
      store: { ...memoryWriteStore<string>(), load: async () => ({}) as never },
    });
    q.on('storeError', (e) => events.push(e.operation));
    await assert.rejects(q.ready, /store\.load\(\) must resolve with an array of writes/);
    await assert.rejects(q.submit('a'), TypeError);
    await assert.rejects(q.enqueue('a'), TypeError);
    assert.deepEqual(events, ['load']);
  });

  it('a failed first attempt waits a backoff before its first replay, unless the breaker rejected it', async () => {
    const clock = new TestClock(0);
    const breaker = circuitBreaker({ clock, trip: { kind: 'consecutive', threshold: 1 }, openDuration: 500 });
    const sends: number[] = [];
    const q = writeQueue({
      send: async () => {
        sends.push(clock.now());
        if (clock.now() < 1_000) throw new Error('down');
        return 1;
      },
      store: memoryWriteStore<string>(),
      breaker,
      clock,
      backoff: constantBackoff(300),
    });
    await q.ready;
    await q.submit('a'); // fails and opens the breaker: the replay is its probe at 500
    await clock.advanceAsync(499);
    assert.deepEqual(sends, [0]);
    await clock.advanceAsync(1); // probe at 500 fails: open again until 1000
    assert.deepEqual(sends, [0, 500]);
    await clock.advanceAsync(500);
    assert.deepEqual(sends, [0, 500, 1_000]);
    assert.equal(q.size, 0);
    await q.close();
  });
});

describe('writeQueue: more survivors of mutation testing', () => {
  const failing =
    (clock: TestClock, sends: Array<[string, number]>, isDown: () => boolean) => async (d: string) => {
      sends.push([d, clock.now()]);
      if (isDown()) throw new Error(`down (${d})`);
      return d;
    };

  it('rejects look-alike options: functions posing as breaker, policy or backoff; a null backoff', () => {
    const store = memoryWriteStore<string>();
    const send = async () => 1;
    for (const [o, name] of [
      [{ breaker: Object.assign(() => {}, { kind: 'breaker' }) }, 'breaker'],
      [{ policy: Object.assign(() => {}, { execute: () => {} }) }, 'policy'],
      [{ backoff: Object.assign(() => {}, { delay: () => 1 }) }, 'backoff'],
      [{ backoff: null }, 'backoff'],
    ] as const)
      assert.throws(
        () => writeQueue({ send, store, ...(o as object) } as never),
        (e: unknown) => isInvalidOptionError(e) && new RegExp(`option "${name}"`).test(String(e)),
        name,
      );
  });

  it('the default backoff starts at 1 s', async () => {
    const clock = new TestClock(0);
    const sends: Array<[string, number]> = [];
    let down = true;
    const q = writeQueue({
      send: failing(clock, sends, () => down),
      store: memoryWriteStore<string>(),
      clock,
      random: () => 0.5,
    });
    await q.ready;
    await q.submit('a');
    down = false;
    await clock.advanceAsync(999);
    assert.equal(sends.length, 1);
    await clock.advanceAsync(1);
    assert.deepEqual(sends, [
      ['a', 0],
      ['a', 1_000],
    ]);
    await q.close();
  });

  it('only closed, disabled or metrics-only cancel the backoff wait; the breaker opening does not', async () => {
    for (const to of ['forceClose', 'metricsOnly', 'open'] as const) {
      const clock = new TestClock(0);
      const breaker = circuitBreaker({
        clock,
        trip: { kind: 'consecutive', threshold: 100 },
        openDuration: 1_000,
      });
      const sends: Array<[string, number]> = [];
      let down = true;
      const q = writeQueue({
        send: failing(clock, sends, () => down),
        store: memoryWriteStore<string>(),
        breaker,
        clock,
        backoff: constantBackoff(60_000),
      });
      await q.ready;
      await q.submit('a'); // replay due at 60 s
      down = false;
      if (to === 'open') {
        // Opened by other callers; its open period (1 s) ends long before the backoff (60 s).
        for (let i = 0; i < 100; i++)
          await breaker.execute(() => Promise.reject(new Error('x'))).catch(() => {});
        assert.equal(breaker.state, 'open');
      } else breaker[to]();
      await clock.advanceAsync(0);
      await clock.advanceAsync(1_000);
      assert.equal(
        sends.length,
        to === 'open' ? 1 : 2,
        `${to}: replay ${to === 'open' ? 'still waits' : 'at once'}`,
      );
      await clock.advanceAsync(59_000);
      assert.equal(sends.length, 2, `${to}: replayed by 60 s`);
      await q.close();
    }
  });

  it('while the breaker is half-open with another probe out, replays wait for it without a timer', async () => {
    const clock = new TestClock(0);
    const breaker = circuitBreaker({ clock, trip: { kind: 'consecutive', threshold: 1 }, openDuration: 100 });
    const sends: Array<[string, number]> = [];
    const q = writeQueue({
      send: failing(clock, sends, () => false),
      store: memoryWriteStore<string>(),
      breaker,
      clock,
    });
    await q.ready;
    await breaker.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    clock.advance(100);
    let finishProbe!: () => void;
    const probe = breaker.execute(() => new Promise<void>((r) => (finishProbe = r)));
    assert.equal(breaker.state, 'half-open');
    const breakerTimers = clock.pending;
    await q.enqueue('a');
    await clock.advanceAsync(0);
    assert.equal(clock.pending, breakerTimers, 'the queue holds no timer while half-open');
    assert.deepEqual(sends, []);
    finishProbe();
    await probe;
    await clock.advanceAsync(0);
    assert.deepEqual(sends, [['a', 100]]);
    await q.close();
  });

  it('while the breaker is open, the queue sends nothing to it until the open period ends', async () => {
    const clock = new TestClock(0);
    const breaker = circuitBreaker({
      clock,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 5_000,
    });
    let rejected = 0;
    breaker.on('rejected', () => rejected++);
    const sends: Array<[string, number]> = [];
    let down = true;
    const q = writeQueue({
      send: failing(clock, sends, () => down),
      store: memoryWriteStore<string>(),
      breaker,
      clock,
      backoff: constantBackoff(10),
    });
    await q.ready;
    await q.submit('a'); // fails: opens the breaker until 5 000
    down = false;
    for (let t = 0; t < 4_999; t += 500) await clock.advanceAsync(500);
    assert.equal(rejected, 0, 'no replay was tried against the open breaker');
    await clock.advanceAsync(1_000);
    assert.deepEqual(sends, [
      ['a', 0],
      ['a', 5_000],
    ]);
    await q.close();
  });

  it('a second failure during the first backoff does not grow it', async () => {
    const clock = new TestClock(0);
    const sends: Array<[string, number]> = [];
    let down = true;
    const q = writeQueue({
      send: failing(clock, sends, () => down),
      store: memoryWriteStore<string>(),
      clock,
      ordered: false,
      backoff: { delay: (n) => n * 100 },
    });
    await q.ready;
    await q.submit('a'); // replay at 100
    clock.advance(50);
    await q.submit('b'); // fails too: the replay stays at 100
    down = false;
    await clock.advanceAsync(50);
    assert.deepEqual(
      sends.map(([d, t]) => `${d}@${t}`),
      ['a@0', 'b@50', 'a@100', 'b@100'],
    );
    await q.close();
  });

  it('maxItems counts writes still being stored (unordered, concurrent failures)', async () => {
    const clock = new TestClock(0);
    const store = memoryWriteStore<string>();
    const q = writeQueue({
      send: async () => {
        throw new Error('down');
      },
      store: {
        ...store,
        append: (w) => new Promise<void>((r) => clock.setTimeout(() => r(store.append(w)), 10)),
      },
      clock,
      ordered: false,
      maxItems: 1,
    });
    await q.ready;
    const a = q.submit('a');
    const b = q.submit('b');
    await clock.settle(Promise.allSettled([a, b]));
    assert.equal((await a).status, 'queued');
    await assert.rejects(b, (e: unknown) => isWriteQueueFullError(e));
    await q.close();
  });

  it('a caller abort while waiting behind an earlier attempt: rejected with its reason, never sent or stored', async () => {
    const clock = new TestClock(0);
    const sends: string[] = [];
    const q = writeQueue({
      send: (d: string) => {
        sends.push(d);
        return new Promise<string>((r) => clock.setTimeout(() => r(d), 100));
      },
      store: memoryWriteStore<string>(),
      clock,
    });
    await q.ready;
    const a = q.submit('a');
    const ac = new AbortController();
    const b = q.submit('b', ac.signal);
    ac.abort(new Error('left'));
    await assert.rejects(clock.settle(b), /left/);
    assert.equal((await a).status, 'sent');
    assert.deepEqual(sends, ['a']);
    assert.equal(q.size, 0);
    await q.close();
  });

  it('calls made while the store loads are accepted in call order, and later calls are accepted at once', async () => {
    const clock = new TestClock(0);
    const store = memoryWriteStore<string>();
    const sends: string[] = [];
    const q = writeQueue({
      send: async (d: string) => {
        sends.push(d);
        return d;
      },
      store: { ...store, load: () => new Promise((r) => clock.setTimeout(() => r([]), 10)) },
      clock,
    });
    const x = q.submit('x');
    let y: Promise<unknown> | undefined;
    // Runs after the load, between x's wake-up and its acceptance.
    void q.ready.then(() => {
      y = q.submit('y');
    });
    await clock.settle(q.ready);
    await clock.settle(x);
    await clock.settle(y!);
    assert.deepEqual(sends, ['x', 'y']);
    // Nobody waits for the load any more: a submit is accepted as it is made, so close waits for it.
    const z = q.submit('z');
    const e = q.enqueue('e');
    await q.close();
    assert.equal((await z).status, 'sent');
    assert.equal(typeof (await e), 'string');
  });

  it('a close before the load completes loads nothing and sends nothing', async () => {
    const clock = new TestClock(0);
    const store = memoryWriteStore<string>();
    await store.append({ id: 'old', data: 'old', enqueuedAt: 0 });
    const sends: string[] = [];
    const q = writeQueue({
      send: async (d: string) => {
        sends.push(d);
        return d;
      },
      store: { ...store, load: () => new Promise((r) => clock.setTimeout(() => r(store.load()), 10)) },
      clock,
    });
    const closing = q.close();
    await clock.settle(closing);
    await clock.advanceAsync(100);
    assert.deepEqual(sends, []);
    assert.equal(q.size, 0);
  });

  it('a replay stopped by close is not counted as an attempt', async () => {
    const clock = new TestClock(0);
    const store = memoryWriteStore<string>();
    const q = writeQueue({
      send: (_d: string, { signal }: WriteContext) =>
        new Promise<string>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      store,
      clock,
    });
    await q.ready;
    await q.enqueue('a');
    await clock.advanceAsync(0); // the replay is in flight
    await q.close();
    assert.deepEqual(
      q.pending().map((w) => w.attempts),
      [0],
    );
  });

  it('a CircuitOpenError from a breaker inside `policy` sets the next replay to its retryAt; one without retryAt backs off', async () => {
    const clock = new TestClock(0);
    const inner = circuitBreaker({ clock, trip: { kind: 'consecutive', threshold: 1 }, openDuration: 2_000 });
    const sends: Array<[string, number]> = [];
    let down = true;
    const q = writeQueue({
      send: failing(clock, sends, () => down),
      store: memoryWriteStore<string>(),
      policy: inner,
      clock,
      backoff: constantBackoff(300),
    });
    await q.ready;
    await q.submit('a'); // fails: inner breaker open until 2 000; replay due at 300
    down = false;
    await clock.advanceAsync(300); // rejected by the inner breaker (retryAt 2 000): not a send
    assert.equal(sends.length, 1);
    await clock.advanceAsync(1_699);
    assert.equal(sends.length, 1, 'waits for the retryAt of the error');
    await clock.advanceAsync(1);
    assert.deepEqual(sends[1], ['a', 2_000]);
    // An isolated breaker's rejection names no time: the queue backs off instead of spinning.
    inner.isolate();
    await q.enqueue('b');
    await clock.advanceAsync(0);
    await clock.advanceAsync(299);
    let rejected = 0;
    inner.on('rejected', () => rejected++);
    await clock.advanceAsync(1);
    assert.equal(rejected, 1, 'one retry after the 300 ms backoff, not a loop');
    await q.close();
  });

  it('drained is emitted only when the queue emptied, not when a replay failed', async () => {
    const clock = new TestClock(0);
    const down = true;
    const sends: Array<[string, number]> = [];
    const q = writeQueue({
      send: failing(clock, sends, () => down),
      store: memoryWriteStore<string>(),
      clock,
      backoff: constantBackoff(10),
    });
    let drained = 0;
    q.on('drained', () => drained++);
    await q.ready;
    await q.submit('a');
    await clock.advanceAsync(10); // replay fails
    assert.equal(drained, 0);
    await q.close(); // closing with a write left: no drained either
    assert.equal(drained, 0);
  });

  it('close(): a failing store close is reported; asyncDispose closes', async () => {
    const errors: unknown[] = [];
    const q = writeQueue({
      send: async () => 1,
      store: {
        ...memoryWriteStore<string>(),
        close: async () => {
          throw new Error('flush failed');
        },
      },
    });
    q.on('storeError', (e) => errors.push([e.operation, String(e.error)]));
    await q[Symbol.asyncDispose]();
    assert.deepEqual(errors, [['close', 'Error: flush failed']]);
    await assert.rejects(q.submit('a'), (e: unknown) => isWriteQueueClosedError(e));
    await assert.rejects(q.enqueue('b'), (e: unknown) => isWriteQueueClosedError(e));
  });
});

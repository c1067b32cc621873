import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type AdaptiveLimiterPolicy,
  adaptiveLimiter,
  isConcurrencyLimitError,
  isInvalidOptionError,
} from './index.js';
import { TestClock } from './test-clock.js';

/**
 * A server with `capacity` workers and `serviceMs` of work per request: up to `capacity`
 * requests at once each take `serviceMs`; past it they share the workers, so a request admitted
 * with `n` in flight takes `serviceMs * n / capacity` (latency grows with concurrency past the knee).
 */
class Server {
  inFlight = 0;
  capacity: number;
  constructor(
    readonly clock: TestClock,
    capacity: number,
    readonly serviceMs: number,
  ) {
    this.capacity = capacity;
  }
  call = (): Promise<void> => {
    const n = ++this.inFlight;
    const ms = this.serviceMs * Math.max(1, n / this.capacity);
    return new Promise((resolve) =>
      this.clock.setTimeout(() => {
        this.inFlight--;
        resolve();
      }, ms),
    );
  };
}

/** Open-loop overload: `perMs` calls every ms for `ms`; returns the limit at the end of each 100 ms window. */
async function drive(
  limiter: AdaptiveLimiterPolicy,
  clock: TestClock,
  server: Server,
  ms: number,
  perMs: number,
): Promise<number[]> {
  const limits: number[] = [];
  for (let t = 0; t < ms; t++) {
    for (let i = 0; i < perMs; i++) limiter.execute(server.call).catch(() => {});
    await clock.advanceAsync(1);
    if ((t + 1) % 100 === 0) limits.push(limiter.stats().limit);
  }
  return limits;
}

describe('adaptiveLimiter: options', () => {
  const cases: [string, object][] = [
    ['minLimit', { minLimit: 0 }],
    ['maxLimit', { minLimit: 10, maxLimit: 5 }],
    ['initialLimit', { minLimit: 5, initialLimit: 2 }],
    ['smoothing', { smoothing: 0 }],
    ['tolerance', { tolerance: 0.5 }],
    ['headroom', { headroom: -1 }],
    ['longWindow', { longWindow: 0 }],
    ['windowMs', { windowMs: -1 }],
    ['minWindowSamples', { minWindowSamples: 0 }],
    ['maxQueue', { maxQueue: 1.5 }],
    ['queueTimeoutMs', { queueTimeoutMs: -5 }],
    ['clock', { clock: { now: 1 } }],
    ['maxQueu', { maxQueu: 1 }],
  ];
  for (const [field, opts] of cases)
    it(`names ${field}`, () => {
      assert.throws(
        () => adaptiveLimiter(opts as never),
        (e: unknown) =>
          isInvalidOptionError(e) && e.option === field && e.message.startsWith('adaptiveLimiter: '),
      );
    });
});

describe('adaptiveLimiter: queue and rejection', () => {
  it('over the limit calls queue (FIFO), time out, leave on abort, or are rejected when the queue is full', async () => {
    const clock = new TestClock(0);
    const l = adaptiveLimiter({ initialLimit: 1, maxQueue: 2, queueTimeoutMs: 100, clock });
    const order: number[] = [];
    const job = (n: number, ms: number) => () =>
      new Promise<number>((resolve) =>
        clock.setTimeout(() => {
          order.push(n);
          resolve(n);
        }, ms),
      );
    const a = l.execute(job(1, 50));
    const b = l.execute(job(2, 10));
    const ac = new AbortController();
    const c = l.execute(job(3, 10), ac.signal);
    const full = l.execute(job(4, 10));
    await assert.rejects(full, (e) => isConcurrencyLimitError(e) && e.reason === 'full' && e.limit === 1);
    ac.abort(new Error('left'));
    await assert.rejects(c, /left/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    await clock.advanceAsync(60);
    assert.equal(await a, 1);
    assert.equal(await b, 2);
    assert.deepEqual(order, [1, 2]);
    const d = l.execute(job(5, 500));
    const e = l.execute(job(6, 10));
    await clock.advanceAsync(100);
    await assert.rejects(e, (x) => isConcurrencyLimitError(x) && x.reason === 'queue-timeout');
    await clock.advanceAsync(400);
    assert.equal(await d, 5);
    assert.equal(clock.pending, 0, 'an idle limiter holds no timer');
    assert.equal(l.stats().rejected, 2);
  });
});

describe('adaptiveLimiter: a queueing server under overload', () => {
  // Knee: 10 requests at once (10 ms each); offered load 2 calls/ms = twice the capacity (1/ms).
  const opts = { initialLimit: 4, windowMs: 100, minWindowSamples: 10 } as const;

  it('converges near the knee within 15 windows, backs off when the server slows, recovers when it heals', async () => {
    const clock = new TestClock(0);
    const server = new Server(clock, 10, 10);
    const l = adaptiveLimiter({ ...opts, clock });
    // Expected to settle at about tolerance * knee + headroom = 1.5 * 10 + 4 = 19.
    const up = await drive(l, clock, server, 3_000, 2);
    const settled = up.slice(15);
    assert.ok(
      settled.every((x) => x >= 10 && x <= 22),
      `after 15 windows the limit stays within [knee, 1.5 x knee + headroom + 3]: ${up.join(',')}`,
    );
    // The server slows: half its workers gone, the knee is 5.
    server.capacity = 5;
    const slow = await drive(l, clock, server, 3_000, 2);
    assert.ok(
      slow.slice(15).every((x) => x >= 5 && x <= 14),
      `backs off to within [5, 14] within 15 windows: ${slow.join(',')}`,
    );
    server.capacity = 10;
    const healed = await drive(l, clock, server, 3_000, 2);
    assert.ok(
      healed.slice(15).every((x) => x >= 10 && x <= 22),
      `recovers to within [10, 22] within 15 windows: ${healed.join(',')}`,
    );
    await clock.advanceAsync(1_000);
  });

  it('sustained overload does not drift the limit upwards', async () => {
    const clock = new TestClock(0);
    const server = new Server(clock, 10, 10);
    const l = adaptiveLimiter({ ...opts, clock });
    const limits = await drive(l, clock, server, 10_000, 2);
    assert.ok(
      limits.slice(15).every((x) => x <= 22),
      `100 windows of overload, the limit stays <= 22: max ${Math.max(...limits.slice(15))}`,
    );
    await clock.advanceAsync(1_000);
  });

  it('light load (callers use under half the limit) leaves the limit alone', async () => {
    const clock = new TestClock(0);
    const server = new Server(clock, 10, 10);
    const l = adaptiveLimiter({ ...opts, initialLimit: 40, clock });
    for (let t = 0; t < 2_000; t++) {
      if (t % 2 === 0) l.execute(server.call).catch(() => {});
      await clock.advanceAsync(1);
    }
    assert.equal(l.stats().limit, 40);
    assert.ok(l.stats().longRtt! >= 10 && l.stats().longRtt! <= 11);
  });
});

describe('adaptiveLimiter: any completion order (property)', () => {
  it('never runs more than the limit, admits in FIFO order, and settles every call exactly once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 6 }),
        fc.array(
          fc.record({
            at: fc.integer({ min: 0, max: 50 }),
            ms: fc.integer({ min: 0, max: 60 }),
            abortAt: fc.option(fc.integer({ min: 0, max: 80 })),
          }),
          { minLength: 1, maxLength: 25 },
        ),
        async (limit, maxQueue, plan) => {
          const clock = new TestClock(0);
          const l = adaptiveLimiter({
            initialLimit: limit,
            minLimit: limit,
            maxLimit: limit,
            maxQueue,
            queueTimeoutMs: 30,
            clock,
          });
          let running = 0;
          let maxRunning = 0;
          const startedOrder: number[] = [];
          const settled = new Array<number>(plan.length).fill(0);
          const sorted = plan.map((c, i) => ({ ...c, i })).sort((a, b) => a.at - b.at || a.i - b.i);
          for (const c of sorted) {
            clock.setTimeout(() => {
              const ac = new AbortController();
              if (c.abortAt !== null) clock.setTimeout(() => ac.abort(new Error('gone')), c.abortAt);
              l.execute(
                () =>
                  new Promise<void>((resolve) => {
                    running++;
                    maxRunning = Math.max(maxRunning, running);
                    startedOrder.push(c.i);
                    clock.setTimeout(() => {
                      running--;
                      resolve();
                    }, c.ms);
                  }),
                ac.signal,
              ).then(
                () => settled[c.i]!++,
                () => settled[c.i]!++,
              );
            }, c.at);
          }
          await clock.advanceAsync(500);
          assert.ok(maxRunning <= limit, `ran ${maxRunning} at once, limit ${limit}`);
          assert.deepEqual(settled, new Array(plan.length).fill(1), 'every call settled once');
          // Admissions follow arrival order (calls that were rejected or left the queue are skipped).
          const arrival = sorted.map((c) => c.i);
          const pos = new Map(arrival.map((i, k) => [i, k]));
          for (let k = 1; k < startedOrder.length; k++)
            assert.ok(
              pos.get(startedOrder[k - 1]!)! < pos.get(startedOrder[k]!)!,
              `FIFO: ${startedOrder.join(',')}`,
            );
          const s = l.stats();
          assert.equal(s.running, 0);
          assert.equal(s.queued, 0);
          assert.equal(clock.refed, 0, 'no timer left behind');
        },
      ),
      { numRuns: 200, seed: 5 },
    );
  });
});

describe('adaptiveLimiter: process exit', () => {
  it('a queued call whose queue wait times out keeps a bare process alive until it rejects', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tripswitch-limiter-'));
    try {
      const file = join(dir, 'case.mjs');
      const index = JSON.stringify(new URL('./index.js', import.meta.url).href);
      // The running call never settles and holds nothing: only the queue timer is left.
      writeFileSync(
        file,
        `import { adaptiveLimiter } from ${index};
         const l = adaptiveLimiter({ initialLimit: 1, maxQueue: 1, queueTimeoutMs: 30 });
         l.execute(() => new Promise(() => {}));
         const r = await l.execute(() => 'ran').catch((e) => e.code + ' ' + e.reason);
         console.log(r);`,
      );
      const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        err += d;
      });
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      clearTimeout(killer);
      assert.equal(out.trim(), 'ERR_CONCURRENCY_LIMIT queue-timeout', `stderr: ${err}`);
      assert.equal(code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

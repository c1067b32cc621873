import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  circuitBreaker,
  constantBackoff,
  type HedgeEvents,
  hedge,
  isInvalidOptionError,
  retry,
  retryBudget,
  wrap,
} from './index.js';
import { LatencyHistogram } from './latency-histogram.js';
import { TestClock } from './test-clock.js';
import { seededRandom } from './chaos/random.js';

const seeded = seededRandom;

/** Work that answers `value` after `ms` on the clock, or rejects with the signal's reason when it aborts. */
function work<T>(clock: TestClock, ms: number, value: T, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    }, ms);
    const onAbort = () => {
      clock.clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

describe('hedge: options', () => {
  const bad: [string, object][] = [
    ['idempotent', { delayMs: 10 }],
    ['idempotent', { idempotent: 'yes', delayMs: 10 }],
    ['delayMs', { idempotent: true }],
    ['delayMs', { idempotent: true, delayMs: 10, percentile: 90 }],
    ['delayMs', { idempotent: true, delayMs: -1 }],
    ['percentile', { idempotent: true, percentile: 0 }],
    ['percentile', { idempotent: true, percentile: 100 }],
    ['minSamples', { idempotent: true, delayMs: 5, minSamples: 3 }],
    ['maxDelayMs', { idempotent: true, percentile: 90, minDelayMs: 10, maxDelayMs: 5 }],
    ['maxAttempts', { idempotent: true, delayMs: 5, maxAttempts: 1 }],
    ['maxAttempts', { idempotent: true, delayMs: 5, maxAttempts: 2.5 }],
    ['budget.percent', { idempotent: true, delayMs: 5, budget: { percent: -1 } }],
    ['budget.pct', { idempotent: true, delayMs: 5, budget: { pct: 5 } }],
    ['budget', { idempotent: true, delayMs: 5, budget: 5 }],
    ['shouldHedge', { idempotent: true, delayMs: 5, shouldHedge: true }],
    ['clock', { idempotent: true, delayMs: 5, clock: {} }],
    ['dealyMs', { idempotent: true, dealyMs: 5 }],
  ];
  for (const [field, opts] of bad)
    it(`names ${field} in ${JSON.stringify(opts)}`, () => {
      assert.throws(
        () => hedge(opts as never),
        (e: unknown) => isInvalidOptionError(e) && e.option === field && e.message.startsWith('hedge: '),
      );
    });
});

describe('hedge: one call', () => {
  it('a slow first attempt gets a hedge at delayMs; the hedge wins and the first is aborted', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, delayMs: 50, clock });
    const seen: { attempt: number; signal: AbortSignal }[] = [];
    const events: unknown[] = [];
    h.on('hedged', (e) => events.push(['hedged', e]));
    h.on('won', (e) => events.push(['won', e]));
    const p = h.execute(({ signal, hedgeAttempt }) => {
      seen.push({ attempt: hedgeAttempt, signal });
      return work(clock, hedgeAttempt === 1 ? 1_000 : 20, `attempt ${hedgeAttempt}`, signal);
    });
    await clock.advanceAsync(49);
    assert.equal(seen.length, 1, 'no hedge before the delay');
    await clock.advanceAsync(1);
    assert.equal(seen.length, 2, 'the hedge starts at the delay');
    await clock.advanceAsync(20);
    assert.equal(await p, 'attempt 2');
    assert.equal(seen[0]!.signal.aborted, true, 'the losing attempt is aborted');
    assert.equal((seen[0]!.signal.reason as Error).name, 'AbortError');
    assert.equal(
      seen[1]!.signal.aborted,
      true,
      'the winner signal is aborted after the call (nothing uses it)',
    );
    assert.deepEqual(events, [
      ['hedged', { attempt: 2, delayMs: 50 }],
      ['won', { attempt: 2, duration: 70 }],
    ]);
    assert.equal(clock.pending, 0, 'no timer left: the first attempt was cancelled, no further hedge');
    assert.deepEqual(h.stats(), { calls: 1, hedges: 1, hedgeWins: 1, budgetExhausted: 0, delayMs: 50 });
  });

  it('a fast call starts no hedge and leaves no timer; up to maxAttempts attempts start', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, delayMs: 10, maxAttempts: 3, clock, budget: { percent: 1000 } });
    assert.equal(await h.execute(() => 'now'), 'now');
    assert.equal(clock.pending, 0);
    let started = 0;
    const p = h.execute(({ signal, hedgeAttempt }) => {
      started++;
      return work(clock, hedgeAttempt === 3 ? 5 : 1_000, hedgeAttempt, signal);
    });
    await clock.advanceAsync(30);
    assert.equal(await p, 3);
    assert.equal(started, 3);
    assert.equal(clock.pending, 0);
  });

  it('shouldHedge false: the call runs once and holds no timer', async () => {
    const clock = new TestClock(0);
    let on = false;
    const h = hedge({ idempotent: true, delayMs: 10, clock, shouldHedge: () => on });
    let started = 0;
    const p = h.execute(({ signal }) => {
      started++;
      return work(clock, 100, 'once', signal);
    });
    assert.equal(clock.pending, 1, 'only the work own timer');
    await clock.advanceAsync(100);
    assert.equal(await p, 'once');
    assert.equal(started, 1);
    on = true;
    const q = h.execute(({ signal }) => {
      started++;
      return work(clock, 100, 'twice', signal);
    });
    assert.equal(clock.pending, 2, 'the work and the hedge timer');
    await clock.advanceAsync(100);
    assert.equal(await q, 'twice');
    assert.equal(started, 3);
  });

  it('a percentile delay: no hedge and no timer until minSamples attempts have succeeded', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, percentile: 50, minSamples: 3, clock });
    for (let i = 0; i < 3; i++) {
      const p = h.execute(({ signal }) => work(clock, 10, i, signal));
      assert.equal(clock.pending, 1, `call ${i}: only the work own timer`);
      await clock.advanceAsync(10);
      await p;
    }
    assert.ok(h.stats().delayMs! >= 10 && h.stats().delayMs! < 11, `${h.stats().delayMs}`);
    const p = h.execute(({ signal }) => work(clock, 10, 'x', signal));
    assert.equal(clock.pending, 2, 'now a hedge timer too');
    await clock.advanceAsync(10);
    assert.equal(await p, 'x');
  });

  it('a failing attempt waits for the others; when all started have failed the call rejects with the last error', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, delayMs: 10, clock });
    const p = h.execute(({ hedgeAttempt }) =>
      hedgeAttempt === 1
        ? new Promise((_, reject) => clock.setTimeout(() => reject(new Error('first')), 15))
        : new Promise((resolve) => clock.setTimeout(() => resolve('second'), 20)),
    );
    await clock.advanceAsync(40);
    assert.equal(await p, 'second');
    const q = h.execute(() => Promise.reject(new Error('down')));
    await assert.rejects(q, /down/);
    assert.equal(clock.pending, 0, 'a call that failed before its hedge cancels the hedge timer');
    const r = h.execute(() => {
      throw new Error('sync');
    });
    await assert.rejects(r, /sync/);
  });

  it('the caller abort reaches every attempt, rejects with its reason, and removes the listener', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, delayMs: 10, clock });
    const ac = new AbortController();
    const signals: AbortSignal[] = [];
    const p = h.execute(({ signal }) => {
      signals.push(signal);
      return work(clock, 1_000, 'x', signal);
    }, ac.signal);
    await clock.advanceAsync(10);
    assert.equal(signals.length, 2);
    const reason = new Error('client went away');
    ac.abort(reason);
    await assert.rejects(p, (e) => e === reason);
    assert.deepEqual(
      signals.map((s) => s.reason),
      [reason, reason],
    );
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    assert.equal(clock.pending, 0);
    const already = new AbortController();
    already.abort(reason);
    let called = false;
    await assert.rejects(
      h.execute(() => {
        called = true;
      }, already.signal),
      (e) => e === reason,
    );
    assert.equal(called, false);
  });
});

describe('hedge: budget', () => {
  it('extra attempts are capped at the budget percentage of calls', async () => {
    const clock = new TestClock(0);
    const h = hedge({
      idempotent: true,
      delayMs: 10,
      clock,
      budget: { percent: 10, minRetriesPerSecond: 0 },
    });
    const refused: HedgeEvents['budgetExhausted'][] = [];
    h.on('budgetExhausted', (e) => refused.push(e));
    // Every call is slow: without a budget each would double its load.
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      calls.push(h.execute(({ signal }) => work(clock, 100, i, signal)));
      await clock.advanceAsync(1);
    }
    await clock.advanceAsync(200);
    await Promise.all(calls);
    const s = h.stats();
    assert.equal(s.calls, 200);
    assert.ok(s.hedges <= 20, `hedges ${s.hedges} <= 10% of 200`);
    assert.ok(s.hedges >= 15, `hedges ${s.hedges}: the budget is used, not just refused`);
    assert.equal(s.hedges + s.budgetExhausted, 200);
    assert.equal(refused.length, s.budgetExhausted);
  });

  it('a shared RetryBudget is used as given', async () => {
    const clock = new TestClock(0);
    const budget = retryBudget({ percent: 0, minRetriesPerSecond: 0, clock });
    const h = hedge({ idempotent: true, delayMs: 1, clock, budget });
    const p = h.execute(({ signal }) => work(clock, 10, 'v', signal));
    await clock.advanceAsync(10);
    assert.equal(await p, 'v');
    assert.deepEqual(budget.stats(), { calls: 1, retries: 0, allowed: 0 });
    assert.equal(h.stats().budgetExhausted, 1);
  });
});

describe('hedge: composed', () => {
  it('in wrap(hedge, breaker) the breaker counts every attempt; the aborted loser is neutral', async () => {
    const clock = new TestClock(0);
    const breaker = circuitBreaker({ name: 'hedged', clock });
    const counted: string[] = [];
    breaker.on('success', () => counted.push('success'));
    breaker.on('failure', () => counted.push('failure'));
    breaker.on('neutral', () => counted.push('neutral'));
    const p = wrap(hedge({ idempotent: true, delayMs: 10, clock }), breaker).execute(
      ({ signal, hedgeAttempt }) => work(clock, hedgeAttempt === 1 ? 500 : 5, hedgeAttempt, signal),
    );
    await clock.advanceAsync(20);
    assert.equal(await p, 2);
    await clock.advanceAsync(0);
    assert.deepEqual(counted.sort(), ['neutral', 'success']);
  });
});

describe('hedge: context in a wrap()', () => {
  it('fn sees hedgeAttempt next to a retry attempt and a per-attempt signal, whichever is outer', async () => {
    const clock = new TestClock(0);
    const seen: string[] = [];
    const outer = wrap(
      hedge({ idempotent: true, delayMs: 10, clock }),
      retry({ maxAttempts: 2, backoff: constantBackoff(0), clock }),
    );
    const p = outer.execute(({ hedgeAttempt, attempt, signal }) => {
      seen.push(`h${hedgeAttempt} r${attempt}`);
      return work(clock, hedgeAttempt === 1 ? 100 : 5, hedgeAttempt, signal);
    });
    await clock.advanceAsync(20);
    assert.equal(await p, 2);
    const inner = wrap(
      retry({ maxAttempts: 2, backoff: constantBackoff(0), clock }),
      hedge({ idempotent: true, delayMs: 10, clock }),
    );
    const signals: AbortSignal[] = [];
    const q = inner.execute(({ hedgeAttempt, attempt, signal }) => {
      seen.push(`r${attempt} h${hedgeAttempt}`);
      signals.push(signal);
      return work(clock, hedgeAttempt === 1 ? 100 : 5, hedgeAttempt, signal);
    });
    await clock.advanceAsync(20);
    assert.equal(await q, 2);
    assert.deepEqual(seen, ['h1 r1', 'h2 r1', 'r1 h1', 'r1 h2']);
    assert.equal(signals[0]!.aborted, true, 'the losing attempt signal aborted through the merged context');
  });
});

describe('hedge: a long-tail server', () => {
  // 5% of requests take 1 s, the rest 10-20 ms: the p99 of unhedged calls is the slow mode.
  const server = (clock: TestClock, rng: () => number) => (signal: AbortSignal) =>
    work(clock, rng() < 0.05 ? 1_000 : 10 + 10 * rng(), 'ok', signal);

  async function simulate(
    h: { execute: (fn: (ctx: { signal: AbortSignal }) => Promise<string>) => Promise<string> } | undefined,
    clock: TestClock,
    seed: number,
  ) {
    const call = server(clock, seeded(seed));
    const latencies: number[] = [];
    let attempts = 0;
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < 1_000; i++) {
      const t0 = clock.now();
      const run = (ctx: { signal: AbortSignal }) => {
        attempts++;
        return call(ctx.signal);
      };
      const p = h === undefined ? run({ signal: new AbortController().signal }) : h.execute(run);
      all.push(p.then(() => latencies.push(clock.now() - t0)));
      await clock.advanceAsync(5);
    }
    await clock.advanceAsync(3_000);
    await Promise.all(all);
    return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), extra: attempts / 1_000 - 1 };
  }

  it('fixed delay: p99 falls from the slow mode to near the delay, within the budget', async () => {
    const base = await simulate(undefined, new TestClock(0), 7);
    const clock = new TestClock(0);
    const hedged = await simulate(hedge({ idempotent: true, delayMs: 30, clock }), clock, 7);
    assert.ok(base.p99 >= 1_000, `unhedged p99 ${base.p99}`);
    assert.ok(hedged.p99 <= 60, `hedged p99 ${hedged.p99} <= 60 ms`);
    assert.ok(hedged.p50 <= 20, `median unchanged: ${hedged.p50}`);
    assert.ok(hedged.extra <= 0.1, `extra load ${hedged.extra} <= 10%`);
  });

  it('percentile delay: learns p90 of the fast mode and hedges after it', async () => {
    const clock = new TestClock(0);
    // Hedging after p90 hedges ~10% of calls plus the slow 5%: a 20% budget covers them.
    const h = hedge({ idempotent: true, percentile: 90, clock, budget: { percent: 20 } });
    const hedged = await simulate(h, clock, 11);
    const d = h.stats().delayMs!;
    assert.ok(d >= 18 && d <= 22, `the delay ${d} is near the fast mode p90 (19 ms)`);
    assert.ok(hedged.p99 <= 60, `hedged p99 ${hedged.p99} <= 60 ms`);
    assert.ok(hedged.extra <= 0.2, `extra load ${hedged.extra} <= 20%`);
  });
});

describe('LatencyHistogram', () => {
  it('quantiles within a bucket (~9%) of the exact ones, and follows a change', () => {
    const h = new LatencyHistogram(1_000);
    const rng = seeded(3);
    const xs: number[] = [];
    for (let i = 0; i < 5_000; i++) {
      const x = 1 + 99 * rng();
      xs.push(x);
      h.record(x);
    }
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = quantile(xs, q);
      const est = h.quantile(q)!;
      assert.ok(est >= exact * 0.95 && est <= exact * 1.1, `q${q}: ${est} vs ${exact}`);
    }
    for (let i = 0; i < 5_000; i++) h.record(500);
    assert.ok(h.quantile(0.5)! >= 500 && h.quantile(0.5)! < 550, 'the old samples decayed away');
    assert.equal(new LatencyHistogram().quantile(0.5), undefined);
  });
});

describe('hedge: process exit', () => {
  it('an awaited hedge keeps a bare process alive until it resolves', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tripswitch-hedge-'));
    try {
      const file = join(dir, 'case.mjs');
      const index = JSON.stringify(new URL('./index.js', import.meta.url).href);
      // The first attempt never settles and holds nothing: only the hedge timer keeps the process
      // alive until the second attempt answers.
      writeFileSync(
        file,
        `import { hedge } from ${index};
         const h = hedge({ idempotent: true, delayMs: 30 });
         const v = await h.execute(({ hedgeAttempt }) => hedgeAttempt === 1 ? new Promise(() => {}) : 'second');
         console.log(v);`,
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
      assert.equal(out.trim(), 'second', `stderr: ${err}`);
      assert.equal(code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('hedge: any completion order (property)', () => {
  it('the earliest success wins, or the last failure once all started have failed; losers aborted, no timer left', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 0, max: 40 }),
        fc.array(fc.record({ ms: fc.integer({ min: 0, max: 100 }), ok: fc.boolean() }), {
          minLength: 4,
          maxLength: 4,
        }),
        async (maxAttempts, d, plan) => {
          // Attempt k starts at (k-1) * delay; the quarter keeps every start and end time distinct.
          const delay = d + 0.25;
          const clock = new TestClock(0);
          const h = hedge({
            idempotent: true,
            delayMs: delay,
            maxAttempts,
            clock,
            budget: { percent: 1000 },
          });
          const signals: AbortSignal[] = [];
          let outcome: { ok: boolean; v: unknown } | undefined;
          h.execute(({ signal, hedgeAttempt }) => {
            signals.push(signal);
            const { ms, ok } = plan[hedgeAttempt - 1]!;
            return new Promise((resolve, reject) => {
              const t = clock.setTimeout(() => (ok ? resolve(hedgeAttempt) : reject(hedgeAttempt)), ms);
              signal.addEventListener('abort', () => {
                clock.clearTimeout(t);
                reject(signal.reason);
              });
            });
          }).then(
            (v) => {
              outcome = { ok: true, v };
            },
            (v) => {
              outcome = { ok: false, v };
            },
          );
          await clock.advanceAsync(1_000);

          // The reference: walk the events in time order.
          const events: { at: number; k: number; kind: 'start' | 'end' }[] = [];
          let expected: { ok: boolean; v: unknown } | undefined;
          let started = 1;
          let inFlight = 1;
          const ends = new Map<number, number>([[1, plan[0]!.ms]]);
          let nextStart = maxAttempts > 1 ? delay : Number.POSITIVE_INFINITY;
          while (expected === undefined) {
            let endK = -1;
            let endAt = Number.POSITIVE_INFINITY;
            for (const [k, at] of ends)
              if (at < endAt) {
                endAt = at;
                endK = k;
              }
            if (nextStart < endAt) {
              started++;
              inFlight++;
              ends.set(started, nextStart + plan[started - 1]!.ms);
              events.push({ at: nextStart, k: started, kind: 'start' });
              nextStart = started < maxAttempts ? nextStart + delay : Number.POSITIVE_INFINITY;
              continue;
            }
            ends.delete(endK);
            inFlight--;
            if (plan[endK - 1]!.ok) expected = { ok: true, v: endK };
            else if (inFlight === 0) expected = { ok: false, v: endK };
          }
          assert.deepEqual(outcome, expected, JSON.stringify({ maxAttempts, delay, plan, events }));
          assert.equal(signals.length, started, 'attempts started');
          const winner = expected.ok ? (expected.v as number) : -1;
          for (let k = 1; k <= started; k++)
            if (k !== winner) assert.equal(signals[k - 1]!.aborted, true, `attempt ${k} aborted or settled`);
          assert.equal(clock.pending, 0, 'no timer left');
          assert.equal(h.stats().hedges, started - 1);
        },
      ),
      { numRuns: 300, seed: 17 },
    );
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { circuitBreaker, isInvalidOptionError, isTimeoutError, timeout, wrap } from '../index.js';
import { TestClock } from '../test-clock.js';
import {
  type ChaosPolicy,
  chaosBehavior,
  chaosFault,
  chaosLatency,
  chaosOutcome,
  InjectedFaultError,
  isInjectedFaultError,
  seededRandom,
} from './index.js';

/** Runs `n` calls through `p`, returning for each whether `fn` ran and how it settled. */
async function calls(p: ChaosPolicy, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let ran = false;
    try {
      await p.execute(() => {
        ran = true;
        return 'real';
      });
      out.push(ran ? 'ran' : 'answered');
    } catch (err) {
      out.push(ran ? 'ran-failed' : `failed:${(err as Error).name}`);
    }
  }
  return out;
}

describe('chaos: options', () => {
  const cases: [string, () => unknown][] = [
    ['rate', () => chaosFault({} as never)],
    ['rate', () => chaosFault({ rate: 1.5 })],
    ['rate', () => chaosFault({ rate: -0.1 })],
    ['enabled', () => chaosFault({ rate: 0.5, enabled: 'yes' as never })],
    ['random', () => chaosFault({ rate: 0.5, random: 0.3 as never })],
    ['seed', () => chaosFault({ rate: 0.5, seed: 1.5 })],
    ['seed', () => chaosFault({ rate: 0.5, seed: 1, random: Math.random })],
    ['erorr', () => chaosFault({ rate: 0.5, erorr: 1 } as never)],
    ['latencyMs', () => chaosLatency({ rate: 0.5 } as never)],
    ['latencyMs', () => chaosLatency({ rate: 0.5, latencyMs: -1 })],
    ['clock', () => chaosLatency({ rate: 0.5, latencyMs: 1, clock: {} as never })],
    ['outcome', () => chaosOutcome({ rate: 0.5 } as never)],
    ['behavior', () => chaosBehavior({ rate: 0.5, behavior: 'crash' as never })],
  ];
  for (const [field, make] of cases)
    it(`names ${field}`, () => {
      assert.throws(make, (e: unknown) => isInvalidOptionError(e) && e.option === field);
    });

  it('rate and enabled can be changed at run time, and are checked', () => {
    const p = chaosFault({ rate: 0.5 });
    p.rate = 1;
    assert.equal(p.rate, 1);
    assert.throws(() => {
      p.rate = 2;
    }, RangeError);
    assert.throws(() => {
      p.enabled = 1 as never;
    }, TypeError);
    assert.equal(p.kind, 'chaos');
    assert.equal(p.chaos, 'fault');
  });
});

describe('chaos: rate, switch and seed', () => {
  it('injects on about `rate` of calls, on the same calls for the same seed', async () => {
    const a = await calls(chaosFault({ rate: 0.3, seed: 42 }), 2_000);
    const b = await calls(chaosFault({ rate: 0.3, seed: 42 }), 2_000);
    const c = await calls(chaosFault({ rate: 0.3, seed: 43 }), 2_000);
    assert.deepEqual(a, b, 'the same seed disturbs the same calls');
    assert.notDeepEqual(a, c);
    const injected = a.filter((x) => x === 'failed:InjectedFaultError').length;
    assert.ok(injected > 540 && injected < 660, `${injected} of 2000 at rate 0.3`);
    assert.equal(a.filter((x) => x === 'ran').length, 2_000 - injected);
  });

  it('rate 0 and 1 are exact; the switch stops and restarts injection at run time without drawing', async () => {
    let draws = 0;
    const p = chaosFault({
      rate: 1,
      random: () => {
        draws++;
        return 0.999_999;
      },
    });
    assert.deepEqual(await calls(p, 3), Array(3).fill('failed:InjectedFaultError'));
    p.enabled = false;
    assert.deepEqual(await calls(p, 3), Array(3).fill('ran'));
    p.enabled = true;
    p.rate = 0;
    assert.deepEqual(await calls(p, 3), Array(3).fill('ran'));
    assert.equal(draws, 3, 'a disabled policy or a zero rate draws nothing');
    assert.deepEqual(p.stats(), { calls: 9, injected: 3 });
    const off = chaosFault({ rate: 1, enabled: false });
    assert.deepEqual(await calls(off, 2), ['ran', 'ran']);
  });

  it('seededRandom is in [0, 1) and repeatable', () => {
    const r = seededRandom(7);
    const xs = Array.from({ length: 1_000 }, r);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.deepEqual(Array.from({ length: 1_000 }, seededRandom(7)), xs);
    assert.throws(() => seededRandom(Number.NaN), RangeError);
  });
});

describe('chaos: each kind', () => {
  it('fault: InjectedFaultError by default (name, code, guard), or the given error / factory', async () => {
    const events: unknown[] = [];
    const p = chaosFault({ rate: 1 });
    p.on('injected', (e) => events.push(e));
    const err = await p.execute(() => 'x').catch((e: unknown) => e);
    assert.ok(err instanceof InjectedFaultError);
    assert.equal((err as InjectedFaultError).code, 'ERR_CHAOS_FAULT');
    assert.equal(isInjectedFaultError(err), true);
    assert.equal(isInjectedFaultError({ code: 'ERR_CHAOS_FAULT' }), true, 'by code: works across copies');
    assert.equal(isInjectedFaultError(new Error('x')), false);
    assert.deepEqual(events, [{ chaos: 'fault' }]);
    const reset = new Error('ECONNRESET');
    await assert.rejects(
      chaosFault({ rate: 1, error: reset }).execute(() => 'x'),
      (e) => e === reset,
    );
    let made = 0;
    await assert.rejects(
      chaosFault({ rate: 1, error: () => new Error(`made ${++made}`) }).execute(() => 'x'),
      /made 1/,
    );
  });

  it('outcome: answers without running fn; a throwing outcome fails the call', async () => {
    const p = chaosOutcome({ rate: 1, outcome: () => 'injected' });
    let ran = false;
    assert.equal(
      await p.execute(() => {
        ran = true;
        return 'real';
      }),
      'injected',
    );
    assert.equal(ran, false);
    await assert.rejects(
      chaosOutcome({
        rate: 1,
        outcome: () => {
          throw new Error('bad outcome');
        },
      }).execute(() => 'real'),
      /bad outcome/,
    );
  });

  it('behavior: runs and is awaited before fn; its failure fails the call without fn', async () => {
    const clock = new TestClock(0);
    const order: string[] = [];
    const p = chaosBehavior({
      rate: 1,
      behavior: () =>
        new Promise<void>((resolve) =>
          clock.setTimeout(() => {
            order.push('behavior');
            resolve();
          }, 10),
        ),
    });
    const r = p.execute(() => {
      order.push('fn');
      return 'real';
    });
    await clock.advanceAsync(10);
    assert.equal(await r, 'real');
    assert.deepEqual(order, ['behavior', 'fn']);
    let ran = false;
    await assert.rejects(
      chaosBehavior({
        rate: 1,
        behavior: () => {
          throw new Error('crash');
        },
      }).execute(() => {
        ran = true;
      }),
      /crash/,
    );
    assert.equal(ran, false);
  });

  it('latency: waits latencyMs on the clock, then runs fn; an abort ends the wait with its reason', async () => {
    const clock = new TestClock(0);
    const p = chaosLatency({ rate: 1, latencyMs: 500, clock });
    let ranAt = -1;
    const r = p.execute(() => {
      ranAt = clock.now();
      return 'late';
    });
    await clock.advanceAsync(499);
    assert.equal(ranAt, -1);
    await clock.advanceAsync(1);
    assert.equal(await r, 'late');
    assert.equal(ranAt, 500);
    assert.equal(clock.pending, 0);

    const ac = new AbortController();
    let ran = false;
    const q = p.execute(() => {
      ran = true;
    }, ac.signal);
    await clock.advanceAsync(100);
    const reason = new Error('gone');
    ac.abort(reason);
    await assert.rejects(q, (e) => e === reason);
    assert.equal(ran, false);
    assert.equal(clock.pending, 0, 'the wait timer is cleared');
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    const done = new AbortController();
    const s = p.execute(() => 'y', done.signal);
    await clock.advanceAsync(500);
    assert.equal(await s, 'y');
    assert.equal(getEventListeners(done.signal, 'abort').length, 0, 'no listener left after the wait');

    const perCall = chaosLatency({ rate: 1, latencyMs: () => Number.NaN, clock });
    const t = perCall.execute(() => 'now');
    await clock.advanceAsync(0);
    assert.equal(await t, 'now');
  });
});

describe('chaos: in a wrap() chain', () => {
  it('injected faults count as failures and open the breaker, as real ones would', async () => {
    const clock = new TestClock(0);
    const breaker = circuitBreaker({ name: 'chaos', clock, trip: { kind: 'consecutive', threshold: 3 } });
    const faults = chaosFault({ rate: 1, enabled: false });
    const policy = wrap(breaker, faults);
    assert.equal(await policy.execute(() => 'ok'), 'ok');
    faults.enabled = true;
    for (let i = 0; i < 3; i++) await policy.execute(() => 'ok').catch(() => {});
    assert.equal(breaker.state, 'open');
  });

  it('injected latency under a timeout times out, and the abort stops the wait', async () => {
    const clock = new TestClock(0);
    const slow = chaosLatency({ rate: 1, latencyMs: 5_000, clock });
    let ran = false;
    const r = wrap(timeout({ ms: 1_000, clock }), slow).execute(() => {
      ran = true;
    });
    await clock.advanceAsync(1_000);
    await assert.rejects(r, (e) => isTimeoutError(e));
    assert.equal(ran, false);
    assert.equal(clock.pending, 0, 'the injected wait ended with the timeout');
  });
});

describe('chaos: process exit', () => {
  it('an awaited latency injection keeps a bare process alive until the call has run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tripswitch-chaos-'));
    try {
      const file = join(dir, 'case.mjs');
      const chaos = JSON.stringify(new URL('./index.js', import.meta.url).href);
      writeFileSync(
        file,
        `import { chaosLatency } from ${chaos};
         const p = chaosLatency({ rate: 1, latencyMs: 50 });
         console.log(await p.execute(() => 'after the wait'));`,
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
      assert.equal(out.trim(), 'after the wait', `stderr: ${err}`);
      assert.equal(code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

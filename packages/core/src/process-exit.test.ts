// A wait that a caller awaits keeps the process alive; a timer nobody awaits does not.
//
// Each case runs a small script in a bare `node` process (no test runner keeping the event loop
// alive) that imports the built package. A policy whose awaited timer is unref'd lets the process
// exit before the caller's promise settles: an ES module then exits with code 13 and prints nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const dir = mkdtempSync(join(tmpdir(), 'tripswitch-exit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const index = JSON.stringify(new URL('./index.js', import.meta.url).href);
let n = 0;

interface Run {
  code: number | null;
  out: string;
  err: string;
  ms: number;
}

/** Runs `body` (an ES module importing `t` = the built package) in its own `node` process. */
async function run(body: string, killAfterMs = 20_000): Promise<Run> {
  const file = join(dir, `case-${++n}.mjs`);
  writeFileSync(file, `import * as t from ${index};\n${body}\n`);
  const started = performance.now();
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(killer);
  return { code, out: out.trim(), err: err.trim(), ms: performance.now() - started };
}

function assertPrinted(r: Run, expected: string): void {
  assert.equal(r.out, expected, `stdout; exit code ${r.code}; stderr: ${r.err}`);
  assert.equal(r.code, 0, `exit code; stderr: ${r.err}`);
}

// A function that never settles and holds nothing that keeps the process alive.
const HANG = 'const hang = () => new Promise(() => {});';
// A function that settles only when its signal aborts.
const UNTIL_ABORT =
  'const untilAbort = ({ signal }) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));';

describe('awaited waits keep the process alive until the caller has its result', () => {
  it('retry: the backoff sleep between attempts', async () => {
    const r = await run(`
      let n = 0;
      const r = t.retry({ maxAttempts: 3, backoff: t.constantBackoff(20) });
      console.log(await r.execute(async () => { if (++n < 3) throw new Error('x'); return n; }));
    `);
    assertPrinted(r, '3');
  });

  it('retry: a retryAfter hint on the error is waited out', async () => {
    const r = await run(`
      let n = 0;
      const busy = () => Object.assign(new Error('busy'), { retryAfter: 30 });
      const r = t.retry({ maxAttempts: 2, backoff: t.constantBackoff(600_000) });
      console.log(await r.execute(() => { if (++n === 1) throw busy(); return 'after hint'; }));
    `);
    assertPrinted(r, 'after hint');
  });

  it('rateLimiter: a call waiting for its token (maxWaitMs)', async () => {
    const r = await run(`
      const l = t.rateLimiter({ rate: 1, per: 50, burst: 1, maxWaitMs: 1_000 });
      await l.execute(() => 1);
      console.log(await l.execute(() => 'waited'));
    `);
    assertPrinted(r, 'waited');
  });

  it('timeout (aggressive): a hung call still rejects at its deadline', async () => {
    const r = await run(`
      ${HANG}
      const p = t.timeout({ ms: 30, strategy: 'aggressive' });
      console.log(await p.execute(hang).catch((e) => e.code));
    `);
    assertPrinted(r, 'ERR_TIMEOUT');
  });

  it('timeout (cooperative): a call that stops on its signal settles at the deadline', async () => {
    const r = await run(`
      ${UNTIL_ABORT}
      const p = t.timeout({ ms: 30 });
      console.log(await p.execute(untilAbort).catch((e) => e.code));
    `);
    assertPrinted(r, 'ERR_TIMEOUT');
  });

  it('bulkhead: a queued call whose slot never frees is rejected at its queue timeout', async () => {
    const r = await run(`
      ${HANG}
      const b = t.bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 30 });
      b.execute(hang);
      console.log(await b.execute(() => 'ran').catch((e) => e.reason));
    `);
    assertPrinted(r, 'queue-timeout');
  });

  it('wrap(retry, breaker, timeout): a hung first attempt times out, the retry succeeds', async () => {
    const r = await run(`
      ${UNTIL_ABORT}
      const p = t.wrap(
        t.retry({ maxAttempts: 3, backoff: t.constantBackoff(20) }),
        t.circuitBreaker({ trip: { kind: 'consecutive', threshold: 5 } }),
        t.timeout({ ms: 30 }),
      );
      console.log(await p.execute((ctx) => (ctx.attempt === 1 ? untilAbort(ctx) : 'second')));
    `);
    assertPrinted(r, 'second');
  });

  it('ref: false lets a caller unref the awaited waits (the process may exit first)', async () => {
    const r = await run(`
      ${HANG}
      ${UNTIL_ABORT}
      let n = 0;
      const r = t.retry({ maxAttempts: 2, backoff: t.constantBackoff(60_000), ref: false });
      const l = t.rateLimiter({ rate: 1, per: 60_000, maxWaitMs: 120_000, ref: false });
      l.tryAcquire();
      const b = t.bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 60_000, ref: false });
      b.execute(hang);
      await Promise.race([
        r.execute(() => { throw new Error('x'); }),
        l.execute(() => 1),
        b.execute(() => 1),
        t.timeout({ ms: 60_000, strategy: 'aggressive', ref: false }).execute(hang),
        t.timeout({ ms: 60_000, ref: false }).execute(untilAbort),
      ]);
      console.log('settled');
    `);
    assert.equal(r.out, '', r.err);
    assert.equal(r.code, 13, `an unsettled top-level await exits with 13; stderr: ${r.err}`);
    assert.ok(r.ms < 15_000, `the process exited on its own (${Math.round(r.ms)} ms)`);
  });
});

describe('timers nobody awaits let the process exit', () => {
  it('idle breakers, policies after their calls, and a write queue waiting to replay', async () => {
    const r = await run(`
      const fail = () => Promise.reject(new Error('down'));
      const breakers = [];
      for (const trip of [
        { kind: 'consecutive', threshold: 1 },
        { kind: 'count', window: 10, minimumCalls: 1, failureRateThreshold: 0.5 },
        { kind: 'time', windowMs: 600_000, minimumCalls: 1, failureRateThreshold: 0.5 },
      ]) {
        for (const eagerHalfOpen of [false, true]) {
          const b = t.circuitBreaker({ trip, openDuration: 600_000, eagerHalfOpen, halfOpen: { deadlineMs: 600_000 } });
          await b.execute(() => 1);
          await b.execute(fail).catch(() => {});
          breakers.push(b);
        }
      }
      // A half-open breaker with its deadline armed.
      const h = t.circuitBreaker({ trip: { kind: 'consecutive', threshold: 1 }, openDuration: 1, halfOpen: { deadlineMs: 600_000 } });
      await h.execute(fail).catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 5));
      h.execute(() => new Promise(() => {})); // the probe hangs: the deadline timer is armed
      // Policies whose shared timers outlive their last call.
      await t.timeout({ ms: 600_000 }).execute(async () => 1);
      await t.timeout({ ms: 600_000, strategy: 'aggressive' }).execute(async () => 1);
      await t.timeout({ ms: 600_000 }).execute(async ({ signal }) => signal.aborted);
      const bh = t.bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 600_000 });
      let release;
      const first = bh.execute(() => new Promise((resolve) => { release = resolve; }));
      const second = bh.execute(() => 2);
      release(1);
      await Promise.all([first, second]);
      // A write queue whose replay is ten minutes away.
      const q = t.writeQueue({
        store: t.memoryWriteStore(),
        send: fail,
        backoff: t.constantBackoff(600_000),
      });
      for (let i = 0; i < 3; i++) await q.submit({ i });
      console.log(q.size, breakers.map((b) => b.state).join(','));
    `);
    assertPrinted(r, '3 open,open,open,open,open,open');
    assert.ok(r.ms < 15_000, `exited in ${Math.round(r.ms)} ms`);
  });
});

// The runtime smoke suite: what a user of the core does first, run in a runtime other than Node
// (Bun, Deno, a browser page). Plain ESM importing the packages by name; each runtime resolves the
// names its own way (node_modules and package.json `exports` in Bun and Deno, an import map in the
// page). scripts/smoke/run.mjs starts the local HTTP server, drives each runtime and checks the
// results. Everything here is bounded: real timers only for the timeout (20 ms) and backoff (1 ms).
import {
  breakerChannels,
  circuitBreaker,
  constantBackoff,
  isCircuitOpenError,
  isTimeoutError,
  memoryWriteStore,
  retry,
  timeout,
  wrap,
  writeQueue,
} from 'tripswitch';
import { createFetch } from 'tripswitch/fetch';
import { TestClock } from 'tripswitch/testing';

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}
const eq = (a, b, what) =>
  assert(JSON.stringify(a) === JSON.stringify(b), `${what}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`);

/**
 * Runs every check against the server at `base` (see run.mjs for its routes) and returns
 * `{ runtime, results: [{ name, ok, info?, error? }] }`; never throws.
 */
export async function smoke(base) {
  const results = [];
  const check = async (name, fn) => {
    try {
      results.push({ name, ok: true, info: (await fn()) ?? null });
    } catch (e) {
      results.push({ name, ok: false, error: String(e?.stack ?? e) });
    }
  };

  await check('breaker trips, rejects, probes and closes (TestClock)', async () => {
    const clock = new TestClock();
    const b = circuitBreaker({
      name: 'smoke',
      clock,
      trip: { kind: 'consecutive', threshold: 2 },
      openDuration: 1_000,
      halfOpen: { maxProbes: 1, successesToClose: 1 },
    });
    const changes = [];
    b.on('stateChange', ({ from, to }) => changes.push(`${from}->${to}`));
    let calls = 0;
    const fail = () => {
      calls++;
      throw new Error('down');
    };
    for (let i = 0; i < 2; i++) await b.execute(fail).catch(() => {});
    eq(b.state, 'open', 'state after 2 failures');
    const rejected = await b.execute(fail).then(
      () => false,
      (e) => isCircuitOpenError(e),
    );
    assert(rejected, 'an open breaker rejects with CircuitOpenError');
    eq(calls, 2, 'calls (the rejected one never ran)');
    clock.advance(1_000);
    eq(await b.execute(() => 'probe'), 'probe', 'probe result');
    eq(changes, ['closed->open', 'open->half-open', 'half-open->closed'], 'state changes');
    eq(clock.pending, 0, 'timers held by the closed breaker');
  });

  await check('diagnostics channels where the runtime has them', async () => {
    const getBuiltin = globalThis.process?.getBuiltinModule;
    if (typeof getBuiltin !== 'function') {
      // A browser: breakers publish nothing and need nothing (the breaker check above ran).
      return 'no process.getBuiltinModule: channels silent';
    }
    const dc = getBuiltin.call(globalThis.process, 'node:diagnostics_channel');
    const seen = [];
    const listener = (m) => seen.push(`${m.from}->${m.to}`);
    dc.subscribe(breakerChannels.state, listener);
    try {
      const b = circuitBreaker({
        name: 'smoke-dc',
        clock: new TestClock(),
        trip: { kind: 'consecutive', threshold: 1 },
      });
      await b.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    } finally {
      dc.unsubscribe(breakerChannels.state, listener);
    }
    eq(seen, ['closed->open'], 'published state changes');
    return 'node:diagnostics_channel: published';
  });

  await check('retry + timeout (20 ms per attempt, 3 attempts)', async () => {
    let attempts = 0;
    // Hangs like a stalled request: holds a timer as a socket would hold the loop (the policy's
    // own timer is unref'd in Node), released when the timeout aborts it.
    const hang = ({ signal }) =>
      new Promise((_, reject) => {
        attempts++;
        const held = setTimeout(() => {}, 60_000);
        signal.addEventListener(
          'abort',
          () => {
            clearTimeout(held);
            reject(signal.reason);
          },
          { once: true },
        );
      });
    const p = wrap(retry({ maxAttempts: 3, backoff: constantBackoff(1) }), timeout({ ms: 20 }));
    const err = await p.execute(hang).then(
      () => undefined,
      (e) => e,
    );
    assert(isTimeoutError(err), `TimeoutError after the last attempt, got ${err}`);
    eq(attempts, 3, 'attempts that timed out');
    let flaky = 0;
    const value = await p.execute(async () => {
      if (++flaky < 3) throw new Error('flaky');
      return 'third time';
    });
    eq([value, flaky], ['third time', 3], 'value after two failures');
  });

  await check('fetch wrapper against the local server', async () => {
    const hits = async (path) =>
      (await (await fetch(`${base}/hits?path=${encodeURIComponent(path)}`)).json()).hits;
    const key = Math.random().toString(36).slice(2);
    const f = createFetch({
      timeout: 5_000,
      retry: false,
      breaker: { trip: { kind: 'consecutive', threshold: 2 }, openDuration: 60_000 },
    });
    const ok = await f(`${base}/ok`);
    eq([ok.status, await ok.text()], [200, 'ok'], '/ok');
    const failPath = `/fail/${key}`;
    for (let i = 0; i < 2; i++) {
      const r = await f(`${base}${failPath}`);
      eq(r.status, 503, 'a 5xx is returned, not thrown');
      await r.body?.cancel();
    }
    const open = await f(`${base}${failPath}`).then(
      () => false,
      (e) => isCircuitOpenError(e),
    );
    assert(open, 'the origin breaker is open: CircuitOpenError');
    eq(await hits(failPath), 2, 'requests that reached the server');

    const g = createFetch({ timeout: 5_000, retry: { maxAttempts: 3, backoff: constantBackoff(1) } });
    const flakyPath = `/flaky/${key}`;
    const r = await g(`${base}${flakyPath}`);
    eq([r.status, await r.text()], [200, 'recovered'], 'GET retried past two 503s');
    eq(await hits(flakyPath), 3, 'attempts that reached the server');
  });

  await check('write queue on the memory store: queued while down, replayed in order', async () => {
    let down = true;
    const applied = [];
    const b = circuitBreaker({
      name: 'smoke-wq',
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 600_000,
    });
    const q = writeQueue({
      breaker: b,
      store: memoryWriteStore(),
      send: async (data) => {
        if (down) throw new Error('down');
        applied.push(data);
        return data;
      },
    });
    try {
      await q.ready;
      const r1 = await q.submit('a');
      const r2 = await q.submit('b');
      eq([r1.status, r2.status, q.size], ['queued', 'queued', 2], 'queued while down');
      down = false;
      const drained = new Promise((resolve) => q.on('drained', resolve));
      b.reset(); // the downstream is back: replays start when the breaker closes
      await drained;
      eq(applied, ['a', 'b'], 'replayed in order');
      eq(q.size, 0, 'left in the queue');
      const r3 = await q.submit('c');
      eq([r3.status, r3.value], ['sent', 'c'], 'sent at once when healthy');
    } finally {
      await q.close();
    }
  });

  return { runtime: runtimeName(), results };
}

function runtimeName() {
  if (globalThis.Bun) return `bun ${globalThis.Bun.version}`;
  if (globalThis.Deno) return `deno ${globalThis.Deno.version.deno}`;
  if (globalThis.process?.versions?.node) return `node ${globalThis.process.versions.node}`;
  return globalThis.navigator?.userAgent ?? 'unknown';
}

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, get, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { breakerRegistry, type CircuitBreaker, circuitBreaker, type Subscription } from 'tripswitch';
import { TestClock } from 'tripswitch/testing';
import { Collector, type DashboardSnapshot } from './collector.js';
import type { DeltaEvent, OverviewEvent } from './delta.js';
import { createDashboardHandler, type DashboardHandler } from './index.js';
import { escapeHtml, PAGE_SCRIPT, renderPage } from './page.js';

/** Counts live subscriptions on a breaker by wrapping its `on`. */
function counted(b: CircuitBreaker): CircuitBreaker & { live: number } {
  const c = b as CircuitBreaker & { live: number };
  const on = b.on.bind(b);
  c.live = 0;
  c.on = ((event: Parameters<typeof on>[0], listener: Parameters<typeof on>[1]): Subscription => {
    const s = on(event, listener);
    c.live++;
    let done = false;
    const dispose = () => {
      if (done) return;
      done = true;
      c.live--;
      s.dispose();
    };
    return { dispose, [Symbol.dispose]: dispose };
  }) as CircuitBreaker['on'];
  return c;
}

/** Runs one call through a permit taking `ms` of TestClock time. */
function call(clock: TestClock, b: CircuitBreaker, ms: number, fail = false): void {
  const p = b.tryAcquire();
  if (p === undefined) return;
  clock.advance(ms);
  if (fail) p.failure(new Error('x'));
  else p.success();
}

describe('collector', () => {
  test('latency percentiles by nearest rank over fixed durations, bounded by latencySamples', () => {
    const clock = new TestClock();
    const b = circuitBreaker({ name: 'a', clock, trip: { kind: 'consecutive', threshold: 1000 } });
    const c = new Collector({ breakers: () => [['a', b]] }, { clock });
    c.start();
    // Shuffled 1..100 so order cannot fake the result.
    const ds = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    for (const d of ds) call(clock, b, d);
    let l = c.snapshot().breakers[0]!.latency;
    assert.deepEqual(l, { p50: 50, p90: 90, p99: 99, samples: 100 });
    c.stop();

    // A ring of 16: only the last 16 durations count.
    const small = new Collector({ breakers: () => [['a', b]] }, { clock, latencySamples: 16 });
    small.start();
    for (let d = 1; d <= 100; d++) call(clock, b, d);
    l = small.snapshot().breakers[0]!.latency;
    // Last 16 are 85..100: p50 = 8th = 92, p90 = ceil(14.4) = 15th = 99, p99 = 16th = 100.
    assert.deepEqual(l, { p50: 92, p90: 99, p99: 100, samples: 16 });
    small.stop();
  });

  test('failure rate: breaker window rate and recent rate over the last seconds', () => {
    const clock = new TestClock(1_700_000_000_000);
    const b = circuitBreaker({
      name: 'a',
      clock,
      trip: { kind: 'count', windowSize: 10, minimumCalls: 10, failureRateThreshold: 1 },
    });
    const c = new Collector({ breakers: () => [['a', b]] }, { clock, recentSeconds: 3 });
    c.start();
    for (let i = 0; i < 3; i++) call(clock, b, 1);
    call(clock, b, 1, true);
    let v = c.snapshot().breakers[0]!;
    assert.equal(v.failureRate, 0.25);
    assert.deepEqual(v.recent, { seconds: 3, calls: 4, failures: 1, rejections: 0, failureRate: 0.25 });
    clock.advance(1_000);
    call(clock, b, 1, true);
    v = c.snapshot().breakers[0]!;
    assert.equal(v.recent.calls, 5);
    assert.equal(v.recent.failures, 2);
    // Three seconds later the first second has left the recent window, the breaker's window has not.
    clock.advance(2_000);
    v = c.snapshot().breakers[0]!;
    assert.equal(v.recent.calls, 1);
    assert.equal(v.recent.failureRate, 1);
    assert.equal(v.failureRate, 2 / 5);
    assert.equal(v.calls, 5);
    assert.equal(v.failures, 2);
    c.stop();
  });

  test('series: one point per second, empty seconds filled, capped at seriesPoints, state kept', () => {
    const clock = new TestClock(1_700_000_000_000);
    const b = circuitBreaker({ name: 'a', clock, trip: { kind: 'consecutive', threshold: 1000 } });
    const c = new Collector({ breakers: () => [['a', b]] }, { clock, seriesPoints: 5 });
    c.start();
    call(clock, b, 1);
    call(clock, b, 1, true);
    clock.advance(2_000);
    call(clock, b, 1);
    b.isolate();
    b.execute(() => 1).catch(() => {});
    let s = c.snapshot();
    let series = s.breakers[0]!.series;
    assert.deepEqual(series.calls, [2, 0, 1]);
    assert.deepEqual(series.failures, [1, 0, 0]);
    assert.deepEqual(series.rejections, [0, 0, 1]);
    assert.deepEqual(
      series.states.map((i) => s.states[i]),
      ['closed', 'closed', 'isolated'],
    );
    assert.equal(series.start, 1_700_000_000_000);
    // A second later the state carries over; 5 seconds later only the last 5 points remain.
    clock.advance(1_000);
    s = c.snapshot();
    series = s.breakers[0]!.series;
    assert.equal(series.calls.length, 4);
    assert.equal(s.states[series.states[3]!], 'isolated');
    clock.advance(5_000);
    series = c.snapshot().breakers[0]!.series;
    assert.equal(series.calls.length, 5);
    assert.deepEqual(series.calls, [0, 0, 0, 0, 0]);
    assert.equal(series.start, 1_700_000_000_000 + 4_000); // seconds 4..8
    // A long pause (more than the ring) is O(ring), not O(gap).
    clock.advance(10 * 86_400_000);
    assert.equal(c.snapshot().breakers[0]!.series.calls.length, 5);
    c.stop();
  });

  test('follows a sidecar-like source: added clusters, replaced and removed breakers', () => {
    const clock = new TestClock();
    const a1 = counted(circuitBreaker({ name: 'a', clock }));
    const a2 = counted(circuitBreaker({ name: 'a', clock }));
    const bb = counted(circuitBreaker({ name: 'b', clock }));
    const clusters = new Map<string, { name: string; breaker: CircuitBreaker | undefined }>([
      ['a', { name: 'a', breaker: a1 }],
      ['none', { name: 'none', breaker: undefined }],
    ]);
    const c = new Collector({ clusters }, { clock });
    assert.equal(a1.live, 0);
    c.start();
    assert.equal(a1.live, 5);
    assert.deepEqual(
      c.snapshot().breakers.map((b) => b.name),
      ['a'],
    );
    clusters.set('a', { name: 'a', breaker: a2 });
    clusters.set('b', { name: 'b', breaker: bb });
    assert.deepEqual(
      c.snapshot().breakers.map((b) => b.name),
      ['a', 'b'],
    );
    assert.equal(a1.live, 0);
    assert.equal(a2.live, 5);
    assert.equal(bb.live, 5);
    clusters.delete('b');
    c.sync();
    assert.equal(bb.live, 0);
    c.stop();
    assert.equal(a2.live, 0);
  });

  test('registry source: additions are followed at once and evictions drop subscriptions', () => {
    const clock = new TestClock();
    const registry = breakerRegistry({ clock });
    registry.get('x');
    let changes = 0;
    const c = new Collector(registry, { clock, onSourceChange: () => changes++ });
    c.start();
    assert.equal(c.size, 1);
    registry.get('y');
    assert.equal(c.size, 2);
    assert.equal(changes, 1);
    registry.delete('x');
    assert.equal(c.size, 1);
    c.stop();
    registry.get('z');
    assert.equal(c.size, 0, 'a stopped collector does not follow the registry');
  });

  test('reason and the trip window that opened it; error % over the rule window, not since close', () => {
    const clock = new TestClock(1_700_000_000_000);
    const b = circuitBreaker({
      name: 'a',
      clock,
      openDuration: 5_000,
      trip: { kind: 'time', windowMs: 10_000, failureRateThreshold: 0.5, minimumCalls: 10 },
    });
    const c = new Collector({ breakers: () => [['a', b]] }, { clock });
    c.start();
    for (let i = 0; i < 4; i++) call(clock, b, 10);
    clock.advance(1_000);
    for (let i = 0; i < 6; i++) call(clock, b, 10, true);
    assert.equal(b.state, 'open');
    b.execute(() => 1).catch(() => {});
    const v = c.snapshot().breakers[0]!;
    assert.equal(v.state, 'open');
    assert.equal(v.reason, 'failure-rate');
    assert.equal(v.reasonDetail, '6/10 calls failed (60.0%) in the last 10 s');
    assert.equal(v.nextAttemptAt, v.openedAt! + 5_000);
    assert.equal(v.window.kind, 'time');
    assert.equal(v.window.label, 'last 10 s');
    assert.equal(v.window.errorRate, 0.6);
    assert.equal(v.window.rate, 1, '10 calls over the 10 s window');
    assert.deepEqual(v.counts, { success: 4, failure: 6, slow: 0, timeout: 0, rejected: 1, neutral: 0 });
    // Recovery: the probe succeeds, the breaker closes and the reason goes away.
    clock.advance(5_000);
    call(clock, b, 1);
    const after = c.snapshot().breakers[0]!;
    assert.equal(after.state, 'closed');
    assert.equal(after.reason, undefined);
    assert.equal(after.reasonDetail, undefined);
    // Manual states carry their own reason.
    b.isolate();
    assert.equal(c.snapshot().breakers[0]!.reason, 'isolated');
    c.stop();
  });

  test('consecutive rule: rolling error % over the recent seconds, consecutive detail', () => {
    const clock = new TestClock(1_700_000_000_000);
    const b = circuitBreaker({ name: 'a', clock, trip: { kind: 'consecutive', threshold: 3 } });
    const c = new Collector({ breakers: () => [['a', b]] }, { clock, recentSeconds: 5 });
    c.start();
    for (let i = 0; i < 7; i++) call(clock, b, 1);
    for (let i = 0; i < 3; i++) call(clock, b, 1, true);
    const v = c.snapshot().breakers[0]!;
    assert.equal(v.reasonDetail, '3 failures in a row');
    assert.equal(v.window.kind, 'rolling');
    assert.equal(v.window.errorRate, 0.3);
    assert.equal(v.window.rate, 2);
  });

  test('timeouts are counted; the last failure is kept only through redact', async () => {
    const { TimeoutError } = await import('tripswitch');
    const clock = new TestClock(1_700_000_000_000);
    const b = circuitBreaker({ name: 'a', clock, trip: { kind: 'consecutive', threshold: 100 } });
    const plain = new Collector({ breakers: () => [['a', b]] }, { clock });
    const seen: string[] = [];
    const redacting = new Collector(
      { breakers: () => [['a', b]] },
      {
        clock,
        redact: (e, name) => {
          seen.push(name);
          return String((e as Error).message).replace(/password=\S+/, 'password=***');
        },
      },
    );
    plain.start();
    redacting.start();
    const p = b.tryAcquire()!;
    p.failure(new Error('connect postgres://u@db password=hunter2 refused'));
    const q = b.tryAcquire()!;
    q.failure(new TimeoutError(300));
    const r = b.tryAcquire()!;
    r.failure(new Error('db password=hunter2 down'));
    const a = plain.snapshot().breakers[0]!;
    assert.equal(a.lastFailure, undefined);
    assert.equal(a.counts.timeout, 1);
    assert.equal(a.series.timeouts.at(-1), 1);
    assert.doesNotMatch(JSON.stringify(plain.snapshot()), /hunter2/);
    const z = redacting.snapshot().breakers[0]!;
    assert.deepEqual(z.lastFailure, { at: 1_700_000_000_000, message: 'db password=*** down' });
    redacting.snapshot();
    assert.deepEqual(seen, ['a'], 'redact runs once per new failure, at snapshot time');
    assert.doesNotMatch(JSON.stringify(redacting.snapshot()), /hunter2/);
    // A hook returning undefined (or throwing) hides the message.
    const hiding = new Collector({ breakers: () => [['a', b]] }, { clock, redact: () => undefined });
    hiding.start();
    b.tryAcquire()!.failure(new Error('x'));
    assert.equal(hiding.snapshot().breakers[0]!.lastFailure, undefined);
    for (const x of [plain, redacting, hiding]) x.stop();
  });

  test('handler keeps history from creation, before any page connects; ring fixed at 300 s', () => {
    const clock = new TestClock(1_700_000_000_000);
    const b = circuitBreaker({ name: 'a', clock, trip: { kind: 'consecutive', threshold: 3 } });
    const d = createDashboardHandler({ breakers: () => [['a', b]] }, { clock });
    assert.equal(d.clients, 0);
    assert.equal(clock.pending, 0, 'no timer without a page');
    for (let i = 0; i < 3; i++) call(clock, b, 1, true);
    clock.advance(60_000);
    let v = d.snapshot().breakers[0]!;
    assert.equal(v.series.calls.length, 61);
    assert.equal(v.series.calls[0], 3);
    assert.equal(d.snapshot().states[v.series.states[0]!], 'open');
    clock.advance(600_000);
    v = d.snapshot().breakers[0]!;
    assert.equal(v.series.calls.length, 300);
    d.dispose();
    assert.equal(d.collector.active, false);
  });

  test('sidecar-like source: hosts with ejections (by the clock) and limits per priority in the detail only', () => {
    const clock = new TestClock(1_700_000_000_000);
    const b = circuitBreaker({ name: 'api', clock });
    const lim = (active: number) => ({
      active,
      pending: 1,
      retries: 0,
      maxRequests: 10,
      maxPending: 5,
      maxRetries: 3,
    });
    const clusters = new Map([
      [
        'api',
        {
          name: 'api',
          breaker: b,
          hosts: [
            { address: '10.0.0.1:80', active: 2, ejectedUntil: 1_700_000_030_000, ejections: 1 },
            { address: '10.0.0.2:80', active: 0, ejectedUntil: 0, ejections: 0 },
          ],
          limits: { default: lim(7), high: lim(1) },
        },
      ],
    ]);
    const c = new Collector({ clusters }, { clock });
    c.start();
    const v = c.snapshot({ only: 'api' }).breakers[0]!;
    assert.deepEqual(v.cluster, {
      hosts: [
        { address: '10.0.0.1:80', active: 2, ejected: true, ejectedUntil: 1_700_000_030_000, ejections: 1 },
        { address: '10.0.0.2:80', active: 0, ejected: false, ejections: 0 },
      ],
      limits: { default: lim(7), high: lim(1) },
    });
    assert.equal(c.snapshot({ series: false }).breakers[0]!.cluster, undefined, 'not in the overview');
    clock.advance(30_000);
    assert.equal(c.snapshot().breakers[0]!.cluster!.hosts[0]!.ejected, false);
    c.stop();
  });

  test('rejects bad sources and options', () => {
    assert.throws(() => new Collector({ breakers: () => [] }, { redact: 'x' as never }), /redact/);
    assert.throws(() => new Collector({} as never), TypeError);
    assert.throws(() => new Collector({ breakers: () => [] }, { latencySamples: 0 }), RangeError);
    assert.throws(() => createDashboardHandler({ breakers: () => [] }, { basePath: 'x' }), TypeError);
    assert.throws(() => createDashboardHandler({ breakers: () => [] }, { intervalMs: 0 }), RangeError);
  });
});

// ---- HTTP ---------------------------------------------------------------------------------------

async function serve(d: DashboardHandler): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (d(req, res)) return;
    res.writeHead(418).end('not mine');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        d.close();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function fetchRaw(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An SSE client that splits the stream into frames. */
async function stream(port: number, path = '/dashboard/events') {
  const frames: string[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, resolve).on('error', reject);
  });
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    buf += chunk;
    for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
      frames.push(buf.slice(0, i));
      buf = buf.slice(i + 2);
    }
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<void>((r) => res.on('close', () => r()));
  return {
    res,
    frames,
    /** Waits (bounded) until at least `n` frames arrived. */
    async until(n: number, ms = 2_000): Promise<string[]> {
      const deadline = Date.now() + ms;
      while (frames.length < n) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for frame ${n}: ${frames.join(' | ')}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50).unref();
        });
      }
      return frames;
    },
    close: async () => {
      res.destroy();
      await closed;
    },
  };
}

function parseFrame(frame: string): {
  id?: string;
  event?: string;
  retry?: string;
  data?: DashboardSnapshot;
} {
  const out: Record<string, string> = {};
  for (const line of frame.split('\n')) {
    const i = line.indexOf(':');
    out[line.slice(0, i)] = line.slice(i + 1).replace(/^ /, '');
  }
  return {
    id: out.id,
    event: out.event,
    retry: out.retry,
    data: out.data === undefined ? undefined : (JSON.parse(out.data) as DashboardSnapshot),
  };
}

/** Waits a little real time for socket close events to reach the server. */
async function settle(check: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('handler', () => {
  test('SSE: retry, full snapshot, immediate delta on state change, periodic deltas of changes only', async () => {
    const clock = new TestClock(1_700_000_000_000);
    const registry = breakerRegistry({ clock });
    const pay = registry.get('payments');
    registry.get('search');
    const d = createDashboardHandler(registry, { clock, intervalMs: 1000 });
    const s = await serve(d);
    try {
      const es = await stream(s.port);
      assert.equal(es.res.statusCode, 200);
      assert.match(String(es.res.headers['content-type']), /^text\/event-stream/);
      assert.equal(es.res.headers['cache-control'], 'no-store');
      assert.equal(es.res.headers['x-content-type-options'], 'nosniff');
      await es.until(2);
      assert.deepEqual(parseFrame(es.frames[0]!), {
        id: undefined,
        event: undefined,
        retry: '2000',
        data: undefined,
      });
      const first = parseFrame(es.frames[1]!);
      assert.equal(first.id, '1');
      assert.equal(first.event, 'snapshot');
      const full = first.data as unknown as OverviewEvent;
      assert.deepEqual(
        full.rows.map((r) => [r.n, r.s, r.e, r.q, r.p]),
        [
          ['payments', 'closed', 0, 0, null],
          ['search', 'closed', 0, 0, null],
        ],
      );
      const payId = full.rows[0]!.i;
      // No clock time passes: the next frame can only come from the state change, and carries only it.
      pay.isolate();
      await es.until(3);
      const pushed = parseFrame(es.frames[2]!);
      assert.equal(pushed.event, 'delta');
      assert.deepEqual((pushed.data as unknown as DeltaEvent).set, [
        { i: payId, s: 'isolated', r: 'isolated' },
      ]);
      // Nothing changed: a tick sends nothing.
      clock.advance(1000);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(es.frames.length, 3);
      // Back to closed: the reason is cleared with null.
      pay.reset();
      await es.until(4);
      assert.deepEqual((parseFrame(es.frames[3]!).data as unknown as DeltaEvent).set, [
        { i: payId, s: 'closed', r: null },
      ]);
      // Traffic shows up with the next event (here the registry's removal, pushed at once, announced by id).
      for (let i = 0; i < 10; i++) call(clock, pay, 5, i < 3);
      registry.delete('search');
      await es.until(5);
      const all = es.frames.slice(4).map((f) => parseFrame(f).data as unknown as DeltaEvent);
      assert.deepEqual(
        all.flatMap((x) => x.del ?? []),
        [full.rows[1]!.i],
      );
      const last = all
        .flatMap((x) => x.set ?? [])
        .filter((x) => x.i === payId)
        .at(-1)!;
      assert.equal(last.e, 0.3);
      assert.equal(last.p, 5);
      await es.close();
    } finally {
      await s.close();
    }
  });

  test('a client that missed a delta (full socket buffer) is resynchronised with a full snapshot', () => {
    const clock = new TestClock(1_700_000_000_000);
    const registry = breakerRegistry({ clock });
    const a = registry.get('a');
    const d = createDashboardHandler(registry, { clock, intervalMs: 1000 });
    // A minimal ServerResponse whose buffer we fill by hand: deterministic, no socket timing.
    const fake = () => {
      const writes: string[] = [];
      const listeners: Record<string, () => void> = {};
      const res = {
        writableNeedDrain: false,
        writeHead: () => res,
        setHeader: () => undefined,
        write: (x: string) => writes.push(x) > 0,
        end: () => undefined,
        on: (e: string, f: () => void) => {
          listeners[e] = f;
          return res;
        },
        socket: null,
        writes,
        close: () => listeners.close?.(),
      };
      return res;
    };
    const req = { url: '/dashboard/events', method: 'GET', headers: {} };
    const slow = fake();
    const fast = fake();
    d(req as never, slow as never);
    d(req as never, fast as never);
    const events = (r: ReturnType<typeof fake>) => r.writes.map((w) => /event: (\w+)/.exec(w)?.[1]);
    assert.deepEqual(events(slow), ['snapshot'], 'nothing changed when the second client joined');
    slow.writableNeedDrain = true;
    a.isolate();
    clock.advance(1000); // the tick sends the isolate delta: slow is skipped
    assert.equal(events(fast).at(-1), 'delta');
    assert.equal(events(slow).length, 1);
    slow.writableNeedDrain = false;
    a.reset();
    clock.advance(1000);
    // The skipped client gets a full snapshot carrying the current state, not a delta it cannot apply.
    assert.equal(events(slow).at(-1), 'snapshot');
    const last = JSON.parse(/data: (.*)/.exec(slow.writes.at(-1)!)![1]!) as OverviewEvent;
    assert.equal(last.rows.find((r) => r.n === 'a')!.s, 'closed');
    assert.equal(events(fast).at(-1), 'delta');
    slow.close();
    fast.close();
    assert.equal(d.clients, 0);
    d.dispose();
  });

  test('1,000 breakers under traffic: the stream sends under 50 KB per second (bytes counted per tick)', async () => {
    const clock = new TestClock(1_700_000_000_000);
    const registry = breakerRegistry({
      clock,
      defaults: { trip: { kind: 'time', windowMs: 10_000, minimumCalls: 20, failureRateThreshold: 0.5 } },
    });
    const breakers = Array.from({ length: 1000 }, (_, i) =>
      registry.get(`service-${String(i).padStart(4, '0')}`),
    );
    const d = createDashboardHandler(registry, { clock, intervalMs: 1000 });
    const s = await serve(d);
    // Seeded PRNG: the bytes are the same on every run and machine.
    let seed = 42;
    const rnd = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    try {
      const es = await stream(s.port);
      await es.until(2);
      const initial = Buffer.byteLength(es.frames[1]!);
      const perTick: number[] = [];
      for (let tick = 0; tick < 12; tick++) {
        const before = es.frames.length;
        // Every breaker gets 5-40 calls this second with varied latency; 1-8 % fail, and ten of
        // them fail hard (they open, then probe) so states and reasons change too.
        for (const [k, b] of breakers.entries()) {
          const n = 5 + Math.floor(rnd() * 36);
          const failP = k < 10 && tick >= 3 ? 0.9 : 0.01 + rnd() * 0.07;
          for (let j = 0; j < n; j++) call(clock, b, 0, rnd() < failP);
        }
        // Durations advance the clock inside call(); keep each tick at exactly one second.
        clock.advance(1000 - (clock.now() % 1000));
        await es.until(before + 1, 10_000);
        perTick.push(Buffer.byteLength(`${es.frames.slice(before).join('\n\n')}\n\n`));
      }
      const max = Math.max(...perTick);
      // intervalMs 1000: one tick per second, so bytes per tick are bytes per second.
      assert.ok(max < 50_000, `max ${max} B per tick: ${perTick.join(', ')}`);
      console.log(
        `# 1000 breakers: initial snapshot ${initial} B, delta per 1 s tick: ${perTick.join(', ')} B`,
      );
      await es.close();
    } finally {
      await s.close();
    }
  });

  test('subscribes on the first client, unsubscribes on the last; idle means no timer', async () => {
    const clock = new TestClock();
    const a = counted(circuitBreaker({ name: 'a', clock }));
    const d = createDashboardHandler({ breakers: () => [['a', a]] }, { clock, keepHistory: false });
    const s = await serve(d);
    try {
      assert.equal(a.live, 0);
      assert.equal(clock.pending, 0);
      const snap = JSON.parse((await fetchRaw(s.port, '/dashboard/snapshot.json')).body) as DashboardSnapshot;
      assert.equal(snap.live, false);
      assert.equal(snap.breakers[0]!.name, 'a');
      assert.equal(a.live, 0, 'snapshot.json alone does not subscribe');

      const one = await stream(s.port);
      await one.until(2);
      assert.equal(d.clients, 1);
      assert.equal(a.live, 5);
      assert.equal(clock.pending, 1);
      const two = await stream(s.port);
      await two.until(2);
      assert.equal(d.clients, 2);
      assert.equal(a.live, 5, 'one subscription set for any number of clients');
      assert.equal(clock.pending, 1, 'one timer for any number of clients');

      await one.close();
      await settle(() => d.clients === 1);
      assert.equal(a.live, 5);
      await two.close();
      await settle(() => d.clients === 0);
      assert.equal(a.live, 0);
      assert.equal(clock.pending, 0);
      assert.equal(d.collector.active, false);

      // And again, so the cycle does not leak.
      const three = await stream(s.port);
      await three.until(2);
      assert.equal(a.live, 5);
      await three.close();
      await settle(() => d.clients === 0);
      assert.equal(a.live, 0);
      assert.equal(clock.pending, 0);
    } finally {
      await s.close();
    }
  });

  test('maxClients: extra event-stream clients get 503', async () => {
    const clock = new TestClock();
    const d = createDashboardHandler({ breakers: () => [] }, { clock, maxClients: 1 });
    const s = await serve(d);
    try {
      const one = await stream(s.port);
      await one.until(2);
      const r = await fetchRaw(s.port, '/dashboard/events');
      assert.equal(r.status, 503);
      await one.close();
    } finally {
      await s.close();
    }
  });

  test('routes: page, 404 under the base path, false elsewhere, 405 for POST, HEAD without body', async () => {
    const d = createDashboardHandler({ breakers: () => [] }, { clock: new TestClock() });
    const s = await serve(d);
    try {
      const page = await fetchRaw(s.port, '/dashboard');
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-type']), /^text\/html; charset=utf-8/);
      assert.equal(page.headers['cache-control'], 'no-store');
      assert.equal(page.headers['x-content-type-options'], 'nosniff');
      assert.equal((await fetchRaw(s.port, '/dashboard/?x=1')).status, 200);
      assert.equal((await fetchRaw(s.port, '/dashboard/nope')).status, 404);
      const other = await fetchRaw(s.port, '/dashboardx');
      assert.equal(other.status, 418, 'not under the base path: left to the app');
      assert.equal((await fetchRaw(s.port, '/')).status, 418);
      for (const path of ['/dashboard', '/dashboard/events', '/dashboard/snapshot.json', '/dashboard/nope']) {
        const r = await fetchRaw(s.port, path, 'POST');
        assert.equal(r.status, 405, path);
        assert.equal(r.headers.allow, 'GET, HEAD');
      }
      const head = await fetchRaw(s.port, '/dashboard', 'HEAD');
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
      assert.equal(Number(head.headers['content-length']), Buffer.byteLength(page.body));
      assert.equal(d.clients, 0, 'HEAD on events opens no stream');
      assert.equal((await fetchRaw(s.port, '/dashboard/events', 'HEAD')).body, '');
      assert.equal(d.clients, 0);
    } finally {
      await s.close();
    }
  });

  test('custom and root base paths', async () => {
    const d = createDashboardHandler({ breakers: () => [] }, { basePath: '/ops/breakers/' });
    const s = await serve(d);
    try {
      assert.equal((await fetchRaw(s.port, '/ops/breakers')).status, 200);
      assert.equal((await fetchRaw(s.port, '/ops/breakers/snapshot.json')).status, 200);
      assert.equal((await fetchRaw(s.port, '/dashboard')).status, 418);
      assert.match((await fetchRaw(s.port, '/ops/breakers')).body, /data-base="\/ops\/breakers"/);
    } finally {
      await s.close();
    }
    const root = createDashboardHandler({ breakers: () => [] }, { basePath: '/' });
    const r = await serve(root);
    try {
      assert.equal((await fetchRaw(r.port, '/')).status, 200);
      assert.equal((await fetchRaw(r.port, '/events', 'HEAD')).status, 200);
      assert.equal((await fetchRaw(r.port, '/other')).status, 418);
    } finally {
      await r.close();
    }
  });

  test('CSP allows exactly the inline script and style by hash, no unsafe-*', async () => {
    const d = createDashboardHandler({ breakers: () => [] });
    const s = await serve(d);
    try {
      const page = await fetchRaw(s.port, '/dashboard');
      const csp = String(page.headers['content-security-policy']);
      assert.doesNotMatch(csp, /unsafe-/);
      assert.match(csp, /default-src 'none'/);
      const scripts = [...page.body.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
      const styles = [...page.body.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1]!);
      assert.equal(scripts.length, 1);
      assert.equal(styles.length, 1);
      const hash = (x: string) => `'sha256-${createHash('sha256').update(x).digest('base64')}'`;
      assert.ok(csp.includes(`script-src ${hash(scripts[0]!)}`), csp);
      assert.ok(csp.includes(`style-src ${hash(styles[0]!)}`), csp);
      // The only URL is the SVG namespace name (an identifier, never fetched).
      assert.deepEqual([...new Set(page.body.match(/https?:\/\/[^'"\s]*/g))], ['http://www.w3.org/2000/svg']);
      assert.doesNotMatch(page.body, /\b(src|href)="(?!data:)|@import|url\(/, 'no external resources');
    } finally {
      await s.close();
    }
  });
});

describe('escaping', () => {
  test('title and base path are escaped in the HTML; the script never uses innerHTML', () => {
    const html = renderPage({ basePath: '/a', title: '<img src=x onerror=alert(1)>"\'&' });
    assert.ok(!html.includes('<img'));
    assert.ok(html.includes('&#60;img src=x onerror=alert(1)&#62;&#34;&#39;&#38;'));
    assert.equal(escapeHtml('"><script>'), '&#34;&#62;&#60;script&#62;');
    assert.doesNotMatch(PAGE_SCRIPT, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
    assert.throws(() => createDashboardHandler({ breakers: () => [] }, { basePath: '/a"><x' }), TypeError);
  });

  test('hostile breaker names travel as JSON data, unaltered', async () => {
    const evil = '</script><img src=x onerror=alert(1)>';
    const clock = new TestClock();
    const b = circuitBreaker({ name: evil, clock });
    const d = createDashboardHandler({ breakers: () => [[evil, b]] }, { clock });
    const s = await serve(d);
    try {
      const r = await fetchRaw(s.port, '/dashboard/snapshot.json');
      assert.match(String(r.headers['content-type']), /^application\/json/);
      assert.equal((JSON.parse(r.body) as DashboardSnapshot).breakers[0]!.name, evil);
    } finally {
      await s.close();
    }
  });
});

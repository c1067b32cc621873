import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatReport, runDemo } from './run.js';

/** Open TCP handles (servers and sockets) of this process. */
function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap' || r === 'TCPSocketWrap')
    .length;
}

test('runDemo: both runs, every phase and route measured, everything closed afterwards', async () => {
  const before = tcpHandles();
  const lines: string[] = [];
  const result = await runDemo({
    phases: { healthy: 500, outage: 500, recovery: 500 },
    concurrency: 4,
    workers: 2,
    upstreamConnections: 2,
    timeoutMs: 100,
    openDurationMs: 200,
    clientTimeoutMs: 400,
    drainMs: 1_000,
    dashboard: false,
    log: (l) => lines.push(l),
  });
  assert.equal(result.aborted, false);
  assert.deepEqual(Object.keys(result.runs).sort(), ['protected', 'unprotected']);
  for (const run of [result.runs.unprotected!, result.runs.protected!]) {
    assert.deepEqual(
      run.phases.map((p) => p.name),
      ['healthy', 'outage', 'recovery'],
    );
    assert.deepEqual(run.clients, { orders: 3, profile: 1 });
    assert.ok(run.sent > 0);
    const healthy = run.stats.healthy!;
    assert.ok(healthy.orders.count > 0, `${run.label}: /orders requests in the healthy phase`);
    assert.ok(healthy.profile.count > 0, `${run.label}: /profile requests in the healthy phase`);
    assert.ok(healthy.orders.ok > 0);
    assert.ok(run.upstream.received > 0);
    for (const ph of run.phases) assert.ok(ph.endMs >= ph.startMs);
  }
  // The protected breaker saw the hanging upstream (timeouts) and opened at least once.
  const opened = result.runs.protected!.timeline.some((e) => e.to === 'open');
  assert.ok(opened, 'the protected breaker opened');
  assert.equal(result.runs.unprotected!.timeline.length, 0);
  assert.ok(result.comparison.some((c) => c.phase === 'outage' && c.route === 'profile'));
  assert.equal(result.kept, undefined);

  // Writes: counted, not derived. Unprotected has no queue; protected lost none and replayed what it queued.
  for (const run of [result.runs.unprotected!, result.runs.protected!]) {
    const w = run.writes;
    assert.ok(w.submitted > 0, `${run.label}: writes submitted`);
    assert.equal(w.applied + w.lost, w.submitted);
    assert.equal(w.acknowledged + w.failed, w.submitted);
    assert.equal(w.upstream.applied, w.applied, `${run.label}: B applied only submitted ids`);
  }
  assert.equal(result.runs.unprotected!.writes.queue, undefined);
  const pw = result.runs.protected!.writes;
  assert.ok(pw.queue, 'protected: write queue counts');
  assert.equal(pw.queue.left, 0, 'the queue drained before B was read');
  assert.equal(pw.queue.dead, 0);
  assert.equal(pw.queue.replayed, pw.queue.queued);
  assert.equal(pw.accepted, pw.queue.queued, 'every 202 is a queued write');
  assert.equal(pw.lost, 0);

  const text = formatReport(result);
  assert.match(text, /outage {3}\/orders/);
  assert.match(text, /closed -> open/);
  assert.match(text, /^lost \(submitted, never applied\) +\d+ +0$/m);
  assert.ok(lines.some((l) => l.startsWith('[unprotected]')));
  assert.ok(lines.some((l) => l.startsWith('[protected]')));

  // libuv releases closed handles a loop turn or two later: wait for that, bounded.
  for (let i = 0; i < 100 && tcpHandles() > before; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(tcpHandles() <= before, `TCP handles left open: ${tcpHandles()} > ${before}`);
});

const tiny = {
  phases: { healthy: 300, outage: 300, recovery: 300 },
  concurrency: 4,
  workers: 2,
  upstreamConnections: 2,
  timeoutMs: 100,
  openDurationMs: 200,
  clientTimeoutMs: 400,
  drainMs: 1_000,
  dashboard: false,
};

test('runDemo: an abort stops the run early, drops the runs not started and closes everything', async () => {
  const before = tcpHandles();
  const ac = new AbortController();
  const result = await runDemo({
    ...tiny,
    signal: ac.signal,
    log: (l) => {
      if (l.includes('phase outage')) ac.abort();
    },
  });
  assert.equal(result.aborted, true);
  assert.deepEqual(Object.keys(result.runs), ['unprotected']);
  const phases = result.runs.unprotected!.phases;
  assert.ok(phases.length <= 2, 'the recovery phase was never reached');
  assert.ok(phases.every((p) => p.endMs >= p.startMs));
  assert.deepEqual(result.comparison, []);
  assert.match(formatReport(result), /stopped early/);
  for (let i = 0; i < 100 && tcpHandles() > before; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(tcpHandles() <= before, `TCP handles left open: ${tcpHandles()} > ${before}`);
});

test('runDemo with keepRunning: B and both A stay up (started before the runs) until kept.close()', async () => {
  const result = await runDemo({ ...tiny, runs: ['protected'], keepRunning: true, port: 0 });
  const kept = result.kept;
  assert.ok(kept, 'kept services');
  try {
    for (const a of [kept.unprotected, kept.protected]) {
      const r = await fetch(`${a}/profile`);
      assert.equal(r.status, 200);
      await r.body?.cancel();
      const m = await fetch(`${a}/metrics`);
      assert.equal(m.status, 200);
      await m.body?.cancel();
    }
    const m = await fetch(`${kept.upstream}/mode`);
    assert.equal(((await m.json()) as { mode: string }).mode, 'healthy');
    assert.match(kept.text, /ab -n 100 -c 20 -l http:\/\/127\.0\.0\.1:\d+\/orders/);
  } finally {
    await kept.close();
  }
  await assert.rejects(fetch(`${kept.protected}/profile`));
});

test('runDemo past the last-good TTL: the protected outage answers are degraded 200s, not errors, and the report says so', async () => {
  // TTL 0: any last good answer is already too old when B hangs.
  const result = await runDemo({ ...tiny, runs: ['protected'], lastGoodTtlMs: 0 });
  const outage = result.runs.protected!.stats.outage!.orders;
  assert.ok(outage.count > 0);
  assert.equal(outage.errors, 0, 'no errors');
  assert.ok(outage.degraded > 0, 'degraded answers counted');
  assert.equal(outage.degraded, outage.fallbacks, 'every fallback was degraded');
  assert.match(
    formatReport(result),
    /Degraded answers \(200, x-degraded: 1: no last good answer younger than its TTL of 0\.00 ms, so A says B is unavailable instead of failing\):\n(?: {2}.*\n)* {2}protected outage \/orders: \d+ of \d+ fallbacks degraded\n/,
  );
});

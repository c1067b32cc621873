/**
 * Replays with known answers: a hard outage is detected within the bound the candidate's rule
 * promises; a healthy trace with 1% errors never opens a 50% rule; refused calls are not sent and
 * probes get the trace's outcome at their time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BreakerSettings, candidate, defaultGrid, expandGrid } from './candidates.js';
import { combineMetrics, promisedDetectionMs, replay } from './replay.js';
import { synthesize } from './synth.js';
import { type TraceCall, traceFromCalls } from './trace.js';

const rules: BreakerSettings[] = [
  { trip: { kind: 'consecutive', threshold: 3 } },
  { trip: { kind: 'consecutive', threshold: 10 } },
  { trip: { kind: 'count', windowSize: 20, minimumCalls: 10, failureRateThreshold: 0.5 } },
  { trip: { kind: 'count', windowSize: 100, minimumCalls: 20, failureRateThreshold: 0.3 } },
  { trip: { kind: 'time', windowMs: 10_000, minimumCalls: 10, failureRateThreshold: 0.5 } },
  { trip: { kind: 'time', windowMs: 30_000, buckets: 6, minimumCalls: 20, failureRateThreshold: 0.9 } },
  { trip: { kind: 'time', windowMs: 30_000, failureCount: 25 } },
];

describe('replay: hard outage', () => {
  for (const settings of rules)
    it(`opens within the promised bound: ${JSON.stringify(settings.trip)}`, () => {
      for (const seed of [1, 2, 3, 4, 5]) {
        for (const rate of [5, 50, 400]) {
          const trace = synthesize({
            shape: 'hard-outage',
            seed,
            rate,
            durationMs: 300_000,
            backgroundErrorRate: 0.01,
          });
          const incident = trace.incidents[0]!;
          const bound = promisedDetectionMs(settings, trace, incident);
          assert.ok(bound !== undefined && Number.isFinite(bound), 'the rule promises a bound');
          const { metrics } = replay(trace, candidate(settings));
          assert.equal(metrics.missed, 0, `seed ${seed} rate ${rate}: the outage was missed`);
          assert.ok(
            metrics.detectMs <= bound,
            `seed ${seed} rate ${rate}: opened after ${metrics.detectMs} ms, promised ${bound} ms`,
          );
        }
      }
    });

  it('a consecutive rule opens on exactly the threshold-th failure (hand-made trace)', () => {
    // One call every 100 ms, each taking 10 ms; from t=1000 every call fails.
    const calls: TraceCall[] = [];
    for (let t = 0; t < 5_000; t += 100)
      calls.push({ t, d: 10, outcome: t >= 1_000 ? 'failure' : 'success', name: 'x' });
    const trace = traceFromCalls(calls, [{ start: 1_000, end: 5_000 }]);
    const r = replay(trace, candidate({ trip: { kind: 'consecutive', threshold: 4 }, openDuration: 60_000 }));
    // Failures at 1000, 1100, 1200, 1300 settle 10 ms later: the 4th opens it at 1310.
    assert.equal(r.metrics.detectMs, 310);
    assert.equal(r.metrics.letThrough, 4);
    assert.equal(r.metrics.refused, calls.length - 14);
    assert.equal(r.metrics.sent + r.metrics.refused, trace.length);
    assert.equal(r.metrics.closeMs, Number.POSITIVE_INFINITY, 'open for 60 s, past the trace end');
  });
});

describe('replay: healthy traffic', () => {
  it('1% errors never open a 50% rule (count and time windows, many seeds)', () => {
    const fifty: BreakerSettings[] = [
      { trip: { kind: 'count', windowSize: 100, minimumCalls: 20, failureRateThreshold: 0.5 } },
      { trip: { kind: 'count', windowSize: 50, minimumCalls: 10, failureRateThreshold: 0.5 } },
      { trip: { kind: 'time', windowMs: 10_000, minimumCalls: 10, failureRateThreshold: 0.5 } },
      { trip: { kind: 'time', windowMs: 30_000, minimumCalls: 20, failureRateThreshold: 0.5 } },
    ];
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const trace = synthesize({
        shape: 'healthy',
        seed,
        rate: 100,
        durationMs: 600_000,
        backgroundErrorRate: 0.01,
      });
      let failures = 0;
      for (let i = 0; i < trace.length; i++) failures += trace.failed[i]!;
      assert.ok(
        failures > 0.005 * trace.length && failures < 0.015 * trace.length,
        'the trace has ~1% errors',
      );
      for (const settings of fifty) {
        const { metrics, transitions } = replay(trace, candidate(settings));
        assert.equal(metrics.falseOpens, 0, `seed ${seed} ${JSON.stringify(settings.trip)}`);
        assert.equal(metrics.refused, 0);
        assert.equal(transitions.length, 0);
      }
    }
  });

  it('a 2% rule does open on the same traffic (the test can fail)', () => {
    const trace = synthesize({
      shape: 'healthy',
      seed: 1,
      rate: 100,
      durationMs: 600_000,
      backgroundErrorRate: 0.01,
    });
    const { metrics } = replay(
      trace,
      candidate({ trip: { kind: 'count', windowSize: 50, minimumCalls: 10, failureRateThreshold: 0.02 } }),
    );
    assert.ok(metrics.falseOpens > 0);
    assert.ok(metrics.refusedHealthy > 0);
  });
});

describe('replay: slow calls', () => {
  it('a slow-call rule opens in a brownout with no errors, and never on healthy latency', () => {
    const settings: BreakerSettings = {
      trip: {
        kind: 'time',
        windowMs: 10_000,
        minimumCalls: 10,
        slowCallDuration: 500,
        slowCallRateThreshold: 0.5,
      },
    };
    for (const seed of [1, 2, 3]) {
      const brown = synthesize({
        shape: 'brownout',
        seed,
        rate: 50,
        durationMs: 300_000,
        peakLatencyMs: 2_000,
        peakErrorRate: 0,
        backgroundErrorRate: 0,
      });
      const m = replay(brown, candidate(settings)).metrics;
      assert.equal(m.missed, 0, `seed ${seed}: the brownout was missed`);
      // The median passes 500 ms a quarter into the 100 s ramp; a 10 s window (plus a bucket and
      // the 2 s answers that settle it) must have seen it by ~40 s.
      assert.ok(m.detectMs > 15_000 && m.detectMs < 40_000, `seed ${seed}: detected after ${m.detectMs} ms`);
      const healthy = synthesize({ shape: 'healthy', seed, rate: 50, durationMs: 300_000 });
      assert.equal(replay(healthy, candidate(settings)).metrics.falseOpens, 0);
    }
  });
});

describe('replay: probes and recovery', () => {
  it('a probe gets the outcome the trace has at its time, and closing is timed from recovery', () => {
    // Calls every 100 ms; failing from 1000 to 3000 (exclusive), healthy after.
    const calls: TraceCall[] = [];
    for (let t = 0; t < 10_000; t += 100)
      calls.push({ t, d: 5, outcome: t >= 1_000 && t < 3_000 ? 'failure' : 'success', name: 'x' });
    const trace = traceFromCalls(calls, [{ start: 1_000, end: 3_000 }]);
    const r = replay(trace, candidate({ trip: { kind: 'consecutive', threshold: 2 }, openDuration: 700 }));
    // Opens at 1105; probe at 1900 (fails, reopens at 1905); probe at 2700 (fails, reopens at 2705);
    // probe at 3500 succeeds and closes at 3505.
    assert.deepEqual(
      r.transitions.map((t) => [t.to, t.at]),
      [
        ['open', 1_105],
        ['half-open', 1_900],
        ['open', 1_905],
        ['half-open', 2_700],
        ['open', 2_705],
        ['half-open', 3_500],
        ['closed', 3_505],
      ],
    );
    assert.equal(r.metrics.probes, 3);
    assert.equal(r.metrics.detectMs, 105);
    assert.equal(r.metrics.closeMs, 505);
    assert.equal(r.metrics.letThrough, 4);
    assert.equal(r.metrics.refusedHealthy, 5, 'calls at 3000..3400 were refused after recovery');
    assert.equal(r.metrics.falseOpens, 0);
  });

  it('every candidate of the default grid replays every shape, and sent + refused = calls', () => {
    const candidates = expandGrid(defaultGrid);
    for (const shape of ['healthy', 'brownout', 'hard-outage', 'flapping', 'slow-recovery'] as const) {
      const trace = synthesize({ shape, seed: 9, rate: 20, durationMs: 300_000 });
      for (const c of candidates.slice(0, 40)) {
        const m = replay(trace, c).metrics;
        assert.equal(m.sent + m.refused, trace.length);
        assert.ok(m.letThroughFailures <= m.letThrough);
      }
    }
  });

  it('combineMetrics keeps the worst times and sums the counts', () => {
    const a = replay(synthesize({ shape: 'hard-outage', seed: 1 }), candidate({})).metrics;
    const b = replay(synthesize({ shape: 'healthy', seed: 1 }), candidate({})).metrics;
    const c = combineMetrics([a, b]);
    assert.equal(c.detectMs, Math.max(a.detectMs, b.detectMs));
    assert.equal(c.sent, a.sent + b.sent);
  });
});

/**
 * Properties of a replay over random traces and candidates (fast-check): every call is either sent
 * or refused, the counts nest, state changes follow the breaker's state machine, and two replays
 * of the same trace agree (no state leaks between runs through a shared clock or breaker).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type BreakerSettings, candidate } from './candidates.js';
import { replay } from './replay.js';
import { type TraceCall, traceFromCalls } from './trace.js';

const settings: fc.Arbitrary<BreakerSettings> = fc.record({
  trip: fc.oneof(
    fc.record({ kind: fc.constant('consecutive' as const), threshold: fc.integer({ min: 1, max: 6 }) }),
    fc.record({
      kind: fc.constant('count' as const),
      windowSize: fc.integer({ min: 2, max: 20 }),
      minimumCalls: fc.integer({ min: 1, max: 2 }),
      failureRateThreshold: fc.double({ min: 0.1, max: 1, noNaN: true }),
    }),
    fc.record({
      kind: fc.constant('time' as const),
      windowMs: fc.integer({ min: 100, max: 5_000 }),
      minimumCalls: fc.integer({ min: 1, max: 5 }),
      failureRateThreshold: fc.double({ min: 0.1, max: 1, noNaN: true }),
      slowCallDuration: fc.integer({ min: 1, max: 200 }),
    }),
  ),
  openDuration: fc.integer({ min: 1, max: 2_000 }),
  halfOpen: fc.record({
    maxProbes: fc.integer({ min: 1, max: 3 }),
    successesToClose: fc.integer({ min: 1, max: 3 }),
  }),
});

const calls = fc.array(
  fc.record({
    gap: fc.integer({ min: 0, max: 300 }),
    d: fc.integer({ min: 0, max: 500 }),
    fail: fc.boolean(),
  }),
  { minLength: 1, maxLength: 300 },
);

const legal: Record<string, string[]> = {
  closed: ['open'],
  open: ['half-open'],
  'half-open': ['open', 'closed'],
};

describe('replay properties', () => {
  it('counts nest, transitions are legal, and replays are deterministic', () => {
    fc.assert(
      fc.property(settings, calls, fc.integer({ min: 0, max: 3 }), (s, cs, incidentsWanted) => {
        let t = 1_000;
        const list: TraceCall[] = cs.map((c) => {
          t += c.gap;
          return { t, d: c.d, outcome: c.fail ? 'failure' : 'success', name: 'p' };
        });
        const span = t - 1_000 + 1;
        const incidents = Array.from({ length: incidentsWanted }, (_, k) => ({
          start: 1_000 + (span * (2 * k)) / (2 * incidentsWanted + 1),
          end: 1_000 + (span * (2 * k + 1)) / (2 * incidentsWanted + 1),
        }));
        const trace = traceFromCalls(list, incidents);
        const c = candidate(s);
        const a = replay(trace, c);
        const b = replay(traceFromCalls(list, incidents), c);
        assert.deepEqual(a.metrics, b.metrics);
        assert.deepEqual(a.transitions, b.transitions);
        const m = a.metrics;
        assert.equal(m.sent + m.refused, trace.length);
        assert.ok(m.probes <= m.sent && m.letThroughFailures <= m.letThrough && m.letThrough <= m.sent);
        assert.ok(m.refusedHealthy <= m.refused);
        const opens = a.transitions.filter((x) => x.to === 'open').length;
        assert.ok(m.falseOpens <= opens);
        assert.ok(m.missed <= incidents.length);
        if (m.refused > 0) assert.ok(opens > 0, 'nothing is refused by a breaker that never opened');
        let state = 'closed';
        let last = Number.NEGATIVE_INFINITY;
        for (const x of a.transitions) {
          assert.ok(legal[state]!.includes(x.to), `${state} -> ${x.to}`);
          assert.ok(x.at >= last);
          state = x.to;
          last = x.at;
        }
      }),
      { numRuns: 300, seed: 20261201 },
    );
  });
});

/**
 * DeltaEncoder as a state machine: over random sequences of snapshots (breakers appearing,
 * disappearing, changing state, reason, rates), a client that starts from any full snapshot and
 * applies every later delta ends with exactly the encoder's current rows; and nothing is sent when
 * nothing shown changed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { CircuitState } from 'tripswitch';
import type { BreakerView, DashboardSnapshot } from './collector.js';
import { DeltaEncoder, type OverviewRow } from './delta.js';

const STATES: CircuitState[] = ['closed', 'open', 'half-open', 'isolated'];

const view = fc
  .record({
    name: fc.constantFrom('a', 'b', 'c', 'd', 'e'),
    state: fc.constantFrom(...STATES),
    reason: fc.option(fc.constantFrom('failure-rate', 'isolated', 'consecutive-failures'), {
      nil: undefined,
    }),
    detail: fc.option(fc.constantFrom('3 failures in a row', '6/10 calls failed (60.0%)'), {
      nil: undefined,
    }),
    next: fc.option(fc.integer({ min: 1, max: 1e6 }), { nil: undefined }),
    errorRate: fc.double({ min: 0, max: 1, noNaN: true }),
    rate: fc.double({ min: 0, max: 1e5, noNaN: true }),
    p99: fc.option(fc.double({ min: 0, max: 1e4, noNaN: true }), { nil: null }),
  })
  .map(
    (r) =>
      ({
        name: r.name,
        state: r.state,
        ...(r.reason === undefined ? {} : { reason: r.reason }),
        ...(r.detail === undefined ? {} : { reasonDetail: r.detail }),
        ...(r.next === undefined ? {} : { nextAttemptAt: r.next }),
        window: { kind: 'time', label: 'last 10 s', calls: 0, errorRate: r.errorRate, rate: r.rate },
        latency: { p50: null, p90: null, p99: r.p99, samples: 0 },
      }) as unknown as BreakerView,
  );

const snapshot = fc
  .tuple(fc.uniqueArray(view, { selector: (v) => v.name, maxLength: 5 }), fc.nat())
  .map(([breakers, at]) => ({ at, live: true, states: STATES, breakers }) as DashboardSnapshot);

function apply(rows: Map<number, Record<string, unknown>>, d: ReturnType<DeltaEncoder['delta']>): void {
  if (d === undefined) return;
  for (const id of d.del ?? []) rows.delete(id);
  for (const ch of d.set ?? []) {
    const row = rows.get(ch.i) ?? {};
    for (const [k, v] of Object.entries(ch)) {
      if (v === null && k !== 'p') delete row[k];
      else row[k] = v;
    }
    rows.set(ch.i, row);
  }
}

const byId = (rows: OverviewRow[]) => new Map(rows.map((r) => [r.i, { ...r } as Record<string, unknown>]));

test('deltas applied to any full snapshot rebuild the current rows exactly (fast-check, 300 runs)', () => {
  fc.assert(
    fc.property(fc.array(snapshot, { minLength: 1, maxLength: 30 }), fc.nat(), (snaps, joinAt) => {
      const enc = new DeltaEncoder();
      const join = joinAt % snaps.length;
      let client: Map<number, Record<string, unknown>> | undefined;
      for (const [k, s] of snaps.entries()) {
        const d = enc.delta(s);
        if (client !== undefined) apply(client, d);
        if (k === join) client = byId(enc.full().rows); // a page connecting mid-way
        if (client !== undefined) assert.deepEqual(client, byId(enc.full().rows));
        // Names are unique and every breaker of the snapshot has a row.
        assert.deepEqual(
          enc
            .full()
            .rows.map((r) => r.n)
            .sort(),
          s.breakers.map((b) => b.name).sort(),
        );
        // Encoding the same snapshot again sends nothing.
        assert.equal(enc.delta(s), undefined);
      }
    }),
    { numRuns: 300, seed: 20261201 },
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Sample } from './load.js';
import {
  fmtMs,
  fmtRatio,
  formatCarryOver,
  formatTable,
  formatTimeline,
  formatWrites,
  type PhaseDef,
  percentile,
  phaseStats,
  routeStats,
  type WriteStats,
} from './report.js';

const sample = (
  route: Sample['route'],
  start: number,
  latency: number,
  status = 200,
  fallback = false,
): Sample => ({
  route,
  start,
  latency,
  status,
  fallback,
});

test('percentile: nearest rank on fixed samples', () => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
  assert.equal(percentile(v, 50), 50);
  assert.equal(percentile(v, 99), 99);
  assert.equal(percentile(v, 100), 100);
  assert.equal(percentile(v, 1), 1);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([1, 2, 3, 4], 50), 2);
  assert.equal(percentile([1, 2, 3, 4], 99), 4);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.throws(() => percentile(v, 0), RangeError);
  assert.throws(() => percentile(v, 101), RangeError);
});

test('routeStats: counts, errors, fallbacks, rate and percentiles', () => {
  const s = [
    sample('orders', 0, 10),
    sample('orders', 1, 30, 200, true),
    sample('orders', 2, 20, 503),
    sample('orders', 3, 40, 0),
  ];
  const r = routeStats(s, 2_000);
  assert.deepEqual(r, {
    count: 4,
    ok: 2,
    errors: 2,
    fallbacks: 1,
    degraded: 0,
    errorsAfter: 0,
    fallbacksAfter: 0,
    rps: 2,
    p50: 20,
    p99: 40,
    max: 40,
  });
  // With the phase's end at 25 ms: the 503 (2 + 20) came in time; the fallback (1 + 30) and the
  // transport error (3 + 40) came after it.
  const late = routeStats([...s, { ...sample('orders', 4, 5, 200, true), degraded: true }], 2_000, 25);
  assert.equal(late.errorsAfter, 1);
  assert.equal(late.fallbacksAfter, 1);
  assert.equal(late.degraded, 1);
  const empty = routeStats([], 1_000);
  assert.equal(empty.count, 0);
  assert.equal(empty.rps, 0);
  assert.ok(Number.isNaN(empty.p99));
});

test('phaseStats: a sample belongs to the phase it was sent in, per route', () => {
  const phases: PhaseDef[] = [
    { name: 'healthy', mode: 'healthy', startMs: 0, endMs: 1_000 },
    { name: 'outage', mode: 'hanging', startMs: 1_000, endMs: 3_000 },
  ];
  const s = [
    sample('orders', 10, 5),
    sample('orders', 999, 9_000), // sent while healthy, answered late: still the healthy phase
    sample('profile', 500, 3),
    sample('orders', 1_000, 8_000),
    sample('profile', 2_999, 7_000),
    sample('profile', 3_000, 1), // after the last phase: not counted
  ];
  const st = phaseStats(s, phases);
  assert.equal(st.healthy!.orders.count, 2);
  assert.equal(st.healthy!.orders.max, 9_000);
  assert.equal(st.healthy!.profile.count, 1);
  assert.equal(st.outage!.orders.count, 1);
  assert.equal(st.outage!.orders.rps, 0.5);
  assert.equal(st.outage!.profile.count, 1);
  assert.equal(st.outage!.profile.p99, 7_000);
});

test('fmtMs and fmtRatio', () => {
  assert.equal(fmtMs(0.4321), '0.43 ms');
  assert.equal(fmtMs(12.4), '12 ms');
  assert.equal(fmtMs(2_104), '2.10 s');
  assert.equal(fmtMs(Number.NaN), '-');
  assert.equal(fmtRatio(10_000, 20), '500x');
  assert.equal(fmtRatio(30, 20), '1.5x');
  assert.equal(fmtRatio(Number.NaN, 20), '-');
  assert.equal(fmtRatio(10, 0), '-');
});

test('formatTimeline: one line per state change with t in seconds and the reason', () => {
  const text = formatTimeline([
    { t: 4_310, from: 'closed', to: 'open', reason: 'consecutive-failures' },
    { t: 5_312.7, from: 'open', to: 'half-open', reason: 'open-duration-elapsed' },
    { t: 5_600, from: 'half-open', to: 'closed', reason: '' },
  ]);
  assert.equal(
    text,
    '  t=4.31s  closed -> open  (consecutive-failures)\n' +
      '  t=5.31s  open -> half-open  (open-duration-elapsed)\n' +
      '  t=5.60s  half-open -> closed\n',
  );
  assert.equal(formatTimeline([]), '  (no state change)\n');
});

test('formatTable: a row per phase and route with both runs and the p99 ratio', () => {
  const phases: PhaseDef[] = [{ name: 'outage', mode: 'hanging', startMs: 0, endMs: 1_000 }];
  const u = { phases, stats: phaseStats([sample('orders', 0, 10_000), sample('profile', 0, 9_000)], phases) };
  const p = {
    phases,
    stats: phaseStats([sample('orders', 0, 20, 200, true), sample('profile', 0, 10)], phases),
  };
  const lines = formatTable(u, p).split('\n');
  const orders = lines.find((l) => l.startsWith('outage   /orders'));
  const profile = lines.find((l) => l.startsWith('outage   /profile'));
  assert.ok(orders && profile, lines.join('\n'));
  assert.match(orders, /10\.00 s .*\| .*20 ms .* 1 \| 500x$/);
  assert.match(profile, /9\.00 s .*\| .*10 ms .*\| 900x$/);
  // Only one run: the other side shows dashes.
  assert.match(formatTable(u, undefined), /\| +- +- +- +- +- \| -/);
});

test('formatTimeline with fold: a long run of failed probes keeps its first and last', () => {
  const e = [{ t: 1_000, from: 'closed', to: 'open', reason: 'consecutive-failures' }];
  for (let k = 0; k < 6; k++) {
    e.push({ t: 2_000 + k * 1_000, from: 'open', to: 'half-open', reason: 'open-duration-elapsed' });
    e.push({ t: 2_300 + k * 1_000, from: 'half-open', to: 'open', reason: 'probe-failed' });
  }
  e.push({ t: 8_000, from: 'open', to: 'half-open', reason: 'open-duration-elapsed' });
  e.push({ t: 8_010, from: 'half-open', to: 'closed', reason: 'probe-succeeded' });
  const folded = formatTimeline(e, { fold: true });
  assert.equal(
    folded,
    '  t=1.00s  closed -> open  (consecutive-failures)\n' +
      '  t=2.00s  open -> half-open  (open-duration-elapsed)\n' +
      '  t=2.30s  half-open -> open  (probe-failed)\n' +
      '  ... 4 more failed probes the same way, t=3.00s to 6.30s ...\n' +
      '  t=7.00s  open -> half-open  (open-duration-elapsed)\n' +
      '  t=7.30s  half-open -> open  (probe-failed)\n' +
      '  t=8.00s  open -> half-open  (open-duration-elapsed)\n' +
      '  t=8.01s  half-open -> closed  (probe-succeeded)\n',
  );
  assert.equal(formatTimeline(e).split('\n').length - 1, e.length, 'unfolded: one line per change');
  // Three failed probes or fewer are shown in full.
  assert.equal(formatTimeline(e.slice(0, 7), { fold: true }), formatTimeline(e.slice(0, 7)));
});

test('formatWrites: both runs side by side, the queue rows only for the run that has a queue', () => {
  const base: WriteStats = {
    submitted: 120,
    skipped: 85,
    acknowledged: 117,
    created: 117,
    accepted: 0,
    failed: 3,
    cutOff: 0,
    applied: 118,
    lost: 2,
    upstream: { received: 121, applied: 118, duplicates: 0 },
    p50: 4,
    p99: 10_000,
  };
  const prot: WriteStats = {
    ...base,
    submitted: 220,
    skipped: 0,
    acknowledged: 220,
    created: 130,
    accepted: 90,
    failed: 0,
    applied: 220,
    lost: 0,
    upstream: { received: 312, applied: 220, duplicates: 1 },
    p99: 301,
    queue: { queued: 90, replayed: 90, dead: 0, left: 0, drainWaitMs: 0 },
  };
  const lines = formatWrites(base, prot).split('\n');
  const row = (label: string) =>
    lines
      .find((l) => l.startsWith(label))
      ?.split(/ {2,}/)
      .slice(1);
  assert.deepEqual(row('due'), ['205', '220']);
  assert.deepEqual(row('submitted'), ['120', '220']);
  assert.deepEqual(row('applied by B'), ['118', '220']);
  assert.deepEqual(row('lost'), ['2', '0']);
  assert.deepEqual(row('  202 queued by A')?.slice(-2), ['0', '90']);
  assert.deepEqual(row('repeats B ignored'), ['0', '1']);
  assert.deepEqual(row('replayed to B'), ['-', '90']);
  assert.deepEqual(row('latency p50 / p99'), ['4.00 ms / 10.00 s', '4.00 ms / 301 ms']);
  assert.match(formatWrites(undefined, prot), /^submitted.* +- +220$/m);
});

test('formatCarryOver: the healthy-phase errors of requests still waiting when B began to hang are explained', () => {
  const phases: PhaseDef[] = [
    { name: 'healthy', mode: 'healthy', startMs: 0, endMs: 1_000 },
    { name: 'outage', mode: 'hanging', startMs: 1_000, endMs: 2_000 },
  ];
  const samples = [
    sample('orders', 100, 5),
    ...Array.from({ length: 10 }, (_, i) => sample('orders', 990 + i, 10_000, 504)),
    sample('orders', 1_500, 10, 504),
  ];
  const u = { label: 'unprotected', phases, stats: phaseStats(samples, phases) };
  const text = formatCarryOver([u, undefined], { unprotected: 'ended by the 10.00 s client timeout: 504' });
  assert.equal(
    text,
    'Errors and fallbacks in a phase whose answers came after it (a request counts in the phase it was sent in,\n' +
      'so requests still waiting on B when it changed are its first victims, counted in the phase before):\n' +
      '  unprotected healthy /orders err 10: sent while B was healthy, answered after B became hanging (ended by the 10.00 s client timeout: 504).\n',
  );
  assert.equal(
    formatCarryOver([{ label: 'x', phases, stats: phaseStats([sample('orders', 1, 1)], phases) }], {}),
    '',
  );
});

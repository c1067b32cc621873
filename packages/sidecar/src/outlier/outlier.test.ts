import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestClock } from 'tripswitch/testing';
import { Balancer } from '../lb/balancer.js';
import { OutlierDetector, type OutlierHost, outlierSettings } from './outlier.js';

const host = (address: string): OutlierHost => ({
  address,
  active: 0,
  consecutive5xx: 0,
  consecutiveGateway: 0,
  ejectedUntil: 0,
  ejections: 0,
  windowStart: 0,
  windowTotal: 0,
  windowFailures: 0,
});

test('ejection time grows base x count up to the max, and decays while healthy', () => {
  const clock = new TestClock(0);
  const hosts = [host('a'), host('b')];
  const d = new OutlierDetector(
    outlierSettings({
      consecutive_5xx: 1,
      base_ejection_time_ms: 100,
      max_ejection_time_ms: 250,
      max_ejection_percent: 50,
    }),
    clock,
    hosts,
  );
  const a = hosts[0]!;
  d.record(a, 'error-5xx');
  assert.equal(a.ejectedUntil, 100);
  clock.advance(100);
  assert.equal(d.isEjected(a, clock.now()), false);
  d.record(a, 'error-5xx');
  assert.equal(a.ejectedUntil, 100 + 200);
  clock.advance(200);
  d.record(a, 'error-5xx');
  assert.equal(a.ejectedUntil, 300 + 250, 'capped at max_ejection_time');
  assert.equal(a.ejections, 3);
  // healthy for 2 base periods after the ejection ended: two steps back, then one forward
  clock.advance(250 + 200);
  d.record(a, 'error-5xx');
  assert.equal(a.ejections, 2);
  assert.equal(d.ejectionsTotal, 4);
});

test('max_ejection_percent bounds ejections (at least one host)', () => {
  const clock = new TestClock(0);
  const hosts = [host('a'), host('b'), host('c'), host('d')];
  const d = new OutlierDetector(
    outlierSettings({ consecutive_5xx: 1, max_ejection_percent: 10 }),
    clock,
    hosts,
  );
  for (const h of hosts) d.record(h, 'error-5xx');
  assert.equal(d.ejectedCount(0), 1);
  assert.equal(d.ejectionsOverflow, 3);
});

test('gateway failures count on their own; a success resets both streaks', () => {
  const clock = new TestClock(0);
  const hosts = [host('a'), host('b')];
  const d = new OutlierDetector(
    outlierSettings({ consecutive_5xx: 10, consecutive_gateway_failure: 3, max_ejection_percent: 100 }),
    clock,
    hosts,
  );
  const a = hosts[0]!;
  d.record(a, 'gateway');
  d.record(a, 'gateway');
  d.record(a, 'success');
  d.record(a, 'gateway');
  d.record(a, 'error-5xx');
  d.record(a, 'gateway');
  assert.equal(a.ejectedUntil, 0);
  d.record(a, 'gateway');
  d.record(a, 'gateway');
  assert.ok(a.ejectedUntil > 0);
});

test('failure percentage over an interval ejects when the volume is reached', () => {
  const clock = new TestClock(0);
  const hosts = [host('a'), host('b')];
  const d = new OutlierDetector(
    outlierSettings({
      consecutive_5xx: 0,
      consecutive_gateway_failure: 0,
      failure_percentage_threshold: 50,
      failure_percentage_request_volume: 10,
      interval_ms: 1000,
      max_ejection_percent: 50,
    }),
    clock,
    hosts,
  );
  const [a, b] = hosts as [OutlierHost, OutlierHost];
  for (let i = 0; i < 10; i++) d.record(a, i % 2 === 0 ? 'error-5xx' : 'success');
  for (let i = 0; i < 5; i++) d.record(b, i === 0 ? 'error-5xx' : 'success');
  assert.equal(a.ejectedUntil, 0, 'judged at the end of the interval');
  clock.advance(1000);
  d.record(a, 'success');
  d.record(b, 'error-5xx');
  assert.ok(d.isEjected(a, clock.now()));
  assert.ok(!d.isEjected(b, clock.now()), 'b had too few requests');
});

test('balancer: round robin skips ejected hosts, panics when all are ejected; least_request prefers idle', () => {
  const hosts = [host('a'), host('b'), host('c')];
  const rr = new Balancer('round_robin', hosts);
  hosts[1]!.ejectedUntil = 100;
  const picks = Array.from({ length: 6 }, () => rr.pick(50).address);
  assert.ok(!picks.includes('b'));
  assert.ok(picks.includes('a') && picks.includes('c'));
  for (const h of hosts) h.ejectedUntil = 100;
  assert.ok(['a', 'b', 'c'].includes(rr.pick(50).address));
  for (const h of hosts) h.ejectedUntil = 0;
  let r = 0;
  const seq = [0, 0.5, 0.9, 0.1];
  const lr = new Balancer('least_request', hosts, () => seq[r++ % seq.length]!);
  hosts[0]!.active = 5;
  hosts[1]!.active = 1;
  assert.equal(lr.pick(0).address, 'b'); // a (5) vs b (1)
  hosts[2]!.active = 0;
  assert.equal(lr.pick(0).address, 'c'); // c (0) vs a (5)
});

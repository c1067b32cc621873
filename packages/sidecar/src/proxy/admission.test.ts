import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestClock } from 'tripswitch/testing';
import { resolveCluster } from '../config/resolve.js';
import { type Admittee, admit } from './admission.js';
import { Cluster } from './cluster.js';

const cluster = (clock: TestClock) =>
  new Cluster(
    resolveCluster({
      name: 'c',
      hosts: ['127.0.0.1:1'],
      circuit_breakers: { thresholds: [{ priority: 'default', max_requests: 1, max_pending_requests: 1 }] },
      breaker: { trip: { kind: 'consecutive', threshold: 1 } },
    }),
    clock,
  );

test('one admit() for requests and tunnels: a request may queue, a tunnel may not; refusals hold nothing', async () => {
  const clock = new TestClock();
  const c = cluster(clock);
  const lim = c.limits.default;
  const first: Admittee = { permit: undefined, waiter: undefined };
  assert.equal(admit(c, lim, first), 'admitted');
  assert.ok(first.permit);
  // A tunnel (no granted()) finds no slot: overflow, counted by the limiter, its permit neutral.
  const tunnel: Admittee = { permit: undefined, waiter: undefined };
  assert.equal(admit(c, lim, tunnel), 'overloaded');
  assert.equal(tunnel.permit, undefined);
  assert.equal(lim.pendingOverflow, 1);
  assert.equal(c.breaker!.stats().neutral, 1);
  // A request waits, and gets the slot when the first one leaves.
  let granted = 0;
  const req: Admittee = { permit: undefined, waiter: undefined, granted: () => granted++ };
  assert.equal(admit(c, lim, req), 'queued');
  assert.ok(req.waiter && req.permit);
  const full: Admittee = { permit: undefined, waiter: undefined, granted: () => {} };
  assert.equal(admit(c, lim, full), 'overloaded', 'the pending queue is full');
  assert.equal(lim.pendingOverflow, 2);
  first.permit!.success();
  lim.release();
  assert.equal(granted, 1);
  assert.deepEqual([lim.active, lim.pending], [1, 0]);
  // An open breaker refuses before the limiter: counted, nothing taken.
  req.permit!.failure(new Error('x'));
  lim.release();
  assert.equal(c.breaker!.state, 'open');
  const late: Admittee = { permit: undefined, waiter: undefined, granted: () => {} };
  assert.equal(admit(c, lim, late), 'circuit-open');
  assert.equal(c.counters.circuitOpen, 1);
  assert.equal(lim.active, 0);
  c.breaker!.dispose();
  await Promise.all(c.hosts.map((h) => h.pool.close()));
});

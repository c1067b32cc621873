/**
 * The dashboard on the sidecar's admin listener: the admin token covers it, and a cluster's
 * detail carries its hosts (with ejections) and its limits per priority.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAdmin } from '../admin/admin.js';
import { proxy, send, upstream } from '../proxy/test-helpers.js';
import type { BreakerView } from './collector.js';
import { createDashboardHandler } from './index.js';

const TOKEN = 'a-token-of-16-chars-or-more';

test('sidecar admin: the token covers every dashboard route; cluster detail has hosts and limits', async () => {
  const u = await upstream((_req, res) => res.end('ok'));
  const p = await proxy(
    [{ name: 'api', hosts: [u.host], breaker: { trip: { kind: 'consecutive', threshold: 100 } } }],
    [{ prefix: '/', cluster: 'api', host: '127.0.0.1' }],
  );
  const dashboard = createDashboardHandler(p.sidecar);
  const admin = await startAdmin(p.sidecar, { port: 0, token: TOKEN, dashboard });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await send(p.port, '/x')).status, 200);
    for (const path of [
      '/dashboard',
      '/dashboard/events',
      '/dashboard/snapshot.json',
      '/dashboard/breaker.json?name=api',
    ]) {
      const r = await send(admin.port, path);
      assert.equal(r.status, 401, `${path} without a token`);
      assert.doesNotMatch(r.body.toString(), /api|tripswitch breakers/, path);
      const wrong = await send(admin.port, path, { headers: { authorization: `Bearer ${TOKEN.slice(1)}x` } });
      assert.equal(wrong.status, 401, `${path} with a wrong token`);
    }
    assert.equal(dashboard.clients, 0, 'no stream was opened without the token');
    const page = await send(admin.port, '/dashboard', { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(page.status, 200);
    const r = await send(admin.port, '/dashboard/breaker.json?name=api', {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(r.status, 200);
    const v = JSON.parse(r.body.toString()) as BreakerView;
    assert.equal(v.name, 'api');
    assert.equal(v.counts.success, 3);
    assert.deepEqual(v.cluster!.hosts, [{ address: u.host, active: 0, ejected: false, ejections: 0 }]);
    assert.deepEqual(Object.keys(v.cluster!.limits).sort(), ['default', 'high']);
    assert.equal(v.cluster!.limits.default!.active, 0);
    assert.ok(v.cluster!.limits.default!.maxRequests > 0);
    const missing = await send(admin.port, '/dashboard/breaker.json?name=nope', {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(missing.status, 404);
  } finally {
    dashboard.dispose();
    await admin.close();
    await p.sidecar.shutdown(1000);
    await u.close();
  }
});

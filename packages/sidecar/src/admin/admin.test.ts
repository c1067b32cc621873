import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { proxy, send, upstream } from '../proxy/test-helpers.js';
import { isLoopback, startAdmin } from './admin.js';

test('loopback detection', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.ok(isLoopback(a), a);
  for (const a of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1']) assert.ok(!isLoopback(a), a);
});

test('/metrics counts requests by class and passes promtool check metrics', async (t) => {
  const u = await upstream((req, res) => {
    res.statusCode = req.url === '/bad' ? 500 : 200;
    res.end();
  });
  const p = await proxy(
    [{ name: 'api', hosts: [u.host], breaker: { trip: { kind: 'consecutive', threshold: 100 } } }],
    [{ prefix: '/', cluster: 'api', host: '127.0.0.1' }],
  );
  const admin = await startAdmin(p.sidecar, { port: 0 });
  try {
    for (let i = 0; i < 3; i++) await send(p.port, '/ok');
    await send(p.port, '/bad');
    await send(p.port, '/x', { headers: { host: 'unrouted' } });
    const r = await send(admin.port, '/metrics');
    assert.equal(r.status, 200);
    const text = r.body.toString();
    assert.match(text, /tripswitch_proxy_requests_total\{cluster="api"\} 4/);
    assert.match(text, /tripswitch_proxy_responses_total\{cluster="api",class="2xx"\} 3/);
    assert.match(text, /tripswitch_proxy_responses_total\{cluster="api",class="5xx"\} 1/);
    assert.match(text, /circuit_breaker_state\{service="api"\} 0/);
    assert.match(text, /tripswitch_proxy_no_route_total 1/);
    const breakers = JSON.parse((await send(admin.port, '/breakers')).body.toString());
    assert.equal(breakers[0].stats.failures, 1);
    assert.equal(breakers[0].stats.successes, 3);
    assert.equal((await send(admin.port, '/breakers/api/reset')).status, 405);
    assert.equal((await send(admin.port, '/nope')).status, 404);
    if (spawnSync('promtool', ['--version']).error) {
      t.diagnostic('promtool not installed: exposition format not checked');
      return;
    }
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
  } finally {
    await admin.close();
    await p.sidecar.shutdown(1000);
    await u.close();
  }
});

test('/metrics counts the garbage collections of the thread, every one of a batch', async () => {
  const u = await upstream((_req, res) => res.end());
  const p = await proxy(
    [{ name: 'api', hosts: [u.host] }],
    [{ prefix: '/', cluster: 'api', host: '127.0.0.1' }],
  );
  const admin = await startAdmin(p.sidecar, { port: 0 });
  const minor = async () => {
    const text = (await send(admin.port, '/metrics')).body.toString();
    return Number(/nodejs_gc_duration_seconds_count\{kind="minor"\} (\d+)/.exec(text)?.[1] ?? Number.NaN);
  };
  try {
    const before = await minor();
    // Short-lived garbage well past the young generation (16 MB semi-spaces by default): several
    // scavenges, reported to the observer in one batch after this synchronous loop.
    let keep: number[] = [];
    for (let i = 0; i < 400_000; i++)
      keep = [i, i + 1, i + 2, i + 3, i + 4, i + 5, i + 6, i + 7, i + 8, i + 9];
    assert.equal(keep.length, 10);
    for (let i = 0; i < 20 && (await minor()) < before + 2; i++) await new Promise((r) => setImmediate(r));
    assert.ok((await minor()) >= before + 2, `minor GCs counted: ${before} -> ${await minor()}`);
  } finally {
    await admin.close();
    await p.sidecar.shutdown(1000);
    await u.close();
  }
});

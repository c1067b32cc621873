import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { breakerRegistry } from 'tripswitch';
import { prometheusMetrics } from './index.js';

test('exposes state, calls and transitions of breakers added later', async () => {
  const registry = breakerRegistry();
  const register = new Registry();
  const m = prometheusMetrics({ registry, register });
  const b = registry.get('pay');
  await b.execute(async () => 1);
  await assert.rejects(b.execute(async () => Promise.reject(new Error('x'))));
  b.isolate();
  await assert.rejects(b.execute(async () => 1));
  const text = await register.metrics();
  assert.match(text, /circuit_breaker_state\{service="pay"\} 3/);
  assert.match(text, /circuit_breaker_failures_total\{service="pay"\} 1/);
  assert.match(text, /circuit_breaker_rejections_total\{service="pay"\} 1/);
  assert.match(text, /circuit_breaker_transitions_total\{service="pay",from="closed",to="isolated"\} 1/);
  assert.match(text, /circuit_breaker_call_duration_seconds_count\{service="pay",outcome="success"\} 1/);
  m.dispose();
  assert.equal((await register.metrics()).trim(), '');
});

test('promtool check metrics accepts the exposition', async (t) => {
  const { spawnSync } = await import('node:child_process');
  if (spawnSync('promtool', ['--version']).error) {
    t.skip('promtool missing (apt-get install -y prometheus)');
    return;
  }
  const registry = breakerRegistry();
  const register = new Registry();
  const m = prometheusMetrics({ registry, register });
  await registry.get('a').execute(async () => 1);
  const r = spawnSync('promtool', ['check', 'metrics'], { input: await register.metrics(), timeout: 10_000 });
  m.dispose();
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

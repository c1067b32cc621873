import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestClock } from 'tripswitch/testing';
import { memoryLogger, send, until, upstream } from './test-helpers.js';
import { Sidecar } from './server.js';

// The retry delay is tripswitch's fullJitterBackoff (Envoy's algorithm): random() x
// min(max, base x 2^(n-1)), on the Sidecar's clock and randomness. With random() = 0.5 and base
// 100 ms the first retry waits 50 ms, the second 100 ms (min(250, 200) x 0.5), nothing earlier.
test('retries wait random() x min(max, base x 2^(n-1)) on the sidecar clock', async () => {
  const clock = new TestClock();
  let n = 0;
  const u = await upstream((_req, res) => {
    n++;
    res.statusCode = n <= 2 ? 503 : 200;
    res.end(String(n));
  });
  const sidecar = new Sidecar(
    {
      listeners: [
        {
          port: 0,
          routes: [{ cluster: 'c', retry: { attempts: 2, backoff_base_ms: 100, backoff_max_ms: 250 } }],
        },
      ],
      clusters: [{ name: 'c', hosts: [u.host], breaker: { enabled: false } }],
    },
    { clock, logger: memoryLogger(), random: () => 0.5 },
  );
  await sidecar.start();
  try {
    const reply = send(sidecar.addresses()[0]!.port, '/');
    await until(() => u.hits === 1);
    await until(() => clock.pending === 1);
    clock.advance(49);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(u.hits, 1, 'no retry before 50 ms');
    clock.advance(1);
    await until(() => u.hits === 2);
    await until(() => clock.pending === 1);
    clock.advance(99);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(u.hits, 2, 'no second retry before 100 ms');
    clock.advance(1);
    const r = await reply;
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), '3');
    assert.equal(sidecar.clusters.get('c')!.counters.retries, 2);
  } finally {
    await sidecar.shutdown(1000);
    await u.close();
  }
});

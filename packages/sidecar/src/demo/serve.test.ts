import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { refusedPort } from '../proxy/test-helpers.js';
import { DemoPortError, demoMode, formatServices, startDemoServices } from './serve.js';

test('startDemoServices: B, the unprotected A and the protected A share one B; the block names every URL and the ab commands', async () => {
  const s = await startDemoServices({ port: 0, timeoutMs: 100 });
  try {
    const text = formatServices(s);
    for (const url of [s.upstream.url, s.unprotected.url, s.protected.url])
      assert.ok(text.includes(url), url);
    assert.ok(text.includes(`ab -n 100 -c 20 -l ${s.unprotected.url}/orders`));
    assert.ok(text.includes(`ab -n 100 -c 20 -l ${s.protected.url}/orders`));
    assert.ok(text.includes(`npx tripswitch demo mode hanging --port ${s.upstream.port}`));
    // Primed: the protected A has a last good answer from the start.
    assert.ok((s.protected.lastGood?.ageMs() ?? -1) >= 0);
    assert.equal(await demoMode('hanging', { port: s.upstream.port }), 'hanging');
    assert.equal(s.upstream.mode, 'hanging');
    assert.equal(await demoMode(undefined, { port: s.upstream.port }), 'hanging');
    const r = await fetch(`${s.protected.url}/orders`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-fallback-kind'), 'last-good');
    assert.equal(r.headers.get('x-last-good-ttl-ms'), '60000');
    await r.arrayBuffer();
    const m = await (await fetch(`${s.protected.url}/metrics`)).text();
    assert.match(m, /circuit_breaker_state\{service="service-b"/);
    assert.match(m, /demo_requests_total\{route="\/orders",status="200",outcome="last-good"/);
  } finally {
    await s.close();
  }
});

test('a taken port is an error that names it; nothing is left running', async () => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const port = (holder.address() as AddressInfo).port;
  try {
    await assert.rejects(startDemoServices({ port }), (err: unknown) => {
      assert.ok(err instanceof DemoPortError);
      assert.equal(err.code, 'EADDRINUSE');
      assert.equal(err.port, port);
      assert.match(
        err.message,
        new RegExp(`^port ${port} \\(Service B\\) on 127\\.0\\.0\\.1 is already in use; .*--port`),
      );
      return true;
    });
    const servers = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
    // A closed handle leaves the list on a later turn of the loop.
    for (let i = 0; i < 50 && servers() > 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(servers(), 1, 'only the holder is listening');
  } finally {
    await new Promise((resolve) => holder.close(resolve));
  }
  await assert.rejects(
    startDemoServices({ port: 65_534 }),
    /option "port" must be an integer in \[0, 65533\] \(three ports from it\), got 65534/,
  );
});

test('demoMode: an unknown mode lists the valid ones; nothing listening says how to start it', async () => {
  await assert.rejects(
    demoMode('sideways', { port: 3000 }),
    /^TypeError: unknown mode "sideways": the modes are healthy, slow, failing, hanging, recovering$/,
  );
  const { port, close } = await refusedPort();
  try {
    await assert.rejects(
      demoMode('hanging', { port }),
      new RegExp(
        `no Service B answers on 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\); start it with: npx tripswitch demo --keep-running --port ${port}`,
      ),
    );
  } finally {
    await close();
  }
});

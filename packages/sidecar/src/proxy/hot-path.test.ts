import assert from 'node:assert/strict';
import { ServerResponse } from 'node:http';
import { test } from 'node:test';
import { OwnResponse } from './own-server.js';
import { proxy, send, upstream } from './test-helpers.js';

// What the request path allocates per request shows in the proxy's GC count (bench:proxy prints it
// per 100k requests); these pin the allocations removed, on behaviour a test can see.

for (const server of ['node', 'own'] as const)
  test(`an exchange hears its response's close through one shared listener (no once() wrapper per request; http_server: ${server})`, async (t) => {
    const u = await upstream((_req, res) => res.end('ok'));
    // Either server's response class: ServerResponse (node) or the own server's OwnResponse (its
    // prototype's own once() shadows EventEmitter's for the test's length).
    const p = await proxy([{ name: 'api', hosts: [u.host] }], [], {
      extra: { listeners: [{ port: 0, routes: [{ prefix: '/api', cluster: 'api' }], http_server: server }] },
    });
    const proto = (server === 'node' ? ServerResponse.prototype : OwnResponse.prototype) as {
      once: (event: string | symbol, fn: never) => unknown;
    };
    const had = Object.getOwnPropertyDescriptor(proto, 'once');
    const once = proto.once;
    let closeOnce = 0;
    proto.once = function (this: unknown, event: string | symbol, fn: never) {
      if (event === 'close') closeOnce++;
      return once.call(this, event, fn);
    };
    const restore = () => {
      if (had) Object.defineProperty(proto, 'once', had);
      else delete (proto as { once?: unknown }).once;
    };
    t.after(restore);
    try {
      for (let i = 0; i < 3; i++) assert.equal((await send(p.port, '/api')).status, 200);
      assert.equal(closeOnce, 0);
      assert.equal(p.sidecar.inflight, 0);
      // Not vacuous: the patch sees this server's responses (a 404 is heard with once()).
      assert.equal((await send(p.port, '/other')).status, 404);
      assert.equal(closeOnce, 1);
    } finally {
      restore();
      await p.sidecar.shutdown(1000);
      await u.close();
    }
  });

test("a response's close heard twice settles its exchange once", async () => {
  let held: ServerResponse | undefined;
  const u = await upstream((_req, res) => res.end('ok'));
  // White-box (it patches node's ServerResponse): node's http server, whatever the test run's default.
  const p = await proxy([{ name: 'api', hosts: [u.host] }], [], {
    extra: { listeners: [{ port: 0, routes: [{ prefix: '/', cluster: 'api' }], http_server: 'node' }] },
  });
  const on = ServerResponse.prototype.on;
  ServerResponse.prototype.on = function (this: ServerResponse, event: string | symbol, fn: never) {
    if (event === 'close') held = this;
    return on.call(this, event, fn);
  } as typeof on;
  try {
    assert.equal((await send(p.port, '/')).status, 200);
  } finally {
    ServerResponse.prototype.on = on;
  }
  try {
    assert.ok(held);
    assert.equal(p.sidecar.inflight, 0);
    held.emit('close');
    assert.equal(p.sidecar.inflight, 0);
  } finally {
    await p.sidecar.shutdown(1000);
    await u.close();
  }
});

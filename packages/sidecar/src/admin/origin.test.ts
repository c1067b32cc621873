import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { proxy, send, upstream } from '../proxy/test-helpers.js';
import { type AdminServer, startAdmin } from './admin.js';

describe('admin API: cross-origin browser requests and DNS rebinding', () => {
  let admin: AdminServer;
  let tokenAdmin: AdminServer;
  let state: () => string;
  const cleanups: (() => Promise<unknown>)[] = [];
  before(async () => {
    const u = await upstream((_req, res) => res.end());
    const p = await proxy([{ name: 'api', hosts: [u.host] }], [{ prefix: '/', cluster: 'api' }]);
    admin = await startAdmin(p.sidecar, { port: 0, allowedHosts: ['admin.internal'] });
    tokenAdmin = await startAdmin(p.sidecar, { port: 0, token: 'a-token-of-16-chars-or-more' });
    state = () => p.sidecar.clusters.get('api')!.breaker!.state;
    cleanups.push(admin.close, tokenAdmin.close, () => p.sidecar.shutdown(1000), u.close);
  });
  after(async () => {
    for (const c of cleanups) await c();
  });

  const post = (port: number, headers: Record<string, string>, path = '/breakers/api/open') =>
    send(port, path, { method: 'POST', headers });

  test('a form POST from another site is refused (Origin), the breaker stays closed', async () => {
    const r = await post(admin.port, {
      origin: 'http://evil.example',
      'content-type': 'application/x-www-form-urlencoded',
    });
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /cross-origin/);
    assert.equal(state(), 'closed');
  });

  test('Sec-Fetch-Site cross-site and same-site (another port of localhost) are refused', async () => {
    for (const site of ['cross-site', 'same-site']) {
      const r = await post(admin.port, { 'sec-fetch-site': site });
      assert.equal(r.status, 403, site);
    }
    assert.equal(state(), 'closed');
  });

  test('Origin: null (sandboxed page, file://) and an origin on another port are refused', async () => {
    for (const origin of ['null', `http://127.0.0.1:${admin.port + 1}`, 'http://localhost:1']) {
      const r = await post(admin.port, { origin });
      assert.equal(r.status, 403, origin);
    }
    assert.equal(state(), 'closed');
  });

  test('DNS rebinding: a hostile Host is refused for every endpoint, even "same-origin"', async () => {
    const host = `rebind.evil.example:${admin.port}`;
    const r = await post(admin.port, { host, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' });
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /not a name of this admin/);
    assert.equal((await send(admin.port, '/breakers', { headers: { host } })).status, 403);
    assert.equal(state(), 'closed');
  });

  test('a token does not let a cross-origin browser request through', async () => {
    const r = await post(tokenAdmin.port, {
      authorization: 'Bearer a-token-of-16-chars-or-more',
      origin: 'http://evil.example',
    });
    assert.equal(r.status, 403);
    assert.equal(state(), 'closed');
  });

  test('same-origin pages, curl-like clients and allowed_hosts are served', async () => {
    const self = `127.0.0.1:${admin.port}`;
    let r = await post(admin.port, { host: self, origin: `http://${self}`, 'sec-fetch-site': 'same-origin' });
    assert.equal(r.status, 200);
    assert.equal(state(), 'isolated');
    r = await post(admin.port, {}, '/breakers/api/reset');
    assert.equal(r.status, 200);
    assert.equal(state(), 'closed');
    r = await post(
      admin.port,
      { host: `localhost:${admin.port}`, 'sec-fetch-site': 'none' },
      '/breakers/api/reset',
    );
    assert.equal(r.status, 200);
    assert.equal(
      (await send(admin.port, '/breakers', { headers: { host: 'admin.internal:9901' } })).status,
      200,
    );
    assert.equal(
      (await send(admin.port, '/metrics', { headers: { host: `[::1]:${admin.port}` } })).status,
      200,
    );
    // Reading is not a state change: a cross-site GET is answered (the browser keeps the body from the page).
    assert.equal(
      (await send(admin.port, '/healthz', { headers: { 'sec-fetch-site': 'cross-site' } })).status,
      200,
    );
  });
});

// The breaker store as a least-privilege Redis user (the ACL line docs/redis.md documents, read
// from the doc itself), and over TLS with a certificate authority made for the test.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { BreakerSnapshot } from 'tripswitch';
import type { BreakerHandle, CircuitState, StoreSession } from './contract.js';
import { documentedAcl } from './acl.test.util.js';
import { RedisServer, skipNoRedis, waitFor } from './server.test.util.js';
import { type RedisStore, type RedisStoreOptions, redisStore } from './store.js';

class FakeBreaker implements BreakerHandle {
  state: CircuitState = 'closed';
  session!: StoreSession;
  constructor(readonly name: string) {}
  snapshot(): BreakerSnapshot {
    return { state: this.state } as unknown as BreakerSnapshot;
  }
  applyRemote(u: { state: CircuitState }): void {
    this.state = u.state;
  }
  go(to: CircuitState, openMs?: number): void {
    const from = this.state;
    this.state = to;
    const openUntil = openMs === undefined ? undefined : Date.now() + openMs;
    this.session.onTransition({ from, to, reason: 'test', openUntil });
  }
}

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A throwaway CA, and a server certificate it signed for 127.0.0.1 (SAN), made with openssl now. */
function testCa(dir: string, tag: string): { caPem: string; cert: string; key: string; certPem: string } {
  const f = (n: string) => join(dir, `${tag}-${n}`);
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  run(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem')].concat([
      '-days',
      '1',
      '-subj',
      `/CN=tripswitch test CA ${tag}`,
    ]),
  );
  run(
    ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr')].concat([
      '-subj',
      '/CN=127.0.0.1',
    ]),
  );
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  run(
    [
      'x509',
      '-req',
      '-in',
      f('server.csr'),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
    ].concat(['-out', f('server.pem'), '-days', '1', '-extfile', f('ext.cnf')]),
  );
  return {
    caPem: readFileSync(f('ca.pem'), 'utf8'),
    cert: f('server.pem'),
    key: f('server.key'),
    certPem: readFileSync(f('server.pem'), 'utf8'),
  };
}

const unhandled: unknown[] = [];
process.on('unhandledRejection', (err) => unhandled.push(err));
after(() => assert.deepEqual(unhandled, [], 'no unhandled rejections'));

describe('least privilege and TLS', { skip: skipNoRedis }, () => {
  test('a user limited to the documented ACL runs everything the store does; ACL LOG stays empty', async () => {
    const server = await RedisServer.start();
    const admin = new Redis(server.url);
    const stores: RedisStore[] = [];
    try {
      const prefix = 'acltest';
      const rules = documentedAcl('standalone').map((r) =>
        r.replaceAll('tripswitch:', `${prefix}:`).replace('>CHANGE-ME', '>acl-pw'),
      );
      await admin.call('ACL', 'SETUSER', 'tripswitch', ...rules);
      await admin.call('ACL', 'LOG', 'RESET');
      const url = `redis://tripswitch:acl-pw@127.0.0.1:${server.port}`;
      const make = async (o: RedisStoreOptions) => {
        const s = redisStore({ url, prefix, logger: false, ...o });
        stores.push(s);
        assert.equal(await s.ready(5000), true, 'the limited user connects and subscribes');
        return s;
      };
      const opts: RedisStoreOptions = { mode: 'fleet', flushIntervalMs: 5, probeLeaseMs: 300 };
      const [a, b] = [await make(opts), await make(opts)];
      const attach = (s: RedisStore, name: string) => {
        const x = new FakeBreaker(name);
        x.session = s.attach(x);
        return x;
      };
      const [pa, pb] = [attach(a, 'pay'), attach(b, 'pay')];
      // publish + subscribe: an open, then manual states
      pa.go('open', 5000);
      await waitFor(() => pb.state === 'open', 'open propagated');
      pb.go('isolated');
      await waitFor(() => pa.state === 'isolated', 'isolate propagated');
      pa.go('closed');
      await waitFor(() => pb.state === 'closed', 'reset propagated');
      // the probe lease: taken, refused to the other, given back unclaimed
      pa.go('open', 1);
      await waitFor(() => pb.state === 'open', 'second open');
      await new Promise((r) => setTimeout(r, 20));
      pa.state = 'half-open';
      assert.equal(pa.session.requestProbe?.(), false);
      assert.equal(await pa.session.awaitProbe?.(), true, 'lease granted');
      assert.equal(pb.session.requestProbe?.(), false);
      assert.equal(await pb.session.awaitProbe?.(), false, 'lease held by the other');
      pa.go('closed');
      await waitFor(() => pb.state === 'closed', 'probe close propagated');
      // fleet counting, up to a fleet-wide trip
      const [fa, fb] = [attach(a, 'agg'), attach(b, 'agg')];
      for (let i = 0; i < 20; i++) fa.session.onOutcome?.('failure');
      await waitFor(() => fa.state === 'open' && fb.state === 'open', 'fleet trip');
      // close(): releases, unsubscribes
      await Promise.all(stores.splice(0).map((s) => s.close()));
      const log = (await admin.call('ACL', 'LOG')) as unknown[];
      assert.deepEqual(log, [], `commands refused to the documented user: ${JSON.stringify(log)}`);
      // and the ACL is in force: nothing outside the prefix
      const limited = new Redis(url, { maxRetriesPerRequest: 0 });
      try {
        await assert.rejects(limited.get('other:key'), /NOPERM/);
        await assert.rejects(limited.keys('*'), /NOPERM/);
      } finally {
        limited.disconnect();
      }
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      admin.disconnect();
      await server.stop();
    }
  });

  test('rediss:// verified against a CA made for the test; a client trusting another CA does not connect', async (t) => {
    if (!hasOpenssl()) {
      // CI installs openssl (.ci/run), and a skip fails the run there
      t.skip('openssl is not installed; TLS test skipped');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'tripswitch-ca-'));
    const stores: RedisStore[] = [];
    let server: RedisServer | undefined;
    try {
      const ca = testCa(dir, 'good');
      const other = testCa(dir, 'other');
      // certPem is what the harness trusts when it checks the server is up: the CA
      server = await RedisServer.start({
        password: 'tls-pw',
        tls: { cert: ca.cert, key: ca.key, certPem: ca.caPem },
      });
      assert.match(server.url, /^rediss:\/\//);
      // full verification: the CA, and the server's name (127.0.0.1 in its SAN)
      const opts = (caPem: string): RedisStoreOptions => ({
        url: server!.url,
        redisOptions: { tls: { ca: caPem } },
        prefix: 'tlstest',
        logger: false,
        commandTimeoutMs: 1000,
      });
      const [a, b] = [redisStore(opts(ca.caPem)), redisStore(opts(ca.caPem))];
      stores.push(a, b);
      assert.equal(await a.ready(5000), true, 'connected over verified TLS');
      assert.equal(await b.ready(5000), true);
      const ba = new FakeBreaker('tls');
      ba.session = a.attach(ba);
      const bb = new FakeBreaker('tls');
      bb.session = b.attach(bb);
      ba.go('open', 1000);
      await waitFor(() => bb.state === 'open', 'propagated over TLS');
      // a long connect timeout, so that on a loaded machine the first error is the certificate's
      const wrong = redisStore({ ...opts(other.caPem), commandTimeoutMs: 5000 });
      stores.push(wrong);
      const degraded = new Promise<unknown>((resolve) => wrong.on('degraded', ({ error }) => resolve(error)));
      assert.equal(await wrong.ready(1500), false, 'a server the client does not trust is not used');
      assert.match(String(await degraded), /certificate/i);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

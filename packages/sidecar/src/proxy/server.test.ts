import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, describe, test } from 'node:test';
import { TestClock } from 'tripswitch/testing';
import { startAdmin } from '../admin/admin.js';
import {
  proxy,
  raw,
  refusedPort,
  send,
  sendChunked,
  testHttpServer,
  until,
  upstream,
  withTestHttpServer,
} from './test-helpers.js';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('routing and headers', () => {
  test('routes by host and prefix, strips hop-by-hop headers, adds X-Forwarded-*', async () => {
    let seen: Record<string, string | string[] | undefined> = {};
    const a = await upstream((req, res) => {
      seen = req.headers;
      res.writeHead(200, { 'x-from': 'a', 'keep-alive': 'timeout=5', 'x-drop': '1', connection: 'x-drop' });
      res.end('a');
    });
    const b = await upstream((_req, res) => res.end('b'));
    const p = await proxy(
      [
        { name: 'a', hosts: [a.host] },
        { name: 'b', hosts: [b.host] },
      ],
      [
        { host: 'api.example', prefix: '/v1', cluster: 'a' },
        { prefix: '/v1', cluster: 'b' },
      ],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), a.close, b.close);
    const r = await send(p.port, '/v1/x', {
      headers: {
        host: 'api.example:8080',
        connection: 'keep-alive, x-secret',
        'x-secret': 'no',
        'proxy-authorization': 'Basic abc',
        te: 'trailers',
        'x-forwarded-for': '10.0.0.1',
        'x-keep': 'yes',
      },
    });
    assert.equal(r.body.toString(), 'a');
    assert.equal(r.headers['x-from'], 'a');
    assert.equal(r.headers['x-drop'], undefined);
    assert.equal(seen['x-secret'], undefined);
    assert.equal(seen['proxy-authorization'], undefined);
    assert.equal(seen.te, undefined);
    assert.equal(seen['x-keep'], 'yes');
    assert.equal(seen['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], 'api.example:8080');
    assert.equal(seen.host, 'api.example:8080');
    assert.equal((await send(p.port, '/v1/y', { headers: { host: 'other' } })).body.toString(), 'b');
    assert.equal((await send(p.port, '/nope')).status, 404);
  });
});

describe('circuit-breaking thresholds', () => {
  test('max_requests + max_pending_requests: waiters run in order, overflow is an immediate counted 503', async () => {
    const held: ServerResponse[] = [];
    const u = await upstream((_req, res) => held.push(res));
    const p = await proxy(
      [
        {
          name: 'c',
          hosts: [u.host],
          breaker: { enabled: false },
          circuit_breakers: {
            thresholds: [
              { priority: 'default', max_requests: 1, max_pending_requests: 1 },
              { priority: 'high', max_requests: 5 },
            ],
          },
        },
      ],
      [{ prefix: '/', cluster: 'c' }],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    const first = send(p.port, '/1');
    await until(() => held.length === 1);
    const second = send(p.port, '/2');
    const lim = p.sidecar.clusters.get('c')!.limits.default;
    await until(() => lim.pending === 1);
    const third = await send(p.port, '/3');
    assert.equal(third.status, 503);
    assert.equal(third.headers['x-tripswitch-overloaded'], 'true');
    assert.equal(lim.pendingOverflow, 1);
    // high priority has its own limits
    const high = send(p.port, '/h', { headers: { 'x-tripswitch-priority': 'high' } });
    await until(() => held.length === 2);
    held[1]!.end('high');
    assert.equal((await high).body.toString(), 'high');
    held[0]!.end('one');
    assert.equal((await first).body.toString(), 'one');
    await until(() => held.length === 3);
    held[2]!.end('two');
    assert.equal((await second).body.toString(), 'two');
    assert.equal(u.hits, 3);
    await until(() => lim.active === 0);
  });
});

describe('breaker', () => {
  test('opens on a failing upstream, then answers fast 503s without calling it; admin reset closes it', async () => {
    const u = await upstream((_req, res) => {
      res.statusCode = 500;
      res.end('boom');
    });
    const p = await proxy(
      [
        {
          name: 'flaky',
          hosts: [u.host],
          breaker: { trip: { kind: 'consecutive', threshold: 3 }, openDuration: 60_000 },
          outlier_detection: { consecutive_5xx: 0, consecutive_gateway_failure: 0 },
        },
      ],
      [{ prefix: '/', cluster: 'flaky' }],
    );
    const admin = await startAdmin(p.sidecar, { port: 0 });
    cleanups.push(() => p.sidecar.shutdown(1000), u.close, admin.close);
    for (let i = 0; i < 3; i++) assert.equal((await send(p.port, '/')).status, 500);
    for (let i = 0; i < 5; i++) {
      const r = await send(p.port, '/');
      assert.equal(r.status, 503);
      assert.equal(r.headers['x-tripswitch-circuit-open'], 'true');
    }
    assert.equal(u.hits, 3);
    const c = p.sidecar.clusters.get('flaky')!;
    assert.equal(c.breaker!.state, 'open');
    assert.equal(c.counters.circuitOpen, 5);
    const listing = JSON.parse((await send(admin.port, '/breakers')).body.toString());
    assert.equal(listing[0].state, 'open');
    const metrics = (await send(admin.port, '/metrics')).body.toString();
    assert.match(metrics, /tripswitch_proxy_circuit_open_total\{cluster="flaky"\} 5/);
    assert.match(metrics, /circuit_breaker_state\{service="flaky"\} 1/);
    assert.equal((await send(admin.port, '/breakers/flaky/reset', { method: 'POST' })).status, 200);
    assert.equal(c.breaker!.state, 'closed');
    assert.equal((await send(p.port, '/')).status, 500);
    assert.equal(u.hits, 4);
    assert.equal((await send(admin.port, '/breakers/flaky/open', { method: 'POST' })).status, 200);
    assert.equal((await send(p.port, '/')).status, 503);
    assert.equal((await send(admin.port, '/breakers/nope/open', { method: 'POST' })).status, 404);
  });

  test('seed 002 flood: ab -n 100 -c 20 against a failing upstream gets 503s once the breaker opens', async (t) => {
    if (spawnSync('ab', ['-V']).error) {
      t.skip('ab not installed (apt-get install -y apache2-utils)');
      return;
    }
    const u = await upstream((_req, res) => {
      res.statusCode = 500;
      res.end('down');
    });
    const p = await proxy(
      [
        {
          name: 'down',
          hosts: [u.host],
          breaker: { trip: { kind: 'consecutive', threshold: 5 }, openDuration: 60_000 },
        },
      ],
      [{ prefix: '/', cluster: 'down' }],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    const { spawn } = await import('node:child_process');
    const out = await new Promise<string>((resolve, reject) => {
      const ab = spawn('ab', ['-n', '100', '-c', '20', '-s', '10', `http://127.0.0.1:${p.port}/`]);
      let s = '';
      ab.stdout.on('data', (d) => {
        s += d;
      });
      ab.on('error', reject);
      ab.on('close', () => resolve(s));
    });
    assert.match(out, /Complete requests:\s+100/);
    assert.match(out, /Non-2xx responses:\s+100/);
    const c = p.sidecar.clusters.get('down')!;
    // At most the 5 that tripped it plus those already in flight (concurrency 20) reached the upstream.
    assert.ok(u.hits <= 25, `upstream hits ${u.hits}`);
    assert.equal(c.counters.circuitOpen + u.hits, 100);
    assert.ok(c.counters.circuitOpen >= 75);
  });
});

describe('outlier detection', () => {
  test('ejects a 5xx host for base x count, returns it after the ejection time (TestClock)', async () => {
    const clock = new TestClock();
    const good = await upstream((_req, res) => res.end('good'));
    const bad = await upstream((_req, res) => {
      res.statusCode = 500;
      res.end('bad');
    });
    const p = await proxy(
      [
        {
          name: 'pool',
          hosts: [good.host, bad.host],
          breaker: { enabled: false },
          outlier_detection: {
            consecutive_5xx: 2,
            base_ejection_time_ms: 1000,
            max_ejection_time_ms: 1500,
            max_ejection_percent: 50,
          },
        },
      ],
      [{ prefix: '/', cluster: 'pool' }],
      { clock },
    );
    cleanups.push(() => p.sidecar.shutdown(1000), good.close, bad.close);
    for (let i = 0; i < 4; i++) await send(p.port, '/');
    assert.equal(bad.hits, 2);
    const c = p.sidecar.clusters.get('pool')!;
    assert.equal(c.outlier.ejectionsTotal, 1);
    for (let i = 0; i < 6; i++) assert.equal((await send(p.port, '/')).body.toString(), 'good');
    assert.equal(bad.hits, 2);
    clock.advance(1000);
    for (let i = 0; i < 6; i++) await send(p.port, '/');
    assert.equal(bad.hits, 4);
    assert.equal(c.outlier.ejectionsTotal, 2);
    // second ejection: min(1000 x 2, 1500) = 1500 ms
    clock.advance(1499);
    for (let i = 0; i < 4; i++) await send(p.port, '/');
    assert.equal(bad.hits, 4);
    clock.advance(1);
    for (let i = 0; i < 4; i++) await send(p.port, '/');
    assert.ok(bad.hits > 4);
  });
});

describe('retries and fallbacks', () => {
  test('retries idempotent requests on retriable statuses, never a POST unless configured', async () => {
    let fails = 0;
    const u = await upstream((_req, res) => {
      if (fails > 0) {
        fails--;
        res.statusCode = 503;
        res.end('no');
        return;
      }
      res.end('ok');
    });
    const p = await proxy(
      [
        {
          name: 'r',
          hosts: [u.host],
          breaker: { enabled: false },
          outlier_detection: { consecutive_5xx: 0, consecutive_gateway_failure: 0 },
        },
      ],
      [
        {
          prefix: '/post-ok',
          cluster: 'r',
          retry: { attempts: 2, backoff_base_ms: 1, retry_non_idempotent: true },
        },
        { prefix: '/', cluster: 'r', retry: { attempts: 2, backoff_base_ms: 1, backoff_max_ms: 2 } },
      ],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    fails = 2;
    const r = await send(p.port, '/x');
    assert.equal(r.status, 200);
    assert.equal(u.hits, 3);
    fails = 1;
    const post = await send(p.port, '/x', { method: 'POST' });
    assert.equal(post.status, 503);
    assert.equal(u.hits, 4);
    fails = 1;
    assert.equal((await send(p.port, '/post-ok', { method: 'POST' })).status, 200);
    assert.equal(u.hits, 6);
    fails = 5;
    assert.equal((await send(p.port, '/x')).status, 503);
    assert.equal(u.hits, 9);
    assert.equal(p.sidecar.clusters.get('r')!.counters.retries, 5);
  });

  test('a connect failure on one host is retried on another; the dead host is ejected', async () => {
    const dead = await refusedPort();
    cleanups.push(dead.close);
    const live = await upstream((_req, res) => res.end('live'));
    const p = await proxy(
      [
        {
          name: 'two',
          hosts: [dead.host, live.host],
          breaker: { enabled: false },
          outlier_detection: { consecutive_gateway_failure: 1, max_ejection_percent: 50 },
        },
      ],
      [{ prefix: '/', cluster: 'two', retry: { attempts: 1, backoff_base_ms: 0 } }],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), live.close);
    for (let i = 0; i < 4; i++) assert.equal((await send(p.port, '/')).body.toString(), 'live');
    const c = p.sidecar.clusters.get('two')!;
    assert.equal(c.counters.connectFailures, 1);
    assert.equal(c.counters.retries, 1);
    assert.equal(c.outlier.ejectionsTotal, 1);
    assert.equal(live.hits, 4);
  });

  test('static fallback and last good GET response', async () => {
    let fail = false;
    let version = 1;
    const u = await upstream((_req, res) => {
      if (fail) {
        res.statusCode = 500;
        res.end('err');
      } else res.end(`v${version}`);
    });
    const p = await proxy(
      [
        {
          name: 'f',
          hosts: [u.host],
          breaker: { enabled: false },
          outlier_detection: { consecutive_5xx: 0 },
        },
      ],
      [
        { prefix: '/static', cluster: 'f', fallback: { status: 200, body: '{"cached":false}' } },
        { prefix: '/', cluster: 'f', fallback: { last_good: true } },
      ],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    assert.equal((await send(p.port, '/item')).body.toString(), 'v1');
    version = 2;
    fail = true;
    const r = await send(p.port, '/item');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'v1');
    assert.match(String(r.headers['x-tripswitch-fallback']), /last-good/);
    assert.equal((await send(p.port, '/other')).status, 500);
    const s = await send(p.port, '/static');
    assert.equal(s.body.toString(), '{"cached":false}');
    assert.equal(s.headers['x-tripswitch-fallback'], 'upstream-500');
  });
});

describe('retries of requests with a body (buffer_body_bytes)', () => {
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  /** An upstream that records the sha256 of every body it gets and answers 503 while `fails > 0`. */
  async function recorder() {
    const state = { fails: 0, seen: [] as string[], framing: [] as string[] };
    const u = await upstream((req, res) => {
      const te = req.headers['transfer-encoding'];
      state.framing.push(te !== undefined ? `te:${te}` : `cl:${req.headers['content-length']}`);
      const h = createHash('sha256');
      req.on('data', (c: Buffer) => h.update(c));
      req.on('end', () => {
        state.seen.push(h.digest('hex'));
        if (state.fails > 0) {
          state.fails--;
          res.statusCode = 503;
          res.end('no');
        } else res.end('ok');
      });
    });
    return Object.assign(u, { state });
  }

  async function rig(retry: NonNullable<Parameters<typeof proxy>[1][number]['retry']>, timeoutMs?: number) {
    const u = await recorder();
    const p = await proxy(
      [
        {
          name: 'b',
          hosts: [u.host],
          breaker: { enabled: false },
          outlier_detection: { consecutive_5xx: 0, consecutive_gateway_failure: 0 },
        },
      ],
      [{ prefix: '/', cluster: 'b', retry, ...(timeoutMs ? { timeout_ms: timeoutMs } : {}) }],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    return { u, p, counters: p.sidecar.clusters.get('b')!.counters };
  }

  test('a PUT with a 10 KB body is retried after a 503 with the identical bytes', async () => {
    const { u, p, counters } = await rig({ attempts: 2, backoff_base_ms: 1 });
    const body = randomBytes(10 * 1024);
    u.state.fails = 1;
    const r = await send(p.port, '/put', { method: 'PUT', body });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'ok');
    assert.deepEqual(u.state.seen, [sha(body), sha(body)]);
    assert.equal(counters.retries, 1);
    // DELETE with a body too
    u.state.fails = 2;
    const body2 = randomBytes(3000);
    // (node's client sends a DELETE body without Content-Length unless told)
    const del = await send(p.port, '/del', {
      method: 'DELETE',
      body: body2,
      headers: { 'content-length': String(body2.length) },
    });
    assert.equal(del.status, 200);
    assert.deepEqual(u.state.seen.slice(2), [sha(body2), sha(body2), sha(body2)]);
  });

  test('a connect failure on one host is retried on another with the same body', async () => {
    const dead = await refusedPort();
    cleanups.push(dead.close);
    const live = await recorder();
    const p = await proxy(
      [
        {
          name: 'two',
          hosts: [dead.host, live.host],
          breaker: { enabled: false },
          outlier_detection: { consecutive_gateway_failure: 1, max_ejection_percent: 50 },
        },
      ],
      [{ prefix: '/', cluster: 'two', retry: { attempts: 1, backoff_base_ms: 0 } }],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), live.close);
    const sent: string[] = [];
    // Round robin: of any two requests one goes first to the dead host.
    for (let i = 0; i < 2; i++) {
      const body = randomBytes(10 * 1024);
      sent.push(sha(body));
      const r = await send(p.port, '/', { method: 'PUT', body });
      assert.equal(r.status, 200);
    }
    const c = p.sidecar.clusters.get('two')!.counters;
    assert.equal(c.connectFailures, 1);
    assert.equal(c.retries, 1);
    assert.deepEqual(live.state.seen, sent);
  });

  test('a POST is not retried unless retry_non_idempotent; with it, the same body is replayed', async () => {
    const plainRig = await rig({ attempts: 2, backoff_base_ms: 1 });
    const body = randomBytes(10 * 1024);
    plainRig.u.state.fails = 1;
    const r = await send(plainRig.p.port, '/', { method: 'POST', body });
    assert.equal(r.status, 503);
    assert.equal(plainRig.u.hits, 1);
    assert.deepEqual(plainRig.u.state.seen, [sha(body)]);
    assert.equal(plainRig.counters.retries, 0);

    const { u, p, counters } = await rig({ attempts: 2, backoff_base_ms: 1, retry_non_idempotent: true });
    u.state.fails = 1;
    assert.equal((await send(p.port, '/', { method: 'POST', body })).status, 200);
    assert.equal(u.hits, 2);
    assert.deepEqual(u.state.seen, [sha(body), sha(body)]);
    assert.equal(counters.retries, 1);
  });

  test('a body over the limit streams and is not retried; one at the limit is', async () => {
    const { u, p, counters } = await rig({ attempts: 2, backoff_base_ms: 1, buffer_body_bytes: 1024 });
    const big = randomBytes(4096);
    u.state.fails = 1;
    const r = await send(p.port, '/', { method: 'PUT', body: big });
    assert.equal(r.status, 503);
    assert.equal(u.hits, 1);
    assert.deepEqual(u.state.seen, [sha(big)]);
    const exact = randomBytes(1024);
    u.state.fails = 1;
    assert.equal((await send(p.port, '/', { method: 'PUT', body: exact })).status, 200);
    assert.deepEqual(u.state.seen.slice(1), [sha(exact), sha(exact)]);
    assert.equal(counters.retries, 1);
  });

  test('a chunked PUT that fits is retried after a 503 with the identical bytes, sent with a Content-Length', async () => {
    const { u, p, counters } = await rig({ attempts: 2, backoff_base_ms: 1 });
    const pieces = [randomBytes(10_000), randomBytes(1), randomBytes(20_000), randomBytes(5000)];
    const body = Buffer.concat(pieces);
    u.state.fails = 1;
    const r = await sendChunked(p.port, '/put', { pieces });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'ok');
    assert.deepEqual(u.state.seen, [sha(body), sha(body)]);
    assert.deepEqual(u.state.framing, [`cl:${body.length}`, `cl:${body.length}`]);
    assert.equal(counters.retries, 1);
    // exactly at the limit is still buffered; an empty chunked body too
    const at = await rig({ attempts: 2, backoff_base_ms: 1, buffer_body_bytes: 1024 });
    const exact = [randomBytes(1000), randomBytes(24)];
    at.u.state.fails = 1;
    assert.equal((await sendChunked(at.p.port, '/', { pieces: exact })).status, 200);
    assert.deepEqual(at.u.state.seen, [sha(Buffer.concat(exact)), sha(Buffer.concat(exact))]);
    at.u.state.fails = 1;
    assert.equal((await sendChunked(at.p.port, '/', { pieces: [Buffer.alloc(0)] })).status, 200);
    assert.deepEqual(at.u.state.framing.slice(2), ['cl:0', 'cl:0']);
    assert.equal(at.counters.retries, 2);
  });

  for (const [name, limit, pieceSize] of [
    ['default limit, 16 KB chunks', undefined, 16 * 1024],
    ['1 KB limit, one 1 MB chunk', 1024, 1 << 20],
  ] as const) {
    test(`a chunked PUT over the limit streams byte-exact (1 MB sha256) and is not retried (${name})`, async () => {
      const { u, p, counters } = await rig({
        attempts: 2,
        backoff_base_ms: 1,
        ...(limit !== undefined ? { buffer_body_bytes: limit } : {}),
      });
      const body = randomBytes(1 << 20);
      const pieces: Buffer[] = [];
      for (let i = 0; i < body.length; i += pieceSize) pieces.push(body.subarray(i, i + pieceSize));
      u.state.fails = 1;
      const r = await sendChunked(p.port, '/', { pieces });
      assert.equal(r.status, 503);
      assert.equal(u.hits, 1);
      assert.deepEqual(u.state.seen, [sha(body)]);
      assert.deepEqual(u.state.framing, ['te:chunked']);
      assert.equal(counters.retries, 0);
      // and one that succeeds arrives whole as well
      const again = randomBytes(1 << 20);
      const r2 = await sendChunked(p.port, '/', {
        pieces: [again.subarray(0, 70_000), again.subarray(70_000)],
      });
      assert.equal(r2.status, 200);
      assert.deepEqual(u.state.seen.slice(1), [sha(again)]);
    });
  }

  test('a chunked PUT over the limit that waits for a limiter slot arrives byte-exact once admitted', async () => {
    const held: ServerResponse[] = [];
    const seen: string[] = [];
    const u = await upstream((req, res) => {
      if (req.url === '/hold') {
        held.push(res);
        return;
      }
      const h = createHash('sha256');
      req.on('data', (c: Buffer) => h.update(c));
      req.on('end', () => {
        seen.push(h.digest('hex'));
        res.end('ok');
      });
    });
    const p = await proxy(
      [
        {
          name: 'c',
          hosts: [u.host],
          breaker: { enabled: false },
          circuit_breakers: { thresholds: [{ priority: 'default', max_requests: 1 }] },
        },
      ],
      [{ prefix: '/', cluster: 'c', retry: { attempts: 2, backoff_base_ms: 1 } }],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    const lim = p.sidecar.clusters.get('c')!.limits.default;
    const hold = send(p.port, '/hold');
    await until(() => held.length === 1);
    const body = randomBytes(1 << 20);
    const pieces: Buffer[] = [];
    for (let i = 0; i < body.length; i += 8192) pieces.push(body.subarray(i, i + 8192));
    const put = sendChunked(p.port, '/put', { pieces });
    // over the limit (its first 64 KB read), then queued behind /hold with the rest paused
    await until(() => lim.pending === 1);
    held[0]!.end('held');
    assert.equal((await hold).status, 200);
    const r = await put;
    assert.equal(r.status, 200);
    assert.deepEqual(seen, [sha(body)]);
  });

  test('a chunked POST is never retried unless retry_non_idempotent', async () => {
    const plainRig = await rig({ attempts: 2, backoff_base_ms: 1 });
    const pieces = [randomBytes(3000), randomBytes(3000)];
    const body = Buffer.concat(pieces);
    plainRig.u.state.fails = 1;
    const r = await sendChunked(plainRig.p.port, '/', { method: 'POST', pieces });
    assert.equal(r.status, 503);
    assert.equal(plainRig.u.hits, 1);
    assert.deepEqual(plainRig.u.state.seen, [sha(body)]);
    assert.equal(plainRig.counters.retries, 0);

    const { u, p, counters } = await rig({ attempts: 2, backoff_base_ms: 1, retry_non_idempotent: true });
    u.state.fails = 1;
    assert.equal((await sendChunked(p.port, '/', { method: 'POST', pieces })).status, 200);
    assert.deepEqual(u.state.seen, [sha(body), sha(body)]);
    assert.equal(counters.retries, 1);
  });

  test('a chunked body over the limit refused locally (circuit open) is drained: the connection serves the next request', async () => {
    const u = await recorder();
    const p = await proxy(
      [
        {
          name: 'c',
          hosts: [u.host],
          outlier_detection: { consecutive_5xx: 0, consecutive_gateway_failure: 0 },
        },
      ],
      [{ prefix: '/', cluster: 'c', retry: { attempts: 2, buffer_body_bytes: 1024 } }],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    p.sidecar.clusters.get('c')!.breaker!.isolate();
    const big = randomBytes(200_000).toString('hex').slice(0, 200_000);
    const r = await raw(
      p.port,
      `PUT /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n` +
        'GET /b HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
      5000,
    );
    assert.equal(r.closed, true);
    assert.equal(r.data.match(/HTTP\/1\.1 503 /g)?.length, 2);
    assert.equal(u.hits, 0);
  });

  test('buffer_body_bytes: 0 disables buffering (body requests are not retried)', async () => {
    const { u, p, counters } = await rig({ attempts: 2, backoff_base_ms: 1, buffer_body_bytes: 0 });
    const body = randomBytes(10 * 1024);
    u.state.fails = 1;
    assert.equal((await send(p.port, '/', { method: 'PUT', body })).status, 503);
    assert.equal(u.hits, 1);
    assert.equal(counters.retries, 0);
    // requests without a body still are
    u.state.fails = 1;
    assert.equal((await send(p.port, '/')).status, 200);
    assert.equal(counters.retries, 1);
  });

  test('a client that aborts while its body is being buffered never reaches the upstream', async () => {
    const { u, p, counters } = await rig({ attempts: 2, backoff_base_ms: 1 });
    const client = connect(p.port, '127.0.0.1');
    client.on('error', () => {});
    client.write('PUT /x HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n0123456789');
    await until(() => p.sidecar.inflight === 1);
    client.destroy();
    await until(() => p.sidecar.inflight === 0);
    assert.equal(counters.clientAborts, 1);
    assert.equal(u.hits, 0);
    // the route still works
    const body = randomBytes(100);
    assert.equal((await send(p.port, '/', { method: 'PUT', body })).status, 200);
    assert.deepEqual(u.state.seen, [sha(body)]);
  });

  test('a client that aborts mid-way through a chunked body being buffered: no upstream request, no listener or timer left', async () => {
    const u = await recorder();
    const clock = new TestClock();
    const p = await proxy(
      [
        {
          name: 'b',
          hosts: [u.host],
          breaker: { enabled: false },
          outlier_detection: { consecutive_5xx: 0, consecutive_gateway_failure: 0 },
        },
      ],
      [{ prefix: '/', cluster: 'b', retry: { attempts: 2, backoff_base_ms: 0 } }],
      { clock },
    );
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    const counters = p.sidecar.clusters.get('b')!.counters;
    const timersBefore = clock.pending;
    let seenReq: import('node:http').IncomingMessage | undefined;
    const onStart = (m: unknown) => {
      seenReq = (m as { request: import('node:http').IncomingMessage }).request;
    };
    subscribe('http.server.request.start', onStart);
    try {
      const client = connect(p.port, '127.0.0.1');
      client.on('error', () => {});
      client.write('PUT /x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n');
      await until(() => p.sidecar.inflight === 1 && clock.pending === timersBefore + 1);
      assert.ok(seenReq);
      assert.equal(seenReq.listenerCount('data'), 1);
      client.destroy();
      await until(() => p.sidecar.inflight === 0);
      assert.equal(counters.clientAborts, 1);
      assert.equal(u.hits, 0);
      assert.equal(clock.pending, timersBefore);
      assert.equal(seenReq.listenerCount('data'), 0);
      assert.equal(seenReq.listenerCount('end'), 0);
    } finally {
      unsubscribe('http.server.request.start', onStart);
    }
    // the route still works
    const pieces = [randomBytes(100), randomBytes(100)];
    assert.equal((await sendChunked(p.port, '/', { pieces })).status, 200);
    assert.deepEqual(u.state.seen, [sha(Buffer.concat(pieces))]);
  });

  test('a client that stalls while its body is buffered gets 408 after the route timeout', async () => {
    const { u, p } = await rig({ attempts: 2, backoff_base_ms: 1 }, 100);
    const r = await raw(p.port, 'PUT /x HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n0123456789');
    assert.match(r.data, /^HTTP\/1\.1 408 /);
    assert.equal(r.closed, true);
    assert.equal(u.hits, 0);
  });
});

describe('upstream errors', () => {
  test('reset -> 502, timeout -> 504, connect failure -> 503', async () => {
    const u = await upstream((req, res) => {
      if (req.url === '/reset') req.socket.destroy();
      else if (req.url === '/slow') setTimeout(() => res.end('late'), 2000).unref();
      else res.end('ok');
    });
    const dead = await refusedPort();
    cleanups.push(dead.close);
    const p = await proxy(
      [
        { name: 'u', hosts: [u.host], breaker: { enabled: false } },
        { name: 'dead', hosts: [dead.host], breaker: { enabled: false } },
      ],
      [
        { prefix: '/dead', cluster: 'dead' },
        { prefix: '/', cluster: 'u', timeout_ms: 100 },
      ],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    const r = await send(p.port, '/reset');
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-tripswitch-upstream-error'], 'reset');
    assert.equal((await send(p.port, '/slow')).status, 504);
    assert.equal((await send(p.port, '/dead')).status, 503);
    assert.equal((await send(p.port, '/fine')).status, 200);
  });

  test('idle upstream connections close after idle_timeout_ms', async () => {
    let closed = 0;
    const u = await upstream((_req, res) => res.end('x'));
    u.server.on('connection', (sock) => sock.on('close', () => closed++));
    const p = await proxy(
      [{ name: 'u', hosts: [u.host], idle_timeout_ms: 50 }],
      [{ prefix: '/', cluster: 'u' }],
    );
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    assert.equal((await send(p.port, '/')).status, 200);
    // Node upstreams hint "Keep-Alive: timeout=5", which undici would keep ~3 s: 50 ms must win.
    await until(() => closed === 1, 2000);
  });

  test('a client abort cancels the upstream request', async () => {
    let upstreamClosed = false;
    let arrived = false;
    const u = await upstream((req, res) => {
      arrived = true;
      res.on('close', () => {
        upstreamClosed = !res.writableFinished;
      });
      void req;
    });
    const p = await proxy([{ name: 'u', hosts: [u.host] }], [{ prefix: '/', cluster: 'u' }]);
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    const client = connect(p.port, '127.0.0.1');
    client.on('error', () => {});
    client.write('GET /hang HTTP/1.1\r\nhost: x\r\n\r\n');
    await until(() => arrived);
    client.destroy(); // the client gives up before any response
    await until(() => upstreamClosed);
    await until(() => p.sidecar.inflight === 0);
    assert.equal(p.sidecar.clusters.get('u')!.counters.clientAborts, 1);
  });
});

describe('bodies', () => {
  test('10 MB random bodies stream byte-exact both ways (sha256)', async () => {
    const down = randomBytes(10 * 1024 * 1024);
    const downSum = createHash('sha256').update(down).digest('hex');
    const u = await upstream((req, res) => {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      req.on('end', () => {
        res.writeHead(200, { 'x-got-sha256': h.digest('hex'), 'x-got-bytes': String(n) });
        // chunked, in uneven pieces
        for (let i = 0; i < down.length; i += 65_537) res.write(down.subarray(i, i + 65_537));
        res.end();
      });
    });
    const p = await proxy([{ name: 'u', hosts: [u.host] }], [{ prefix: '/', cluster: 'u' }]);
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    const up = randomBytes(10 * 1024 * 1024 + 17);
    const r = await send(p.port, '/upload', { method: 'POST', body: up, timeoutMs: 30_000 });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-got-bytes'], String(up.length));
    assert.equal(r.headers['x-got-sha256'], createHash('sha256').update(up).digest('hex'));
    assert.equal(r.body.length, down.length);
    assert.equal(createHash('sha256').update(r.body).digest('hex'), downSum);
  });
});

describe('request smuggling and malformed requests (raw sockets)', () => {
  const cases: [string, string][] = [
    [
      'Content-Length with Transfer-Encoding',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    [
      'conflicting Content-Length',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
    ],
    [
      'duplicate Content-Length',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd',
    ],
    ['invalid header name', 'GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n'],
    ['invalid header value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n'],
    ['oversized headers', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
    ['missing Host on HTTP/1.1', 'GET / HTTP/1.1\r\nX-A: 1\r\n\r\n'],
    ['space before the header colon', 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n'],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n'],
    [
      'bad chunk size',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
    ],
    [
      'Transfer-Encoding not ending in chunked',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
    ],
  ];
  for (const [name, text] of cases) {
    test(`${name} -> ${name === 'oversized headers' ? 431 : 400} and close, nothing sent upstream`, async () => {
      const u = await upstream((_req, res) => res.end('reached'));
      const p = await proxy([{ name: 'u', hosts: [u.host] }], [{ prefix: '/', cluster: 'u' }]);
      try {
        const r = await raw(p.port, text);
        // Too-large headers are 431 (RFC 6585), as Envoy answers; every other malformed head is 400.
        assert.match(r.data, name === 'oversized headers' ? /^HTTP\/1\.1 431 / : /^HTTP\/1\.1 400 /);
        assert.ok(r.closed, 'connection closed');
        assert.equal(u.hits, 0);
      } finally {
        await p.sidecar.shutdown(1000);
        await u.close();
      }
    });
  }
});

describe('operations', () => {
  test('reload swaps routes without dropping in-flight requests', async () => {
    const held: ServerResponse[] = [];
    const a = await upstream((_req, res) => held.push(res));
    const b = await upstream((_req, res) => res.end('b'));
    const p = await proxy([{ name: 'a', hosts: [a.host] }], [{ prefix: '/', cluster: 'a' }]);
    cleanups.push(() => p.sidecar.shutdown(1000), a.close, b.close);
    const inflight = send(p.port, '/slow');
    await until(() => held.length === 1);
    await p.sidecar.reload(
      withTestHttpServer({
        listeners: [{ port: 0, routes: [{ prefix: '/', cluster: 'b' }] }],
        clusters: [{ name: 'b', hosts: [b.host] }],
      }),
    );
    assert.equal((await send(p.port, '/new')).body.toString(), 'b');
    held[0]!.end('a-done');
    const r = await inflight;
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'a-done');
  });

  test("a reload that changes a listener's http_server is refused (restart), the old one stays", async () => {
    const a = await upstream((_req, res) => res.end('a'));
    const p = await proxy([{ name: 'a', hosts: [a.host] }], [{ prefix: '/', cluster: 'a' }]);
    cleanups.push(() => p.sidecar.shutdown(1000), a.close);
    const l = p.config.listeners[0]!;
    // What the listener runs (resolved: the field may be left to the default).
    const was = p.sidecar.resolved.listeners[0]!.http_server;
    assert.equal(was, testHttpServer());
    const other = was === 'own' ? 'node' : 'own';
    await assert.rejects(p.sidecar.reload({ ...p.config, listeners: [{ ...l, http_server: other }] }), {
      message: 'listener 127.0.0.1:0: changing http_server needs a restart (or a new port)',
    });
    assert.equal((await send(p.port, '/')).body.toString(), 'a');
    // Naming what it already runs is no change.
    await p.sidecar.reload({ ...p.config, listeners: [{ ...l, http_server: was }] });
    assert.equal((await send(p.port, '/')).body.toString(), 'a');
  });

  test('a reload whose new listener cannot bind changes nothing', async () => {
    const a = await upstream((_req, res) => res.end('a'));
    const b = await upstream((_req, res) => res.end('b'));
    const p = await proxy([{ name: 'a', hosts: [a.host] }], [{ prefix: '/', cluster: 'a' }]);
    cleanups.push(() => p.sidecar.shutdown(1000), a.close, b.close);
    await assert.rejects(
      p.sidecar.reload(
        withTestHttpServer({
          listeners: [
            { port: 0, routes: [{ prefix: '/', cluster: 'b' }] },
            { port: b.port, routes: [{ prefix: '/', cluster: 'b' }] },
          ],
          clusters: [{ name: 'b', hosts: [b.host] }],
        }),
      ),
      /EADDRINUSE/,
    );
    assert.equal((await send(p.port, '/')).body.toString(), 'a');
    assert.deepEqual([...p.sidecar.clusters.keys()], ['a']);
    assert.equal(p.sidecar.addresses().length, 1);
  });

  test('reload keeps an unchanged breaker (state included) and the counters; a changed breaker starts closed', async () => {
    const u = await upstream((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    const cluster = {
      name: 'x',
      hosts: [u.host],
      breaker: { trip: { kind: 'consecutive' as const, threshold: 1 }, openDuration: 60_000 },
    };
    const p = await proxy([cluster], [{ prefix: '/', cluster: 'x' }]);
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    assert.equal((await send(p.port, '/')).status, 500);
    assert.equal((await send(p.port, '/')).status, 503);
    const before = p.sidecar.clusters.get('x')!;
    await p.sidecar.reload({ ...p.config, clusters: [{ ...cluster, lb_policy: 'least_request' }] });
    const after1 = p.sidecar.clusters.get('x')!;
    assert.notEqual(after1, before);
    assert.equal(after1.breaker, before.breaker);
    assert.equal((await send(p.port, '/')).status, 503);
    assert.equal(after1.counters.requests, 3);
    await p.sidecar.reload({
      ...p.config,
      clusters: [{ ...cluster, breaker: { ...cluster.breaker, openDuration: 1000 } }],
    });
    assert.equal(p.sidecar.clusters.get('x')!.breaker!.state, 'closed');
    assert.equal(before.breaker!.state, 'open');
  });

  test('shutdown stops accepting, drains in-flight, then resolves', async () => {
    const held: ServerResponse[] = [];
    const u = await upstream((_req, res) => held.push(res));
    const p = await proxy([{ name: 'u', hosts: [u.host] }], [{ prefix: '/', cluster: 'u' }]);
    cleanups.push(u.close);
    const inflight = send(p.port, '/x');
    await until(() => held.length === 1);
    const done = p.sidecar.shutdown(5000);
    await assert.rejects(send(p.port, '/after', { timeoutMs: 2000 }));
    held[0]!.end('drained');
    assert.equal((await inflight).body.toString(), 'drained');
    assert.equal(await done, true);
  });

  test('admin: a non-loopback address needs a token; with a token requests need Bearer auth', async () => {
    const u = await upstream((_req, res) => res.end());
    const p = await proxy([{ name: 'u', hosts: [u.host] }], [{ prefix: '/', cluster: 'u' }]);
    cleanups.push(() => p.sidecar.shutdown(1000), u.close);
    const saved = process.env.TRIPSWITCH_ADMIN_TOKEN;
    delete process.env.TRIPSWITCH_ADMIN_TOKEN;
    try {
      await assert.rejects(startAdmin(p.sidecar, { address: '0.0.0.0', port: 0 }), /needs a token/);
    } finally {
      if (saved !== undefined) process.env.TRIPSWITCH_ADMIN_TOKEN = saved;
    }
    const admin = await startAdmin(p.sidecar, { address: '0.0.0.0', port: 0, token: 'sixteen-chars-token' });
    cleanups.push(admin.close);
    assert.equal((await send(admin.port, '/healthz')).status, 401);
    assert.equal(
      (await send(admin.port, '/healthz', { headers: { authorization: 'Bearer wrong' } })).status,
      401,
    );
    const ok = await send(admin.port, '/healthz', {
      headers: { authorization: 'Bearer sixteen-chars-token' },
    });
    assert.equal(ok.status, 200);
    const ready = await send(admin.port, '/ready', {
      headers: { authorization: 'Bearer sixteen-chars-token' },
    });
    assert.equal(ready.status, 200);
  });
});

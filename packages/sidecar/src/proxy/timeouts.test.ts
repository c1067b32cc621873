/**
 * Per-listener client timeouts (issue 12): a slow request head (slowloris), a slow whole request,
 * and the keep-alive idle time, each closing the connection within a generous bound.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { parseConfig } from '../config/load.js';
import type { ListenerConfig } from '../config/schema.js';
import { proxy, until, upstream } from './test-helpers.js';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function start(listener: Partial<ListenerConfig>) {
  const u = await upstream((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const routes = [{ prefix: '/', cluster: 'c' }];
  const p = await proxy([{ name: 'c', hosts: [u.host] }], routes, {
    extra: { listeners: [{ port: 0, routes, ...listener }] },
  });
  cleanups.push(() => p.sidecar.shutdown(1000), u.close);
  return { p, u };
}

/** A connection that trickles `parts` one every `everyMs`; resolves with what it read and when it closed. */
function trickle(
  port: number,
  parts: string[],
  everyMs: number,
): Promise<{ data: string; closedAfterMs: number }> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    const t0 = Date.now();
    let data = '';
    let i = 0;
    const timer = setInterval(() => {
      if (i < parts.length && !s.destroyed) s.write(parts[i++]!);
    }, everyMs);
    s.on('data', (c) => {
      data += c.toString('latin1');
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(timer);
      resolve({ data, closedAfterMs: Date.now() - t0 });
    });
    s.on('connect', () => s.write(parts[i++]!));
  });
}

// A head that never completes: one header line every 50 ms for ~10 s.
const endless = ['GET / HTTP/1.1\r\nHost: x\r\n', ...Array.from({ length: 200 }, (_, i) => `x-${i}: y\r\n`)];

describe('listener timeouts', () => {
  test('headers_timeout_ms closes a slowloris connection with 408', async () => {
    const { p, u } = await start({ headers_timeout_ms: 300 });
    const r = await trickle(p.port, endless, 50);
    assert.match(r.data, /^HTTP\/1\.1 408/);
    // Node checks on a timer (a quarter of the timeout here): closed well before the ~10 s trickle.
    assert.ok(r.closedAfterMs >= 250, `closed after ${r.closedAfterMs} ms`);
    assert.ok(r.closedAfterMs < 3000, `closed after ${r.closedAfterMs} ms`);
    assert.equal(u.hits, 0);
  });

  test('request_timeout_ms closes a connection whose body trickles past it', async () => {
    const { p, u } = await start({ headers_timeout_ms: 200, request_timeout_ms: 400 });
    const body = Array.from({ length: 200 }, () => 'x');
    const r = await trickle(
      p.port,
      ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n', ...body],
      50,
    );
    assert.ok(r.closedAfterMs >= 350, `closed after ${r.closedAfterMs} ms`);
    assert.ok(r.closedAfterMs < 3000, `closed after ${r.closedAfterMs} ms`);
    // The request was forwarded once its head arrived; the upstream never got a whole body.
    assert.ok(u.hits <= 1);
    await until(() => p.sidecar.inflight === 0);
  });

  test('idle_timeout_ms closes an idle keep-alive connection', async () => {
    const { p } = await start({ idle_timeout_ms: 200 });
    const r = await trickle(p.port, ['GET / HTTP/1.1\r\nHost: x\r\n\r\n'], 50);
    assert.match(r.data, /^HTTP\/1\.1 200/);
    assert.match(r.data, /keep-alive: timeout=0?\.?2?/i);
    assert.ok(r.closedAfterMs >= 150, `closed after ${r.closedAfterMs} ms`);
    assert.ok(r.closedAfterMs < 3000, `closed after ${r.closedAfterMs} ms`);
  });

  test('a request_timeout_ms shorter than headers_timeout_ms is a config error with its line', () => {
    const text = [
      'listeners:',
      '  - port: 8080',
      '    headers_timeout_ms: 5000',
      '    request_timeout_ms: 1000',
      '    routes: [{ cluster: a }]',
      'clusters:',
      '  - name: a',
      '    hosts: [127.0.0.1:1]',
    ].join('\n');
    assert.throws(
      () => parseConfig(text, 'x.yaml'),
      (e: Error) =>
        /x\.yaml:4:\d+ \/listeners\/0\/request_timeout_ms: .*shorter than headers_timeout_ms/.test(e.message),
    );
  });
});

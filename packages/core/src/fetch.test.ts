import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createFetch, parseRetryAfter } from './fetch.js';
import {
  breakerRegistry,
  constantBackoff,
  isCircuitOpenError,
  isInvalidOptionError,
  isTimeoutError,
} from './index.js';
import { TestClock } from './test-clock.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describe('createFetch against a real HTTP server', () => {
  let server: Server;
  let base: string;
  let handler: Handler = (_req, res) => res.end('ok');
  let hits = 0;

  before(async () => {
    server = createServer((req, res) => {
      hits++;
      handler(req, res);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  const fresh = (h: Handler) => {
    handler = h;
    hits = 0;
  };

  it('validates options', () => {
    assert.throws(
      () => createFetch({ timeout: 0 }),
      (e: unknown) => isInvalidOptionError(e) && /"timeout"/.test(String(e)),
    );
    assert.throws(() => createFetch({ retries: 3 } as never), /option "retries"/);
  });

  it('parses Retry-After seconds and HTTP dates', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('3', now), 3_000);
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5_000);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });

  it('retries 500s on GET, cancels discarded bodies, returns the last response with its body unread', async () => {
    let n = 0;
    fresh((_req, res) => {
      n++;
      res.statusCode = 500;
      res.end(`attempt ${n}`);
    });
    const seen: Response[] = [];
    const f = createFetch({
      retry: { maxAttempts: 3, backoff: constantBackoff(0) },
      fetch: async (input, init) => {
        const r = await fetch(input, init);
        seen.push(r);
        return r;
      },
    });
    const res = await f(`${base}/x`);
    assert.equal(res.status, 500);
    assert.equal(hits, 3);
    assert.equal(seen.length, 3);
    assert.equal(seen[2], res);
    // The two discarded responses had their bodies cancelled (disturbed), the returned one is untouched.
    assert.deepEqual(
      seen.map((r) => r.bodyUsed),
      [true, true, false],
    );
    assert.equal(await res.text(), 'attempt 3');
    const stats = f.registry.get(new URL(base).origin).stats();
    assert.equal(stats.failures, 3);
  });

  it('does not retry POST unless retryNonIdempotent', async () => {
    fresh((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    const f = createFetch({ retry: { maxAttempts: 3, backoff: constantBackoff(0) } });
    assert.equal((await f(`${base}/p`, { method: 'POST', body: 'x' })).status, 503);
    assert.equal(hits, 1);
    hits = 0;
    const g = createFetch({
      retryNonIdempotent: true,
      retry: { maxAttempts: 2, backoff: constantBackoff(0) },
    });
    assert.equal((await g(`${base}/p`, { method: 'POST', body: 'x' })).status, 503);
    assert.equal(hits, 2);
  });

  it('404 counts as a success and is not retried', async () => {
    fresh((_req, res) => {
      res.statusCode = 404;
      res.end('nope');
    });
    const f = createFetch({ retry: { maxAttempts: 3, backoff: constantBackoff(0) } });
    const res = await f(`${base}/missing`);
    assert.equal(res.status, 404);
    assert.equal(await res.text(), 'nope');
    assert.equal(hits, 1);
    const s = f.registry.get(new URL(base).origin).stats();
    assert.equal(s.successes, 1);
    assert.equal(s.failures, 0);
  });

  it('connection resets are failures, retried, and open the breaker; then CircuitOpenError without a request', async () => {
    fresh((req) => req.socket.destroy());
    const registry = breakerRegistry();
    const f = createFetch({
      registry,
      breaker: { trip: { kind: 'consecutive', threshold: 2 }, openDuration: 60_000 },
      retry: { maxAttempts: 2, backoff: constantBackoff(0) },
    });
    await assert.rejects(f(`${base}/reset`), TypeError);
    assert.equal(hits, 2);
    assert.equal(registry.get(new URL(base).origin).state, 'open');
    await assert.rejects(f(`${base}/reset`), isCircuitOpenError);
    assert.equal(hits, 2);
  });

  it('a hanging server times out at the deadline (per attempt) and counts as a failure', async () => {
    const clock = new TestClock();
    fresh(() => {
      // Never answers; the deadline passes as soon as the request is seen.
      setImmediate(() => clock.advance(1_000));
    });
    const f = createFetch({ clock, timeout: 1_000, retry: { maxAttempts: 2, backoff: constantBackoff(0) } });
    await assert.rejects(f(`${base}/hang`), isTimeoutError);
    assert.equal(hits, 2);
    assert.equal(f.registry.get(new URL(base).origin).stats().failures, 2);
  });

  it('honours Retry-After (seconds) from a 429 and then returns the success', async () => {
    const clock = new TestClock();
    let n = 0;
    fresh((_req, res) => {
      if (++n === 1) {
        res.writeHead(429, { 'retry-after': '2' });
        res.end('slow down');
      } else res.end('fine');
    });
    const f = createFetch({ clock, retry: { maxAttempts: 2, backoff: constantBackoff(5) } });
    // Advance the test clock once the retry's sleep is scheduled.
    const delays: number[] = [];
    const originalSet = clock.setTimeout.bind(clock);
    clock.setTimeout = (fn, ms) => {
      const h = originalSet(fn, ms);
      if (ms === 2_000) {
        delays.push(ms);
        setImmediate(() => clock.advance(ms));
      }
      return h;
    };
    const res = await f(`${base}/limited`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'fine');
    assert.deepEqual(delays, [2_000]);
    assert.equal(hits, 2);
  });

  it('the caller abort stops the request and is not a breaker failure', async () => {
    fresh(() => {});
    const f = createFetch({ retry: { maxAttempts: 3, backoff: constantBackoff(0) } });
    const ac = new AbortController();
    server.once('request', () => ac.abort(new Error('caller gone')));
    await assert.rejects(f(`${base}/slow`, { signal: ac.signal }), /caller gone/);
    assert.equal(hits, 1);
    const s = f.registry.get(new URL(base).origin).stats();
    assert.equal(s.failures, 0);
  });

  it('one breaker per origin', async () => {
    fresh((_req, res) => res.end('ok'));
    const f = createFetch();
    await f(`${base}/a`);
    await f(new URL(`${base}/b`));
    await f(new Request(`${base}/c`));
    assert.deepEqual(
      f.registry.list().map((l) => l.name),
      [new URL(base).origin],
    );
    assert.equal(f.registry.get(new URL(base).origin).stats().successes, 3);
  });
});

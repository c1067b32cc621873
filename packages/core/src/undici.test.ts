import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Agent, fetch as undiciFetch, request } from 'undici';
import { breakerRegistry, isCircuitOpenError, isInvalidOptionError } from './index.js';
import { breakerInterceptor } from './undici.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describe('breakerInterceptor with undici 7 Agent.compose', () => {
  let server: Server;
  let base: string;
  let handler: Handler = (_req, res) => res.end('ok');
  let hits = 0;
  const agents: Agent[] = [];

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
    await Promise.all(agents.map((a) => a.close()));
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  const setup = (h: Handler, threshold = 2) => {
    handler = h;
    hits = 0;
    const registry = breakerRegistry();
    const agent = new Agent({ keepAliveTimeout: 1_000 });
    agents.push(agent);
    const dispatcher = agent.compose(
      breakerInterceptor({
        registry,
        breaker: { trip: { kind: 'consecutive', threshold }, openDuration: 60_000 },
      }),
    );
    return { registry, dispatcher, breaker: () => registry.get(base) };
  };

  it('validates options', () => {
    assert.throws(
      () => breakerInterceptor({ isFailureStatus: 5 as never }),
      (e: unknown) => isInvalidOptionError(e) && /"isFailureStatus" must be a function/.test(String(e)),
    );
  });

  it('5xx responses are failures; the open breaker rejects with CircuitOpenError without a request', async () => {
    const { dispatcher, breaker } = setup((_req, res) => {
      res.statusCode = 500;
      res.end('bad');
    });
    for (let i = 0; i < 2; i++) {
      const r = await request(`${base}/x`, { dispatcher });
      assert.equal(r.statusCode, 500);
      assert.equal(await r.body.text(), 'bad');
    }
    assert.equal(breaker().state, 'open');
    await assert.rejects(request(`${base}/x`, { dispatcher }), isCircuitOpenError);
    await assert.rejects(undiciFetch(`${base}/x`, { dispatcher }), (e: unknown) =>
      isCircuitOpenError((e as { cause?: unknown }).cause),
    );
    assert.equal(hits, 2);
  });

  it('2xx and 404 are successes', async () => {
    let n = 0;
    const { dispatcher, breaker } = setup((_req, res) => {
      res.statusCode = n++ % 2 ? 404 : 200;
      res.end('x');
    });
    for (let i = 0; i < 4; i++) {
      const r = await undiciFetch(`${base}/y`, { dispatcher });
      await r.text();
    }
    const s = breaker().stats();
    assert.equal(s.successes, 4);
    assert.equal(s.failures, 0);
    assert.equal(breaker().state, 'closed');
  });

  it('connection resets are failures', async () => {
    const { dispatcher, breaker } = setup((req) => req.socket.destroy());
    await assert.rejects(request(`${base}/r`, { dispatcher }));
    await assert.rejects(request(`${base}/r`, { dispatcher }));
    assert.equal(breaker().stats().failures, 2);
    assert.equal(breaker().state, 'open');
  });

  it('a caller abort is neutral', async () => {
    const { dispatcher, breaker } = setup(() => {}, 1);
    const ac = new AbortController();
    server.once('request', () => ac.abort());
    await assert.rejects(undiciFetch(`${base}/hang`, { dispatcher, signal: ac.signal }));
    const s = breaker().stats();
    assert.equal(s.failures, 0);
    assert.equal(s.neutral, 1);
    assert.equal(breaker().state, 'closed');
  });

  it('one breaker per origin', async () => {
    const { dispatcher, registry } = setup((_req, res) => res.end('ok'));
    await (await request(`${base}/a`, { dispatcher })).body.text();
    await (await request(`${base}/b`, { dispatcher })).body.text();
    assert.deepEqual(
      registry.list().map((l) => l.name),
      [base],
    );
  });
});

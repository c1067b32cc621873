import assert from 'node:assert/strict';
import { Agent, request, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { test } from 'node:test';
import { startAdmin } from '../admin/admin.js';
import type { SidecarConfig } from '../config/schema.js';
import { perWorkerCounter } from './shared-counters.js';
import { readOutcomes } from './shared-breaker.js';
import { readLimits } from './shared-limits.js';
import type { WorkerPool } from './workers.js';
import { CLUSTER_COUNTERS } from './shared-plan.js';
import { memoryLogger, send, until, upstream } from './test-helpers.js';
import { reusePortSupported, startWorkers, WorkersError } from './workers.js';

const supported = reusePortSupported();
/** Bounds of the waits: generous, CI runs on a loaded 2-core machine (not a speed assertion). */
const LONG = 15_000;

function config(host: string, extra: Partial<SidecarConfig['clusters'][number]> = {}): SidecarConfig {
  return {
    workers: 2,
    drain_timeout_ms: 2000,
    listeners: [{ port: 0, routes: [{ prefix: '/', cluster: 'api' }] }],
    clusters: [{ name: 'api', hosts: [host], ...extra }],
  };
}

test('reusePortSupported: Node 22.12+, 23.1+', () => {
  assert.equal(reusePortSupported('20.19.0'), false);
  assert.equal(reusePortSupported('22.11.0'), false);
  assert.equal(reusePortSupported('22.12.0'), true);
  assert.equal(reusePortSupported('23.0.0'), false);
  assert.equal(reusePortSupported('23.1.0'), true);
  assert.equal(reusePortSupported('24.0.0'), true);
});

if (!supported) {
  test(`workers: 2 fails at startup on this Node (${process.version}), naming workers and the Node needed`, async () => {
    const err = await startWorkers(config('127.0.0.1:1')).catch((e: unknown) => e);
    assert.ok(err instanceof WorkersError);
    assert.equal(err.code, 'ERR_SIDECAR_WORKERS');
    assert.match(err.message, /^workers: 2 needs Node 22\.12\+ \(or 23\.1\+\)/);
    assert.ok(err.message.includes(process.version));
  });
} else {
  test('a flood over 2 workers never has more than max_requests at the upstream; counts end at 0; admin shows totals', async () => {
    let inFlight = 0;
    let most = 0;
    const held: ServerResponse[] = [];
    const up = await upstream((_req, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      res.on('close', () => inFlight--);
      held.push(res);
      // Held 30 ms from the first of a batch, or until twice the limit is held, so that the
      // limit is really met and a limit per worker (4 + 4) would show here.
      if (held.length >= 8) for (const r of held.splice(0)) r.end('ok');
      else if (held.length === 1)
        setTimeout(() => {
          for (const r of held.splice(0)) r.end('ok');
        }, 30);
    });
    const pool = await startWorkers(
      config(up.host, {
        circuit_breakers: {
          thresholds: [{ priority: 'default', max_requests: 4, max_pending_requests: 1000 }],
        },
      }),
      { logger: memoryLogger(), workerLogs: 'none' },
    );
    const admin = await startAdmin(pool.view, { port: 0 });
    try {
      const port = pool.view.addresses()[0]!.port;
      const total = 120;
      const replies = await Promise.all(Array.from({ length: total }, () => send(port, '/x')));
      assert.deepEqual(
        replies.map((r) => r.status),
        replies.map(() => 200),
      );
      assert.ok(most <= 4, `the upstream saw ${most} requests at once; max_requests is 4 across workers`);
      assert.ok(most >= 2);
      const api = pool.view.clusters.get('api')!;
      const blocks = pool.plan.clusters.api!;
      // both workers took connections (the kernel spreads them by the client port)
      const perWorker = perWorkerCounter(CLUSTER_COUNTERS, blocks.counters, 'requests');
      assert.equal(perWorker.length, 2);
      assert.ok(perWorker[0]! > 0 && perWorker[1]! > 0, `requests per worker: ${perWorker}`);
      assert.equal(perWorker[0]! + perWorker[1]!, total);
      await until(() => api.limits.default.active === 0 && api.limits.default.pending === 0, LONG);
      assert.deepEqual(readLimits(blocks.limits, 0).perWorker, [
        { active: 0, pending: 0 },
        { active: 0, pending: 0 },
      ]);
      const breakers = (await (await fetch(`http://127.0.0.1:${admin.port}/breakers`)).json()) as {
        counters: { requests: number; responses2xx: number };
        limits: { default: { active: number; pending: number } };
        workers: { worker: number; requests: number; active: { default: number } }[];
      }[];
      assert.equal(breakers[0]!.counters.requests, total);
      assert.equal(breakers[0]!.counters.responses2xx, total);
      assert.deepEqual(breakers[0]!.limits.default, { active: 0, pending: 0, retries: 0 });
      assert.deepEqual(
        breakers[0]!.workers.map((w) => [w.worker, w.requests, w.active.default]),
        [
          [0, perWorker[0], 0],
          [1, perWorker[1], 0],
        ],
      );
      const metrics = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
      assert.match(metrics, new RegExp(`tripswitch_proxy_requests_total\\{cluster="api"\\} ${total}\\n`));
    } finally {
      await admin.close();
      assert.equal(await pool.shutdown(), true);
      await up.close();
    }
    for (const w of pool.threads) assert.equal(w.threadId, -1, 'every worker thread has exited');
  });

  test('once the one breaker trips on the failures the workers forward, every worker rejects its next request; the admin open/reset reach them all', async () => {
    const up = await upstream((_req, res) => {
      res.statusCode = 500;
      res.end('boom');
    });
    const pool = await startWorkers(
      config(up.host, { breaker: { trip: { kind: 'consecutive', threshold: 2 }, openDuration: 60_000 } }),
      { logger: memoryLogger(), workerLogs: 'none' },
    );
    try {
      const port = pool.view.addresses()[0]!.port;
      const blocks = pool.plan.clusters.api!;
      // fresh connections until one is refused by the breaker: some worker saw 2 failures in a row
      let first = -1;
      for (let i = 0; i < 40 && first < 0; i++) if ((await send(port, '/x')).status === 503) first = i;
      assert.ok(first >= 2, `first refusal after ${first} requests`);
      const hits = up.hits;
      // every request after that, whichever worker takes its connection, is refused without the upstream
      const after = [];
      for (let b = 0; b < 4; b++)
        after.push(...(await Promise.all(Array.from({ length: 10 }, () => send(port, '/x')))));
      assert.deepEqual(
        after.map((r) => [r.status, r.headers['x-tripswitch-circuit-open']]),
        after.map(() => [503, 'true']),
      );
      assert.equal(up.hits, hits);
      const refused = perWorkerCounter(CLUSTER_COUNTERS, blocks.counters, 'circuitOpen');
      assert.ok(refused[0]! > 0 && refused[1]! > 0, `refusals per worker: ${refused}`);
      // the main thread's breaker (admin, /metrics) follows
      await until(() => pool.view.clusters.get('api')!.breaker!.state === 'open', LONG);
      // an admin reset in the main thread closes it in every worker: all pass again (and fail)
      pool.view.clusters.get('api')!.breaker!.reset();
      const again = await send(port, '/x');
      assert.equal(again.status, 500);
      // admin "open" (isolate) in the main thread: refused everywhere
      pool.view.clusters.get('api')!.breaker!.isolate();
      const isolated = await Promise.all(Array.from({ length: 20 }, () => send(port, '/x')));
      assert.deepEqual(
        isolated.map((r) => r.status),
        isolated.map(() => 503),
      );
    } finally {
      assert.equal(await pool.shutdown(), true);
      await up.close();
    }
  });

  /** A request on `agent`'s one kept-alive connection (which stays with one worker); its status. */
  function get(agent: Agent, port: number, path: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.setTimeout(LONG, () => req.destroy(new Error('client timeout')));
      req.on('error', reject);
      req.end();
    });
  }

  /**
   * Two kept-alive connections, one on each worker (the kernel spreads connections by their
   * addresses: found by sending /ok on new connections and seeing which worker counted it).
   */
  async function onEachWorker(pool: WorkerPool, port: number): Promise<[Agent, Agent]> {
    const counters = pool.plan.clusters.api!.counters;
    const found: (Agent | undefined)[] = [undefined, undefined];
    const spare: Agent[] = [];
    for (let k = 0; k < 40 && (found[0] === undefined || found[1] === undefined); k++) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const before = perWorkerCounter(CLUSTER_COUNTERS, counters, 'requests');
      assert.equal(await get(agent, port, '/ok'), 200);
      const after = perWorkerCounter(CLUSTER_COUNTERS, counters, 'requests');
      const w = after[0]! > before[0]! ? 0 : 1;
      if (found[w] === undefined) found[w] = agent;
      else spare.push(agent);
    }
    for (const a of spare) a.destroy();
    assert.ok(found[0] && found[1], 'connections on both workers');
    return found as [Agent, Agent];
  }

  /** Failures the main thread's breaker recorded, per worker. */
  function failuresPerWorker(pool: WorkerPool): number[] {
    return readOutcomes(pool.plan.clusters.api!.breaker!).map((o) => o.failures + o.slowFailures);
  }

  function failingUpstream() {
    return upstream((req, res) => {
      res.statusCode = req.url === '/ok' ? 200 : 500;
      res.end(req.url);
    });
  }

  test('consecutive: 5 counts the failures of both workers together: 3 in one and 2 in the other open it; the main thread records every call', async () => {
    const up = await failingUpstream();
    const pool = await startWorkers(
      config(up.host, { breaker: { trip: { kind: 'consecutive', threshold: 5 }, openDuration: 60_000 } }),
      { logger: memoryLogger(), workerLogs: 'none' },
    );
    const admin = await startAdmin(pool.view, { port: 0 });
    const agents = await (async () => {
      const port = pool.view.addresses()[0]!.port;
      return [port, ...(await onEachWorker(pool, port))] as const;
    })();
    const [port, a, b] = agents;
    try {
      const breaker = pool.view.clusters.get('api')!.breaker!;
      // the /ok requests that found the two connections, all recorded by the main thread
      const oks = perWorkerCounter(CLUSTER_COUNTERS, pool.plan.clusters.api!.counters, 'requests').reduce(
        (x, y) => x + y,
      );
      await until(() => breaker.stats().successes === oks, LONG);
      // 5 failures, alternating: 3 in worker 0 and 2 in worker 1, each recorded before the next
      const order = [a, b, a, b, a];
      for (let k = 0; k < order.length; k++) {
        assert.equal(breaker.state, 'closed', `closed before failure ${k + 1}`);
        assert.equal(await get(order[k]!, port, '/fail'), 500);
        await until(() => failuresPerWorker(pool).reduce((x, y) => x + y) === k + 1, LONG);
      }
      assert.deepEqual(failuresPerWorker(pool), [3, 2]);
      await until(() => breaker.state === 'open', LONG);
      // open in both workers from their next request, without the upstream
      const hits = up.hits;
      assert.equal(await get(a, port, '/fail'), 503);
      assert.equal(await get(b, port, '/fail'), 503);
      assert.equal(up.hits, hits);
      // the main thread's breaker counted every call the workers made (the 2 /ok too)
      const stats = breaker.stats();
      assert.equal(stats.failures, 5);
      assert.equal(stats.successes, oks);
      const metrics = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
      assert.match(metrics, /circuit_breaker_calls_total\{service="api",outcome="failure"\} 5\n/);
      assert.match(
        metrics,
        new RegExp(`circuit_breaker_calls_total\\{service="api",outcome="success"\\} ${oks}\n`),
      );
      assert.match(
        metrics,
        /circuit_breaker_call_duration_seconds_count\{service="api",outcome="failure"\} 5\n/,
      );
    } finally {
      a.destroy();
      b.destroy();
      await admin.close();
      assert.equal(await pool.shutdown(), true);
      await up.close();
    }
  });

  test('a rate rule judges the calls of both workers together (minimumCalls reached only by the sum)', async () => {
    const up = await failingUpstream();
    const pool = await startWorkers(
      config(up.host, {
        breaker: {
          trip: { kind: 'count', windowSize: 10, minimumCalls: 6, failureRateThreshold: 0.5 },
          openDuration: 60_000,
        },
      }),
      { logger: memoryLogger(), workerLogs: 'none' },
    );
    const port = pool.view.addresses()[0]!.port;
    const [a, b] = await onEachWorker(pool, port);
    try {
      const breaker = pool.view.clusters.get('api')!.breaker!;
      // a clean window once the /ok requests that found the connections are recorded
      const oks = perWorkerCounter(CLUSTER_COUNTERS, pool.plan.clusters.api!.counters, 'requests').reduce(
        (x, y) => x + y,
      );
      await until(() => breaker.stats().successes === oks, LONG);
      breaker.reset();
      // 6 calls, 3 per worker (under minimumCalls in each), 4 of them failed: 0.67 of the sum
      const calls = [
        [a, '/ok'],
        [b, '/ok'],
        [a, '/fail'],
        [b, '/fail'],
        [a, '/fail'],
      ] as const;
      for (let k = 0; k < calls.length; k++) {
        const [agent, path] = calls[k]!;
        assert.equal(await get(agent, port, path), path === '/ok' ? 200 : 500);
        await until(() => breaker.stats().successes + breaker.stats().failures === oks + k + 1, LONG);
        assert.equal(breaker.state, 'closed', `closed after ${k + 1} calls`);
      }
      assert.equal(await get(b, port, '/fail'), 500);
      await until(() => breaker.state === 'open', LONG);
      assert.equal(breaker.stats().windowCalls, 6);
      assert.deepEqual(failuresPerWorker(pool), [2, 2]);
      assert.equal(await get(a, port, '/fail'), 503);
      assert.equal(await get(b, port, '/fail'), 503);
    } finally {
      a.destroy();
      b.destroy();
      assert.equal(await pool.shutdown(), true);
      await up.close();
    }
  });

  test('after failures in both workers opened it, the probe closes it whichever worker runs it; calls admitted before the trip do not count after it', async () => {
    const held: ServerResponse[] = [];
    const up = await upstream((req, res) => {
      if (req.url === '/hold') held.push(res);
      else {
        res.statusCode = req.url === '/ok' ? 200 : 500;
        res.end(req.url);
      }
    });
    const pool = await startWorkers(
      config(up.host, { breaker: { trip: { kind: 'consecutive', threshold: 2 }, openDuration: 300 } }),
      { logger: memoryLogger(), workerLogs: 'none' },
    );
    const port = pool.view.addresses()[0]!.port;
    const [a, b] = await onEachWorker(pool, port);
    const c = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const breaker = pool.view.clusters.get('api')!.breaker!;
      // a call admitted while closed that will fail after the trip (held by the upstream)
      const late = get(c, port, '/hold');
      await until(() => held.length === 1, LONG);
      assert.equal(await get(a, port, '/fail'), 500);
      await until(() => breaker.stats().failures === 1, LONG);
      assert.equal(breaker.state, 'closed');
      assert.equal(await get(b, port, '/fail'), 500);
      await until(() => breaker.state === 'open', LONG);
      // the open period ends; the first request, in worker 1, is the probe: it succeeds
      const clock = pool.view.clock;
      // (a margin: each thread reads its own clock, which may differ by a fraction of a ms)
      await until(() => breaker.nextAttemptAt! + 20 <= clock.now(), LONG);
      assert.equal(await get(b, port, '/ok'), 200);
      await until(() => breaker.state === 'closed', LONG);
      assert.equal(await get(a, port, '/ok'), 200);
      // the held call fails now: admitted before the trip, it is not the first of a new run
      held[0]!.statusCode = 500;
      held.splice(0)[0]!.end('late');
      assert.equal(await late, 500);
      assert.equal(await get(a, port, '/fail'), 500);
      // recorded: 3 failures (the late one was of an earlier period, not recorded)
      await until(() => breaker.stats().failures === 3, LONG);
      assert.equal(pool.view.clusters.get('api')!.sharedBreaker!.stale >= 1, true);
      assert.equal(breaker.state, 'closed', 'a failure of an earlier period does not count');
      // open again on failures in worker 0 alone; the probe now runs in worker 0 and fails
      assert.equal(await get(a, port, '/fail'), 500);
      await until(() => breaker.state === 'open', LONG);
      const opened = breaker.nextAttemptAt!;
      await until(() => opened + 20 <= clock.now(), LONG);
      assert.equal(await get(a, port, '/fail'), 500);
      // the failed probe (in worker 0) opened it again: a new open period
      await until(() => breaker.state === 'open' && breaker.nextAttemptAt! > opened, LONG);
    } finally {
      for (const r of held.splice(0)) r.end('ok');
      a.destroy();
      b.destroy();
      c.destroy();
      assert.equal(await pool.shutdown(), true);
      await up.close();
    }
  });

  test('half-open: one probe across all workers', async () => {
    let probes = 0;
    let failing = true;
    const waiting: ServerResponse[] = [];
    const up = await upstream((_req, res) => {
      if (failing) {
        res.statusCode = 500;
        res.end('boom');
        return;
      }
      probes++;
      if (probes === 1)
        waiting.push(res); // the probe hangs until released
      else res.end('ok');
    });
    const pool = await startWorkers(
      config(up.host, {
        breaker: { trip: { kind: 'consecutive', threshold: 1 }, openDuration: 1, halfOpen: { maxProbes: 1 } },
      }),
      { logger: memoryLogger(), workerLogs: 'none' },
    );
    try {
      const port = pool.view.addresses()[0]!.port;
      assert.equal((await send(port, '/x')).status, 500);
      // the failure is recorded once its answer ended: wait for the trip (the view follows)
      await until(() => pool.view.clusters.get('api')!.breaker!.state === 'open', LONG);
      failing = false;
      // the open period (1 ms) is over: of 30 requests over both workers one is the probe
      const replies = Promise.all(Array.from({ length: 30 }, () => send(port, '/x')));
      await until(() => probes === 1, LONG);
      const statuses = new Promise<number[]>((resolve) =>
        replies.then((r) => resolve(r.map((x) => x.status))),
      );
      // the other 29 are refused while the probe is out
      await until(() => pool.view.clusters.get('api')!.counters.circuitOpen === 29, LONG);
      assert.equal(up.hits, 2);
      for (const r of waiting.splice(0)) r.end('ok');
      const s = await statuses;
      assert.equal(s.filter((x) => x === 200).length, 1);
      assert.equal(s.filter((x) => x === 503).length, 29);
      assert.equal(probes, 1);
      // the probe succeeded (recorded once its answer ended): closed in every worker
      await until(() => pool.view.clusters.get('api')!.breaker!.state === 'closed', LONG);
      const next = await Promise.all(Array.from({ length: 10 }, () => send(port, '/x')));
      assert.equal(next.filter((r) => r.status === 503).length, 0);
    } finally {
      for (const r of waiting.splice(0)) r.end('ok');
      await pool.shutdown();
      await up.close();
    }
  });

  test('a worker that crashes: its slots go back, it is replaced, the others keep serving', async () => {
    const waiting: ServerResponse[] = [];
    let hold = true;
    const up = await upstream((_req, res) => {
      if (hold) waiting.push(res);
      else res.end('ok');
    });
    const pool = await startWorkers(
      config(up.host, {
        circuit_breakers: {
          thresholds: [{ priority: 'default', max_requests: 10, max_pending_requests: 0 }],
        },
      }),
      { logger: memoryLogger(), workerLogs: 'none' },
    );
    const exits: [number, number, number][] = [];
    pool.onWorkerExit = (w, code, freed) => exits.push([w, code, freed]);
    try {
      const port = pool.view.addresses()[0]!.port;
      const blocks = pool.plan.clusters.api!;
      const pending = Array.from({ length: 10 }, () => send(port, '/x').catch((e: Error) => e));
      await until(() => waiting.length === 10, LONG);
      const before = readLimits(blocks.limits, 0);
      assert.equal(before.active, 10);
      const held0 = before.perWorker[0]!.active;
      const w0 = pool.threads[0]!;
      w0.postMessage({ type: 'crash' });
      await until(() => exits.length === 1, LONG);
      assert.deepEqual(exits[0], [0, 1, held0]);
      assert.equal(
        readLimits(blocks.limits, 0).active,
        10 - held0,
        'the dead worker held its share; it went back',
      );
      assert.equal(readLimits(blocks.limits, 0).perWorker[0]!.active, 0);
      await until(() => pool.threads[0] !== w0 && pool.restarts === 1, LONG);
      // the dead worker's clients lost their connections; the other worker's get their answers
      hold = false;
      for (const r of waiting.splice(0)) r.end('ok');
      const settled = await Promise.all(pending);
      assert.equal(settled.filter((r) => r instanceof Error).length, held0);
      assert.equal(settled.filter((r) => !(r instanceof Error) && r.status === 200).length, 10 - held0);
      await until(() => readLimits(blocks.limits, 0).active === 0, LONG);
      // both the replacement and the other worker serve
      const after = [];
      for (let b = 0; b < 4; b++)
        after.push(...(await Promise.all(Array.from({ length: 10 }, () => send(port, '/x')))));
      assert.deepEqual(
        after.map((r) => r.status),
        after.map(() => 200),
      );
      const served = perWorkerCounter(CLUSTER_COUNTERS, blocks.counters, 'responses2xx');
      assert.equal(served[0]! + served[1]!, 40 + 10 - held0);
      assert.ok(served[0]! > 0, 'the replacement worker served');
    } finally {
      for (const r of waiting.splice(0)) r.end('ok');
      assert.equal(await pool.shutdown(), true);
      await up.close();
    }
    for (const w of pool.threads) assert.equal(w.threadId, -1);
  });

  test('aborted and failed requests give their slots back in every worker', async () => {
    const waiting: ServerResponse[] = [];
    const up = await upstream((req, res) => {
      // /reset: the upstream drops the connection (a 502 for the client); else it hangs
      if (req.url === '/reset') req.socket.destroy();
      else waiting.push(res);
    });
    const pool = await startWorkers(
      config(up.host, {
        circuit_breakers: {
          thresholds: [{ priority: 'default', max_requests: 3, max_pending_requests: 20 }],
        },
        // The 502s below must all reach the upstream: with the defaults (5 failures in a row trip
        // the breaker, 5 gateway failures eject the only host) the later ones would get a 503,
        // or not, depending on whether they were admitted before the trip reached the workers.
        breaker: { trip: { kind: 'consecutive', threshold: 1_000 } },
        outlier_detection: { consecutive_5xx: 0, consecutive_gateway_failure: 0 },
      }),
      { logger: memoryLogger(), workerLogs: 'none' },
    );
    try {
      const port = pool.view.addresses()[0]!.port;
      const blocks = pool.plan.clusters.api!;
      // 12 clients on their own connections: 3 in flight at the upstream, 9 queued across workers
      const clients = Array.from({ length: 12 }, () => {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => {});
        s.write('GET /hang HTTP/1.1\r\nhost: x\r\n\r\n');
        return s;
      });
      await until(
        () => readLimits(blocks.limits, 0).active === 3 && readLimits(blocks.limits, 0).pending === 9,
        LONG,
      );
      // every client gives up: in flight and queued alike
      for (const s of clients) s.destroy();
      await until(
        () => readLimits(blocks.limits, 0).active === 0 && readLimits(blocks.limits, 0).pending === 0,
        LONG,
      );
      assert.deepEqual(readLimits(blocks.limits, 0).perWorker, [
        { active: 0, pending: 0 },
        { active: 0, pending: 0 },
      ]);
      for (const r of waiting.splice(0)) r.destroy();
      // upstream failures (502) release too
      const failed = await Promise.all(Array.from({ length: 10 }, () => send(port, '/reset')));
      // and one after the other, so none is admitted before the others' failures are counted
      for (let k = 0; k < 6; k++) failed.push(await send(port, '/reset'));
      assert.deepEqual(
        failed.map((r) => r.status),
        failed.map(() => 502),
      );
      await until(
        () => readLimits(blocks.limits, 0).active === 0 && readLimits(blocks.limits, 0).pending === 0,
        LONG,
      );
      await until(() => pool.view.inflight === 0, LONG);
    } finally {
      for (const r of waiting.splice(0)) r.destroy();
      assert.equal(await pool.shutdown(), true);
      await up.close();
    }
  });
}

// Two sidecar processes sharing a cluster's breaker through one redis-server (the test's own, on a
// free port): failures behind one open the other, which then answers circuit-open without
// sending anything to the upstream. Skipped when redis-server is not installed.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { createServer as createHttpServer, request } from 'node:http';
import { connect, createServer } from 'node:net';
import { after, test } from 'node:test';

const redisServer = (() => {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();

const childPath = new URL('./shared-state-child.test.fixture.js', import.meta.url);
const cleanup: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('data', (d) => done(d.toString().startsWith('+PONG')));
    sock.once('connect', () => sock.write('PING\r\n'));
  });
}

async function until<T>(f: () => T | Promise<T>, what: string, ms: number, every = 5): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

class Child {
  readonly proc: ChildProcess;
  #next = 1;
  #waiting = new Map<number, (m: { result?: unknown; error?: string }) => void>();
  constructor() {
    this.proc = fork(childPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      this.#waiting.get(m.id)?.(m);
      this.#waiting.delete(m.id);
    });
  }
  request<T>(op: string, args: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`child did not answer ${op}`)), timeoutMs);
      this.#waiting.set(id, (m) => {
        clearTimeout(t);
        if (m.error !== undefined) reject(new Error(m.error));
        else resolve(m.result as T);
      });
      this.proc.send({ id, op, ...args });
    });
  }
  async state(): Promise<string> {
    return (await this.request<{ state: string }>('state')).state;
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    await this.request('exit', {}, 5000).catch(() => {});
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  }
}

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/x', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('two sidecars with shared_state on one Redis: a trip behind one opens the other', {
  skip: redisServer ? false : 'redis-server is not installed; shared_state test skipped',
  timeout: 60_000,
}, async (t) => {
  const redisPort = await freePort();
  const redis = spawn(
    redisServer!,
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  cleanup.push(() => redis.kill('SIGKILL'));
  await until(() => pong(redisPort), 'redis-server to answer', 5000, 10);

  let hits = 0;
  const upstream = createHttpServer((_req, res) => {
    hits++;
    res.writeHead(503).end('down\n');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise((r) => upstream.close(r)));
  const upstreamPort = (upstream.address() as { port: number }).port;

  const yaml = [
    'listeners:',
    '  - port: 0',
    '    routes: [{ cluster: api }]',
    'clusters:',
    '  - name: api',
    `    hosts: ['127.0.0.1:${upstreamPort}']`,
    '    outlier_detection: { consecutive_5xx: 0, consecutive_gateway_failure: 0 }',
    '    breaker:',
    '      trip: { kind: consecutive, threshold: 3 }',
    '      openDuration: 60000',
    '    shared_state:',
    `      url: redis://127.0.0.1:${redisPort}`,
    `      prefix: sidecar-test-${process.pid}`,
    '      commandTimeoutMs: 1000',
  ].join('\n');
  const a = new Child();
  const b = new Child();
  cleanup.push(
    () => a.stop(),
    () => b.stop(),
  );
  const [sa, sb] = await Promise.all(
    [a, b].map((c) => c.request<{ port: number; ready: boolean[]; stores: number }>('start', { yaml })),
  );
  assert.deepEqual([sa!.ready, sb!.ready], [[true], [true]], 'each sidecar made one store, connected');

  for (let i = 0; i < 3; i++) assert.equal((await get(sa!.port)).status, 503);
  assert.equal(hits, 3);
  assert.equal(await a.state(), 'open', 'three failures behind sidecar A open its breaker');
  const t0 = Date.now();
  await until(async () => (await b.state()) === 'open', "sidecar B's breaker to open", 5000);
  const propagationMs = Date.now() - t0;
  t.diagnostic(`open seen by sidecar B ${propagationMs} ms after A reported it (IPC round trips included)`);
  // the documented propagation is milliseconds (p99 29 ms with 8 x 10,000 breakers on a loaded
  // host, docs/redis.md); 1 s leaves room for this host's scheduling without hiding a missing message
  assert.ok(propagationMs < 1000, `propagation ${propagationMs} ms`);
  const r = await get(sb!.port);
  assert.equal(r.status, 503);
  assert.match(r.body, /circuit open/);
  assert.equal(hits, 3, 'sidecar B sent nothing to the upstream');
});

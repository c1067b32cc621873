/**
 * `record_trace`: a cluster's breaker calls recorded as a trace by @tripswitch/tuner (loaded on
 * demand), written out and closed on shutdown and on a reload that removes the block, and replayed
 * by `tripswitch tune`.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { send, until, upstream } from './proxy/test-helpers.js';
import { reusePortSupported } from './proxy/workers.js';

const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
const fixture = fileURLToPath(new URL('./record-trace-child.test.fixture.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tripswitch-record-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

interface Line {
  t: number;
  d: number;
  outcome: string;
  name: string;
}
const lines = (file: string): Line[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);

/** Runs a command to its end (rejecting after `ms`): exit code, signal, stdout, stderr. */
function run(args: string[], ms: number) {
  return new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>(
    (resolve) => {
      const c = execFile(
        process.execPath,
        args,
        { timeout: ms, killSignal: 'SIGKILL' },
        (err, stdout, stderr) =>
          resolve({
            code: err ? ((err as { code?: number }).code ?? null) : 0,
            signal: c.signalCode,
            stdout,
            stderr,
          }),
      );
      children.push(c);
    },
  );
}

/**
 * `tripswitch proxy --config <config>` in a child process, its stderr (the JSON log) collected,
 * once `started` shows in that log; `port` is the first listener's.
 */
async function startProxy(config: string, started: RegExp) {
  const proc = spawn(process.execPath, [cli, 'proxy', '--config', config, '--no-watch'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(proc);
  const out = { log: '' };
  proc.stderr!.on('data', (c: Buffer) => {
    out.log += c.toString();
  });
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  await until(() => started.test(out.log), 30_000);
  const port = Number(/"msg":"listening"[^\n]*"address":"[^"]*:(\d+)"/.exec(out.log)![1]);
  return { proc, out, exited, port };
}

test('tripswitch proxy with record_trace: the trace names the cluster and counts what was sent; tune replays it', async () => {
  const u = await upstream((req, res) => {
    res.statusCode = req.url === '/fail' ? 503 : 200;
    res.end('x');
  });
  after(u.close);
  const trace = join(dir, 'traces', 'payments.ndjson');
  const config = join(dir, 'proxy.yaml');
  writeFileSync(
    config,
    `admin: { port: 0 }
listeners:
  - port: 0
    routes: [{ prefix: /, cluster: payments }]
clusters:
  - name: payments
    hosts: [${u.host}]
    breaker: { trip: { kind: consecutive, threshold: 1000 } }
    record_trace: { file: traces/payments.ndjson, sample_rate: 1, max_bytes: 1000000, max_files: 1 }
`,
  );
  // A directory that does not exist is a config error naming the field.
  const bad = await run([cli, 'validate', config], 10_000);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /\/clusters\/0\/record_trace\/file: directory .*traces does not exist/);
  mkdirSync(join(dir, 'traces'));

  const { proc, out, exited, port } = await startProxy(config, /"msg":"listening"/);
  assert.match(out.log, /"msg":"recording trace","cluster":"payments"/);
  const sent = ['/fail', '/ok', '/fail', '/fail', '/ok', '/fail', '/ok', '/fail'];
  for (const path of sent) await send(port, path);
  proc.kill('SIGTERM');
  assert.equal(await exited, 0, out.log);
  assert.match(out.log, /"msg":"trace recorder stopped","cluster":"payments","recorded":8/);

  const calls = lines(trace);
  assert.deepEqual(
    calls.map((c) => c.outcome),
    sent.map((p) => (p === '/fail' ? 'failure' : 'success')),
  );
  assert.ok(calls.every((c) => c.name === 'payments' && c.d >= 0 && Number.isFinite(c.t)));

  const tune = await run([cli, 'tune', '--trace', trace], 60_000);
  assert.equal(tune.code, 0, tune.stderr);
  assert.match(tune.stdout, /: 8 calls of "payments"/);
  assert.match(tune.stdout, /replayed \d+ candidates/);
});

// workers: 2 needs Node 22.12+ (on Node 20 it fails at startup: workers.test.ts)
if (reusePortSupported())
  test('workers: 2 with record_trace: the main thread records every call of both workers, once', async () => {
    // /slow answers 150 ms late: those calls are still in flight when the proxy is told to stop
    const u = await upstream((req, res) => {
      res.statusCode = req.url === '/fail' ? 503 : 200;
      if (req.url === '/slow') setTimeout(() => res.end('x'), 150);
      else res.end('x');
    });
    after(u.close);
    const trace = join(dir, 'workers.ndjson');
    const config = join(dir, 'workers.yaml');
    writeFileSync(
      config,
      `workers: 2
admin: { port: 0 }
listeners:
  - port: 0
    routes: [{ prefix: /, cluster: api }]
clusters:
  - name: api
    hosts: [${u.host}]
    breaker: { trip: { kind: consecutive, threshold: 1000 } }
    record_trace: { file: workers.ndjson }
`,
    );
    // started: both workers listen and the signal handlers are in place (the admin is last)
    const { proc, out, exited, port } = await startProxy(config, /"msg":"admin listening"/);
    const log = out.log;
    assert.equal(log.match(/"msg":"listening","worker"/g)?.length, 2, log);
    assert.match(log, /"msg":"recording trace","cluster":"api"/);
    assert.equal(log.match(/"msg":"recording trace"/g)?.length, 1, 'one recorder, in the main thread');
    // a new connection each (the kernel spreads them over both workers), some at once
    const sent = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? '/fail' : '/ok'));
    const statuses = await Promise.all(sent.map((p) => send(port, p).then((r) => r.status)));
    assert.deepEqual(
      statuses,
      sent.map((p) => (p === '/fail' ? 503 : 200)),
    );
    // 10 more, in flight at the upstream when SIGTERM arrives: the drain lets them finish, and
    // what they settled is recorded before the file closes
    const inflight = Array.from({ length: 10 }, () => send(port, '/slow'));
    await until(() => u.hits >= 50, 10_000).catch(() => assert.fail(`upstream hits ${u.hits}, expected 50`));
    proc.kill('SIGTERM');
    assert.deepEqual(
      (await Promise.all(inflight)).map((r) => r.status),
      Array(10).fill(200),
    );
    assert.equal(await exited, 0, out.log);
    assert.match(out.log, /"msg":"trace recorder stopped","cluster":"api","recorded":50/);
    const calls = lines(trace);
    assert.equal(
      calls.filter((c) => c.outcome === 'failure').length,
      sent.filter((p) => p === '/fail').length,
    );
    assert.equal(
      calls.filter((c) => c.outcome === 'success').length,
      sent.filter((p) => p !== '/fail').length + 10,
    );
    assert.ok(calls.filter((c) => c.d >= 100).length >= 10, 'the slow calls with their durations');
    assert.ok(calls.every((c) => c.name === 'api' && c.d >= 0 && Number.isFinite(c.t)));
  });

test('a bare process: recording stops on a reload that removes it, shutdown closes everything, the process ends by itself', async () => {
  const trace = join(dir, 'bare.ndjson');
  const r = await run([fixture, dir, trace], 20_000);
  assert.equal(r.signal, null, 'the process ended on its own (not killed at the deadline)');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { statuses: number[]; drained: boolean };
  assert.deepEqual(out.statuses, [503, 200, 503, 503, 200, 503, 200]);
  assert.equal(out.drained, true);
  // The five calls before the reload; none of the two after it.
  assert.deepEqual(
    lines(trace).map((c) => `${c.name} ${c.outcome}`),
    ['api failure', 'api success', 'api failure', 'api failure', 'api success'],
  );
  assert.equal(existsSync(`${trace}.1`), false);
});

test('without @tripswitch/tuner installed, a config with record_trace is refused naming the package', async () => {
  // A resolve hook that makes the package missing (it is installed in this repository).
  const hook = join(dir, 'no-tuner.mjs');
  writeFileSync(
    hook,
    `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`export async function resolve(s, c, next) {
  if (s === '@tripswitch/tuner') throw Object.assign(new Error("Cannot find package '@tripswitch/tuner'"), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(s, c);
}\`));
`,
  );
  const config = join(dir, 'no-tuner.yaml');
  writeFileSync(
    config,
    `admin: { port: 0 }
listeners: [{ port: 0, routes: [{ cluster: api }] }]
clusters:
  - name: api
    hosts: [127.0.0.1:1]
    record_trace: { file: api.ndjson }
`,
  );
  const r = await run(['--import', hook, cli, 'proxy', '--config', config, '--no-watch'], 20_000);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^record_trace needs the package @tripswitch\/tuner \(npm install @tripswitch\/tuner\), which could not be loaded: Cannot find package '@tripswitch\/tuner'$/m,
  );
});

test('a library user must pass the recorder factory (as for shared_state)', async () => {
  const { Sidecar } = await import('./proxy/server.js');
  const config = {
    listeners: [{ port: 0, routes: [{ cluster: 'api' }] }],
    clusters: [{ name: 'api', hosts: ['127.0.0.1:1'], record_trace: { file: join(dir, 'lib.ndjson') } }],
  };
  assert.throws(
    () => new Sidecar(config),
    /^Error: cluster "api": record_trace needs a recorder factory: create the Sidecar with \{ recordTrace: await loadTraceRecorder\(\) \} \(the CLI does this\)$/,
  );
});

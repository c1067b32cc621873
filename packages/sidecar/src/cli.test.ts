import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { send, until, upstream } from './proxy/test-helpers.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'tripswitch-cli-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

const config = (host: string, extra = '') => `admin: { port: 0 }
listeners:
  - port: 0
    routes: [{ prefix: /, cluster: up }]
clusters:
  - name: up
    hosts: [${host}]
${extra}`;

test('validate: exit 0 on a good file, 1 with file:line:col on a bad one', () => {
  const good = join(dir, 'good.yaml');
  writeFileSync(good, config('127.0.0.1:1'));
  const ok = spawnSync(process.execPath, [cli, 'validate', good], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, config('127.0.0.1:1', '    lb_policy: fastest\n'));
  const r = spawnSync(process.execPath, [cli, 'validate', bad], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.yaml:8:16 \/clusters\/0\/lb_policy: must be one of/);
});

test('export envoy prints parseable YAML for the same file', () => {
  const f = join(dir, 'exp.yaml');
  writeFileSync(f, config('127.0.0.1:7000'));
  const r = spawnSync(process.execPath, [cli, 'export', 'envoy', '--config', f], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(parse(r.stdout).static_resources.clusters[0].name, 'up');
  const bad = spawnSync(process.execPath, [cli, 'export', 'nginx', '--config', f], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
});

test('proxy: file change reloads, a bad file keeps the old config, SIGTERM drains in-flight and exits 0', async () => {
  const held: ServerResponse[] = [];
  const a = await upstream((req, res) => {
    if (req.url === '/hold') held.push(res);
    else res.end('a');
  });
  const b = await upstream((_req, res) => res.end('b'));
  const f = join(dir, 'live.yaml');
  writeFileSync(f, config(a.host));
  const child = spawn(process.execPath, [cli, 'proxy', '--config', f], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  const lines: { msg: string; [k: string]: unknown }[] = [];
  let buf = '';
  child.stderr!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    // start-up: a bound, not a speed claim (a loaded host took over 8 s to start two workers)
    await until(() => lines.some((l) => l.msg === 'listening'), 30_000);
    const port = Number(
      String(lines.find((l) => l.msg === 'listening')!.address)
        .split(':')
        .pop(),
    );
    assert.equal((await send(port, '/')).body.toString(), 'a');

    writeFileSync(f, config(b.host, '    lb_policy: nope\n'));
    await until(() => lines.some((l) => l.msg.startsWith('reload failed')), 5000);
    assert.equal((await send(port, '/')).body.toString(), 'a', 'old config still serves');

    writeFileSync(f, config(b.host));
    await until(() => lines.some((l) => l.msg === 'reloaded'), 5000);
    assert.equal((await send(port, '/')).body.toString(), 'b');

    child.kill('SIGHUP');
    await until(() => lines.filter((l) => l.msg === 'reloaded').length >= 2, 5000);

    writeFileSync(f, config(a.host));
    await until(() => lines.filter((l) => l.msg === 'reloaded').length >= 3, 5000);
    const inflight = send(port, '/hold');
    await until(() => held.length === 1, 5000);
    child.kill('SIGTERM');
    await until(() => lines.some((l) => l.msg === 'draining'), 5000);
    held[0]!.end('finished');
    assert.equal((await inflight).body.toString(), 'finished');
    assert.equal(await exited, 0);
    assert.ok(lines.some((l) => l.msg === 'stopped' && l.drained === true));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await a.close();
    await b.close();
  }
});

test('proxy with workers: 2: both workers serve, a reload reaches both, the admin shows totals, SIGTERM exits 0', async () => {
  const a = await upstream((_req, res) => res.end('a'));
  const b = await upstream((_req, res) => res.end('b'));
  const f = join(dir, 'workers.yaml');
  writeFileSync(f, `workers: 2\n${config(a.host)}`);
  const child = spawn(process.execPath, [cli, 'proxy', '--config', f], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const lines = () =>
    err
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; [k: string]: unknown });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
    if (!(major > 22 || (major === 22 && minor >= 12))) {
      // no SO_REUSEPORT listeners on this Node: refused at startup, naming the field and the Node needed
      assert.equal(await exited, 1);
      assert.match(err, /^workers: 2 needs Node 22\.12\+ \(or 23\.1\+\).*this is Node v\d+/m);
      return;
    }
    // start-up: a bound, not a speed claim (8 s failed on a loaded host: 'condition not met in time')
    await until(() => lines().filter((l) => l.msg === 'listening').length === 2, 30_000);
    await until(() => lines().some((l) => l.msg === 'admin listening'), 30_000);
    const listening = lines().filter((l) => l.msg === 'listening');
    assert.deepEqual(listening.map((l) => l.worker).sort(), [0, 1]);
    assert.equal(listening[0]!.address, listening[1]!.address, 'both workers on the same port');
    const port = Number(String(listening[0]!.address).split(':').pop());
    const adminPort = Number(lines().find((l) => l.msg === 'admin listening')!.port);
    for (let i = 0; i < 10; i++) assert.equal((await send(port, '/')).body.toString(), 'a');
    writeFileSync(f, `workers: 2\n${config(b.host)}`);
    await until(() => lines().some((l) => l.msg === 'reloaded'), 8000);
    const after = await Promise.all(Array.from({ length: 20 }, () => send(port, '/')));
    assert.deepEqual(
      after.map((r) => r.body.toString()),
      after.map(() => 'b'),
    );
    const breakers = (await send(adminPort, '/breakers')).body.toString();
    assert.equal((JSON.parse(breakers) as { counters: { requests: number } }[])[0]!.counters.requests, 30);
    // workers cannot change on reload
    writeFileSync(f, `workers: 3\n${config(b.host)}`);
    await until(() => lines().some((l) => l.msg.startsWith('reload failed')), 8000);
    assert.match(JSON.stringify(lines().find((l) => l.msg.startsWith('reload failed'))), /needs a restart/);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(lines().some((l) => l.msg === 'stopped' && l.drained === true));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await a.close();
    await b.close();
  }
});

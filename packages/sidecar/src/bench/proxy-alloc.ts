/**
 * `node packages/sidecar/dist/bench/proxy-alloc.js`: where the proxy allocates per request. Runs
 * a sidecar in this process (the backend in a child process), loads it with wrk (-t1 -c50,
 * BENCH_SECONDS, default 5) while V8's sampling heap profiler records every sampled allocation
 * (also those collected since, which is what an allocation rate is made of), then prints bytes per
 * request by allocating function (a builtin such as `split` is named with its caller), top 25.
 * ALLOC_DIST=<another build's dist directory> profiles that build's Sidecar instead (A/B);
 * ALLOC_HTTP_SERVER=node|own sets the listener's `http_server`. Needs wrk.
 * @module
 */
import { spawn, spawnSync } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Sidecar as SidecarClass } from '../proxy/server.js';

const { Sidecar } = (await import(
  process.env.ALLOC_DIST
    ? pathToFileURL(join(process.env.ALLOC_DIST, 'proxy/server.js')).href
    : '../proxy/server.js'
)) as { Sidecar: typeof SidecarClass };

const seconds = Number(process.env.BENCH_SECONDS ?? 5);

interface Node {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: Node[];
}

// The backend runs in its own process: its allocations are not the proxy's.
const backendPort = 20_000 + Math.floor(Math.random() * 20_000);
const backend = spawn(process.execPath, [
  '-e',
  `require('node:http').createServer((q,s)=>{s.writeHead(200,{'content-type':'text/plain','content-length':12});s.end('hello world\\n')}).listen(${backendPort},'127.0.0.1')`,
]);
for (let up = false; !up; ) {
  up = await new Promise<boolean>((resolve) => {
    const s = connect(backendPort, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (!up) await new Promise((r) => setTimeout(r, 50));
}
const sidecar = new Sidecar(
  {
    listeners: [
      {
        port: 0,
        routes: [{ prefix: '/', cluster: 'b' }],
        ...(process.env.ALLOC_HTTP_SERVER
          ? { http_server: process.env.ALLOC_HTTP_SERVER as 'node' | 'own' }
          : {}),
      },
    ],
    clusters: [
      {
        name: 'b',
        hosts: [`127.0.0.1:${backendPort}`],
        circuit_breakers: { thresholds: [{ priority: 'default', max_connections: 256, max_requests: 1024 }] },
      },
    ],
  },
  { logger: { info() {}, warn() {}, error() {} } },
);
await sidecar.start();
const url = `http://127.0.0.1:${sidecar.addresses()[0]!.port}/`;
const wrk = (s: number) =>
  new Promise<string>((resolve) => {
    // Asynchronously, so that this process keeps serving.
    import('node:child_process').then(({ execFile }) =>
      execFile('wrk', ['-t1', '-c50', `-d${s}s`, url], (_e, out) => resolve(out)),
    );
  });
if (spawnSync('wrk', ['--version']).error) throw new Error('wrk is not installed');
await wrk(1);
const session = new Session();
session.connect();
await session.post('HeapProfiler.startSampling', {
  samplingInterval: 4096,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
} as never);
const out = await wrk(seconds);
const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as {
  profile: { head: Node };
};
const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN);
const by = new Map<string, number>();
let total = 0;
const walk = (n: Node, caller: string) => {
  const f = n.callFrame;
  let key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  // A builtin (Map, split, exec...) has no script of its own: named with the function calling it.
  const builtin = f.url === '';
  if (builtin) key = `${key} <- ${caller}`;
  by.set(key, (by.get(key) ?? 0) + n.selfSize);
  total += n.selfSize;
  for (const c of n.children) walk(c, builtin ? caller : key);
};
walk(profile.head, '(root)');
console.log(`${requests} requests; ${(total / requests).toFixed(0)} bytes allocated per request (sampled)`);
console.log('| bytes/request | allocating function |');
console.log('|---|---|');
for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 25))
  console.log(`| ${(v / requests).toFixed(0)} | \`${k}\` |`);
session.disconnect();
await sidecar.shutdown();
backend.kill();

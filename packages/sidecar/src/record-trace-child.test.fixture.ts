// One bare sidecar process for record-trace.test.ts: a Sidecar with record_trace on a cluster whose
// upstream fails, traffic sent through it, a reload that removes the block, more traffic, shutdown,
// and then nothing: the process must end on its own (an open file, timer or socket would keep it).
// Prints what it did as one JSON line. Not a test, not published.
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseConfig } from './config/load.js';
import { Sidecar } from './proxy/server.js';
import { loadTraceRecorder } from './record-trace.js';

const [dir, trace] = process.argv.slice(2) as [string, string];
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

const upstream = createServer((req, res) => {
  res.statusCode = req.url === '/fail' ? 503 : 200;
  res.end('x');
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
const host = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;

const yaml = (record: boolean) => `listeners:
  - port: 0
    routes: [{ prefix: /, cluster: api }]
clusters:
  - name: api
    hosts: [${host}]
    breaker: { trip: { kind: consecutive, threshold: 1000 } }
${record ? `    record_trace: { file: ${trace}, max_files: 1 }\n` : ''}`;

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

const sidecar = new Sidecar(parseConfig(yaml(true), 'child.yaml', { baseDir: dir }), {
  logger: quiet,
  recordTrace: await loadTraceRecorder(),
});
await sidecar.start();
const port = sidecar.addresses()[0]!.port;
const statuses: number[] = [];
for (const path of ['/fail', '/ok', '/fail', '/fail', '/ok']) statuses.push(await get(port, path));
// The block removed: the recorder writes out and closes; what follows is not recorded.
await sidecar.reload(parseConfig(yaml(false), 'child.yaml', { baseDir: dir }));
for (const path of ['/fail', '/ok']) statuses.push(await get(port, path));
const drained = await sidecar.shutdown(1000);
await new Promise<void>((r) => upstream.close(() => r()));
process.stdout.write(`${JSON.stringify({ statuses, drained })}\n`);

#!/usr/bin/env node
// A recorded run for docs/tuning.md: real HTTP calls on the system clock to a local upstream that
// goes down for a while, recorded with recordTrace through a breaker in metrics-only mode (it
// counts but never refuses, so every call has an outcome to replay).
//
//   node packages/tuner/examples/record-demo.mjs [out.ndjson] [--seconds 45] [--rate 100]
//
// Timeline: healthy (1% of answers 500), then a hard outage (connection answered 503 at once) from
// 1/3 to 2/3 of the run, then healthy again.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { circuitBreaker } from 'tripswitch';
import { recordTrace } from '@tripswitch/tuner';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { seconds: { type: 'string', default: '45' }, rate: { type: 'string', default: '100' } },
});
const file = positionals[0] ?? 'recorded.ndjson';
const seconds = Number(values.seconds);
const rate = Number(values.rate);

const began = Date.now();
const phase = () => (Date.now() - began) / (seconds * 1000);
const server = createServer((_req, res) => {
  if (phase() > 1 / 3 && phase() < 2 / 3) {
    res.writeHead(503).end();
    return;
  }
  // 5-25 ms of work; 1% of answers are errors.
  setTimeout(() => res.writeHead(Math.random() < 0.01 ? 500 : 200).end('ok'), 5 + Math.random() * 20);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/`;

const breaker = circuitBreaker({ name: 'upstream', metricsOnly: true });
const recorder = recordTrace(breaker, { file });
const call = () =>
  breaker
    .execute(async () => {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (r.status >= 500) throw new Error(`status ${r.status}`);
    })
    .catch(() => {});

const inflight = new Set();
const end = began + seconds * 1000;
while (Date.now() < end) {
  const p = call();
  inflight.add(p);
  p.finally(() => inflight.delete(p));
  await new Promise((r) => setTimeout(r, 1000 / rate));
}
await Promise.all(inflight);
await recorder.stop();
server.close();
console.log(`${file}: ${JSON.stringify(recorder.stats())}`);

#!/usr/bin/env node
// Redis benchmark (issue 5), provided by @tripswitch/redis. Needs a Redis on 127.0.0.1:6379
// (REDIS_URL to override) and a build (`npm run build`).
//
//   node bench/redis.mjs [--quick]      prints a Markdown table and one `@@json {rows}` line
//   import { run } from './redis.mjs'   -> [{ case, value, unit }]
//
// Cases, each variant measured in its own process (7 rounds, interleaved):
// - per-call cost of a closed breaker: on a redisStore (local and fleet mode) against a plain local
//   breaker timed in the same process in alternating rounds (the ratio), and two naive stores
//   that go to Redis on every call: pybreaker's CircuitRedisStorage way (read the state, write the
//   counter) and gobreaker v2's way (read the state, take a lock, write the state, unlock);
// - open-state propagation: one of 4 processes trips, the time until each of the 3 others has
//   applied the open (same host, so the processes share one clock), p50 / p99.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const quick = process.argv.includes('--quick');
const now = () => performance.timeOrigin + performance.now();

const libs = async () => ({
  core: await import('tripswitch'),
  redis: await import('@tripswitch/redis'),
  Redis: (await import('ioredis')).Redis,
});

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

// ---- child: per-call cost of one variant --------------------------------------------------------
async function perCall(variant, { reps, calls }) {
  const { core, redis, Redis } = await libs();
  const prefix = `tripswitch-bench-${process.env.BENCH_RUN ?? process.pid}-${variant}`;
  const fn = () => 1;
  let breaker;
  let store;
  let client;
  if (variant === 'redis-local' || variant === 'redis-fleet') {
    store = redis.redisStore({
      url,
      prefix,
      mode: variant === 'redis-fleet' ? 'fleet' : 'local',
      logger: false,
    });
    if (!(await store.ready(5000))) throw new Error('Redis did not answer');
    breaker = core.circuitBreaker({ name: 'b', store });
  } else if (variant === 'naive-lock') {
    // gobreaker v2's distributed design: read the state, take a lock, run the call holding it,
    // write the state back, release the lock (4 round trips, calls serialised per breaker name).
    client = new Redis(url, { enableOfflineQueue: true });
    const local = core.circuitBreaker({ name: 'b' });
    const key = `${prefix}:gob`;
    breaker = {
      async execute(f) {
        const state = await client.get(`${key}:state`);
        if (state === 'open') throw new Error('open');
        while ((await client.set(`${key}:lock`, '1', 'PX', 5000, 'NX')) !== 'OK');
        try {
          const r = await local.execute(f);
          await client.set(`${key}:state`, 'closed');
          return r;
        } finally {
          await client.del(`${key}:lock`);
        }
      },
    };
    calls = Math.max(200, Math.floor(calls / 500));
  } else {
    // pybreaker's CircuitRedisStorage design: read the shared state before each call, write the
    // counter after.
    client = new Redis(url, { enableOfflineQueue: true });
    const local = core.circuitBreaker({ name: 'b' });
    const key = `${prefix}:naive`;
    breaker = {
      async execute(f) {
        const st = await client.get(`${key}:state`);
        if (st === 'open') throw new Error('open');
        try {
          const r = await local.execute(f);
          await client.set(`${key}:fail_counter`, 0);
          return r;
        } catch (err) {
          await client.incr(`${key}:fail_counter`);
          throw err;
        }
      },
    };
    calls = Math.max(200, Math.floor(calls / 500));
  }
  const timed = async (b, n) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await b.execute(fn);
    return Number(process.hrtime.bigint() - t0) / n;
  };
  // A plain local breaker runs in the same process, its rounds interleaved with the variant's, so
  // the ratio compares the two under the same JIT state and the same neighbours' load.
  const baseline = variant.startsWith('naive') ? undefined : core.circuitBreaker({ name: 'base' });
  await timed(breaker, Math.min(calls, 20_000)); // warm up
  if (baseline) await timed(baseline, Math.min(calls, 20_000));
  const samples = [];
  const base = [];
  const ratios = [];
  for (let r = 0; r < reps; r++) {
    if (!baseline) {
      samples.push(await timed(breaker, calls));
      continue;
    }
    const first = r % 2 === 0;
    const a = first ? await timed(baseline, calls) : undefined;
    const v = await timed(breaker, calls);
    const b = first ? a : await timed(baseline, calls);
    samples.push(v);
    base.push(b);
    ratios.push(v / b);
  }
  await store?.close();
  client?.disconnect();
  return {
    nsPerCall: median(samples),
    baseline: base.length ? median(base) : undefined,
    ratio: ratios.length ? median(ratios) : undefined,
    samples,
  };
}

// ---- child: one instance in the propagation case -------------------------------------------------
async function instance() {
  const { core, redis } = await libs();
  let breaker;
  let store;
  process.on('message', async (m) => {
    if (m.op === 'init') {
      store = redis.redisStore({ url, prefix: m.prefix, logger: false });
      breaker = core.circuitBreaker({ name: 'prop', trip: { kind: 'consecutive', threshold: 1 }, store });
      breaker.on('stateChange', (e) => process.send({ ev: e.to, at: now() }));
      process.send({ id: m.id, ok: await store.ready(5000) });
    } else if (m.op === 'trip') {
      // t0 is taken before the failing call starts, so the figure includes the local trip itself
      const t0 = now();
      await breaker.execute(() => Promise.reject(new Error('x'))).catch(() => {});
      process.send({ id: m.id, ok: true, t0 });
    } else if (m.op === 'reset') {
      breaker.reset();
      process.send({ id: m.id, ok: true });
    } else if (m.op === 'exit') {
      await store.close();
      process.send({ id: m.id, ok: true });
      process.disconnect();
    }
  });
}

function child(args) {
  const p = fork(self, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let next = 1;
  const waiting = new Map();
  const events = [];
  p.on('message', (m) => {
    if (m.id !== undefined) {
      waiting.get(m.id)?.(m);
      waiting.delete(m.id);
    } else events.push(m);
  });
  return {
    p,
    events,
    req: (op, extra = {}) =>
      new Promise((resolve, reject) => {
        const id = next++;
        const t = setTimeout(() => reject(new Error(`child: no answer to ${op}`)), 20_000);
        waiting.set(id, (m) => {
          clearTimeout(t);
          resolve(m);
        });
        p.send({ id, op, ...extra });
      }),
  };
}

async function until(pred, ms = 5000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('bench: timed out waiting');
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function propagation(trials) {
  const prefix = `tripswitch-bench-${process.pid}-prop`;
  const kids = Array.from({ length: 4 }, () => child(['--instance']));
  try {
    for (const k of kids) if (!(await k.req('init', { prefix })).ok) throw new Error('Redis did not answer');
    const lat = [];
    for (let t = 0; t < trials; t++) {
      const opener = kids[t % 4];
      const mark = kids.map((k) => k.events.length);
      const { t0 } = await opener.req('trip');
      await until(() => kids.every((k, i) => k.events.slice(mark[i]).some((e) => e.ev === 'open')));
      kids.forEach((k, i) => {
        if (k !== opener) lat.push(k.events.slice(mark[i]).find((e) => e.ev === 'open').at - t0);
      });
      const mark2 = kids.map((k) => k.events.length);
      await opener.req('reset');
      await until(() =>
        kids.every((k, i) => k === opener || k.events.slice(mark2[i]).some((e) => e.ev === 'closed')),
      );
    }
    return lat;
  } finally {
    await Promise.all(kids.map((k) => k.req('exit').catch(() => k.p.kill())));
  }
}

function measureInChild(variant, opts) {
  return new Promise((resolve, reject) => {
    const p = fork(self, ['--per-call', variant, JSON.stringify(opts)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, BENCH_RUN: String(process.pid) },
    });
    p.once('message', (m) => (m.error ? reject(new Error(m.error)) : resolve(m)));
    p.once('exit', (code) => code && reject(new Error(`per-call child exited with ${code}`)));
  });
}

/** Deletes the keys this run made (prefix `tripswitch-bench-<pid>-`). */
async function cleanup() {
  const { Redis } = await libs();
  const r = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `tripswitch-bench-${process.pid}-*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

/** Runs every case; returns rows `{ case, value, unit }`. */
export async function run({ quick: q = quick } = {}) {
  try {
    return await measureAll(q);
  } finally {
    await cleanup();
  }
}

async function measureAll(q) {
  const opts = { reps: q ? 3 : 7, calls: q ? 50_000 : 200_000 };
  const rounds = q ? 1 : 7;
  const variants = ['redis-local', 'redis-fleet', 'naive', 'naive-lock'];
  const res = Object.fromEntries(variants.map((v) => [v, []]));
  // interleave the variants across rounds so a noisy neighbour hits all of them alike
  for (let r = 0; r < rounds; r++) for (const v of variants) res[v].push(await measureInChild(v, opts));
  const med = (v, k) => median(res[v].map((x) => x[k]));
  const m = {
    local: median([...res['redis-local'], ...res['redis-fleet']].map((x) => x.baseline)),
    'redis-local': med('redis-local', 'nsPerCall'),
    'redis-fleet': med('redis-fleet', 'nsPerCall'),
    naive: med('naive', 'nsPerCall'),
    lock: med('naive-lock', 'nsPerCall'),
  };
  const ratio = { local: med('redis-local', 'ratio'), fleet: med('redis-fleet', 'ratio') };
  const lat = await propagation(q ? 30 : 150);
  const rows = [
    { case: 'closed call, local breaker', value: +m.local.toFixed(0), unit: 'ns/call' },
    { case: 'closed call, redisStore local mode', value: +m['redis-local'].toFixed(0), unit: 'ns/call' },
    { case: 'closed call, redisStore fleet mode', value: +m['redis-fleet'].toFixed(0), unit: 'ns/call' },
    {
      case: 'closed call, naive store: GET + SET per call (pybreaker)',
      value: +m.naive.toFixed(0),
      unit: 'ns/call',
    },
    {
      case: 'closed call, naive store: GET + lock + SET + unlock per call (gobreaker v2)',
      value: +m.lock.toFixed(0),
      unit: 'ns/call',
    },
    { case: 'redisStore local mode / local (same process)', value: +ratio.local.toFixed(3), unit: 'x' },
    { case: 'redisStore fleet mode / local (same process)', value: +ratio.fleet.toFixed(3), unit: 'x' },
    { case: 'naive store (pybreaker) / local', value: +(m.naive / m.local).toFixed(0), unit: 'x' },
    { case: 'naive store (gobreaker v2) / local', value: +(m.lock / m.local).toFixed(0), unit: 'x' },
    { case: 'open propagation p50 (4 processes)', value: +pct(lat, 50).toFixed(3), unit: 'ms' },
    { case: 'open propagation p99 (4 processes)', value: +pct(lat, 99).toFixed(3), unit: 'ms' },
    { case: 'open propagation max (4 processes)', value: +Math.max(...lat).toFixed(3), unit: 'ms' },
    { case: 'open propagation samples', value: lat.length, unit: 'count' },
  ];
  return rows;
}

const mode = process.argv[2];
if (mode === '--per-call') {
  perCall(process.argv[3], JSON.parse(process.argv[4])).then(
    (r) => {
      process.send(r);
      process.disconnect();
    },
    (err) => {
      process.send({ error: String(err?.stack ?? err) });
      process.disconnect();
    },
  );
} else if (mode === '--instance') {
  await instance();
} else if (process.argv[1] === self) {
  const rows = await run();
  const lines = [
    '| case | value | unit |',
    '|---|---:|---|',
    ...rows.map((r) => `| ${r.case} | ${r.value} | ${r.unit} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  process.stdout.write(`@@json ${JSON.stringify({ rows })}\n`);
}

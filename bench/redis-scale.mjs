#!/usr/bin/env node
// Scale benchmark of @tripswitch/redis (issue 14, item 8). Not a test, not part of `npm run bench`
// (it runs for about a minute and starts its own redis-server). Needs redis-server and a build.
//
//   node bench/redis-scale.mjs [--breakers 10000] [--procs 8] [--rate 50000] [--seconds 10]
//                              [--mode local|fleet|both] [--command-timeout ms]
//
// Per mode, on a fresh redis-server of its own (free loopback port, persistence off):
// - `procs` Node processes, each an instance of the same service holding the same `breakers`
//   breakers (circuitBreaker + one redisStore per process), all attached before the load starts;
// - a paced load of `rate` calls/s in total (rate / procs per process, every call to a breaker
//   picked at random, all succeeding) for `seconds`;
// - meanwhile, every 50 ms one process (round robin) trips a breaker no one has tripped yet (3
//   failing calls, consecutive threshold 3) and every other process records when it applies the
//   open: propagation = receiver's time - opener's time of its local transition (same host: the
//   processes share one clock);
// - Redis: commands processed during the load window (INFO commandstats after CONFIG RESETSTAT),
//   used_memory before the processes start, after attaching, and after the load; MEMORY USAGE of the
//   keys of a breaker that never tripped and of one that did.
import { execFileSync, fork, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const now = () => performance.timeOrigin + performance.now();
const TRIP_EVERY_MS = 50;

// ---- child: one instance -------------------------------------------------------------------------
async function instance() {
  const core = await import('tripswitch');
  const { redisStore } = await import('@tripswitch/redis');
  let store;
  const breakers = [];
  const byName = new Map();
  const opens = []; // [name, at] of every open this process applied (its own or a remote one)
  let calls = 0;
  let rejected = 0;
  let failedOther = 0;
  let degraded = 0;
  const answer = (m, extra = {}) => process.send({ id: m.id, ...extra });
  process.on('message', async (m) => {
    if (m.op === 'init') {
      store = redisStore({
        url: m.url,
        prefix: m.prefix,
        mode: m.mode,
        logger: false,
        ...(m.commandTimeoutMs ? { commandTimeoutMs: m.commandTimeoutMs } : {}),
      });
      store.on('degraded', ({ error }) => {
        degraded++;
        if (process.env.SCALE_DEBUG) console.error(`degraded: ${error?.message ?? error}`);
      });
      const t0 = now();
      for (let i = 0; i < m.breakers; i++) {
        const name = `b${i}`;
        const b = core.circuitBreaker({
          name,
          store,
          trip: { kind: 'consecutive', threshold: 3 },
          openDuration: 600_000,
        });
        b.on('stateChange', (e) => {
          if (e.to === 'open') opens.push([name, now()]);
        });
        breakers.push(b);
        byName.set(name, b);
      }
      const ok = await store.ready(m.readyTimeoutMs);
      // One call per breaker: each waits for its first sync with Redis (cold start) before deciding.
      await Promise.all(breakers.map((b) => b.execute(() => 1).catch(() => {})));
      answer(m, { ok, attachMs: now() - t0, degraded });
    } else if (m.op === 'load') {
      const { rate, ms } = m;
      const start = performance.now();
      const n = breakers.length;
      const fn = () => 1;
      await new Promise((resolve) => {
        const tick = setInterval(() => {
          const elapsed = performance.now() - start;
          const due = Math.floor((Math.min(elapsed, ms) / 1000) * rate);
          while (calls < due) {
            calls++;
            breakers[Math.floor(Math.random() * n)].execute(fn).catch((err) => {
              if (core.isCircuitOpenError(err)) rejected++;
              else failedOther++;
            });
          }
          if (elapsed >= ms) {
            clearInterval(tick);
            resolve();
          }
        }, 5);
      });
      answer(m, { calls, rejected, failedOther, degraded, ms: performance.now() - start });
    } else if (m.op === 'trip') {
      const b = byName.get(m.name);
      for (let i = 0; i < 3; i++)
        await b
          .execute(() => {
            throw new Error('down');
          })
          .catch(() => {});
      answer(m, { state: b.state });
    } else if (m.op === 'report') {
      answer(m, { opens });
    } else if (m.op === 'exit') {
      await store.close();
      answer(m);
      process.disconnect();
    }
  });
}

// ---- parent ---------------------------------------------------------------------------------------
function child() {
  const p = fork(self, ['--instance'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let next = 1;
  const waiting = new Map();
  p.on('message', (m) => {
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  return {
    p,
    req: (op, extra = {}, timeoutMs = 400_000) =>
      new Promise((resolve, reject) => {
        const id = next++;
        const t = setTimeout(() => reject(new Error(`instance: no answer to ${op}`)), timeoutMs);
        waiting.set(id, (m) => {
          clearTimeout(t);
          resolve(m);
        });
        p.send({ id, op, ...extra });
      }),
  };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
const info = (text) =>
  Object.fromEntries(
    text
      .split(/\r?\n/)
      .filter((l) => l.includes(':') && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );

async function runMode(mode, { breakers, procs, rate, seconds, commandTimeoutMs, readyTimeoutMs }) {
  const { Redis } = await import('ioredis');
  const port = await freePort();
  const server = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--loglevel',
      'warning',
    ],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const r = new Redis(url, { maxRetriesPerRequest: 3, retryStrategy: (n) => (n > 50 ? null : 50) });
  r.on('error', () => {}); // refused until the server listens; the commands retry
  const kids = [];
  try {
    await r.ping();
    const mem = async () => Number(info(await r.info('memory')).used_memory);
    const memBase = await mem();
    const prefix = 'scale';
    for (let i = 0; i < procs; i++) kids.push(child());
    const inits = await Promise.all(
      kids.map((k) => k.req('init', { url, prefix, mode, breakers, commandTimeoutMs, readyTimeoutMs })),
    );
    if (!inits.every((x) => x.ok))
      throw new Error(
        `an instance did not get ready: ${JSON.stringify(inits.map((x) => ({ ok: x.ok, ms: Math.round(x.attachMs), degraded: x.degraded })))}`,
      );
    const memAttached = await mem();
    const keysAttached = await r.dbsize();
    await r.config('RESETSTAT');
    const t0 = now();
    const loads = kids.map((k) => k.req('load', { rate: rate / procs, ms: seconds * 1000 }));
    // Trips during the load: breakers b0, b1, ... in order, openers round robin.
    const trips = [];
    const tripping = (async () => {
      for (let t = 0; now() - t0 < seconds * 1000 - TRIP_EVERY_MS; t++) {
        const opener = t % procs;
        const name = `b${t}`;
        trips.push({ name, opener });
        kids[opener].req('trip', { name }).catch(() => {});
        await new Promise((res) => setTimeout(res, TRIP_EVERY_MS));
      }
    })();
    const results = await Promise.all(loads);
    await tripping;
    const windowMs = now() - t0;
    const stats = info(await r.info('commandstats'));
    if (process.env.SCALE_DEBUG) {
      console.error('slowlog', JSON.stringify(await r.slowlog('GET', 5)));
      console.error('latest latency', JSON.stringify(await r.call('LATENCY', 'LATEST')));
    }
    await new Promise((res) => setTimeout(res, 500)); // the last opens arrive
    const memAfter = await mem();
    const keysAfter = await r.dbsize();
    const reports = await Promise.all(kids.map((k) => k.req('report')));
    let total = 0;
    const perCmd = [];
    for (const [k, v] of Object.entries(stats)) {
      const n = Number(/calls=(\d+)/.exec(v)?.[1] ?? 0);
      total += n;
      perCmd.push([k.replace('cmdstat_', ''), n]);
    }
    perCmd.sort((a, b) => b[1] - a[1]);
    // Propagation: for each trip, the opener's own open time, then every other instance's.
    const lat = [];
    let missing = 0;
    for (const { name, opener } of trips) {
      const firstAt = (k) => reports[k].opens.find(([n]) => n === name)?.[1];
      const t = firstAt(opener);
      if (t === undefined) {
        missing++;
        continue;
      }
      for (let k = 0; k < procs; k++) {
        if (k === opener) continue;
        const at = firstAt(k);
        if (at === undefined) missing++;
        else lat.push(at - t);
      }
    }
    // Memory of one breaker's keys: an untouched one and a tripped one.
    const usage = async (pattern) => {
      let bytes = 0;
      const keys = await r.keys(pattern);
      for (const k of keys) bytes += Number(await r.memory('USAGE', k, 'SAMPLES', 0));
      return { keys: keys.length, bytes };
    };
    const untouched = await usage(`${prefix}:{b${breakers - 1}}*`);
    const tripped = await usage(`${prefix}:{b0}*`);
    const calls = results.reduce((s, x) => s + x.calls, 0);
    const callMs = Math.max(...results.map((x) => x.ms));
    return {
      mode,
      attachMs: Math.max(...inits.map((x) => x.attachMs)),
      calls,
      callsPerSec: calls / (callMs / 1000),
      rejected: results.reduce((s, x) => s + x.rejected, 0),
      failedOther: results.reduce((s, x) => s + x.failedOther, 0),
      degraded: results.reduce((s, x) => s + x.degraded, 0),
      degradedAtStart: inits.reduce((s, x) => s + x.degraded, 0),
      commands: total,
      evalsha: Number(perCmd.find(([c]) => c === 'evalsha')?.[1] ?? 0),
      // Time Redis spent running the scripts (its own measure, main thread), per call and per second.
      evalshaUsec: Number(/usec_per_call=([\d.]+)/.exec(stats.cmdstat_evalsha ?? '')?.[1] ?? 0),
      redisBusy: Number(/usec=(\d+)/.exec(stats.cmdstat_evalsha ?? '')?.[1] ?? 0) / 1000 / windowMs,
      evalshaPerSec: Number(perCmd.find(([c]) => c === 'evalsha')?.[1] ?? 0) / (windowMs / 1000),
      commandsPerSec: total / (windowMs / 1000),
      topCommands: perCmd.slice(0, 6),
      memBase,
      memAttached,
      memAfter,
      keysAttached,
      keysAfter,
      untouched,
      tripped,
      trips: trips.length,
      samples: lat.length,
      missing,
      p50: pct(lat, 50),
      p99: pct(lat, 99),
      max: pct(lat, 100),
    };
  } finally {
    await Promise.all(kids.map((k) => k.req('exit', {}, 10_000).catch(() => k.p.kill('SIGKILL'))));
    r.disconnect();
    server.kill('SIGKILL');
  }
}

async function main() {
  const opts = {
    breakers: Number(arg('breakers', 10_000)),
    procs: Number(arg('procs', 8)),
    rate: Number(arg('rate', 50_000)),
    seconds: Number(arg('seconds', 10)),
    // The store's default (250 ms) unless given.
    commandTimeoutMs: arg('command-timeout') ? Number(arg('command-timeout')) : undefined,
    readyTimeoutMs: Number(arg('ready-timeout', 120_000)),
  };
  const modeArg = arg('mode', 'both');
  const modes = modeArg === 'both' ? ['local', 'fleet'] : [modeArg];
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  const rows = [];
  const loadBefore = loadavg()[0].toFixed(1);
  for (const mode of modes) {
    const r = await runMode(mode, opts);
    rows.push(r);
    console.error(JSON.stringify(r));
  }
  const kb = (b) => `${(b / 1024).toFixed(0)} KiB`;
  console.log(
    `${opts.breakers} breakers in each of ${opts.procs} processes, ${opts.rate} calls/s in total for ${opts.seconds} s; ${redisVersion}; load average ${loadBefore} before, ${loadavg()[0].toFixed(1)} after\n`,
  );
  console.log(`| | ${rows.map((r) => `${r.mode} mode`).join(' | ')} |`);
  console.log(`|---|${rows.map(() => '---|').join('')}`);
  const line = (label, f) => console.log(`| ${label} | ${rows.map(f).join(' | ')} |`);
  line('calls made (rate reached)', (r) => `${r.calls} (${Math.round(r.callsPerSec)}/s)`);
  line('calls rejected by an open breaker / failed otherwise', (r) => `${r.rejected} / ${r.failedOther}`);
  line(
    'store degraded events, all processes: while attaching / by the end of the load',
    (r) => `${r.degradedAtStart} / ${r.degraded}`,
  );
  line('Redis round trips (EVALSHA)/s during the load', (r) => `${Math.round(r.evalshaPerSec)}`);
  line('Redis commands/s, counting those run inside scripts', (r) => `${Math.round(r.commandsPerSec)}`);
  line('EVALSHA per call', (r) => (r.evalsha / r.calls).toFixed(4));
  line(
    'Redis time in scripts: per EVALSHA / share of the load window',
    (r) => `${r.evalshaUsec.toFixed(0)} µs / ${(100 * r.redisBusy).toFixed(0)} %`,
  );
  line('top commands', (r) => r.topCommands.map(([c, n]) => `${c} ${n}`).join(', '));
  line('attach + first sync of all breakers (slowest process)', (r) => `${Math.round(r.attachMs)} ms`);
  line(
    'used_memory: empty / attached / after load',
    (r) => `${kb(r.memBase)} / ${kb(r.memAttached)} / ${kb(r.memAfter)}`,
  );
  line('keys: attached / after load', (r) => `${r.keysAttached} / ${r.keysAfter}`);
  line(
    'Redis memory per breaker: (attached - empty) / breakers (keys, channels, connections)',
    (r) => `${Math.round((r.memAttached - r.memBase) / opts.breakers)} B`,
  );
  line('MEMORY USAGE, never-tripped breaker', (r) => `${r.untouched.bytes} B (${r.untouched.keys} keys)`);
  line('MEMORY USAGE, tripped breaker', (r) => `${r.tripped.bytes} B (${r.tripped.keys} keys)`);
  line(
    `open propagation p50 / p99 / max (${rows[0]?.samples} samples)`,
    (r) =>
      `${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} / ${r.max.toFixed(1)} ms${r.missing ? ` (${r.missing} missing)` : ''}`,
  );
}

if (process.argv.includes('--instance')) instance();
else
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });

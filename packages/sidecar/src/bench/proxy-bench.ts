/**
 * `npm run bench:proxy`: throughput and latency on 127.0.0.1 of a node backend reached directly,
 * through tripswitch, through nginx (1 worker, upstream keepalive), through HAProxy (1 thread,
 * upstream keep-alive) when installed, through the npm http-proxy package (keep-alive agent), and
 * through a byte pipe on node's sockets (no HTTP, no policy: the floor of any node proxy's cost),
 * and through tripswitch with its listener's `http_server: node` (node's http server reading the
 * client connections instead of the default, own; BENCH_NODE_SERVER=0 leaves it out).
 * Each row gives the target process's CPU time per request (user + system), which unlike req/s
 * does not depend on how the scheduler shares the cores.
 * Load from wrk (-t1 -c50) when installed, else autocannon. Every target runs at once in its own
 * process and the rounds interleave (each target once per round); BENCH_SECONDS sets the duration
 * (default 10), BENCH_ROUNDS the rounds (medians and per-round ratios reported, default 1). BENCH_COMPARE=<dist dir of another build> compares
 * this build's proxy with that one instead, in interleaved rounds (BENCH_NODE_FLAGS and
 * BENCH_COMPARE_NODE_FLAGS: node flags for each side; BENCH_ENV and BENCH_COMPARE_ENV: `K=V ...`
 * environment for each side's proxy; BENCH_HTTP_SERVER and BENCH_COMPARE_HTTP_SERVER: the
 * listener's `http_server`, `node` or `own`, for each side, unset = not written). With wrk, every round also runs
 * each target at a fixed offered rate (BENCH_RATE req/s, default 4000, 0 to skip): each connection
 * waits an exponentially distributed pause after each response (Poisson-like arrivals), so the
 * latency percentiles compare what each proxy adds at the same load, below every target's capacity.
 * Every run also reads what else had the CPU (/proc): the hypervisor's steal (other guests of a
 * shared host) and processes the bench did not start; a round in which these took more than
 * BENCH_MAX_NOISE % (default 10) of the machine's CPU in one run is measured again, up to 3 times, and
 * the noise of the kept runs is printed.
 * @module
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1));
const rate = Number(process.env.BENCH_RATE ?? 4000);
/**
 * Noise (%) above which a round is measured again (BENCH_MAX_NOISE, default 10; 100 keeps every
 * round): the CPU time, during one of its runs, that the hypervisor gave other guests (steal) or
 * that processes this bench did not start used. Such a round measured them as much as the proxies.
 */
const maxNoise = Number(process.env.BENCH_MAX_NOISE ?? 10);
const noiseRetries = 3;
/** A run's noise: steal + other CPU, % of the machine's CPU time. */
const noise = (r: { steal?: number; other?: number }) => (r.steal ?? 0) + (r.other ?? 0);

/** Whether round `i` (its runs in `round`) is to be measured again for its noise; says so. */
function measureAgain(i: number, tries: number, round: { r: Result; q?: PacedResult }[]): boolean {
  const worst = Math.max(...round.flatMap((x) => [noise(x.r), x.q ? noise(x.q) : 0]));
  if (worst <= maxNoise || tries >= noiseRetries) return false;
  console.log(
    `round ${i + 1} measured again: steal + other took ${worst.toFixed(1)}% of the CPU in one of its runs (BENCH_MAX_NOISE ${maxNoise}%)`,
  );
  return true;
}

/** Prints the noise of the runs kept (NaN: a run that was not made). */
function noiseSummary(noises: number[]): void {
  const kept = noises.filter((x) => !Number.isNaN(x));
  console.log(
    `\nsteal + other CPU in the kept runs: median ${median(kept).toFixed(1)}%, max ${Math.max(...kept).toFixed(1)}% (a round above BENCH_MAX_NOISE ${maxNoise}% is measured again, up to ${noiseRetries} times)`,
  );
}
const dir = mkdtempSync(join(tmpdir(), 'tripswitch-bench-'));
const here = dirname(fileURLToPath(import.meta.url));
const children: ChildProcess[] = [];
const BASE = 20_000 + Math.floor(Math.random() * 20_000);
const ports = {
  backend: BASE,
  tripswitch: BASE + 1,
  nginx: BASE + 2,
  httpProxy: BASE + 3,
  admin: BASE + 4,
  haproxy: BASE + 5,
  pipe: BASE + 6,
  tuned: BASE + 7,
  tunedAdmin: BASE + 8,
  alt: BASE + 9,
  altAdmin: BASE + 10,
};
/**
 * Node flags of a second tripswitch target (BENCH_TUNED_FLAGS; empty: no such target). The default
 * pins V8's young generation at its usual 16 MB: V8 shrinks it when a process has allocated little
 * for a while, as every target here does between its rounds, and the next burst then scavenges
 * about 3x as often (Node 20 after 30 s idle; Node 22 and 24 in this bench's rounds, 186 against
 * 52 minor GCs per 100k requests on Node 22, 2026-12-02).
 */
const tunedFlags = (process.env.BENCH_TUNED_FLAGS ?? '--min-semi-space-size=16').split(' ').filter(Boolean);

function start(cmd: string, args: string[], env?: Record<string, string>): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  c.stderr?.on('data', () => {});
  children.push(c);
  return c;
}

async function waitPort(port: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${port} did not open`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Result {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU microseconds per request of the target's process, user and system (full table only). */
  user?: number;
  sys?: number;
  /** The host's steal during the run, % of the machine's CPU time. */
  steal?: number;
  /** CPU used by processes the bench did not start, during the run, %. */
  other?: number;
}

function parseMs(s: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(s);
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

const hasWrk = !spawnSync('wrk', ['--version']).error;
/** Paced rounds need wrk's Lua `delay()`; autocannon has no per-connection pacing. */
const paced = hasWrk && rate > 0;

/**
 * wrk script for the paced rounds: after each response a connection waits an exponentially
 * distributed pause with the mean that makes `connections` connections offer `rate` req/s (less the
 * response times themselves, which is why each row reports the rate reached), then prints the
 * percentiles wrk's summary leaves out (p99.9, in microseconds).
 */
const paceScript = join(dir, 'pace.lua');
writeFileSync(
  paceScript,
  `local mean = ${(connections * 1000) / Math.max(rate, 1)}
math.randomseed(${Date.now() % 1_000_000})
function delay() return -mean * math.log(1 - math.random()) end
function done(summary, latency, requests)
  io.write(string.format("pct %d %d %d %d\\n", latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
`,
);

interface PacedResult {
  name: string;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  errors: number;
  /** The host's steal during the run, % of the machine's CPU time. */
  steal: number;
  /** CPU used by processes the bench did not start, during the run, %. */
  other: number;
}

/** One paced run (wrk and `paceScript`): the rate reached and the latency percentiles in ms. */
function pacedOnce(name: string, port: number): PacedResult {
  const {
    value: r,
    steal,
    other,
  } = withNoise(() =>
    spawnSync(
      'wrk',
      ['-t1', `-c${connections}`, `-d${seconds}s`, '-s', paceScript, `http://127.0.0.1:${port}/`],
      {
        encoding: 'utf8',
      },
    ),
  );
  const out = r.stdout;
  const pct = /^pct (\d+) (\d+) (\d+) (\d+)$/m.exec(out);
  const ms = (i: number) => (pct ? Number(pct[i]) / 1000 : Number.NaN);
  return {
    name,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN),
    p50: ms(1),
    p90: ms(2),
    p99: ms(3),
    p999: ms(4),
    steal,
    other,
    errors:
      Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) +
      Number(/Socket errors:.*?(\d+)/.exec(out)?.[1] ?? 0),
  };
}

/** The median of the readings that exist (a failed /metrics read is NaN; NaN would break the sort). */
const median = (xs: number[]): number => {
  const ok = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return ok.length === 0 ? Number.NaN : ok[Math.floor(ok.length / 2)]!;
};

/** Medians over rounds of paced results, one row per target, and the p99 each adds to direct's. */
function pacedTable(byName: Map<string, PacedResult[]>, direct: string): void {
  console.log(
    `\npaced at ${rate} req/s offered (${connections} connections, exponential pauses; medians of the rounds' percentiles):`,
  );
  console.log('\n| target | req/s reached | p50 ms | p90 ms | p99 ms | p99.9 ms | p99 added ms | errors |');
  console.log('|---|---|---|---|---|---|---|---|');
  const d = median(byName.get(direct)!.map((r) => r.p99));
  for (const [name, rs] of byName) {
    const m = (f: (r: PacedResult) => number) => median(rs.map(f));
    console.log(
      `| ${name} | ${Math.round(m((r) => r.rps)).toLocaleString('en-US')} | ${m((r) => r.p50).toFixed(2)} | ${m((r) => r.p90).toFixed(2)} | ${m((r) => r.p99).toFixed(2)} | ${m((r) => r.p999).toFixed(2)} | ${name === direct ? '' : (m((r) => r.p99) - d).toFixed(2)} | ${rs.reduce((n, r) => n + r.errors, 0)} |`,
    );
  }
}

/** One second of load, so that JITs and pools are hot. */
async function warmUp(port: number): Promise<void> {
  const url = `http://127.0.0.1:${port}/`;
  if (hasWrk) {
    spawnSync('wrk', ['-t1', `-c${connections}`, '-d1s', url]);
    return;
  }
  const { default: autocannon } = (await import('autocannon' as string)) as {
    default: (o: unknown) => Promise<unknown>;
  };
  await autocannon({ url, connections, duration: 1 });
}

async function loadOnce(name: string, port: number, warm: boolean): Promise<Result> {
  const url = `http://127.0.0.1:${port}/`;
  if (hasWrk) {
    // a short warm-up so JITs and pools are hot
    if (warm) await warmUp(port);
    const {
      value: r,
      steal,
      other,
    } = withNoise(() =>
      spawnSync('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', url], { encoding: 'utf8' }),
    );
    const out = r.stdout;
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
    // Anchored to the distribution's own lines: "+/- Stdev" figures such as 75.50% also end in
    // "50%" (unanchored, the next line's first word was read: NaN).
    const p50 = parseMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
    const p99 = parseMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
    const errors =
      Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) +
      Number(/Socket errors:.*?(\d+)/.exec(out)?.[1] ?? 0);
    return { name, rps, p50, p99, errors, steal, other };
  }
  const { default: autocannon } = (await import('autocannon' as string)) as {
    default: (o: unknown) => Promise<{
      requests: { average: number };
      latency: { p50: number; p99: number };
      non2xx: number;
      errors: number;
    }>;
  };
  if (warm) await warmUp(port);
  const r = await autocannon({ url, connections, duration: seconds });
  return {
    name,
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.non2xx + r.errors,
  };
}

const backendSrc = `require('node:http').createServer((q,s)=>{s.writeHead(200,{'content-type':'text/plain','content-length':12});s.end('hello world\\n')}).listen(${ports.backend},'127.0.0.1')`;
const httpProxySrc = `const http=require('node:http');const hp=require(${JSON.stringify(join(process.cwd(), 'node_modules/http-proxy'))});
const p=hp.createProxyServer({target:'http://127.0.0.1:${ports.backend}',agent:new http.Agent({keepAlive:true,maxSockets:256})});
p.on('error',(e,q,s)=>{s.statusCode=502;s.end()});http.createServer((q,s)=>p.web(q,s)).listen(${ports.httpProxy},'127.0.0.1')`;
// The floor of any proxy written on node's sockets: bytes relayed on a connection of its own per
// client, no HTTP parsing, no policy (not a usable proxy: a reference for the CPU per request).
const pipeSrc = `const net=require('node:net');net.createServer((c)=>{const u=net.connect({port:${ports.backend},host:'127.0.0.1',noDelay:true});c.setNoDelay(true);
c.on('data',(d)=>u.write(d));u.on('data',(d)=>c.write(d));c.on('close',()=>u.destroy());u.on('close',()=>c.destroy());c.on('error',()=>{});u.on('error',()=>{})}).listen(${ports.pipe},'127.0.0.1')`;

/** User and system CPU milliseconds of a process so far, all threads (Linux /proc; NaN elsewhere). */
function cpuSplit(pid: number | undefined): { user: number; sys: number } {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // fields 14 and 15, in USER_HZ (100 on Linux)
    return { user: (Number(f[11]) * 1000) / 100, sys: (Number(f[12]) * 1000) / 100 };
  } catch {
    return { user: Number.NaN, sys: Number.NaN };
  }
}

/** User + system CPU milliseconds of a process so far (NaN elsewhere). */
function cpuMs(pid: number): number {
  const c = cpuSplit(pid);
  return c.user + c.sys;
}

/** The machine's CPU ticks so far: all, busy (not idle, iowait or steal) and stolen (Linux; NaN elsewhere). */
function ticks(): { all: number; busy: number; steal: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]!;
    return { all: f.slice(0, 8).reduce((a, b) => a + b, 0), busy, steal: f[7]! };
  } catch {
    return { all: Number.NaN, busy: Number.NaN, steal: Number.NaN };
  }
}

/** The pids of a process and its descendants (nginx's worker under its master). */
function family(pid: number, out: number[] = []): number[] {
  out.push(pid);
  try {
    for (const k of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' '))
      if (k !== '') family(Number(k), out);
  } catch {
    // gone
  }
  return out;
}

/** CPU ticks of this bench and everything it started (wrk runs are reaped: they count in cutime). */
function ownTicks(): number {
  let n = 0;
  const stat = (pid: number | string, withChildren: boolean) => {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      n += Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0);
    } catch {
      // gone
    }
  };
  stat('self', true);
  for (const c of children) if (c.pid !== undefined) for (const p of family(c.pid)) stat(p, false);
  return n;
}

/**
 * Runs `f` and gives what else had the machine meanwhile, as % of its CPU time: `steal`, given by
 * the hypervisor to other guests, and `other`, used by processes this bench did not start. On a
 * shared host a round where either is high measured the neighbours as much as the proxies.
 */
function withNoise<T>(f: () => T): { value: T; steal: number; other: number } {
  const a = ticks();
  const oa = ownTicks();
  const value = f();
  const b = ticks();
  const ob = ownTicks();
  const all = Math.max(1, b.all - a.all);
  return {
    value,
    steal: (100 * (b.steal - a.steal)) / all,
    other: Math.max(0, (100 * (b.busy - a.busy - (ob - oa))) / all),
  };
}

/** The first child of a process (nginx's worker under its master), once it exists. */
async function childOf(pid: number | undefined): Promise<number | undefined> {
  for (let i = 0; i < 100 && pid !== undefined; i++) {
    try {
      const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
      if (kids) return Number(kids.split(' ')[0]);
    } catch {
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

/** The proxy's minor and major GC counts and pause ms so far, from its admin `/metrics` (NaN when absent). */
async function gcStats(adminPort: number): Promise<{ minor: number; major: number; ms: number }> {
  try {
    const url = `http://127.0.0.1:${adminPort}/metrics`;
    // Once more on a failure: fetch can pick a pooled connection the admin server has just closed
    // as idle (a round's 5-70 s between reads), which made some rounds' GC counts NaN.
    const text = await fetch(url)
      .catch(() => fetch(url))
      .then((r) => r.text());
    const read = (what: string, kind: string) =>
      Number(
        new RegExp(`^nodejs_gc_duration_seconds_${what}\\{kind="${kind}"\\} (\\S+)$`, 'm').exec(text)?.[1],
      );
    const kinds = ['minor', 'major', 'incremental', 'weakcb'];
    return {
      minor: read('count', 'minor'),
      major: read('count', 'major'),
      ms: kinds.reduce((n, k) => n + read('sum', k), 0) * 1000,
    };
  } catch {
    return { minor: Number.NaN, major: Number.NaN, ms: Number.NaN };
  }
}

/** GCs and GC pause per 100k requests between two `gcStats` readings. */
function gcPer100k(a: Awaited<ReturnType<typeof gcStats>>, b: typeof a, requests: number) {
  const k = 100_000 / requests;
  return { minor: (b.minor - a.minor) * k, major: (b.major - a.major) * k, ms: (b.ms - a.ms) * k };
}

/**
 * BENCH_COMPARE=<another build's dist directory>: this build's proxy against that one, both running
 * at once in front of the same backend, loaded in interleaved rounds (A B B A ...) so that a loaded
 * machine's drift hits both alike. Prints each round and the medians.
 */
async function compare(other: string): Promise<void> {
  const n = Math.max(2, rounds);
  console.log(
    `bench:proxy compare: ${n} rounds of ${seconds}s per build (A B B A ...), ${connections} connections`,
  );
  start(process.execPath, ['-e', backendSrc]);
  await waitPort(ports.backend);
  const pids: number[] = [];
  // Node flags per side (BENCH_NODE_FLAGS, BENCH_COMPARE_NODE_FLAGS): the same build can be
  // compared with itself under, say, a larger young generation.
  const flags = (v: string | undefined) => (v ? v.split(' ').filter(Boolean) : []);
  // Environment per side (BENCH_ENV, BENCH_COMPARE_ENV: `K=V K2=V2`): the same build with a switch on and off.
  const envOf = (v: string | undefined) =>
    Object.fromEntries(flags(v).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const builds = [
    {
      name: 'this build',
      cli: join(here, '..', 'cli.js'),
      port: ports.tripswitch,
      admin: ports.admin,
      flags: flags(process.env.BENCH_NODE_FLAGS),
      env: envOf(process.env.BENCH_ENV),
      httpServer: process.env.BENCH_HTTP_SERVER,
    },
    {
      name: `BENCH_COMPARE`,
      cli: join(other, 'cli.js'),
      port: ports.nginx,
      admin: ports.httpProxy,
      flags: flags(process.env.BENCH_COMPARE_NODE_FLAGS),
      env: envOf(process.env.BENCH_COMPARE_ENV),
      httpServer: process.env.BENCH_COMPARE_HTTP_SERVER,
    },
  ];
  for (const b of builds) {
    const cfg = join(dir, `compare-${b.port}.yaml`);
    writeFileSync(
      cfg,
      `admin: { port: ${b.admin} }
listeners:
  - port: ${b.port}
    routes: [{ prefix: /, cluster: backend }]${b.httpServer ? `\n    http_server: ${b.httpServer}` : ''}
clusters:
  - name: backend
    hosts: [127.0.0.1:${ports.backend}]
    circuit_breakers: { thresholds: [{ priority: default, max_connections: 256, max_requests: 1024 }] }
`,
    );
    pids.push(
      start(process.execPath, [...b.flags, b.cli, 'proxy', '--config', cfg, '--no-watch'], b.env).pid!,
    );
    await waitPort(b.port);
  }
  const got: Result[][] = [[], []];
  // CPU time each proxy spent per request: on a loaded machine throughput follows the scheduler,
  // while the work per request does not.
  const cpuPerRequest: number[][] = [[], []];
  // Garbage collections per 100k requests (from each proxy's /metrics): a count the machine's
  // load does not change.
  const gcs: ReturnType<typeof gcPer100k>[][] = [[], []];
  const pacedGot = new Map<string, PacedResult[]>(builds.map((b) => [b.name, []]));
  const steals: number[] = [];
  for (let i = 0, tries = 0; i < n; i++) {
    const order = i % 2 === 0 ? [0, 1] : [1, 0];
    // A round is kept whole or measured again (see BENCH_MAX_STEAL).
    const round: { k: number; r: Result; us: number; gc: ReturnType<typeof gcPer100k>; q?: PacedResult }[] =
      [];
    for (const k of order) {
      // Warm-up first (rounds 1 and 2), then the counts: they cover the measured seconds only.
      if (i < 2 && tries === 0) await warmUp(builds[k]!.port);
      const before = cpuMs(pids[k]!);
      const gcBefore = await gcStats(builds[k]!.admin);
      const r = await loadOnce(builds[k]!.name, builds[k]!.port, false);
      const us = ((cpuMs(pids[k]!) - before) * 1000) / (r.rps * seconds);
      const gc = gcPer100k(gcBefore, await gcStats(builds[k]!.admin), r.rps * seconds);
      console.log(
        `round ${i + 1} ${r.name}: ${Math.round(r.rps)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${us.toFixed(1)} us CPU/request, per 100k requests ${gc.minor.toFixed(0)} minor + ${gc.major.toFixed(0)} major GCs, ${gc.ms.toFixed(1)} ms GC pause, steal ${r.steal?.toFixed(1)}%, other ${r.other?.toFixed(1)}%`,
      );
      const q = paced ? pacedOnce(builds[k]!.name, builds[k]!.port) : undefined;
      if (q)
        console.log(
          `round ${i + 1} ${q.name} paced: ${Math.round(q.rps)} req/s, p50 ${q.p50.toFixed(2)} ms, p99 ${q.p99.toFixed(2)} ms, p99.9 ${q.p999.toFixed(2)} ms, steal ${q.steal.toFixed(1)}%, other ${q.other.toFixed(1)}%`,
        );
      round.push({ k, r, us, gc, q });
    }
    if (measureAgain(i, tries, round)) {
      tries++;
      i--;
      continue;
    }
    tries = 0;
    // Kept in build order, so that the per-round ratios pair the same round's runs.
    for (const { k, r, us, gc, q } of round.sort((a, b) => a.k - b.k)) {
      got[k]!.push(r);
      cpuPerRequest[k]!.push(us);
      gcs[k]!.push(gc);
      if (q) pacedGot.get(q.name)!.push(q);
      steals.push(noise(r), q ? noise(q) : Number.NaN);
    }
  }
  noiseSummary(steals);
  const m = got.map((rs) => median(rs.map((r) => r.rps)));
  const ratios = got[0]!.map((r, i) => r.rps / got[1]![i]!.rps);
  console.log(`\nmedian req/s: this build ${Math.round(m[0]!)}, BENCH_COMPARE ${Math.round(m[1]!)}`);
  const c = cpuPerRequest.map(median);
  console.log(`median CPU/request: this build ${c[0]!.toFixed(1)} us, BENCH_COMPARE ${c[1]!.toFixed(1)} us`);
  const p = got.map((rs) => [median(rs.map((r) => r.p50)), median(rs.map((r) => r.p99))]);
  console.log(
    `median p50 / p99 ms: this build ${p[0]![0]!.toFixed(2)} / ${p[0]![1]!.toFixed(2)}, BENCH_COMPARE ${p[1]![0]!.toFixed(2)} / ${p[1]![1]!.toFixed(2)}`,
  );
  const g = gcs.map((xs) => ({
    minor: median(xs.map((x) => x.minor)),
    major: median(xs.map((x) => x.major)),
    ms: median(xs.map((x) => x.ms)),
  }));
  console.log(
    `median per 100k requests: this build ${g[0]!.minor.toFixed(0)} minor + ${g[0]!.major.toFixed(0)} major GCs, ${g[0]!.ms.toFixed(1)} ms GC pause; BENCH_COMPARE ${g[1]!.minor.toFixed(0)} + ${g[1]!.major.toFixed(0)}, ${g[1]!.ms.toFixed(1)} ms (NaN: a build without nodejs_gc_duration_seconds)`,
  );
  console.log(
    `median per-round ratio this/compare: ${median(ratios).toFixed(3)} (rounds: ${ratios.map((x) => x.toFixed(2)).join(' ')})`,
  );
  if (paced) {
    // No direct target here: the paced table's "added" column is against the other build.
    pacedTable(pacedGot, builds[1]!.name);
  }
}

interface Target {
  name: string;
  port: number;
  /** A tripswitch target's admin port (its GC counts). */
  admin?: number;
  /** The process whose CPU time is counted (the proxy; for direct, the backend). */
  pid: number | undefined;
}

/** Starts nginx (1 worker, upstream keepalive) if installed: its worker's pid (-1 unknown); false when not. */
async function startNginx(): Promise<number | false> {
  if (spawnSync('nginx', ['-v']).error) {
    console.log('nginx not installed (apt-get install -y nginx): skipped');
    return false;
  }
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir};
  upstream backend { server 127.0.0.1:${ports.backend}; keepalive 64; }
  server { listen 127.0.0.1:${ports.nginx};
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
  );
  const master = start('nginx', ['-p', dir, '-c', conf]);
  await waitPort(ports.nginx);
  return (await childOf(master.pid)) ?? -1;
}

/** Starts HAProxy (1 thread, HTTP mode, upstream keep-alive) if installed: its pid; false when not. */
async function startHaproxy(): Promise<number | false> {
  if (spawnSync('haproxy', ['-v']).error) {
    console.log('haproxy not installed (apt-get install -y haproxy): skipped');
    return false;
  }
  const conf = join(dir, 'haproxy.cfg');
  writeFileSync(
    conf,
    `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:${ports.haproxy}
  default_backend be
backend be
  server s1 127.0.0.1:${ports.backend} pool-max-conn 64
`,
  );
  const h = start('haproxy', ['-db', '-f', conf]);
  await waitPort(ports.haproxy);
  return h.pid ?? -1;
}

async function main(): Promise<void> {
  if (process.env.BENCH_COMPARE) {
    await compare(process.env.BENCH_COMPARE);
    return;
  }
  console.log(
    `bench:proxy on Node ${process.versions.node}: ${seconds}s x ${rounds} round(s) per target, interleaved (every target once per round, the order rotating), medians; ${connections} connections, load from ${hasWrk ? 'wrk -t1' : 'autocannon'}`,
  );
  // Every target runs at once, and the rounds interleave, so that a loaded machine's drift falls on
  // all of them alike: the ratios are from the same minutes.
  const backend = start(process.execPath, ['-e', backendSrc]);
  await waitPort(ports.backend);
  const targets: Target[] = [{ name: 'direct', port: ports.backend, pid: backend.pid }];
  const sidecar = async (name: string, port: number, admin: number, flags: string[], httpServer?: string) => {
    const cfg = join(dir, `tripswitch-${port}.yaml`);
    writeFileSync(
      cfg,
      `admin: { port: ${admin} }
listeners:
  - port: ${port}
    routes: [{ prefix: /, cluster: backend }]${httpServer ? `\n    http_server: ${httpServer}` : ''}
clusters:
  - name: backend
    hosts: [127.0.0.1:${ports.backend}]
    circuit_breakers: { thresholds: [{ priority: default, max_connections: 256, max_requests: 1024 }] }
`,
    );
    const proxy = start(process.execPath, [
      ...flags,
      join(here, '..', 'cli.js'),
      'proxy',
      '--config',
      cfg,
      '--no-watch',
    ]);
    await waitPort(port);
    targets.push({ name, port, admin, pid: proxy.pid });
  };
  await sidecar('tripswitch', ports.tripswitch, ports.admin, []);
  const tunedName = `tripswitch ${tunedFlags.join(' ')}`;
  if (tunedFlags.length > 0) await sidecar(tunedName, ports.tuned, ports.tunedAdmin, tunedFlags);
  // Node's http server on the client side instead of the default own one (`http_server: node`,
  // what a tls listener uses); BENCH_NODE_SERVER=0 leaves it out.
  if (process.env.BENCH_NODE_SERVER !== '0')
    await sidecar(
      ['tripswitch http_server: node', ...tunedFlags].join(' '),
      ports.alt,
      ports.altAdmin,
      tunedFlags,
      'node',
    );
  const nginx = await startNginx();
  if (nginx !== false) targets.push({ name: 'nginx', port: ports.nginx, pid: nginx });
  const haproxy = await startHaproxy();
  if (haproxy !== false) targets.push({ name: 'haproxy', port: ports.haproxy, pid: haproxy });
  const hp = start(process.execPath, ['-e', httpProxySrc]);
  await waitPort(ports.httpProxy);
  targets.push({ name: 'http-proxy', port: ports.httpProxy, pid: hp.pid });
  const pipe = start(process.execPath, ['-e', pipeSrc]);
  await waitPort(ports.pipe);
  targets.push({ name: 'node pipe', port: ports.pipe, pid: pipe.pid });

  const got = new Map<string, Result[]>(targets.map((t) => [t.name, []]));
  const gcs = new Map<string, ReturnType<typeof gcPer100k>[]>();
  // Paced rounds run right after the same target's saturated round, in the same rotation.
  const pacedGot = new Map<string, PacedResult[]>(targets.map((t) => [t.name, []]));
  const steals: number[] = [];
  for (let i = 0, tries = 0; i < rounds; i++) {
    // A round is kept whole or measured again: its targets' figures are compared with each other.
    const round: { t: Target; r: Result; gc?: ReturnType<typeof gcPer100k>; q?: PacedResult }[] = [];
    for (let j = 0; j < targets.length; j++) {
      const t = targets[(i + j) % targets.length]!;
      if (i === 0 && tries === 0) await warmUp(t.port);
      const gcBefore = t.admin !== undefined ? await gcStats(t.admin) : undefined;
      const cpuBefore = cpuSplit(t.pid);
      const r = await loadOnce(t.name, t.port, false);
      const cpuAfter = cpuSplit(t.pid);
      r.user = ((cpuAfter.user - cpuBefore.user) * 1000) / (r.rps * seconds);
      r.sys = ((cpuAfter.sys - cpuBefore.sys) * 1000) / (r.rps * seconds);
      const gc = gcBefore ? gcPer100k(gcBefore, await gcStats(t.admin!), r.rps * seconds) : undefined;
      if (rounds > 1)
        console.log(
          `round ${i + 1} ${t.name}: ${Math.round(r.rps)} req/s, p99 ${r.p99.toFixed(2)} ms, CPU ${r.user.toFixed(1)} + ${r.sys.toFixed(1)} us/request, errors ${r.errors}${gc ? `, per 100k requests ${gc.minor.toFixed(0)} minor + ${gc.major.toFixed(0)} major GCs` : ''}, steal ${r.steal!.toFixed(1)}%, other ${r.other!.toFixed(1)}%`,
        );
      const q = paced ? pacedOnce(t.name, t.port) : undefined;
      if (q)
        console.log(
          `round ${i + 1} ${t.name} paced: ${Math.round(q.rps)} req/s, p50 ${q.p50.toFixed(2)} ms, p99 ${q.p99.toFixed(2)} ms, p99.9 ${q.p999.toFixed(2)} ms, errors ${q.errors}, steal ${q.steal.toFixed(1)}%, other ${q.other.toFixed(1)}%`,
        );
      round.push({ t, r, gc, q });
    }
    if (measureAgain(i, tries, round)) {
      tries++;
      i--;
      continue;
    }
    tries = 0;
    for (const { t, r, gc, q } of round) {
      got.get(t.name)!.push(r);
      if (gc) gcs.set(t.name, [...(gcs.get(t.name) ?? []), gc]);
      if (q) pacedGot.get(t.name)!.push(q);
      steals.push(noise(r), q ? noise(q) : Number.NaN);
    }
  }
  noiseSummary(steals);
  const results: Result[] = targets.map((t) => {
    const rs = got.get(t.name)!;
    return {
      name: t.name,
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      errors: rs.reduce((n, r) => n + r.errors, 0),
      user: median(rs.map((r) => r.user ?? Number.NaN)),
      sys: median(rs.map((r) => r.sys ?? Number.NaN)),
    };
  });
  const by = (n: string) => results.find((r) => r.name === n);
  const direct = by('direct')!;
  // CPU per request: the target's own process (direct: the backend), user + system, all threads.
  console.log('\n| target | req/s | p50 ms | p99 ms | % of direct | CPU us/request (user + sys) | errors |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of results)
    console.log(
      `| ${r.name} | ${Math.round(r.rps).toLocaleString('en-US')} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${Math.round((r.rps / direct.rps) * 100)} | ${r.user!.toFixed(1)} + ${r.sys!.toFixed(1)} | ${r.errors} |`,
    );
  // Ratios per round (same minutes), then their median.
  const ratio = (a: string, b: string) =>
    median(got.get(a)!.map((r, i) => r.rps / got.get(b)![i]!.rps)).toFixed(2);
  const added = (x: Result) => x.p99 - direct.p99;
  const ng = by('nginx');
  const ha = by('haproxy');
  for (const ts of gcs.keys()) {
    console.log(`\n${ts} / http-proxy throughput: ${ratio(ts, 'http-proxy')}x (target >= 2)`);
    for (const other of ['nginx', 'haproxy']) {
      if (!by(other)) continue;
      const target = other === 'nginx' ? ' (target >= 0.6)' : '';
      console.log(`${ts} / ${other} throughput: ${ratio(ts, other)}x${target}`);
    }
    const g = gcs.get(ts)!;
    console.log(
      `${ts} GCs per 100k requests (median of rounds): ${median(g.map((x) => x.minor)).toFixed(0)} minor + ${median(g.map((x) => x.major)).toFixed(0)} major, ${median(g.map((x) => x.ms)).toFixed(1)} ms paused`,
    );
    console.log(
      `p99 added at saturation: ${ts} ${added(by(ts)!).toFixed(2)} ms${ng ? `, nginx ${added(ng).toFixed(2)} ms` : ''}${ha ? `, haproxy ${added(ha).toFixed(2)} ms` : ''}${ng ? ' (target: at most 2x nginx)' : ''}`,
    );
  }
  if (!paced) {
    if (!hasWrk) console.log('paced rounds skipped: they need wrk (apt-get install -y wrk)');
    return;
  }
  pacedTable(pacedGot, 'direct');
  // Per round (same minutes), the p99 each proxy added to direct's; then the medians.
  const addedPaced = (name: string) =>
    median(pacedGot.get(name)!.map((r, i) => r.p99 - pacedGot.get('direct')![i]!.p99));
  const parts = [...pacedGot.keys()]
    .filter((n) => n !== 'direct')
    .map((n) => `${n} ${addedPaced(n).toFixed(2)} ms`);
  console.log(
    `\np99 added at ${rate} req/s (median of per-round differences): ${parts.join(', ')}${pacedGot.has('nginx') ? ' (target: tripswitch at most 2x nginx)' : ''}`,
  );
}

try {
  await main();
} finally {
  for (const c of children) c.kill('SIGTERM');
}

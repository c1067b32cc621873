/**
 * `node packages/sidecar/dist/bench/workers-bench.js`: the figures of `workers: N` in
 * docs/sidecar.md ("More than one core").
 *
 * 1. The cost of the shared memory per request: `Limiter` vs `SharedLimiter` tryEnter + release,
 *    alone and with a second thread hammering the same words; `SharedBreakerStore.sync()` when
 *    nothing changed.
 * 2. Breaker propagation: a breaker trips in thread A; thread B, polling (sync + tryAcquire in a
 *    loop, as admission does per request), is rejected for the first time after t µs; and an idle
 *    thread (no requests, only the Atomics.waitAsync watcher) has applied it after t µs.
 * 2b. The same through the main thread, as the sidecar decides since the trip decision is one:
 *    worker A forwards a failed call through its outcome ring, this (main) thread's drainer records
 *    it and its breaker trips, and polling thread B is refused: A to the main thread's trip, and A
 *    to B's first refusal.
 * 3. Per-core cost: the `tripswitch proxy` CLI with workers: 1 and workers: 2 under wrk (or
 *    autocannon) for BENCH_SECONDS, CPU time of the whole process (all threads) per request, in
 *    interleaved rounds (BENCH_ROUNDS).
 * @module
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { circuitBreaker, systemClock } from 'tripswitch';
import { sharedMicros } from '../clock.js';
import { Limiter } from '../proxy/limits.js';
import { newBreakerBlock, ringOf, SharedBreakerStore } from '../proxy/shared-breaker.js';
import { newLimitsBlock, SharedLimiter } from '../proxy/shared-limits.js';

const here = dirname(fileURLToPath(import.meta.url));
const N = 5_000_000;

function nsPerOp(fn: () => void, n = N): number {
  for (let i = 0; i < 100_000; i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / n;
}

type Job =
  | { kind: 'hammer'; block: ReturnType<typeof newLimitsBlock>; stop: SharedArrayBuffer }
  | { kind: 'poll'; block: ReturnType<typeof newBreakerBlock>; go: SharedArrayBuffer }
  | { kind: 'idle'; block: ReturnType<typeof newBreakerBlock> }
  | { kind: 'trip'; block: ReturnType<typeof newBreakerBlock>; go: SharedArrayBuffer }
  | { kind: 'forward'; block: ReturnType<typeof newBreakerBlock>; go: SharedArrayBuffer };

function breakerIn(block: ReturnType<typeof newBreakerBlock>, worker: number) {
  const store = new SharedBreakerStore(block, worker, systemClock);
  const b = circuitBreaker({
    name: 'bench',
    trip: { kind: 'consecutive', threshold: 1 },
    openDuration: 60_000,
    store,
    clock: store.breakerClock,
  });
  return { store, b };
}

async function thread(job: Job): Promise<void> {
  if (job.kind === 'hammer') {
    const lim = new SharedLimiter({ priority: 'default', max_requests: 1_000_000 }, job.block, 0, 1);
    const stop = new Int32Array(job.stop);
    parentPort!.postMessage('ready');
    while (Atomics.load(stop, 0) === 0) {
      lim.tryEnter();
      lim.release();
    }
  } else if (job.kind === 'poll') {
    const { store, b } = breakerIn(job.block, 1);
    const go = new Int32Array(job.go);
    Atomics.store(go, 1, 1); // polling
    // the start of the last admission that was let through, and the time of the first refusal
    let admittedAt = 0;
    for (;;) {
      const t = sharedMicros();
      store.sync();
      const p = b.tryAcquire();
      if (p === undefined) break;
      admittedAt = t;
      p.neutral();
    }
    parentPort!.postMessage([sharedMicros(), admittedAt]);
  } else if (job.kind === 'idle') {
    const { store, b } = breakerIn(job.block, 2);
    parentPort!.postMessage('ready');
    b.on('stateChange', () => parentPort!.postMessage(store.lastPropagationUs));
    // stays up until terminated: the watcher alone applies the trip
    setInterval(() => {}, 1000);
  } else if (job.kind === 'trip') {
    const { b } = breakerIn(job.block, 0);
    const go = new Int32Array(job.go);
    while (Atomics.load(go, 1) === 0);
    const t0 = sharedMicros();
    b.tryAcquire()!.failure(new Error('trip'));
    parentPort!.postMessage([t0, sharedMicros()]);
  } else {
    // a worker's failed call, as admission wraps it: forwarded to the main thread, no local trip
    const { store, b } = breakerIn(job.block, 0);
    const go = new Int32Array(job.go);
    while (Atomics.load(go, 1) === 0);
    const p = store.permit(b.tryAcquire()!, false);
    const t0 = sharedMicros();
    p.failure(new Error('trip'));
    parentPort!.postMessage([t0, sharedMicros()]);
  }
}

function run<T>(job: Job, onMessage?: (m: unknown) => void): { w: Worker; first: Promise<T> } {
  const w = new Worker(fileURLToPath(import.meta.url), { workerData: job });
  const first = new Promise<T>((resolve) => w.once('message', resolve));
  if (onMessage) w.on('message', onMessage);
  return { w, first };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function costs(): Promise<void> {
  const plain = new Limiter({ priority: 'default', max_requests: 1_000_000 });
  const block = newLimitsBlock(2);
  const shared = new SharedLimiter({ priority: 'default', max_requests: 1_000_000 }, block, 0, 0);
  const rounds: [number, number][] = [];
  for (let r = 0; r < 3; r++)
    rounds.push([
      nsPerOp(() => {
        plain.tryEnter();
        plain.release();
      }),
      nsPerOp(() => {
        shared.tryEnter();
        shared.release();
      }),
    ]);
  const stop = new SharedArrayBuffer(4);
  const h = run<string>({ kind: 'hammer', block, stop });
  await h.first;
  const contended = nsPerOp(() => {
    shared.tryEnter();
    shared.release();
  });
  Atomics.store(new Int32Array(stop), 0, 1);
  await new Promise((r) => h.w.once('exit', r));
  const bb = newBreakerBlock(2);
  const { store } = breakerIn(bb, 0);
  const sync = nsPerOp(() => store.sync());
  store.stop();
  // One call's outcome on its way to the one decision, in one thread: the worker's side (permit
  // wrapper, its breaker's neutral, the ring write) with the ring emptied every 512 calls by a
  // bare drain, then with the main thread's drain recording each in its breaker.
  const fb = newBreakerBlock(1);
  const main = breakerIn(fb, -1);
  const w = breakerIn(fb, 0);
  const ring = ringOf(fb, 0);
  let k = 0;
  const call = () => w.store.permit(w.b.tryAcquire()!, false).success();
  const forwardOnly = nsPerOp(() => {
    call();
    if (++k % 512 === 0) ring.drain(() => {});
  }, 1_000_000);
  const withRecord = nsPerOp(() => {
    call();
    if (++k % 512 === 0) main.store.drain();
  }, 1_000_000);
  const plainBreaker = circuitBreaker({ name: 'plain' });
  const bare = nsPerOp(() => plainBreaker.tryAcquire()!.success(), 1_000_000);
  main.store.stop();
  w.store.stop();
  console.log('\n1. shared memory per request (ns per tryEnter + release; 3 rounds, medians)');
  console.log(`   Limiter (workers: 1)            ${median(rounds.map((x) => x[0])).toFixed(1)} ns`);
  console.log(`   SharedLimiter, uncontended      ${median(rounds.map((x) => x[1])).toFixed(1)} ns`);
  console.log(`   SharedLimiter, another thread on the same words  ${contended.toFixed(1)} ns`);
  console.log(`   SharedBreakerStore.sync(), nothing changed       ${sync.toFixed(1)} ns`);
  console.log(`   a worker's call forwarded (permit, neutral, ring) ${forwardOnly.toFixed(1)} ns`);
  console.log(`   the same recorded by the main thread's breaker    ${withRecord.toFixed(1)} ns`);
  console.log(`   a plain breaker's tryAcquire + success (workers: 1) ${bare.toFixed(1)} ns`);
}

async function propagation(rounds: number): Promise<void> {
  const polled: number[] = [];
  const watched: number[] = [];
  let late = 0;
  for (let r = 0; r < rounds; r++) {
    const block = newBreakerBlock(3);
    const go = new SharedArrayBuffer(8);
    let idleResolve: (v: number) => void = () => {};
    const idleP = new Promise<number>((resolve) => {
      idleResolve = resolve;
    });
    const idle = run<string>({ kind: 'idle', block }, (m) => typeof m === 'number' && idleResolve(m));
    await idle.first;
    const poll = run<[number, number]>({ kind: 'poll', block, go });
    const trip = run<[number, number]>({ kind: 'trip', block, go });
    const [[t0, published], [t1, admittedAt]] = await Promise.all([trip.first, poll.first]);
    polled.push(t1 - t0);
    // an admission in B that began after A's trip had returned, yet was let through
    if (admittedAt > published) late++;
    watched.push(await idleP);
    await idle.w.terminate();
  }
  const q = (xs: number[], p: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
  console.log(`\n2. breaker propagation, ${rounds} trips (µs from the trip in thread A)`);
  console.log(
    `   to the first rejection in a polling thread B:  median ${median(polled)}, p90 ${q(polled, 0.9)}, max ${Math.max(...polled)}`,
  );
  console.log(`   admissions in B begun after the trip returned in A and still let through: ${late}`);
  console.log(
    `   to an idle thread's watcher applying it:        median ${median(watched)}, p90 ${q(watched, 0.9)}, max ${Math.max(...watched)}`,
  );
}

/** 2b: trips decided by this (main) thread on an outcome forwarded by worker A. */
async function forwarded(rounds: number): Promise<void> {
  const hop: number[] = [];
  const refused: number[] = [];
  let late = 0;
  for (let r = 0; r < rounds; r++) {
    const block = newBreakerBlock(2);
    const go = new SharedArrayBuffer(8);
    const { store, b } = breakerIn(block, -1);
    let tripped = 0;
    b.on('stateChange', () => {
      tripped = sharedMicros();
    });
    const poll = run<[number, number]>({ kind: 'poll', block, go });
    const trip = run<[number, number]>({ kind: 'forward', block, go });
    const [[t0], [t1, admittedAt]] = await Promise.all([trip.first, poll.first]);
    hop.push(tripped - t0);
    refused.push(t1 - t0);
    // an admission in B that began after the main thread's trip, yet was let through
    if (admittedAt > tripped) late++;
    store.stop();
    b.dispose();
  }
  const q = (xs: number[], p: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
  console.log(`\n2b. trip decided in the main thread, ${rounds} trips (µs from the failed call in worker A)`);
  console.log(
    `   to the main thread's breaker opening:          median ${median(hop)}, p90 ${q(hop, 0.9)}, max ${Math.max(...hop)}`,
  );
  console.log(
    `   to the first rejection in a polling worker B:  median ${median(refused)}, p90 ${q(refused, 0.9)}, max ${Math.max(...refused)}`,
  );
  console.log(`   admissions in B begun after the main thread's trip and still let through: ${late}`);
}

function cpuMs(pid: number): number {
  // utime + stime of the whole process (every thread), in clock ticks (100 Hz on Linux)
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

async function perCore(seconds: number, rounds: number): Promise<void> {
  // the upstream in its own process: spawnSync(wrk) blocks this one
  const upPort = 30_000 + Math.floor(Math.random() * 20_000);
  const up = spawn(
    process.execPath,
    ['-e', `require('node:http').createServer((q, s) => s.end('ok')).listen(${upPort}, '127.0.0.1')`],
    { stdio: 'ignore' },
  );
  await new Promise((x) => setTimeout(x, 500));
  const dir = mkdtempSync(join(tmpdir(), 'tripswitch-workers-bench-'));
  const cli = join(here, '..', 'cli.js');
  const hasWrk = !spawnSync('wrk', ['--version']).error;
  const results: Record<string, { rps: number; cpuUsPerReq: number }[]> = { '1': [], '2': [] };
  for (let r = 0; r < rounds; r++)
    for (const workers of [1, 2]) {
      const port = 30_000 + Math.floor(Math.random() * 20_000);
      const f = join(dir, `w${workers}.yaml`);
      writeFileSync(
        f,
        `workers: ${workers}\nadmin: { port: 0 }\nlisteners:\n  - port: ${port}\n    routes: [{ prefix: /, cluster: up }]\nclusters:\n  - name: up\n    hosts: [127.0.0.1:${upPort}]\n    breaker: { trip: { kind: consecutive, threshold: 1000 } }\n`,
      );
      const child = spawn(process.execPath, [cli, 'proxy', '--config', f, '--no-watch'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
      });
      const want = workers;
      while ((err.match(/"msg":"listening"/g) ?? []).length < want)
        await new Promise((x) => setTimeout(x, 50));
      const url = `http://127.0.0.1:${port}/`;
      const load = (d: number) =>
        hasWrk
          ? spawnSync('wrk', ['-t1', '-c50', `-d${d}s`, url], { encoding: 'utf8' }).stdout
          : spawnSync(
              join(here, '../../../../node_modules/.bin/autocannon'),
              ['-c', '50', '-d', String(d), url],
              {
                encoding: 'utf8',
              },
            ).stderr;
      load(1);
      const c0 = cpuMs(child.pid!);
      const out = load(seconds);
      const c1 = cpuMs(child.pid!);
      const total = hasWrk
        ? Number(/(\d+) requests in/.exec(out)?.[1])
        : Number(/([\d.]+)k requests in/.exec(out)?.[1]) * 1000;
      child.kill('SIGTERM');
      await new Promise((x) => child.once('exit', x));
      results[String(workers)]!.push({ rps: total / seconds, cpuUsPerReq: ((c1 - c0) * 1000) / total });
    }
  up.kill();
  console.log(
    `\n3. the proxy CLI under ${hasWrk ? 'wrk -t1 -c50' : 'autocannon -c 50'}, ${seconds} s x ${rounds} interleaved rounds (machine shared and loaded)`,
  );
  for (const w of ['1', '2']) {
    const rs = results[w]!;
    console.log(
      `   workers: ${w}  req/s ${rs.map((x) => Math.round(x.rps)).join(', ')}  CPU µs/request ${rs.map((x) => x.cpuUsPerReq.toFixed(1)).join(', ')}`,
    );
  }
  const ratio = results['2']!.map((x, i) => x.rps / results['1']![i]!.rps);
  console.log(`   req/s ratio workers 2 / 1 per round: ${ratio.map((x) => x.toFixed(2)).join(', ')}`);
}

if (!isMainThread) await thread(workerData as Job);
else {
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  console.log(`workers bench, Node ${process.version}, ${new Date().toISOString()}`);
  if (process.env.BENCH_ONLY_PROXY !== '1') {
    await costs();
    await propagation(Number(process.env.BENCH_TRIPS ?? 50));
    await forwarded(Number(process.env.BENCH_TRIPS ?? 50));
  }
  if (process.env.BENCH_SKIP_PROXY !== '1') await perCore(seconds, rounds);
}

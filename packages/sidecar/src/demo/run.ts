/**
 * The cascade demo runner: Service B (upstream), Service A (consumer) and a load generator on
 * 127.0.0.1, run twice through the phases healthy -> outage -> recovery, first with A calling B
 * plainly, then through tripswitch; returns the measurements and prints a side-by-side table.
 * Next to the load, a low-rate writer sends `POST /orders`; the protected A queues the writes B
 * cannot take and replays them when it is back, and the report counts what B applied.
 *
 * @module
 */
import { type BreakerRegistry, breakerRegistry } from 'tripswitch';
import {
  type LoadResult,
  type Route,
  runLoad,
  runWriter,
  type Sample,
  type WriterResult,
  type WriteSample,
} from './load.js';
import {
  fmtMs,
  fmtRatio,
  formatCarryOver,
  formatTable,
  formatTimeline,
  formatWrites,
  type PhaseDef,
  percentile,
  phaseStats,
  type RouteStats,
  type TimelineEntry,
  type WriteStats,
} from './report.js';
import { type ServiceA, type SideHandler, startServiceA } from './service-a.js';
import { DEFAULT_DEMO_PORT, formatServices, startDemoServices } from './serve.js';
import { startUpstream, type Upstream, type UpstreamMode, type UpstreamStats } from './upstream.js';
import { realClock } from '../clock.js';
import type { TimerHandle } from 'tripswitch';

/** Which runs {@link runDemo} does. */
export type RunLabel = 'unprotected' | 'protected';

/**
 * Options of {@link runDemo}; every duration in ms.
 *
 * @example
 * ```ts
 * const options: DemoOptions = { outage: 'failing', concurrency: 10, phases: { healthy: 2_000, outage: 5_000, recovery: 5_000 } };
 * ```
 */
export interface DemoOptions {
  /** Phase lengths. @default { healthy: 4_000, outage: 9_000, recovery: 9_000 } */
  phases?: { healthy: number; outage: number; recovery: number };
  /** What B does during the outage. @default 'hanging' */
  outage?: Extract<UpstreamMode, 'hanging' | 'failing' | 'slow'>;
  /** Concurrent load clients. @default 20 */
  concurrency?: number;
  /** Share of the clients calling /profile. @default 0.2 */
  profileShare?: number;
  /** Service A's workers (requests handled at once). @default 10 */
  workers?: number;
  /** Connections from A to B. @default 10 */
  upstreamConnections?: number;
  /** Protected: timeout per attempt. @default 300 */
  timeoutMs?: number;
  /** Protected: open duration of the breaker. @default 1_000 */
  openDurationMs?: number;
  /** Protected: how long the last good answer may be served; after it the answer is degraded. @default 60_000 */
  lastGoodTtlMs?: number;
  /**
   * The HTTP client's headers/body timeout for A's calls to B (what bounds the unprotected wait).
   * @default 10/9 of the outage length, at least 1 s and at most 10 s (10 s with the default phases)
   */
  clientTimeoutMs?: number;
  /** B's `slow` delay. @default 2_000 */
  slowMs?: number;
  /** Requests B fails after switching to `recovering`. @default 2 */
  recoveringFailures?: number;
  /** After the phases, wait this long for requests in flight. @default clientTimeoutMs + 2_000 */
  drainMs?: number;
  /** The writer sends one `POST /orders` every this many ms. @default 100 */
  writeIntervalMs?: number;
  /** Writes in flight at most (the writer's own clients). @default 4 */
  writeConcurrency?: number;
  /** Protected: after the load, wait at most this long for A's write queue to drain before reading B's count. @default 5_000 */
  drainWaitMs?: number;
  /** The runs, in order. @default ['unprotected', 'protected'] */
  runs?: readonly RunLabel[];
  /**
   * Keep B, an unprotected A and a protected A (with the dashboard) running on fixed ports after the
   * runs (started first, so a taken port fails at once); close them with `result.kept.close()`.
   */
  keepRunning?: boolean;
  /** With `keepRunning`: B's port; the unprotected A gets port + 1, the protected A port + 2 (0: ephemeral). @default 3000 */
  port?: number;
  /** Serve the dashboard from Service A in protected runs when the module exists. @default true */
  dashboard?: boolean;
  /** Progress and report lines go here. @default no output */
  log?: (line: string) => void;
  /** Stops the demo early (Ctrl-C). */
  signal?: AbortSignal;
}

/** One run's measurements. */
export interface RunResult {
  label: RunLabel;
  phases: PhaseDef[];
  stats: Record<string, Record<Route, RouteStats>>;
  timeline: TimelineEntry[];
  sent: number;
  cutOff: number;
  clients: Record<Route, number>;
  upstream: UpstreamStats;
  /** What happened to the writes. */
  writes: WriteStats;
  /** ms from the start of the load until every request settled. */
  wallMs: number;
  /** The dashboard URL while the run was going, when the dashboard module was available. */
  dashboardUrl?: string;
}

/** One line of the comparison: p99 of a route in a phase, unprotected and protected. */
export interface Comparison {
  phase: string;
  route: Route;
  unprotectedP99: number;
  protectedP99: number;
  /** unprotected / protected. */
  ratio: number;
}

/**
 * What {@link runDemo} returns.
 *
 * @example
 * ```ts
 * const r: DemoResult = await runDemo();
 * console.log(r.comparison.map((c) => `${c.route} ${c.phase}: ${c.ratio.toFixed(0)}x`));
 * ```
 */
export interface DemoResult {
  runs: Partial<Record<RunLabel, RunResult>>;
  comparison: Comparison[];
  /** Settings the demo ran with. */
  settings: Required<Omit<DemoOptions, 'log' | 'signal' | 'runs' | 'keepRunning' | 'dashboard' | 'port'>>;
  /** The demo was stopped early. */
  aborted: boolean;
  /** The whole demo's wall time in ms. */
  wallMs: number;
  /** Set with `keepRunning`: the services still running, their URLs and the block to print. */
  kept?: {
    upstream: string;
    unprotected: string;
    protected: string;
    dashboard?: string;
    /** Every URL, how to switch B and the exact `ab` commands (see `formatServices`). */
    text: string;
    close(): Promise<void>;
  };
}

const PHASE_TEXT: Record<string, string> = {
  hanging: 'B hangs',
  failing: 'B answers 500',
  slow: 'B answers after a delay',
};

/** Loads the dashboard handler if packages/sidecar/src/dashboard provides one. */
async function dashboardFor(registry: BreakerRegistry): Promise<SideHandler | undefined> {
  try {
    const mod = (await import('../dashboard/index.js' as string)) as {
      createDashboardHandler?: (source: BreakerRegistry) => SideHandler;
    };
    return mod.createDashboardHandler?.(registry);
  } catch {
    return undefined;
  }
}

/** The model, as printed at the start. */
export function describeModel(s: DemoResult['settings']): string {
  return [
    'The cascade demo (everything on 127.0.0.1, ephemeral ports):',
    `  Service B: the upstream; healthy, then ${PHASE_TEXT[s.outage] ?? s.outage}, then recovering (first ${s.recoveringFailures} requests 503, then healthy).`,
    `  Service A: handles at most ${s.workers} requests at once (a thread pool of ${s.workers}; the rest wait in one FIFO queue).`,
    `    GET /orders calls B through a pool of ${s.upstreamConnections} connections; GET /profile does not call B but needs a worker too.`,
    `    unprotected: a plain call, bounded only by the HTTP client's timeout of ${fmtMs(s.clientTimeoutMs)} (undici's default is 300 s).`,
    `    protected:   wrap(fallback(last good answer, TTL ${fmtMs(s.lastGoodTtlMs)}), retry(2 attempts, 50 ms backoff, budget 20%, fast failures only), circuitBreaker(1 call over ${fmtMs(Math.round(s.timeoutMs * 0.8))} or 5 failures in a row, open ${fmtMs(s.openDurationMs)}), timeout(${fmtMs(s.timeoutMs)})).`,
    `                 A timed-out call is not retried (B is hanging); past the TTL the answer is degraded (200, x-degraded: 1, empty orders), not an error.`,
    `  Load: ${s.concurrency} closed-loop clients (like ab -c ${s.concurrency}), ${Math.round(s.profileShare * 100)}% of them on /profile, the rest on /orders.`,
    `  Writes: next to the load, one POST /orders (a new id) every ${fmtMs(s.writeIntervalMs)}, at most ${s.writeConcurrency} in flight; B applies each id once.`,
    `    unprotected: A forwards the write; an error is a 5xx to the client and the write is lost.`,
    `    protected:   writeQueue(same breaker, timeout(${fmtMs(s.timeoutMs)}), fileWriteStore in a temp dir, idempotency-key): 201 sent, 202 queued and replayed when the breaker closes.`,
    `  Phases per run: healthy ${fmtMs(s.phases.healthy)}, outage ${fmtMs(s.phases.outage)}, recovery ${fmtMs(s.phases.recovery)}; latency is attributed to the phase a request was sent in.`,
    '',
  ].join('\n');
}

function progressLine(
  label: RunLabel,
  phase: string,
  tMs: number,
  window: readonly Sample[],
  inflight: ReadonlySet<Sample>,
  a: ServiceA,
  breakerState: string,
  writes: readonly WriteSample[],
): string {
  const part = (route: Route) => {
    const s = window.filter((x) => x.route === route);
    const ok = s.filter((x) => x.status >= 200 && x.status < 300).length;
    const fb = s.filter((x) => x.fallback).length;
    const deg = s.filter((x) => x.degraded).length;
    const p99 = percentile(
      s.map((x) => x.latency).sort((x, y) => x - y),
      99,
    );
    return `/${route} ok ${ok} err ${s.length - ok} fb ${fb}${deg > 0 ? ` (${deg} degraded)` : ''} p99 ${fmtMs(p99)}`;
  };
  const { active, queued } = a.load();
  let oldest = Number.POSITIVE_INFINITY;
  for (const s of inflight) oldest = Math.min(oldest, s.start);
  const waiting = inflight.size > 0 ? `, oldest waiting ${fmtMs(tMs - oldest)}` : '';
  const w201 = writes.filter((x) => x.status === 201).length;
  const w202 = writes.filter((x) => x.status === 202).length;
  const wq = a.writes !== undefined ? `, A's write queue ${a.writes.size}` : '';
  const lg = a.lastGood;
  const age = lg?.ageMs();
  const lastGood =
    lg === undefined
      ? ''
      : `, last good ${age === undefined ? 'none yet' : `${fmtMs(age)} old`} (TTL ${fmtMs(lg.ttlMs)}${age !== undefined && age > lg.ttlMs ? ': expired, answers degraded' : ''})`;
  const wpart = `POST 201 ${w201} 202 ${w202} err ${writes.length - w201 - w202}${wq}`;
  return `[${label}] ${phase.padEnd(8)} t=${String(Math.round(tMs / 1000)).padStart(2)}s  ${part('orders')} | ${part('profile')} | ${wpart} | in flight ${inflight.size}${waiting}; A busy ${active} queued ${queued} | breaker: ${breakerState}${lastGood}`;
}

async function runOnce(
  label: RunLabel,
  s: DemoResult['settings'],
  opts: DemoOptions,
): Promise<{
  result: RunResult;
  a: ServiceA;
  b: Upstream;
}> {
  const log = opts.log ?? (() => {});
  const b = await startUpstream({ slowMs: s.slowMs, recoveringFailures: s.recoveringFailures });
  const registry = label === 'protected' ? breakerRegistry() : undefined;
  const dashboard =
    registry !== undefined && opts.dashboard !== false ? await dashboardFor(registry) : undefined;
  let a: ServiceA;
  try {
    a = await startServiceA({
      upstreamUrl: b.url,
      protected: label === 'protected',
      workers: s.workers,
      upstreamConnections: s.upstreamConnections,
      timeoutMs: s.timeoutMs,
      clientTimeoutMs: s.clientTimeoutMs,
      openDurationMs: s.openDurationMs,
      lastGoodTtlMs: s.lastGoodTtlMs,
      registry,
      sideHandler: dashboard,
    });
  } catch (err) {
    await b.close();
    throw err;
  }
  const dashboardUrl = dashboard !== undefined ? `${a.url}/dashboard` : undefined;
  if (dashboardUrl !== undefined) log(`[${label}] dashboard: ${dashboardUrl}\n`);

  const { healthy, outage, recovery } = s.phases;
  const phases: PhaseDef[] = [
    { name: 'healthy', mode: 'healthy', startMs: 0, endMs: healthy },
    { name: 'outage', mode: s.outage, startMs: healthy, endMs: healthy + outage },
    { name: 'recovery', mode: 'recovering', startMs: healthy + outage, endMs: healthy + outage + recovery },
  ];
  const timeline: TimelineEntry[] = [];
  const t0 = realClock.now();
  const sub = a.breaker?.on('stateChange', (e) =>
    timeline.push({
      t: realClock.now() - t0,
      from: e.from,
      to: e.to,
      // The demo's rule is a custom predicate (read-policy.ts); say which one.
      reason:
        e.reason === 'predicate'
          ? 'slow-call rule: a call over 80% of the timeout, or 5 failures in a row'
          : e.reason,
    }),
  );
  // Counted from the queue's own events, not inferred from the answers.
  const queueCounts = { queued: 0, replayed: 0, dead: 0 };
  const queueSubs = a.writes
    ? [
        a.writes.on('queued', () => queueCounts.queued++),
        a.writes.on('sent', () => queueCounts.replayed++),
        a.writes.on('dead', () => queueCounts.dead++),
      ]
    : [];
  const timers: TimerHandle[] = [];
  for (const ph of phases.slice(1)) {
    timers.push(
      realClock.setTimeout(() => {
        b.setMode(ph.mode as UpstreamMode);
        ph.startMs = realClock.now() - t0; // the real switch time, a few ms late at most
        const prev = phases[phases.indexOf(ph) - 1]!;
        prev.endMs = ph.startMs;
        log(`[${label}] t=${(ph.startMs / 1000).toFixed(1)}s  phase ${ph.name}: B is now ${ph.mode}\n`);
      }, ph.startMs),
    );
  }
  let window: Sample[] = [];
  let writeWindow: WriteSample[] = [];
  const inflight = new Set<Sample>();
  const current = () => {
    const t = realClock.now() - t0;
    return phases.findLast((p) => t >= p.startMs)?.name ?? 'healthy';
  };
  // A progress line a second (rescheduled each time: timers come from the one clock module).
  let ticker: TimerHandle;
  const tick = () => {
    log(
      `${progressLine(label, current(), realClock.now() - t0, window, inflight, a, a.breaker?.state ?? 'none (unprotected)', writeWindow)}\n`,
    );
    window = [];
    writeWindow = [];
    ticker = realClock.setTimeout(tick, 1_000);
  };
  ticker = realClock.setTimeout(tick, 1_000);
  log(`[${label}] t=0.0s  phase healthy: B is healthy\n`);
  let stopT: number | undefined;
  const onAbort = () => {
    stopT = realClock.now() - t0;
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let load: LoadResult;
  let writer: WriterResult;
  const total = healthy + outage + recovery;
  let drainWaitMs = 0;
  try {
    const writing = runWriter({
      baseUrl: a.url,
      intervalMs: s.writeIntervalMs,
      concurrency: s.writeConcurrency,
      durationMs: total,
      drainMs: s.drainMs,
      signal: opts.signal,
      t0,
      onSample: (x) => writeWindow.push(x),
    });
    // Both settle on their own (errors become samples); a throw of one must not leave the other running.
    const loading = runLoad({
      baseUrl: a.url,
      concurrency: s.concurrency,
      profileShare: s.profileShare,
      durationMs: total,
      drainMs: s.drainMs,
      signal: opts.signal,
      t0,
      onSend: (x) => inflight.add(x),
      onSample: (x) => {
        inflight.delete(x);
        window.push(x);
      },
    });
    const [l, w] = await Promise.allSettled([loading, writing]);
    if (l.status === 'rejected') throw l.reason;
    if (w.status === 'rejected') throw w.reason;
    load = l.value;
    writer = w.value;
    // Protected: the writes queued during the outage are replayed once the breaker closes; give
    // that a bounded time before B's count is read.
    const q = a.writes;
    if (q !== undefined && q.size > 0 && !opts.signal?.aborted) {
      const waitStart = realClock.now();
      log(
        `[${label}] waiting up to ${fmtMs(s.drainWaitMs)} for A's write queue (${q.size} writes) to drain\n`,
      );
      await new Promise<void>((resolve) => {
        const done = () => {
          realClock.clearTimeout(timer);
          drained.dispose();
          resolve();
        };
        const timer = realClock.setTimeout(done, s.drainWaitMs);
        const drained = q.on('drained', done);
        if (q.size === 0) done();
      });
      drainWaitMs = realClock.now() - waitStart;
    }
  } catch (err) {
    await a.close();
    await b.close();
    throw err;
  } finally {
    realClock.clearTimeout(ticker);
    for (const t of timers) realClock.clearTimeout(t);
    opts.signal?.removeEventListener('abort', onAbort);
    sub?.dispose();
    for (const q of queueSubs) q.dispose();
  }
  // An aborted run stopped sending early: its phases end there, and phases never reached are dropped.
  const stoppedAt = opts.signal?.aborted ? Math.min(total, stopT ?? total) : total;
  for (let i = phases.length - 1; i > 0 && phases[i]!.startMs >= stoppedAt; i--) phases.pop();
  for (const ph of phases) ph.endMs = Math.min(ph.endMs, stoppedAt);
  const result: RunResult = {
    label,
    phases,
    stats: phaseStats(load.samples, phases),
    timeline,
    sent: load.sent,
    cutOff: load.cutOff,
    clients: load.clients,
    upstream: b.stats(),
    writes: writeStats(
      writer,
      b,
      a.writes === undefined ? undefined : { ...queueCounts, left: a.writes.size, drainWaitMs },
    ),
    wallMs: load.elapsedMs,
    ...(dashboardUrl !== undefined ? { dashboardUrl } : {}),
  };
  const ws = result.writes;
  log(
    `[${label}] writes: ${ws.submitted} submitted, ${ws.acknowledged} acknowledged (2xx), ${ws.applied} applied by B, ${ws.lost} lost${ws.queue ? `; queued ${ws.queue.queued}, replayed ${ws.queue.replayed}, ${ws.queue.left} left (waited ${fmtMs(ws.queue.drainWaitMs)} for the queue)` : ''}\n`,
  );
  log(
    `[${label}] done: ${load.sent} requests in ${(load.elapsedMs / 1000).toFixed(1)} s, ${load.cutOff} cut off; B saw ${result.upstream.received} (${result.upstream.abandoned} abandoned by the client)\n\n`,
  );
  return { result, a, b };
}

/** Counts the writes of a run from the writer's samples, B's record of applied ids and the queue's events. */
function writeStats(w: WriterResult, b: Upstream, queue: WriteStats['queue']): WriteStats {
  const applied = b.appliedIds();
  let created = 0;
  let accepted = 0;
  let acknowledged = 0;
  let appliedCount = 0;
  for (const x of w.samples) {
    if (x.status >= 200 && x.status < 300) acknowledged++;
    if (x.status === 201) created++;
    if (x.status === 202) accepted++;
    if (applied.has(x.id)) appliedCount++;
  }
  const lat = w.samples.map((x) => x.latency).sort((x, y) => x - y);
  const up = b.stats().writes;
  return {
    submitted: w.submitted,
    skipped: w.skipped,
    acknowledged,
    created,
    accepted,
    failed: w.samples.length - acknowledged,
    cutOff: w.cutOff,
    applied: appliedCount,
    lost: w.submitted - appliedCount,
    upstream: up,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    ...(queue !== undefined ? { queue } : {}),
  };
}

/** Settings with defaults filled in. */
export function demoSettings(o: DemoOptions = {}): DemoResult['settings'] {
  const phases = o.phases ?? { healthy: 4_000, outage: 9_000, recovery: 9_000 };
  // Longer than the outage (so calls hung at its start end after B has recovered, not racing the
  // switch), at most 10 s.
  const clientTimeoutMs =
    o.clientTimeoutMs ?? Math.min(10_000, Math.max(1_000, Math.round((phases.outage * 10) / 9)));
  return {
    phases,
    outage: o.outage ?? 'hanging',
    concurrency: o.concurrency ?? 20,
    profileShare: o.profileShare ?? 0.2,
    workers: o.workers ?? 10,
    upstreamConnections: o.upstreamConnections ?? 10,
    timeoutMs: o.timeoutMs ?? 300,
    openDurationMs: o.openDurationMs ?? 1_000,
    lastGoodTtlMs: o.lastGoodTtlMs ?? 60_000,
    clientTimeoutMs,
    slowMs: o.slowMs ?? 2_000,
    recoveringFailures: o.recoveringFailures ?? 2,
    drainMs: o.drainMs ?? clientTimeoutMs + 2_000,
    writeIntervalMs: o.writeIntervalMs ?? 100,
    writeConcurrency: o.writeConcurrency ?? 4,
    drainWaitMs: o.drainWaitMs ?? 5_000,
  };
}

/**
 * The text report: the table, the goal line and the breaker timeline.
 *
 * @example
 * ```ts
 * process.stdout.write(formatReport(await runDemo({ outage: 'slow' })));
 * ```
 */
export function formatReport(result: DemoResult): string {
  const u = result.runs.unprotected;
  const p = result.runs.protected;
  let out =
    'Latency per phase and route (p50/p99 of requests sent in the phase; err = non-2xx or no answer; fallb = fallbacks served)\n\n';
  out += formatTable(u, p);
  if (u !== undefined || p !== undefined) {
    out +=
      "\nWrites (POST /orders next to the load; applied = ids B recorded, lost = submitted ids B never applied; queued/replayed from A's write queue events)\n\n";
    out += formatWrites(u?.writes, p?.writes);
  }
  const s = result.settings;
  const carry = formatCarryOver([u, p], {
    unprotected:
      s.outage === 'failing'
        ? 'B answered 500: 502'
        : `A's call to B ended ${s.outage === 'hanging' ? `at the ${fmtMs(s.clientTimeoutMs)} client timeout: 504` : 'when B answered'}`,
    protected: `cut by the ${fmtMs(s.timeoutMs)} timeout or the open breaker and answered with the last good value`,
  });
  if (carry !== '') out += `\n${carry}`;
  // Degraded answers are a choice the service made, not a failure: say what they were.
  let degraded = '';
  for (const ph of p?.phases ?? [])
    for (const route of ['orders', 'profile'] as const) {
      const st = p?.stats[ph.name]?.[route];
      if (st !== undefined && st.degraded > 0)
        degraded += `  protected ${ph.name} /${route}: ${st.degraded} of ${st.fallbacks} fallbacks degraded\n`;
    }
  if (degraded !== '')
    out += `\nDegraded answers (200, x-degraded: 1: no last good answer younger than its TTL of ${fmtMs(s.lastGoodTtlMs)}, so A says B is unavailable instead of failing):\n${degraded}`;
  const outage = result.comparison.filter((c) => c.phase === 'outage');
  if (outage.length > 0) {
    out += '\nDuring the outage, p99 unprotected vs protected (goal: protected at most 1/20):\n';
    for (const c of outage) {
      const met = Number.isFinite(c.ratio) ? (c.ratio >= 20 ? 'met' : 'NOT met') : 'not measured';
      const us = u?.stats.outage?.[c.route];
      const ps = p?.stats.outage?.[c.route];
      out += `  /${c.route.padEnd(8)} ${fmtMs(c.unprotectedP99).padStart(9)} vs ${fmtMs(c.protectedP99).padStart(9)}  = ${fmtRatio(c.unprotectedP99, c.protectedP99).padStart(5)} (${met});  errors ${us?.errors ?? '-'} vs ${ps?.errors ?? '-'}, answered ${us?.ok ?? '-'} vs ${ps?.ok ?? '-'} (${ps?.fallbacks ?? '-'} fallbacks${ps !== undefined && ps.degraded > 0 ? `, ${ps.degraded} of them degraded: no last good answer younger than its TTL of ${fmtMs(s.lastGoodTtlMs)}` : ''})\n`;
    }
    if (result.settings.outage === 'failing')
      out +=
        "  (B fails fast here, so it holds none of A's workers: the difference is in the errors, not the latency)\n";
  }
  if (p !== undefined) {
    out += '\nBreaker "service-b" state timeline (protected run, t since the load started):\n';
    out += formatTimeline(p.timeline, { fold: true });
  }
  for (const r of [u, p]) {
    if (r === undefined) continue;
    out += `\n${r.label}: ${r.sent} requests (${r.clients.orders} clients on /orders, ${r.clients.profile} on /profile), ${r.cutOff} cut off at the end; B received ${r.upstream.received}, ${r.upstream.abandoned} abandoned by A; load wall time ${(r.wallMs / 1000).toFixed(1)} s`;
  }
  out += `\ntotal wall time ${(result.wallMs / 1000).toFixed(1)} s${result.aborted ? ' (stopped early)' : ''}\n`;
  return out;
}

/**
 * Runs the demo (unprotected, then protected, by default) and returns what it measured. Every
 * server, agent and timer it starts is closed before it returns, except with `keepRunning`.
 *
 * @example
 * ```ts
 * const r = await runDemo({ phases: { healthy: 500, outage: 500, recovery: 500 }, concurrency: 4 });
 * console.log(formatReport(r));
 * ```
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const settings = demoSettings(options);
  const started = realClock.now();
  const log = options.log ?? (() => {});
  log(describeModel(settings));
  const runs: Partial<Record<RunLabel, RunResult>> = {};
  const labels = options.runs ?? ['unprotected', 'protected'];
  // Started before the runs: a taken port is reported at once, not after them.
  const services = options.keepRunning
    ? await startDemoServices({
        port: options.port ?? DEFAULT_DEMO_PORT,
        workers: settings.workers,
        upstreamConnections: settings.upstreamConnections,
        // Not the runs' (derived from their outage length): 10 s unless given.
        clientTimeoutMs: options.clientTimeoutMs ?? 10_000,
        timeoutMs: settings.timeoutMs,
        openDurationMs: settings.openDurationMs,
        lastGoodTtlMs: settings.lastGoodTtlMs,
        slowMs: settings.slowMs,
        dashboard: options.dashboard !== false,
        loadDashboard: dashboardFor,
      })
    : undefined;
  try {
    for (const label of labels) {
      if (options.signal?.aborted) break;
      const { result, a, b } = await runOnce(label, settings, options);
      runs[label] = result;
      await a.close();
      await b.close();
    }
  } catch (err) {
    await services?.close();
    throw err;
  }
  let kept: DemoResult['kept'];
  if (services !== undefined && options.signal?.aborted) await services.close();
  else if (services !== undefined)
    kept = {
      upstream: services.upstream.url,
      unprotected: services.unprotected.url,
      protected: services.protected.url,
      ...(services.dashboard !== undefined ? { dashboard: services.dashboard } : {}),
      text: formatServices(services),
      close: () => services.close(),
    };
  const comparison: Comparison[] = [];
  const u = runs.unprotected;
  const p = runs.protected;
  if (u !== undefined && p !== undefined) {
    for (const ph of u.phases)
      for (const route of ['orders', 'profile'] as const) {
        const up = u.stats[ph.name]?.[route]?.p99 ?? Number.NaN;
        const pp = p.stats[ph.name]?.[route]?.p99 ?? Number.NaN;
        comparison.push({ phase: ph.name, route, unprotectedP99: up, protectedP99: pp, ratio: up / pp });
      }
  }
  return {
    runs,
    comparison,
    settings,
    aborted: options.signal?.aborted ?? false,
    wallMs: realClock.now() - started,
    ...(kept !== undefined ? { kept } : {}),
  };
}

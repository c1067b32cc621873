/**
 * Statistics and text output of the cascade demo: percentiles, per-phase per-route stats, the
 * side-by-side table and the breaker's state timeline.
 *
 * @module
 */
import type { Route, Sample } from './load.js';

/** One phase of a run: B's mode from `startMs` to `endMs` (ms since the load started). */
export interface PhaseDef {
  name: string;
  /** What Service B does in this phase. */
  mode: string;
  startMs: number;
  endMs: number;
}

/** Stats of one route in one phase; samples are attributed to the phase they were sent in. */
export interface RouteStats {
  /** Requests sent in the phase (completed or not). */
  count: number;
  /** 2xx answers, fallbacks included. */
  ok: number;
  /** Non-2xx answers, transport errors and requests cut off. */
  errors: number;
  /** 2xx answers that were fallbacks. */
  fallbacks: number;
  /** Fallbacks that were degraded answers (no last good answer within its TTL). */
  degraded: number;
  /**
   * Errors answered after the phase ended: requests sent in this phase that were still waiting
   * when the next one began (in the healthy phase: caught by the outage).
   */
  errorsAfter: number;
  /** Fallbacks answered after the phase ended (the same requests, protected). */
  fallbacksAfter: number;
  /** Requests sent per second of the phase. */
  rps: number;
  /** Latency percentiles in ms (NaN without samples). */
  p50: number;
  p99: number;
  max: number;
}

/** One state change of the breaker, `t` in ms since the run's load started. */
export interface TimelineEntry {
  t: number;
  from: string;
  to: string;
  reason: string;
}

/** Nearest-rank percentile of `sorted` (ascending); `p` in (0, 100]. NaN for no values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (!(p > 0 && p <= 100)) throw new RangeError('percentile: p must be in (0, 100]');
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * Stats of `samples` (already filtered to one route and phase) over a phase of `phaseMs`; with
 * `endMs` (the phase's end, ms since the load started) it also counts the answers that came after it.
 */
export function routeStats(
  samples: readonly Sample[],
  phaseMs: number,
  endMs = Number.POSITIVE_INFINITY,
): RouteStats {
  const lat = samples.map((s) => s.latency).sort((a, b) => a - b);
  let ok = 0;
  let fallbacks = 0;
  let degraded = 0;
  let errorsAfter = 0;
  let fallbacksAfter = 0;
  for (const s of samples) {
    const after = s.start + s.latency > endMs;
    if (s.status >= 200 && s.status < 300) {
      ok++;
      if (s.fallback) {
        fallbacks++;
        if (after) fallbacksAfter++;
      }
      if (s.degraded) degraded++;
    } else if (after) errorsAfter++;
  }
  return {
    count: samples.length,
    ok,
    errors: samples.length - ok,
    fallbacks,
    degraded,
    errorsAfter,
    fallbacksAfter,
    rps: phaseMs > 0 ? samples.length / (phaseMs / 1000) : Number.NaN,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    max: lat.length ? lat[lat.length - 1]! : Number.NaN,
  };
}

/** Per phase, per route stats; a sample belongs to the phase its request was sent in. */
export function phaseStats(
  samples: readonly Sample[],
  phases: readonly PhaseDef[],
): Record<string, Record<Route, RouteStats>> {
  const out: Record<string, Record<Route, RouteStats>> = {};
  for (const ph of phases) {
    const inPhase = samples.filter((s) => s.start >= ph.startMs && s.start < ph.endMs);
    const len = ph.endMs - ph.startMs;
    out[ph.name] = {
      orders: routeStats(
        inPhase.filter((s) => s.route === 'orders'),
        len,
        ph.endMs,
      ),
      profile: routeStats(
        inPhase.filter((s) => s.route === 'profile'),
        len,
        ph.endMs,
      ),
    };
  }
  return out;
}

/** A latency for people: `0.42 ms`, `12 ms`, `2.10 s`, `-` for NaN. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** `unprotected / protected` as `123x` (or `-` when either is missing). */
export function fmtRatio(unprotectedMs: number, protectedMs: number): string {
  if (!Number.isFinite(unprotectedMs) || !Number.isFinite(protectedMs) || protectedMs <= 0) return '-';
  const r = unprotectedMs / protectedMs;
  return r >= 10 ? `${Math.round(r)}x` : `${r.toFixed(1)}x`;
}

function timelineLine(e: TimelineEntry): string {
  return `  t=${(e.t / 1000).toFixed(2)}s  ${e.from} -> ${e.to}${e.reason ? `  (${e.reason})` : ''}\n`;
}

/** A failed probe: `open -> half-open` followed by `half-open -> open`. */
function isFailedProbe(entries: readonly TimelineEntry[], i: number): boolean {
  const a = entries[i];
  const b = entries[i + 1];
  return a?.from === 'open' && a.to === 'half-open' && b?.from === 'half-open' && b.to === 'open';
}

/**
 * The breaker's state changes, one per line: `t=5.31s  closed -> open  (reason)`. With `fold`, a
 * run of more than 3 failed probes (open -> half-open -> open) keeps its first and last and says
 * how many were left out, so a long outage does not bury the transitions that matter.
 */
export function formatTimeline(entries: readonly TimelineEntry[], options: { fold?: boolean } = {}): string {
  if (entries.length === 0) return '  (no state change)\n';
  let out = '';
  for (let i = 0; i < entries.length; ) {
    let n = 0;
    if (options.fold) while (isFailedProbe(entries, i + 2 * n)) n++;
    if (n > 3) {
      out += timelineLine(entries[i]!) + timelineLine(entries[i + 1]!);
      const first = entries[i + 2]!.t;
      const last = entries[i + 2 * (n - 2) + 1]!.t;
      out += `  ... ${n - 2} more failed probes the same way, t=${(first / 1000).toFixed(2)}s to ${(last / 1000).toFixed(2)}s ...\n`;
      out += timelineLine(entries[i + 2 * (n - 1)]!) + timelineLine(entries[i + 2 * (n - 1) + 1]!);
      i += 2 * n;
    } else {
      out += timelineLine(entries[i]!);
      i++;
    }
  }
  return out;
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padEnd(n) : s.padStart(n);
}

const COLS = ['p50', 'p99', 'req/s', 'err', 'fallb'] as const;
const W = [9, 9, 7, 6, 6];

function cells(s: RouteStats | undefined): string {
  if (s === undefined) return COLS.map((_, i) => pad('-', W[i]!)).join('');
  const v = [fmtMs(s.p50), fmtMs(s.p99), s.rps.toFixed(1), String(s.errors), String(s.fallbacks)];
  return v.map((x, i) => pad(x, W[i]!)).join('');
}

/** Stats of one run, as the table needs them. */
export interface RunStats {
  phases: readonly PhaseDef[];
  stats: Record<string, Record<Route, RouteStats>>;
}

/**
 * The side-by-side table: for each phase and route, p50, p99, req/s, errors and fallbacks of the
 * unprotected and the protected run, and the ratio of the p99s.
 */
export function formatTable(unprotected: RunStats | undefined, prot: RunStats | undefined): string {
  const phases = (unprotected ?? prot)?.phases ?? [];
  const head = COLS.map((c, i) => pad(c, W[i]!)).join('');
  const width = head.length;
  let out = `${pad('', 18, true)}| ${pad('unprotected', width, true)} | ${pad('protected', width, true)} | p99 ratio\n`;
  out += `${pad('phase  route', 18, true)}| ${head} | ${head} | unprot/prot\n`;
  out += `${'-'.repeat(18)}+-${'-'.repeat(width)}-+-${'-'.repeat(width)}-+------------\n`;
  for (const ph of phases) {
    for (const route of ['orders', 'profile'] as const) {
      const u = unprotected?.stats[ph.name]?.[route];
      const p = prot?.stats[ph.name]?.[route];
      const label = `${ph.name.padEnd(9)}/${route}`;
      out += `${pad(label, 18, true)}| ${cells(u)} | ${cells(p)} | ${fmtRatio(u?.p99 ?? Number.NaN, p?.p99 ?? Number.NaN)}\n`;
    }
  }
  return out;
}

/** What happened to the writes (`POST /orders`) of one run; every number is counted, none derived from settings. */
export interface WriteStats {
  /** Writes the writer sent, each with a new id. */
  submitted: number;
  /** Writer ticks that sent nothing: all its clients were waiting for an answer. */
  skipped: number;
  /** 2xx answers to the client (`created` + `accepted` + any other 2xx). */
  acknowledged: number;
  /** 201: B took the write at once. */
  created: number;
  /** 202: A queued the write, to be replayed when B is back. */
  accepted: number;
  /** Non-2xx answers, transport errors and writes cut off at the end. */
  failed: number;
  cutOff: number;
  /** Submitted ids that B applied (it counts each id once). */
  applied: number;
  /** Submitted ids that B never applied. */
  lost: number;
  /** B's own counts: POSTs received, distinct writes applied, repeats it ignored (idempotency key seen). */
  upstream: { received: number; applied: number; duplicates: number };
  /** Latency percentiles of the writes in ms (NaN without samples). */
  p50: number;
  p99: number;
  /** Protected only, from A's write queue events: writes stored (`queued`), replayed to B (`sent`), given up (`dead`). */
  queue?: {
    queued: number;
    replayed: number;
    dead: number;
    /** Writes still in the queue when B's count was read. */
    left: number;
    /** How long the run waited after the load for the queue to drain, in ms. */
    drainWaitMs: number;
  };
}

/**
 * The writes block, unprotected and protected side by side: submitted, acknowledged, applied by B,
 * lost, and for the protected run what A's write queue did.
 */
export function formatWrites(unprotected: WriteStats | undefined, prot: WriteStats | undefined): string {
  const rows: [string, (w: WriteStats) => string][] = [
    ['due (one per writer tick)', (w) => String(w.submitted + w.skipped)],
    ['  not sent: all writer clients waiting', (w) => String(w.skipped)],
    ['submitted (POST /orders sent)', (w) => String(w.submitted)],
    ['acknowledged to the client (2xx)', (w) => String(w.acknowledged)],
    ['  201 applied by B at once', (w) => String(w.created)],
    ['  202 queued by A', (w) => String(w.accepted)],
    ['failed (5xx or no answer)', (w) => String(w.failed)],
    ['latency p50 / p99', (w) => `${fmtMs(w.p50)} / ${fmtMs(w.p99)}`],
    ['applied by B (distinct ids)', (w) => String(w.applied)],
    ['lost (submitted, never applied)', (w) => String(w.lost)],
    ['repeats B ignored (same key)', (w) => String(w.upstream.duplicates)],
    ["queued in A's write queue", (w) => (w.queue ? String(w.queue.queued) : '-')],
    ['replayed to B from the queue', (w) => (w.queue ? String(w.queue.replayed) : '-')],
    ['left in the queue / given up', (w) => (w.queue ? `${w.queue.left} / ${w.queue.dead}` : '-')],
  ];
  let out = `${pad('writes', 40, true)}${pad('unprotected', 20)}${pad('protected', 20)}\n`;
  for (const [label, f] of rows)
    out += `${pad(label, 40, true)}${pad(unprotected ? f(unprotected) : '-', 20)}${pad(prot ? f(prot) : '-', 20)}\n`;
  return out;
}

/**
 * What a run's answers were, for {@link formatCarryOver}.
 *
 * @example
 * ```ts
 * const run: CarryOverRun = { label: 'unprotected', phases, stats: phaseStats(samples, phases) };
 * ```
 */
export interface CarryOverRun {
  label: string;
  phases: readonly PhaseDef[];
  stats: Record<string, Record<Route, RouteStats>>;
}

/**
 * Explains errors and fallbacks counted in a phase whose answers came after it: a request is
 * counted in the phase it was sent in, so the requests still waiting on B when it began to hang
 * show up in the healthy row ("err 10" unprotected: the 10 workers' calls, ended by the client
 * timeout; "fallb 9" protected: the same calls cut by the timeout). Empty when there are none.
 *
 * @example
 * ```ts
 * out += formatCarryOver([unprotected, prot], { unprotected: 'ended at the 10 s client timeout: 504' });
 * ```
 */
export function formatCarryOver(
  runs: readonly (CarryOverRun | undefined)[],
  why: Record<string, string>,
): string {
  let out = '';
  for (const r of runs) {
    if (r === undefined) continue;
    for (let i = 0; i < r.phases.length - 1; i++) {
      const ph = r.phases[i]!;
      const next = r.phases[i + 1]!;
      for (const route of ['orders', 'profile'] as const) {
        const s = r.stats[ph.name]?.[route];
        if (s === undefined || s.errorsAfter + s.fallbacksAfter === 0) continue;
        const parts: string[] = [];
        if (s.errorsAfter > 0)
          parts.push(`err ${s.errorsAfter}${s.errorsAfter < s.errors ? ` of ${s.errors}` : ''}`);
        if (s.fallbacksAfter > 0)
          parts.push(
            `fallb ${s.fallbacksAfter}${s.fallbacksAfter < s.fallbacks ? ` of ${s.fallbacks}` : ''}`,
          );
        out += `  ${r.label} ${ph.name} /${route} ${parts.join(', ')}: sent while B was ${ph.mode}, answered after B became ${next.mode}${why[r.label] ? ` (${why[r.label]})` : ''}.\n`;
      }
    }
  }
  if (out === '') return '';
  return (
    'Errors and fallbacks in a phase whose answers came after it (a request counts in the phase it was sent in,\n' +
    'so requests still waiting on B when it changed are its first victims, counted in the phase before):\n' +
    out
  );
}

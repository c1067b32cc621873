/**
 * The load generator of the cascade demo, like `ab -c 20`: a fixed number of closed-loop clients
 * (each sends its next request when the previous one has answered), split between the routes,
 * for a fixed time. Bounded: it stops sending at `durationMs` (or after `maxRequests`), waits at
 * most `drainMs` for the requests still in flight, then aborts them and records them as cut off.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { Agent, type Dispatcher, request } from 'undici';
import type { Clock } from 'tripswitch';
import { realClock } from '../clock.js';
import type { TimerHandle } from 'tripswitch';

/**
 * A connection pool without timeouts (the drain deadline bounds every request) and the run's
 * cut-off signal, which the caller's `signal` also triggers.
 */
function connect(concurrency: number, signal: AbortSignal | undefined) {
  const agent = new Agent({ connections: concurrency, headersTimeout: 0, bodyTimeout: 0 });
  const cut = new AbortController();
  setMaxListeners(concurrency + 16, cut.signal);
  const onAbort = () => cut.abort(new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  return { agent, cut, onAbort };
}

/**
 * Runs one request for a sample: sets its status (0 and `error` when it failed), reads the body
 * away. True when the run's cut-off ended it (counted apart from real failures).
 */
async function exchange(
  s: { status: number; error?: string },
  cut: AbortSignal,
  call: () => Promise<Dispatcher.ResponseData>,
  onResponse?: (r: Dispatcher.ResponseData) => void,
): Promise<boolean> {
  try {
    const r = await call();
    s.status = r.statusCode;
    onResponse?.(r);
    await r.body.dump();
    return false;
  } catch (err) {
    s.status = 0;
    if (cut.aborted) {
      s.error = 'cut off';
      return true;
    }
    s.error = err instanceof Error ? err.message : String(err);
    return false;
  }
}

/** The routes of Service A the load hits. */
export type Route = 'orders' | 'profile';

/** One request's outcome. */
export interface Sample {
  route: Route;
  /** When it was sent, in ms since the load started. */
  start: number;
  /** Time to the full response (or to the error), in ms. */
  latency: number;
  /** HTTP status, 0 for a transport error or a request cut off at the end. */
  status: number;
  /** Service A answered with a fallback (`x-fallback: 1`). */
  fallback: boolean;
  /** The fallback was a degraded answer (`x-degraded: 1`: no last good answer within its TTL). */
  degraded?: boolean;
  /** Set for a transport error or a cut-off request. */
  error?: string;
}

/** Options of {@link runLoad}. */
export interface LoadOptions {
  /** Base URL of Service A. */
  baseUrl: string;
  /** Concurrent clients. @default 20 */
  concurrency?: number;
  /** Share of clients calling `/profile`, the others call `/orders` (at least one each). @default 0.2 */
  profileShare?: number;
  /** Stop sending after this many ms. */
  durationMs: number;
  /** Stop sending after this many requests in total. @default Infinity */
  maxRequests?: number;
  /** After the duration, wait this long for requests in flight before aborting them. @default 15_000 */
  drainMs?: number;
  /** Abort everything early (Ctrl-C). */
  signal?: AbortSignal;
  /** The time origin of `Sample.start` (a `clock.now()` value). @default when the load starts */
  t0?: number;
  /** Where time is read and the drain deadline scheduled; tests pass a `TestClock`. @default realClock */
  clock?: Clock;
  /** Called when a request is sent, with its sample (filled in when it settles). */
  onSend?: (s: Sample) => void;
  /** Called for every sample as it is recorded. */
  onSample?: (s: Sample) => void;
}

/** What {@link runLoad} measured. */
export interface LoadResult {
  samples: Sample[];
  /** Requests sent. */
  sent: number;
  /** Requests aborted because they were still in flight after the drain (or on an abort). */
  cutOff: number;
  /** ms from start until the last request settled. */
  elapsedMs: number;
  clients: Record<Route, number>;
}

/** How many clients call each route: `profileShare` of them `/profile`, at least one per route. */
export function splitClients(concurrency: number, profileShare: number): Record<Route, number> {
  if (!Number.isInteger(concurrency) || concurrency < 2)
    throw new RangeError('concurrency must be an integer >= 2');
  if (!(profileShare > 0 && profileShare < 1)) throw new RangeError('profileShare must be in (0, 1)');
  const profile = Math.min(concurrency - 1, Math.max(1, Math.round(concurrency * profileShare)));
  return { orders: concurrency - profile, profile };
}

/**
 * Runs the load against Service A and returns every sample.
 *
 * @example
 * ```ts
 * const { samples } = await runLoad({ baseUrl: a.url, concurrency: 4, durationMs: 500 });
 * ```
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const concurrency = options.concurrency ?? 20;
  const clients = splitClients(concurrency, options.profileShare ?? 0.2);
  const maxRequests = options.maxRequests ?? Number.POSITIVE_INFINITY;
  const drainMs = options.drainMs ?? 15_000;
  const base = options.baseUrl.replace(/\/$/, '');
  const clock = options.clock ?? realClock;
  const { agent, cut, onAbort } = connect(concurrency, options.signal);

  const samples: Sample[] = [];
  let sent = 0;
  let cutOff = 0;
  const t0 = options.t0 ?? clock.now();
  const sendUntil = clock.now() + options.durationMs;

  const client = async (route: Route) => {
    const url = `${base}/${route}`;
    while (!cut.signal.aborted && clock.now() < sendUntil && sent < maxRequests) {
      sent++;
      const start = clock.now();
      const s: Sample = { route, start: start - t0, latency: 0, status: 0, fallback: false };
      options.onSend?.(s);
      const ended = await exchange(
        s,
        cut.signal,
        () => request(url, { dispatcher: agent, signal: cut.signal }),
        (r) => {
          s.fallback = r.headers['x-fallback'] === '1';
          if (r.headers['x-degraded'] === '1') s.degraded = true;
        },
      );
      if (ended) cutOff++;
      s.latency = clock.now() - start;
      samples.push(s);
      options.onSample?.(s);
    }
  };

  const all = Promise.all([
    ...Array.from({ length: clients.orders }, () => client('orders')),
    ...Array.from({ length: clients.profile }, () => client('profile')),
  ]);
  // The drain deadline: durationMs + drainMs from the start; then whatever is in flight is aborted.
  const deadline = clock.setTimeout(
    () => cut.abort(new Error('drain deadline')),
    options.durationMs + drainMs,
  );
  try {
    await all;
  } finally {
    clock.clearTimeout(deadline);
    options.signal?.removeEventListener('abort', onAbort);
    await agent.destroy();
  }
  return { samples, sent, cutOff, elapsedMs: clock.now() - t0, clients };
}

/** One write's outcome (`POST /orders`). */
export interface WriteSample {
  /** The order id in the body (`w1`, `w2`, ... per run). */
  id: string;
  /** When it was sent, in ms since the load started. */
  start: number;
  /** Time to the full response (or to the error), in ms. */
  latency: number;
  /** HTTP status, 0 for a transport error or a write cut off at the end. */
  status: number;
  /** Set for a transport error or a cut-off write. */
  error?: string;
}

/** Options of {@link runWriter}. */
export interface WriterOptions {
  /** Base URL of Service A. */
  baseUrl: string;
  /** One write every this many ms. @default 100 */
  intervalMs?: number;
  /** Writes in flight at most; a tick when all are busy sends nothing (counted as skipped). @default 4 */
  concurrency?: number;
  /** Stop sending after this many ms. */
  durationMs: number;
  /** After the duration, wait this long for writes in flight before aborting them. @default 15_000 */
  drainMs?: number;
  /** Abort everything early (Ctrl-C). */
  signal?: AbortSignal;
  /** The time origin of `WriteSample.start` (a `clock.now()` value). @default when the writer starts */
  t0?: number;
  /** Where time is read and the writer's ticks scheduled; tests pass a `TestClock`. @default realClock */
  clock?: Clock;
  /** Called for every write as it settles. */
  onSample?: (s: WriteSample) => void;
}

/** What {@link runWriter} measured. */
export interface WriterResult {
  samples: WriteSample[];
  /** Writes sent (each with a new id). */
  submitted: number;
  /** Ticks that sent nothing because `concurrency` writes were already in flight. */
  skipped: number;
  /** Writes aborted because they were still in flight after the drain (or on an abort). */
  cutOff: number;
  /** ms from start until the last write settled. */
  elapsedMs: number;
}

/**
 * A low-rate writer next to {@link runLoad}: one `POST /orders` with a new `id` every `intervalMs`
 * (an open loop, so a slow A does not slow the schedule), at most `concurrency` in flight, bounded
 * like the load: it stops sending at `durationMs`, waits at most `drainMs`, then aborts.
 *
 * @example
 * ```ts
 * const w = await runWriter({ baseUrl: a.url, durationMs: 1_000 });
 * ```
 */
export async function runWriter(options: WriterOptions): Promise<WriterResult> {
  const intervalMs = options.intervalMs ?? 100;
  const concurrency = options.concurrency ?? 4;
  if (!(intervalMs > 0)) throw new RangeError('intervalMs must be > 0');
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new RangeError('concurrency must be an integer >= 1');
  const drainMs = options.drainMs ?? 15_000;
  const url = `${options.baseUrl.replace(/\/$/, '')}/orders`;
  const clock = options.clock ?? realClock;
  // No request timeout, like the readers: the drain deadline bounds a write.
  const { agent, cut, onAbort } = connect(concurrency, options.signal);

  const samples: WriteSample[] = [];
  const inflight = new Set<Promise<void>>();
  let submitted = 0;
  let skipped = 0;
  let cutOff = 0;
  const t0 = options.t0 ?? clock.now();
  const started = clock.now();
  const sendUntil = started + options.durationMs;

  const write = async () => {
    submitted++;
    const start = clock.now();
    const s: WriteSample = { id: `w${submitted}`, start: start - t0, latency: 0, status: 0 };
    const ended = await exchange(s, cut.signal, () =>
      request(url, {
        method: 'POST',
        dispatcher: agent,
        signal: cut.signal,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: s.id, item: 'widget', qty: 1 }),
      }),
    );
    if (ended) cutOff++;
    s.latency = clock.now() - start;
    samples.push(s);
    options.onSample?.(s);
  };

  // Ticks on a fixed schedule (tick n at started + n * intervalMs), not drifting with timer lateness.
  await new Promise<void>((resolve) => {
    let n = 0;
    let timer: TimerHandle | undefined;
    const tick = () => {
      timer = undefined;
      // Tick n is due at n * intervalMs: the count is fixed by the schedule (a timer firing a
      // fraction of a ms early must not add one), and a late tick past the end sends nothing.
      if (cut.signal.aborted || n * intervalMs >= options.durationMs || clock.now() >= sendUntil) {
        cut.signal.removeEventListener('abort', stop);
        return resolve();
      }
      if (inflight.size < concurrency) {
        const p: Promise<void> = write().finally(() => inflight.delete(p));
        inflight.add(p);
      } else skipped++;
      n++;
      timer = clock.setTimeout(tick, Math.max(0, started + n * intervalMs - clock.now()));
    };
    const stop = () => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      resolve();
    };
    cut.signal.addEventListener('abort', stop, { once: true });
    tick();
  });
  const deadline = clock.setTimeout(
    () => cut.abort(new Error('drain deadline')),
    Math.max(0, started + options.durationMs + drainMs - clock.now()),
  );
  try {
    await Promise.all(inflight);
  } finally {
    clock.clearTimeout(deadline);
    options.signal?.removeEventListener('abort', onAbort);
    await agent.destroy();
  }
  return { samples, submitted, skipped, cutOff, elapsedMs: clock.now() - t0 };
}

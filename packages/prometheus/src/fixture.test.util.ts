/**
 * Shared test fixture, no tests of its own: an exposition in which every metric family of
 * `prometheusMetrics` has samples, driven by a real breaker, real policies and a write queue under a
 * TestClock.
 * Used by the promtool check (index.test.ts) and the dashboard checks (grafana.test.ts here and
 * packages/sidecar/src/admin/grafana.test.ts, which also uses references()).
 */
import { Registry } from 'prom-client';
import {
  adaptiveLimiter,
  breakerRegistry,
  bulkhead,
  circuitBreaker,
  constantBackoff,
  fallback,
  hedge,
  memoryWriteStore,
  rateLimiter,
  retry,
  timeout,
  wrap,
  writeQueue,
} from 'tripswitch';
import { chaosFault, chaosLatency } from 'tripswitch/chaos';
import { TestClock } from 'tripswitch/testing';
import { prometheusMetrics } from './index.js';

/** Resolves or rejects from outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Every family registered, each with samples. `dispose()` detaches and unregisters. */
export async function fullExposition(): Promise<{ text: string; register: Registry; dispose(): void }> {
  const clock = new TestClock();
  const registry = breakerRegistry({ clock, defaults: { clock } });
  const register = new Registry();
  const m = prometheusMetrics({ registry, register });
  const b = registry.get('pay');
  const slow = deferred<number>();
  const call = b.execute(() => slow.promise);
  clock.advance(30);
  slow.resolve(1);
  await call;
  await b.execute(async () => Promise.reject(new Error('x'))).catch(() => undefined);
  b.isolate();
  await b.execute(async () => 1).catch(() => undefined);

  // A write queue: two writes queued while its downstream is down, a failed replay (the breaker's
  // probe), then their delivery; a fourth write left waiting.
  let down = true;
  const outbox = writeQueue({
    send: async (n: number) => {
      if (down) throw new Error('down');
      return n;
    },
    store: memoryWriteStore<number>(),
    breaker: circuitBreaker({
      name: 'orders',
      clock,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 1_000,
    }),
    backoff: constantBackoff(10),
    clock,
  });
  m.instrument('outbox', outbox);
  await outbox.submit(1);
  await outbox.submit(2);
  await clock.advanceAsync(1_000);
  down = false;
  await clock.advanceAsync(1_000);
  await outbox.submit(3); // waits behind nothing: sent at once, leaves 0 queued
  down = true;
  await outbox.submit(4); // stays queued: size 1

  const r = retry({ maxAttempts: 2, backoff: constantBackoff(10), clock });
  const t = timeout({ ms: 100, clock });
  const bh = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
  const rl = rateLimiter({ rate: 1, burst: 1, clock });
  const api = wrap(fallback({ value: 0 }), r, t);
  m.instrument('api', api);
  m.instrument('pool', bh);
  m.instrument('quota', rl);
  // A retry that gives up after one retry: the timeout expires both attempts, the fallback answers.
  const answered = api.execute(({ signal }) => never(signal));
  await clock.advanceAsync(100 + 10 + 100);
  await answered;
  const hold = deferred();
  const running = bh.execute(() => hold.promise);
  const waiting = bh.execute(async () => undefined);
  await bh.execute(async () => undefined).catch(() => undefined);
  await rl.execute(async () => undefined);
  await rl.execute(async () => undefined).catch(() => undefined);
  // Hedge, adaptive limiter and two chaos policies under one name.
  const reads = wrap(
    hedge({ idempotent: true, delayMs: 5, clock }),
    adaptiveLimiter({ initialLimit: 1, clock }),
    chaosFault({ rate: 1, seed: 1 }),
    chaosLatency({ rate: 0.5, latencyMs: 1, clock, enabled: false }),
  );
  m.instrument('reads', reads);
  await reads.execute(async () => 1).catch(() => undefined);
  const text = await register.metrics();
  await outbox.close();
  hold.resolve();
  await running;
  await waiting;
  return { text, register, dispose: () => m.dispose() };
}

/** Settles only when `signal` aborts. */
function never(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) =>
    signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
  );
}

/** One sample of an exposition. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the samples of a text exposition (comments skipped). */
export function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparsed exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample named `name` whose labels include `labels`; throws unless exactly one. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const hits = samples(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (hits.length !== 1) throw new Error(`${hits.length} samples of ${name} ${JSON.stringify(labels)}`);
  return hits[0]!.value;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** Metric selectors, their matcher labels, and the grouping labels of a PromQL expression. */
export function references(expr: string): {
  selectors: { name: string | undefined; labels: string[] }[];
  grouping: string[];
} {
  const selectors: { name: string | undefined; labels: string[] }[] = [];
  const grouping: string[] = [];
  let rest = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  rest = rest.replace(
    /([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}/g,
    (_, name: string | undefined, body: string) => {
      selectors.push({
        name,
        labels: [...body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!),
      });
      return ' ';
    },
  );
  rest = rest.replace(/\[[^\]]*\]/g, ' ');
  rest = rest.replace(
    /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_, labels: string) => {
      grouping.push(
        ...labels
          .split(',')
          .map((l) => l.trim())
          .filter(Boolean),
      );
      return ' ';
    },
  );
  for (const m of rest.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?!\s*\()/g)) {
    // A lookahead miss on a shorter prefix of a function name would still match: skip those.
    const after = rest.slice(m.index! + m[0].length);
    if (/^[a-zA-Z0-9_:]/.test(after) || /^\s*\(/.test(after) || KEYWORDS.has(m[0].toLowerCase())) continue;
    selectors.push({ name: m[0], labels: [] });
  }
  return { selectors, grouping };
}

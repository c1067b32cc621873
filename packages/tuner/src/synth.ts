/**
 * Synthesized traces of the classic failure shapes, for teams without a recorded incident. Every
 * trace is a function of its parameters and seed (a seeded PRNG, no Math.random), and carries its
 * incidents, so a replay knows when a breaker should have been open.
 * @module
 */
import type { Incident, Trace } from './trace.js';
import { seededRandom } from 'tripswitch/chaos';

/**
 * The shapes {@link synthesize} knows.
 *
 * @example
 * ```ts
 * for (const shape of traceShapes) writeTrace(`${shape}.ndjson`, synthesize({ shape, seed: 7 }));
 * ```
 */
export const traceShapes = ['healthy', 'brownout', 'hard-outage', 'flapping', 'slow-recovery'] as const;

/**
 * One of {@link traceShapes}.
 *
 * @example
 * ```ts
 * const shape: TraceShape = 'flapping';
 * ```
 */
export type TraceShape = (typeof traceShapes)[number];

/**
 * Parameters of a synthesized trace. Times in ms; the incident starts at `incidentStartMs` after
 * the trace's start.
 *
 * @example
 * ```ts
 * synthesize({ shape: 'brownout', rate: 200, durationMs: 600_000, peakLatencyMs: 3_000, seed: 42 });
 * ```
 */
export interface SynthOptions {
  shape: TraceShape;
  /** PRNG seed: the same options and seed give the same trace. @default 1 */
  seed?: number;
  /** Breaker name written on every call. @default 'default' */
  name?: string;
  /** Epoch ms of the first instant. @default 1_700_000_000_000 */
  startTime?: number;
  /** Length of the trace. @default 600_000 (10 min) */
  durationMs?: number;
  /** Mean calls per second (Poisson arrivals). @default 50 */
  rate?: number;
  /** Failure rate when healthy. @default 0.01 */
  backgroundErrorRate?: number;
  /** Median latency when healthy. @default 20 */
  latencyMs?: number;
  /** Spread of the latency (sigma of its logarithm). @default 0.3 */
  latencySigma?: number;
  /** When the incident starts, from the trace's start. @default durationMs / 3 */
  incidentStartMs?: number;
  /** How long the incident lasts (for `flapping`, the span of all cycles). @default durationMs / 3 */
  incidentMs?: number;
  /** `hard-outage`, `flapping`, `slow-recovery`: latency of a failed call (a refused connection). @default 2 */
  outageLatencyMs?: number;
  /** `brownout`: the median latency the incident rises to. @default 2_000 */
  peakLatencyMs?: number;
  /** `brownout`: the failure rate the incident rises to. @default 0.6 */
  peakErrorRate?: number;
  /** `flapping`: length of each down period. @default 15_000 */
  downMs?: number;
  /** `flapping`: length of each up period between them. @default 30_000 */
  upMs?: number;
  /** `slow-recovery`: after the outage, how long the failure rate takes to fall back. @default 60_000 */
  recoveryMs?: number;
}

const prng = seededRandom;

function num(
  o: SynthOptions,
  key: keyof SynthOptions,
  def: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
) {
  const v = o[key] ?? def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    throw new RangeError(`synthesize: ${key} must be a number in [${min}, ${max}], got ${String(v)}`);
  return v;
}

/**
 * Draws a trace of the given shape. The result's `incidents` say when the dependency was unhealthy
 * (for `slow-recovery`, until the failure rate is back to the background rate).
 *
 * @example
 * ```ts
 * const trace = synthesize({ shape: 'hard-outage', rate: 100, seed: 3 });
 * console.log(trace.length, trace.incidents); // ~60,000 calls, one incident from 200 s to 400 s
 * ```
 */
export function synthesize(options: SynthOptions): Trace {
  const shape = options.shape;
  if (!traceShapes.includes(shape))
    throw new RangeError(`synthesize: shape must be one of ${traceShapes.join(', ')}, got ${String(shape)}`);
  const seed = num(options, 'seed', 1, 0);
  const t0 = num(options, 'startTime', 1_700_000_000_000, 0);
  const total = num(options, 'durationMs', 600_000, 1);
  const rate = num(options, 'rate', 50, 1e-6, 1e6);
  const bg = num(options, 'backgroundErrorRate', 0.01, 0, 1);
  const lat = num(options, 'latencyMs', 20, 0);
  const sigma = num(options, 'latencySigma', 0.3, 0, 5);
  const from = num(options, 'incidentStartMs', total / 3, 0, total);
  const len = num(options, 'incidentMs', total / 3, 1);
  const outLat = num(options, 'outageLatencyMs', 2, 0);
  const peakLat = num(options, 'peakLatencyMs', 2_000, 0);
  const peakErr = num(options, 'peakErrorRate', 0.6, 0, 1);
  const down = num(options, 'downMs', 15_000, 1);
  const up = num(options, 'upMs', 30_000, 1);
  const recovery = num(options, 'recoveryMs', 60_000, 0);
  const name = options.name ?? 'default';
  if (typeof name !== 'string' || name === '')
    throw new TypeError('synthesize: name must be a non-empty string');

  const incidents: Incident[] = [];
  const at = (ms: number) => t0 + ms;
  // Per shape: the failure probability and median latency at an offset into the trace, and
  // whether a failure there is a fast refusal (outage) or a slow answer.
  let health: (ms: number) => { p: number; median: number; fast: boolean };
  const healthy = { p: bg, median: lat, fast: false };
  switch (shape) {
    case 'healthy':
      health = () => healthy;
      break;
    case 'hard-outage':
      incidents.push({ start: at(from), end: at(from + len), kind: shape });
      health = (ms) => (ms >= from && ms < from + len ? { p: 1, median: outLat, fast: true } : healthy);
      break;
    case 'brownout':
      incidents.push({ start: at(from), end: at(from + len), kind: shape });
      health = (ms) => {
        if (ms < from || ms >= from + len) return healthy;
        const k = (ms - from) / len;
        return { p: bg + (peakErr - bg) * k, median: lat + (peakLat - lat) * k, fast: false };
      };
      break;
    case 'flapping': {
      for (let s = from; s < from + len; s += down + up)
        incidents.push({ start: at(s), end: at(Math.min(s + down, from + len, total)), kind: shape });
      health = (ms) => {
        if (ms < from || ms >= from + len) return healthy;
        return (ms - from) % (down + up) < down ? { p: 1, median: outLat, fast: true } : healthy;
      };
      break;
    }
    case 'slow-recovery':
      incidents.push({ start: at(from), end: at(from + len + recovery), kind: shape });
      health = (ms) => {
        if (ms < from || ms >= from + len + recovery) return healthy;
        if (ms < from + len) return { p: 1, median: outLat, fast: true };
        const k = (ms - from - len) / recovery;
        return { p: 1 - (1 - bg) * k, median: lat, fast: false };
      };
      break;
  }

  const rand = prng(seed);
  const expected = Math.ceil((rate * total) / 1000 + 10 * Math.sqrt((rate * total) / 1000) + 16);
  const start = new Float64Array(expected);
  const duration = new Float64Array(expected);
  const failed = new Uint8Array(expected);
  let n = 0;
  const meanGap = 1000 / rate;
  for (
    let ms = -Math.log(1 - rand()) * meanGap;
    ms < total && n < expected;
    ms += -Math.log(1 - rand()) * meanGap
  ) {
    const h = health(ms);
    const fail = rand() < h.p;
    // Log-normal latency around the median (Box-Muller for the normal draw).
    const z = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const median = fail && h.fast ? outLat : h.median;
    start[n] = Math.round((t0 + ms) * 1000) / 1000;
    duration[n] = Math.round(median * Math.exp(sigma * z) * 1000) / 1000;
    failed[n++] = fail ? 1 : 0;
  }
  return {
    length: n,
    start: start.subarray(0, n),
    duration: duration.subarray(0, n),
    failed: failed.subarray(0, n),
    nameIndex: new Uint16Array(n),
    names: [name],
    incidents: incidents.filter((x) => x.start < t0 + total),
    meta: { ...options, seed, shape },
  };
}

/**
 * Call traces: what a dependency did, one call at a time. Kept in columns (typed arrays) because a
 * replay walks a million calls per candidate and an array of objects would be most of its cost.
 * On disk a trace is NDJSON, one call a line, with an optional first `meta` line naming the
 * incidents (a synthesized trace knows them; a recorded one has them found by {@link findIncidents}).
 * @module
 */
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';

/**
 * One call as written on an NDJSON line.
 *
 * @example
 * ```ts
 * const line: TraceCall = { t: 1_700_000_000_000, d: 12.5, outcome: 'failure', name: 'payments' };
 * ```
 */
export interface TraceCall {
  /** Start time, epoch ms. */
  t: number;
  /** Duration in ms (until the dependency answered or failed). */
  d: number;
  outcome: 'success' | 'failure';
  /** The breaker (dependency) the call went through. */
  name: string;
}

/**
 * A period the dependency was unhealthy: a breaker should be open (or opening) in it and closed
 * outside it. `end` is when the dependency was healthy again.
 *
 * @example
 * ```ts
 * const outage: Incident = { start: t0 + 60_000, end: t0 + 120_000, kind: 'hard-outage' };
 * ```
 */
export interface Incident {
  start: number;
  end: number;
  /** What kind of trouble (the synthesized shape, or `detected`). */
  kind?: string;
}

/**
 * A trace in columns, sorted by start time. `names[nameIndex[i]]` is call i's breaker.
 *
 * @example
 * ```ts
 * const trace = await readTrace('calls.ndjson');
 * console.log(trace.length, trace.names, trace.incidents);
 * ```
 */
export interface Trace {
  readonly length: number;
  /** Start times, epoch ms, non-decreasing. */
  readonly start: Float64Array;
  /** Durations, ms. */
  readonly duration: Float64Array;
  /** 1 when the call failed. */
  readonly failed: Uint8Array;
  readonly nameIndex: Uint16Array;
  readonly names: readonly string[];
  /** Known unhealthy periods (from the meta line), sorted and not overlapping; empty when unknown. */
  readonly incidents: readonly Incident[];
  /** Free-form description from the meta line (shape, parameters, seed). */
  readonly meta?: Record<string, unknown>;
}

/**
 * Builds a {@link Trace} from calls (sorted here by start time).
 *
 * @example
 * ```ts
 * const trace = traceFromCalls([{ t: 0, d: 5, outcome: 'success', name: 'db' }], []);
 * ```
 */
export function traceFromCalls(
  calls: readonly TraceCall[],
  incidents: readonly Incident[] = [],
  meta?: Record<string, unknown>,
): Trace {
  const sorted = [...calls].sort((a, b) => a.t - b.t);
  const names: string[] = [];
  const ids = new Map<string, number>();
  const n = sorted.length;
  const start = new Float64Array(n);
  const duration = new Float64Array(n);
  const failed = new Uint8Array(n);
  const nameIndex = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const c = sorted[i]!;
    start[i] = c.t;
    duration[i] = c.d;
    failed[i] = c.outcome === 'failure' ? 1 : 0;
    let id = ids.get(c.name);
    if (id === undefined) {
      if (names.length === 0xffff) throw new RangeError('trace: more than 65535 breaker names');
      id = names.length;
      names.push(c.name);
      ids.set(c.name, id);
    }
    nameIndex[i] = id;
  }
  return { length: n, start, duration, failed, nameIndex, names, incidents: normalize(incidents), meta };
}

function normalize(incidents: readonly Incident[]): Incident[] {
  const s = [...incidents].sort((a, b) => a.start - b.start);
  for (const [i, x] of s.entries()) {
    if (!(x.end > x.start))
      throw new RangeError(`trace: incident ${i} ends (${x.end}) before it starts (${x.start})`);
    const prev = s[i - 1];
    if (prev && x.start < prev.end) throw new RangeError(`trace: incidents ${i - 1} and ${i} overlap`);
  }
  return s;
}

/**
 * The calls of one breaker name only (a replay drives one breaker).
 *
 * @example
 * ```ts
 * const payments = onlyName(trace, 'payments');
 * ```
 */
export function onlyName(trace: Trace, name: string): Trace {
  const id = trace.names.indexOf(name);
  if (id < 0) throw new RangeError(`trace has no calls named "${name}" (names: ${trace.names.join(', ')})`);
  if (trace.names.length === 1) return trace;
  let n = 0;
  for (let i = 0; i < trace.length; i++) if (trace.nameIndex[i] === id) n++;
  const start = new Float64Array(n);
  const duration = new Float64Array(n);
  const failed = new Uint8Array(n);
  for (let i = 0, j = 0; i < trace.length; i++) {
    if (trace.nameIndex[i] !== id) continue;
    start[j] = trace.start[i]!;
    duration[j] = trace.duration[i]!;
    failed[j++] = trace.failed[i]!;
  }
  return {
    length: n,
    start,
    duration,
    failed,
    nameIndex: new Uint16Array(n),
    names: [name],
    incidents: trace.incidents,
    meta: trace.meta,
  };
}

/**
 * The name with the most calls (the default breaker a replay drives).
 *
 * @example
 * ```ts
 * const name = busiestName(trace);
 * ```
 */
export function busiestName(trace: Trace): string {
  const counts = new Array<number>(trace.names.length).fill(0);
  for (let i = 0; i < trace.length; i++) counts[trace.nameIndex[i]!]!++;
  let best = 0;
  for (let k = 1; k < counts.length; k++) if (counts[k]! > counts[best]!) best = k;
  const name = trace.names[best];
  if (name === undefined) throw new RangeError('trace is empty');
  return name;
}

/**
 * The trace as NDJSON text: an optional meta line, then one {@link TraceCall} a line.
 *
 * @example
 * ```ts
 * process.stdout.write(formatTrace(synthesize({ shape: 'hard-outage', seed: 1 })));
 * ```
 */
export function formatTrace(trace: Trace): string {
  return [...traceChunks(trace)].join('');
}

/**
 * The NDJSON text in chunks of `lines` lines, so a million-call trace is written without building
 * one string of it.
 *
 * @example
 * ```ts
 * for (const chunk of traceChunks(trace)) process.stdout.write(chunk);
 * ```
 */
export function* traceChunks(trace: Trace, lines = 8_192): Generator<string> {
  if (trace.incidents.length > 0 || trace.meta)
    yield `${JSON.stringify({ meta: { ...trace.meta, incidents: trace.incidents } })}\n`;
  const names = trace.names.map((n) => JSON.stringify(n));
  for (let from = 0; from < trace.length; from += lines) {
    let text = '';
    const to = Math.min(trace.length, from + lines);
    for (let i = from; i < to; i++)
      text += `{"t":${trace.start[i]},"d":${trace.duration[i]},"outcome":"${trace.failed[i] ? 'failure' : 'success'}","name":${names[trace.nameIndex[i]!]}}\n`;
    yield text;
  }
}

/**
 * Writes the trace's NDJSON to a file, chunk by chunk.
 *
 * @example
 * ```ts
 * writeTrace('outage.ndjson', synthesize({ shape: 'hard-outage', seed: 1 }));
 * ```
 */
export function writeTrace(file: string, trace: Trace): void {
  const fd = openSync(file, 'w');
  try {
    for (const chunk of traceChunks(trace)) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
}

/** Grows typed arrays while lines stream in, without an object per call. */
class Columns {
  n = 0;
  start = new Float64Array(1024);
  duration = new Float64Array(1024);
  failed = new Uint8Array(1024);
  nameIndex = new Uint16Array(1024);
  push(t: number, d: number, f: number, id: number): void {
    if (this.n === this.start.length) {
      const grow = <A extends Float64Array | Uint8Array | Uint16Array>(a: A): A => {
        const b = new (a.constructor as new (n: number) => A)(a.length * 2);
        b.set(a);
        return b;
      };
      this.start = grow(this.start);
      this.duration = grow(this.duration);
      this.failed = grow(this.failed);
      this.nameIndex = grow(this.nameIndex);
    }
    this.start[this.n] = t;
    this.duration[this.n] = d;
    this.failed[this.n] = f;
    this.nameIndex[this.n++] = id;
  }
}

/**
 * Parses NDJSON trace text. Errors name the line and the field.
 *
 * @example
 * ```ts
 * const trace = parseTrace(readFileSync('calls.ndjson', 'utf8'));
 * ```
 */
export function parseTrace(text: string, file = '<trace>'): Trace {
  const p = new TraceParser(file);
  let lineNo = 0;
  for (const line of text.split('\n')) p.line(line, ++lineNo);
  return p.finish();
}

/**
 * Reads an NDJSON trace file line by line (a recorded trace can be larger than a string may be).
 *
 * @example
 * ```ts
 * const trace = await readTrace('calls.ndjson');
 * ```
 */
export async function readTrace(file: string): Promise<Trace> {
  const p = new TraceParser(file);
  const rl = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  for await (const line of rl) p.line(line, ++lineNo);
  return p.finish();
}

class TraceParser {
  readonly #cols = new Columns();
  readonly #names: string[] = [];
  readonly #ids = new Map<string, number>();
  #incidents: Incident[] = [];
  #meta: Record<string, unknown> | undefined;
  #sorted = true;
  #last = Number.NEGATIVE_INFINITY;
  constructor(readonly file: string) {}

  line(raw: string, lineNo: number): void {
    const line = raw.trim();
    if (line === '') return;
    const where = `${this.file}:${lineNo}`;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch (err) {
      throw new SyntaxError(`${where}: not JSON (${(err as Error).message})`);
    }
    if (typeof o !== 'object' || o === null) throw new TypeError(`${where}: expected an object`);
    if ('meta' in o) {
      const meta = o.meta as Record<string, unknown>;
      const { incidents, ...rest } = meta ?? {};
      if (incidents !== undefined) {
        if (!Array.isArray(incidents)) throw new TypeError(`${where}: meta.incidents must be an array`);
        this.#incidents = incidents.map((x: Incident, i) => {
          if (typeof x?.start !== 'number' || typeof x?.end !== 'number')
            throw new TypeError(`${where}: meta.incidents[${i}] needs numeric start and end`);
          return x;
        });
      }
      this.#meta = rest;
      return;
    }
    const { t, d, outcome, name } = o;
    if (typeof t !== 'number' || !Number.isFinite(t))
      throw new TypeError(`${where}: "t" must be a finite number`);
    if (typeof d !== 'number' || !(d >= 0)) throw new TypeError(`${where}: "d" must be a number >= 0`);
    if (outcome !== 'success' && outcome !== 'failure')
      throw new TypeError(`${where}: "outcome" must be "success" or "failure"`);
    const key = typeof name === 'string' ? name : 'default';
    let id = this.#ids.get(key);
    if (id === undefined) {
      if (this.#names.length === 0xffff) throw new RangeError(`${where}: more than 65535 breaker names`);
      id = this.#names.length;
      this.#names.push(key);
      this.#ids.set(key, id);
    }
    if (t < this.#last) this.#sorted = false;
    this.#last = t;
    this.#cols.push(t, d, outcome === 'failure' ? 1 : 0, id);
  }

  finish(): Trace {
    const c = this.#cols;
    let start = c.start.subarray(0, c.n);
    let duration = c.duration.subarray(0, c.n);
    let failed = c.failed.subarray(0, c.n);
    let nameIndex = c.nameIndex.subarray(0, c.n);
    if (!this.#sorted) {
      // Recorders write calls as they finish, so start times come slightly out of order.
      const order = Uint32Array.from({ length: c.n }, (_, i) => i).sort((a, b) => start[a]! - start[b]!);
      start = Float64Array.from(order, (i) => c.start[i]!);
      duration = Float64Array.from(order, (i) => c.duration[i]!);
      failed = Uint8Array.from(order, (i) => c.failed[i]!);
      nameIndex = Uint16Array.from(order, (i) => c.nameIndex[i]!);
    }
    return {
      length: c.n,
      start,
      duration,
      failed,
      nameIndex,
      names: this.#names,
      incidents: normalize(this.#incidents),
      meta: this.#meta,
    };
  }
}

/**
 * Options of {@link findIncidents}.
 *
 * @example
 * ```ts
 * findIncidents(trace, { bucketMs: 5_000, failureRate: 0.25, minCalls: 10 });
 * ```
 */
export interface FindIncidentsOptions {
  /** Width of the buckets the error rate is judged in. @default 5_000 */
  bucketMs?: number;
  /** A bucket with at least this failure rate is unhealthy. @default 0.25 */
  failureRate?: number;
  /** A bucket with fewer calls is judged with its neighbour's state. @default 5 */
  minCalls?: number;
}

/**
 * Unhealthy periods of a trace that has none recorded (a recorded incident): runs of buckets whose
 * failure rate reaches `failureRate`.
 *
 * @example
 * ```ts
 * const incidents = trace.incidents.length ? trace.incidents : findIncidents(trace);
 * ```
 */
export function findIncidents(trace: Trace, options: FindIncidentsOptions = {}): Incident[] {
  const bucketMs = options.bucketMs ?? 5_000;
  const rate = options.failureRate ?? 0.25;
  const minCalls = options.minCalls ?? 5;
  if (!(bucketMs > 0)) throw new RangeError(`findIncidents: bucketMs must be > 0, got ${bucketMs}`);
  if (!(rate > 0 && rate <= 1))
    throw new RangeError(`findIncidents: failureRate must be in (0, 1], got ${rate}`);
  const incidents: Incident[] = [];
  if (trace.length === 0) return incidents;
  const t0 = trace.start[0]!;
  const buckets = Math.floor((trace.start[trace.length - 1]! - t0) / bucketMs) + 1;
  const calls = new Uint32Array(buckets);
  const fails = new Uint32Array(buckets);
  for (let i = 0; i < trace.length; i++) {
    const b = Math.floor((trace.start[i]! - t0) / bucketMs);
    calls[b]!++;
    fails[b]! += trace.failed[i]!;
  }
  let bad = false;
  let from = 0;
  for (let b = 0; b <= buckets; b++) {
    const now: boolean = b < buckets ? (calls[b]! < minCalls ? bad : fails[b]! / calls[b]! >= rate) : false;
    if (now && !bad) from = b;
    if (!now && bad)
      incidents.push({ start: t0 + from * bucketMs, end: t0 + b * bucketMs, kind: 'detected' });
    bad = now;
  }
  return incidents;
}

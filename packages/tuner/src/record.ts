/**
 * Records production traffic as a trace: every settled call of a breaker (or of every breaker of a
 * registry, including ones added later) as an NDJSON line. The hot path stores four numbers in
 * preallocated typed arrays (formatting a float is most of a line's cost, so it is done later);
 * lines are formatted and written in batches on the event loop, with bounds on what may wait in
 * memory (beyond them calls are dropped and counted), sampling, and size-based rotation. Idle, it
 * holds no timer.
 * @module
 */
import { type WriteStream, createWriteStream, existsSync, renameSync, rmSync } from 'node:fs';
import {
  type BreakerRegistry,
  type CircuitBreaker,
  type Clock,
  type Subscription,
  systemClock,
} from 'tripswitch';

/**
 * Options of {@link recordTrace}.
 *
 * @example
 * ```ts
 * recordTrace(registry, { file: '/var/log/app/calls.ndjson', sample: 0.1, maxBytes: 50e6, maxFiles: 3 });
 * ```
 */
export interface RecordOptions {
  /** NDJSON file to append to. */
  file: string;
  /** Fraction of calls recorded, in (0, 1]. A sampled trace keeps rates, not counts. @default 1 */
  sample?: number;
  /** Rotate when the file reaches this many bytes: `file` -> `file.1` -> ... @default 100_000_000 */
  maxBytes?: number;
  /** Rotated files kept besides the current one. @default 2 */
  maxFiles?: number;
  /** Most calls held in memory before they are formatted; more are dropped (and counted). @default 65_536 */
  bufferCalls?: number;
  /** Most bytes formatted and not yet written (a slow disk); beyond it calls are dropped. @default 8_000_000 */
  maxBufferBytes?: number;
  /** Calls that trigger a write (on the next turn of the event loop, not in the caller's call). @default 4_096 */
  batchCalls?: number;
  /** Longest a line waits before its batch is written, ms. @default 1_000 */
  flushMs?: number;
  /** Clock used to date calls; give the breaker's clock when it is not the system clock. @default Date */
  clock?: Pick<Clock, 'now' | 'setTimeout' | 'clearTimeout'>;
  /** Random source for sampling (tests pass a seeded one). @default Math.random */
  random?: () => number;
}

/**
 * Counts of a recorder.
 *
 * @example
 * ```ts
 * const { recorded, dropped } = recorder.stats();
 * ```
 */
export interface RecorderStats {
  /** Lines handed to the file. */
  recorded: number;
  /** Calls left out by sampling. */
  sampledOut: number;
  /** Lines dropped because the write buffer was full (the disk could not keep up). */
  dropped: number;
  /** Rotations done. */
  rotations: number;
  /** File errors (e.g. a missing directory, a full disk): the batch is lost and the next one reopens the file. */
  writeErrors: number;
}

/**
 * A running recording.
 *
 * @example
 * ```ts
 * const recorder = recordTrace(breaker, { file: 'calls.ndjson' });
 * // ... later
 * await recorder.stop();
 * ```
 */
export interface TraceRecorder {
  stats(): RecorderStats;
  /** Writes what is batched and resolves when it is on disk. */
  flush(): Promise<void>;
  /** Stops listening, writes what is batched and closes the file. */
  stop(): Promise<void>;
}

const isRegistry = (x: unknown): x is BreakerRegistry =>
  typeof x === 'object' && x !== null && typeof (x as BreakerRegistry).list === 'function';

/**
 * Starts recording `target`'s calls (successes and failures; rejected and neutral calls have no
 * outcome to replay) to `options.file`. A line is `{"t":start,"d":duration,"outcome":...,"name":...}`.
 *
 * @example
 * ```ts
 * import { breakerRegistry } from 'tripswitch';
 * import { recordTrace } from '@tripswitch/tuner';
 * const registry = breakerRegistry();
 * const recorder = recordTrace(registry, { file: 'calls.ndjson', sample: 1 });
 * process.on('SIGTERM', () => void recorder.stop());
 * ```
 */
export function recordTrace(target: CircuitBreaker | BreakerRegistry, options: RecordOptions): TraceRecorder {
  if (typeof options?.file !== 'string' || options.file === '')
    throw new TypeError('recordTrace: options.file must be a non-empty string');
  const sample = options.sample ?? 1;
  if (!(sample > 0 && sample <= 1))
    throw new RangeError(`recordTrace: sample must be in (0, 1], got ${sample}`);
  const positive = (k: keyof RecordOptions, def: number) => {
    const v = options[k] ?? def;
    if (typeof v !== 'number' || !(v > 0))
      throw new RangeError(`recordTrace: ${k} must be a number > 0, got ${String(v)}`);
    return v;
  };
  const maxBytes = positive('maxBytes', 100_000_000);
  const maxBuffer = positive('maxBufferBytes', 8_000_000);
  const cap = Math.floor(positive('bufferCalls', 65_536));
  const batchCalls = Math.min(cap, Math.floor(positive('batchCalls', 4_096)));
  const flushMs = positive('flushMs', 1_000);
  const maxFiles = options.maxFiles ?? 2;
  if (!Number.isInteger(maxFiles) || maxFiles < 0)
    throw new RangeError(`recordTrace: maxFiles must be an integer >= 0, got ${maxFiles}`);
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const file = options.file;

  const stats: RecorderStats = { recorded: 0, sampledOut: 0, dropped: 0, rotations: 0, writeErrors: 0 };
  const starts = new Float64Array(cap);
  const durations = new Float64Array(cap);
  const failed = new Uint8Array(cap);
  const nameIds = new Uint32Array(cap);
  const nameIndex = new Map<string, number>();
  const nameJson: string[] = [];
  let len = 0;
  let immediate = false;
  let pending = 0; // bytes handed to the stream and not yet written
  let fileBytes = 0;
  let timer: ReturnType<Clock['setTimeout']> | undefined;
  let stream: WriteStream | undefined;
  let writing: Promise<void> = Promise.resolve();
  let stopped = false;

  const open = () => {
    const s = createWriteStream(file, { flags: 'a' });
    // A failing disk must not crash the service: count it, and reopen for the next batch.
    s.on('error', () => {
      stats.writeErrors++;
      if (stream === s) stream = undefined;
    });
    stream = s;
  };
  const rotate = async () => {
    const s = stream;
    stream = undefined;
    if (s) await new Promise<void>((r) => s.end(r));
    if (maxFiles === 0) rmSync(file, { force: true });
    else {
      for (let k = maxFiles - 1; k >= 1; k--)
        if (existsSync(`${file}.${k}`)) renameSync(`${file}.${k}`, `${file}.${k + 1}`);
      if (existsSync(file)) renameSync(file, `${file}.1`);
    }
    stats.rotations++;
    fileBytes = 0;
  };
  const writeOut = () => {
    if (timer !== undefined) {
      clock.clearTimeout(timer);
      timer = undefined;
    }
    if (len === 0) return writing;
    let text = '';
    for (let i = 0; i < len; i++)
      text += `{"t":${starts[i]},"d":${durations[i]},"outcome":"${failed[i] ? 'failure' : 'success'}","name":${nameJson[nameIds[i]!]}}\n`;
    len = 0;
    const bytes = Buffer.byteLength(text);
    pending += bytes;
    // Batches are chained so rotation never interleaves with a write.
    writing = writing.then(async () => {
      if (fileBytes > 0 && fileBytes + bytes > maxBytes) await rotate();
      if (!stream) open();
      const s = stream!;
      await new Promise<void>((r) => {
        if (s.destroyed) r();
        else s.write(text, () => r());
      });
      fileBytes += bytes;
      pending -= bytes;
    });
    return writing;
  };

  const onCall = (name: string, duration: number, failed_: boolean) => {
    if (sample < 1 && random() >= sample) {
      stats.sampledOut++;
      return;
    }
    if (len === cap || pending > maxBuffer) {
      stats.dropped++;
      return;
    }
    let id = nameIndex.get(name);
    if (id === undefined) {
      id = nameJson.length;
      nameIndex.set(name, id);
      nameJson.push(JSON.stringify(name));
    }
    starts[len] = clock.now() - duration;
    durations[len] = duration;
    failed[len] = failed_ ? 1 : 0;
    nameIds[len++] = id;
    stats.recorded++;
    if (len >= batchCalls) {
      if (!immediate) {
        immediate = true;
        setImmediate(() => {
          immediate = false;
          void writeOut();
        });
      }
    } else if (timer === undefined) {
      timer = clock.setTimeout(() => {
        timer = undefined;
        void writeOut();
      }, flushMs);
      (timer as { unref?: () => void }).unref?.();
    }
  };

  const subs = new Map<CircuitBreaker, Subscription[]>();
  const follow = (b: CircuitBreaker) => {
    if (subs.has(b)) return;
    subs.set(b, [
      b.on('success', (e) => onCall(e.name, e.duration, false)),
      b.on('failure', (e) => onCall(e.name, e.duration, true)),
    ]);
  };
  const unfollow = (b: CircuitBreaker) => {
    for (const s of subs.get(b) ?? []) s.dispose();
    subs.delete(b);
  };
  const registrySubs: Subscription[] = [];
  if (isRegistry(target)) {
    // Breakers made before recording started (get() returns the existing one).
    for (const { name } of target.list()) follow(target.get(name));
    registrySubs.push(
      target.on('added', (e) => follow(e.breaker)),
      target.on('removed', (e) => unfollow(e.breaker)),
    );
  } else if (typeof (target as CircuitBreaker)?.on === 'function') follow(target as CircuitBreaker);
  else throw new TypeError('recordTrace: target must be a circuit breaker or a breaker registry');

  return {
    stats: () => ({ ...stats }),
    flush: () => writeOut(),
    async stop() {
      if (stopped) return writing;
      stopped = true;
      for (const s of registrySubs) s.dispose();
      for (const b of [...subs.keys()]) unfollow(b);
      await writeOut();
      const s = stream;
      stream = undefined;
      if (s && !s.destroyed) await new Promise<void>((r) => s.end(r));
    },
  };
}

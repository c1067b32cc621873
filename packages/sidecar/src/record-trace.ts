/**
 * A cluster's `record_trace` block made into a trace recorder: `recordTrace()` of
 * `@tripswitch/tuner`, loaded on demand. The sidecar does not depend on the tuner: a sidecar
 * without `record_trace` never loads it, and one with it needs the package installed.
 * @module
 */
import type { CircuitBreaker, Clock } from 'tripswitch';
import type { ResolvedRecordTrace } from './config/resolve.js';

/**
 * A running recording of one cluster's breaker (the tuner's `TraceRecorder`).
 *
 * @example
 * ```ts
 * const recorder: ClusterRecorder = (await loadTraceRecorder())(breaker, resolveRecordTrace({ file: 'api.ndjson' }), { clock });
 * await recorder.stop();
 * ```
 */
export interface ClusterRecorder {
  /** Writes what is batched and resolves when it is on disk. */
  flush(): Promise<void>;
  /** Stops listening, writes what is batched and closes the file. */
  stop(): Promise<void>;
  /** Lines recorded, calls sampled out or dropped (buffer full), rotations, write errors. */
  stats(): { recorded: number; sampledOut: number; dropped: number; rotations: number; writeErrors: number };
}

/**
 * Starts recording one cluster's breaker as its `record_trace` block says.
 *
 * @example
 * ```ts
 * const sidecar = new Sidecar(config, { recordTrace: await loadTraceRecorder() });
 * ```
 */
export type TraceRecorderFactory = (
  breaker: CircuitBreaker,
  settings: ResolvedRecordTrace,
  ctx: { clock: Clock },
) => ClusterRecorder;

/** The part of `@tripswitch/tuner` used here (typed locally: the tuner's own tests depend on the sidecar). */
interface TunerModule {
  recordTrace(
    target: CircuitBreaker,
    options: { file: string; sample: number; maxBytes: number; maxFiles: number; clock: Clock },
  ): ClusterRecorder;
}

// A variable, so that TypeScript does not resolve the package (it is not a build dependency).
const TUNER = '@tripswitch/tuner';

/**
 * Loads `@tripswitch/tuner` and returns the factory {@link Sidecar} uses for `record_trace`
 * blocks. Rejects, naming the package to install, when it is not installed.
 *
 * @example
 * ```ts
 * const config = loadConfig('tripswitch.yaml');
 * const recordTrace = config.clusters.some((c) => c.record_trace) ? await loadTraceRecorder() : undefined;
 * const sidecar = new Sidecar(config, { recordTrace });
 * ```
 */
export async function loadTraceRecorder(): Promise<TraceRecorderFactory> {
  let mod: TunerModule;
  try {
    mod = (await import(TUNER)) as TunerModule;
  } catch (err) {
    throw new Error(
      `record_trace needs the package @tripswitch/tuner (npm install @tripswitch/tuner), which could not be loaded: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (typeof mod.recordTrace !== 'function')
    throw new Error('record_trace needs @tripswitch/tuner with recordTrace() (0.1.0 or later)');
  return (breaker, s, { clock }) =>
    mod.recordTrace(breaker, {
      file: s.file,
      sample: s.sample_rate,
      maxBytes: s.max_bytes,
      maxFiles: s.max_files,
      clock,
    });
}

/**
 * `workers: N` (N > 1): N worker threads each run a {@link Sidecar} on the same listeners, bound
 * with SO_REUSEPORT (`listen({ reusePort: true })`, Node 22.12+ and 23.1+) so that the kernel
 * spreads the connections over them, as Envoy's worker threads do. The limits, counters and
 * breaker decision of every cluster live in shared memory (`shared-plan.ts`); the main thread keeps
 * a view {@link Sidecar} over the same memory for the admin API, /metrics and the dashboard, which
 * so show the totals. A worker that dies is given back its slots and probe, then replaced.
 * @module
 */
import { Worker } from 'node:worker_threads';
import { resolveConfig } from '../config/resolve.js';
import type { SidecarConfig } from '../config/schema.js';
import type { TraceRecorderFactory } from '../record-trace.js';
import type { Logger } from './logger.js';
import { Sidecar } from './server.js';
import { releaseWorkerShare, type SharedPlan, sharedPlan } from './shared-plan.js';

/**
 * True when this Node can bind one port from several threads (`reusePort`): 22.12+, 23.1+.
 *
 * @example
 * ```ts
 * if (!reusePortSupported()) console.log('workers: 1 only on', process.version);
 * ```
 */
export function reusePortSupported(version: string = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/**
 * `workers` > 1 asked of a Node that cannot share a port between threads (code
 * `ERR_SIDECAR_WORKERS`).
 *
 * @example
 * ```ts
 * try { await startWorkers(config); } catch (err) { if (err instanceof WorkersError) console.error(err.message); }
 * ```
 */
export class WorkersError extends Error {
  override readonly name = 'WorkersError';
  readonly code = 'ERR_SIDECAR_WORKERS';
}

/**
 * Options of {@link startWorkers}.
 *
 * @example
 * ```ts
 * const options: StartWorkersOptions = { logger: stderrLogger };
 * ```
 */
export interface StartWorkersOptions {
  logger?: Logger;
  /** Replace a worker that dies. @default true */
  respawn?: boolean;
  /** Where the workers' own log lines go (a logger cannot cross threads). @default 'stderr' */
  workerLogs?: 'stderr' | 'none';
  /**
   * Makes the recorders of `record_trace` blocks (`await loadTraceRecorder()`); they record in
   * the main thread, whose breaker settles the calls of every worker. Required when a cluster has
   * `record_trace`.
   */
  recordTrace?: TraceRecorderFactory;
}

/**
 * The running workers and the main thread's view of them.
 *
 * @example
 * ```ts
 * const pool = await startWorkers(config);
 * await startAdmin(pool.view);
 * process.on('SIGTERM', () => pool.shutdown().then(() => process.exit(0)));
 * ```
 */
export interface WorkerPool {
  /** The main thread's Sidecar over the shared memory: totals, no listeners. */
  readonly view: Sidecar;
  /** The worker threads (index = worker number); a replaced worker's slot holds its successor. */
  readonly threads: readonly Worker[];
  /** The shared memory of the config in force. */
  readonly plan: SharedPlan;
  /** Workers that died and were replaced (counted once the replacement listens). */
  readonly restarts: number;
  /**
   * Applies a new config in every worker (and the view); `workers` itself needs a restart.
   * `recordTrace` as in {@link StartWorkersOptions}, for a config that adds `record_trace`.
   */
  reload(config: SidecarConfig, options?: { recordTrace?: TraceRecorderFactory }): Promise<void>;
  /** Drains every worker (up to `drain_timeout_ms`); resolves true when all drained in time. */
  shutdown(): Promise<boolean>;
  /** Called after a dead worker's share was given back (and before its successor starts). */
  onWorkerExit?: (worker: number, code: number, freed: number) => void;
}

type FromWorker =
  | { type: 'ready'; addresses: { address: string; port: number }[] }
  | { type: 'error'; message: string }
  | { type: 'reloaded' }
  | { type: 'reload-failed'; message: string }
  | { type: 'stopped'; drained: boolean };

const entry = new URL('./worker-thread.js', import.meta.url);

/** The messages of one worker, one at a time. */
function nextMessage(w: Worker, accept: (m: FromWorker) => boolean): Promise<FromWorker> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: FromWorker) => {
      if (!accept(m)) return;
      done();
      resolve(m);
    };
    const onExit = (code: number) => {
      done();
      reject(new Error(`worker exited (code ${code}) before answering`));
    };
    const done = () => {
      w.off('message', onMessage);
      w.off('exit', onExit);
    };
    w.on('message', onMessage);
    w.on('exit', onExit);
  });
}

/**
 * Starts `config.workers` worker threads on the config's listeners and the main thread's view.
 * Rejects with {@link WorkersError} on a Node without `reusePort`, or with the first worker's
 * start error (a port in use, a TLS file).
 *
 * @example
 * ```ts
 * const pool = await startWorkers({ ...loadConfig('tripswitch.yaml'), workers: 2 });
 * console.log(pool.view.addresses());
 * ```
 */
export async function startWorkers(
  config: SidecarConfig,
  options: StartWorkersOptions = {},
): Promise<WorkerPool> {
  const n = config.workers ?? 1;
  if (n > 1 && !reusePortSupported())
    throw new WorkersError(
      `workers: ${n} needs Node 22.12+ (or 23.1+) to bind one port from several threads (listen reusePort); this is Node ${process.version}. Use workers: 1 or a newer Node.`,
    );
  const logger = options.logger;
  let plan: SharedPlan = sharedPlan(resolveConfig(config), n);
  const view = new Sidecar(config, {
    ...(logger ? { logger } : {}),
    ...(options.recordTrace ? { recordTrace: options.recordTrace } : {}),
    share: { plan, worker: -1 },
  });
  let current = config;
  let ports: number[] | undefined;
  let stopping = false;
  let restarts = 0;
  const threads: Worker[] = [];

  const spawn = async (i: number): Promise<Worker> => {
    const w = new Worker(entry, {
      workerData: { config: current, plan, worker: i, ports, quiet: options.workerLogs === 'none' },
    });
    threads[i] = w;
    // An uncaught error in a worker ends it ('exit' follows): logged, not rethrown in this thread.
    w.on('error', (err) => logger?.error('worker failed', { worker: i, error: String(err) }));
    const m = await nextMessage(w, (x) => x.type === 'ready' || x.type === 'error');
    if (m.type === 'error') throw new Error(m.message);
    if (m.type === 'ready' && ports === undefined) {
      ports = m.addresses.map((a) => a.port);
      view.setViewAddresses(m.addresses);
    }
    w.on('exit', (code) => {
      if (stopping || threads[i] !== w) return;
      // Its slots, probe and in-flight count go back before anyone waits on them longer.
      const freed = releaseWorkerShare(plan, i, view.clock.now());
      logger?.error('worker exited', { worker: i, code, freed });
      pool.onWorkerExit?.(i, code, freed);
      if (options.respawn === false) return;
      spawn(i).then(
        () => restarts++,
        (err: unknown) => logger?.error('worker restart failed', { worker: i, error: String(err) }),
      );
    });
    return w;
  };
  const stopAll = async (): Promise<boolean> => {
    stopping = true;
    const done = threads.map(async (w) => {
      // one that died and could not be replaced has nothing to drain (and no 'exit' to come)
      if (w.threadId === -1) return true;
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      let drained = false;
      try {
        const stopped = nextMessage(w, (x) => x.type === 'stopped');
        w.postMessage({ type: 'shutdown' });
        drained = ((await stopped) as { drained: boolean }).drained;
      } catch {
        // it exited without answering
      }
      await exited;
      return drained;
    });
    const all = await Promise.all(done);
    await view.shutdown(0);
    return all.every(Boolean);
  };

  try {
    // The first worker resolves port 0; the others bind the ports it got.
    await spawn(0);
    await Promise.all(Array.from({ length: n - 1 }, (_, k) => spawn(k + 1)));
  } catch (err) {
    await stopAll();
    throw err;
  }

  const pool: WorkerPool = {
    view,
    threads,
    get restarts() {
      return restarts;
    },
    get plan() {
      return plan;
    },
    async reload(next: SidecarConfig, reloadOptions = {}) {
      if ((next.workers ?? 1) !== n)
        throw new Error(`workers: changing it (${n} -> ${next.workers ?? 1}) needs a restart`);
      const nextPlan = sharedPlan(resolveConfig(next), n, plan);
      // The view checks everything but binding first, so a bad config changes no worker.
      await view.reload(next, { ...reloadOptions, plan: nextPlan });
      plan = nextPlan;
      current = next;
      const failures: string[] = [];
      await Promise.all(
        threads.map(async (w, i) => {
          const answer = nextMessage(w, (x) => x.type === 'reloaded' || x.type === 'reload-failed');
          w.postMessage({ type: 'reload', config: next, plan: nextPlan });
          const m = await answer.catch((err: Error) => ({
            type: 'reload-failed' as const,
            message: err.message,
          }));
          if (m.type === 'reload-failed') failures.push(`worker ${i}: ${m.message}`);
        }),
      );
      if (failures.length > 0) throw new Error(`reload failed in ${failures.join('; ')}`);
    },
    shutdown: stopAll,
  };
  return pool;
}

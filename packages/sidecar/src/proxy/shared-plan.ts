/**
 * The shared memory of `workers: N`: for each cluster its limits, counters and breaker blocks, and
 * the sidecar's own counters, made by the main thread and handed to every worker (SharedArrayBuffers
 * are shared, not copied, by `workerData` and `postMessage`). On reload a cluster of the same name
 * keeps its blocks (requests in flight keep counting against the limits, counters never go back),
 * and its breaker block while its breaker settings are the same (as the single-thread breaker
 * carries over).
 * @module
 */
import type { ResolvedCluster, ResolvedConfig } from '../config/resolve.js';
import { type BreakerBlock, newBreakerBlock, releaseProbe } from './shared-breaker.js';
import { type CountersBlock, newCountersBlock } from './shared-counters.js';
import { type LimitsBlock, newLimitsBlock, releaseWorker } from './shared-limits.js';

/**
 * The names of a cluster's plain counters, in their order in a {@link CountersBlock}.
 *
 * @example
 * ```ts
 * const c = sharedCounters(CLUSTER_COUNTERS, blocks.counters, worker);
 * ```
 */
export const CLUSTER_COUNTERS = [
  'requests',
  'responses2xx',
  'responses3xx',
  'responses4xx',
  'responses5xx',
  'circuitOpen',
  'retries',
  'timeouts',
  'resets',
  'connectFailures',
  'fallbacks',
  'clientAborts',
  'staleConnectionRetries',
] as const;

/**
 * The sidecar's own counters shared the same way (`inflight` is each worker's own for its drain).
 *
 * @example
 * ```ts
 * const s = sharedCounters(SIDECAR_COUNTERS, plan.sidecar, worker);
 * ```
 */
export const SIDECAR_COUNTERS = ['inflight', 'noRoute', 'refused'] as const;

/**
 * The blocks of one cluster.
 *
 * @example
 * ```ts
 * const blocks: ClusterBlocks = plan.clusters.api!;
 * ```
 */
export interface ClusterBlocks {
  limits: LimitsBlock;
  counters: CountersBlock;
  breaker: BreakerBlock | undefined;
  /** The breaker settings the breaker block was made for. */
  breakerKey: string;
}

/**
 * All the shared memory of one configuration.
 *
 * @example
 * ```ts
 * const plan = sharedPlan(resolveConfig(config), 2);
 * ```
 */
export interface SharedPlan {
  workers: number;
  sidecar: CountersBlock;
  clusters: Record<string, ClusterBlocks>;
}

/**
 * What a {@link Sidecar} of `workers: N` shares: the plan, and which worker it is (-1: the main
 * thread's view, which serves the admin API and holds no listener).
 *
 * @example
 * ```ts
 * new Sidecar(config, { share: { plan, worker: 0 } });
 * ```
 */
export interface WorkerShare {
  plan: SharedPlan;
  worker: number;
}

/** The key that decides whether a breaker carries over on reload (as `Cluster.breakerKey`). */
export function breakerKey(c: ResolvedCluster): string {
  return JSON.stringify([c.breaker ?? {}, c.shared_state ?? null]);
}

/**
 * The plan of `config` for `workers` workers, keeping the blocks of `previous` where they carry over.
 *
 * @example
 * ```ts
 * const next = sharedPlan(resolveConfig(nextConfig), 2, plan);
 * ```
 */
export function sharedPlan(config: ResolvedConfig, workers: number, previous?: SharedPlan): SharedPlan {
  const clusters: Record<string, ClusterBlocks> = {};
  for (const c of config.clusters) {
    const had = previous?.workers === workers ? previous.clusters[c.name] : undefined;
    const key = breakerKey(c);
    clusters[c.name] = {
      limits: had?.limits ?? newLimitsBlock(workers),
      counters: had?.counters ?? newCountersBlock(workers, CLUSTER_COUNTERS.length),
      breaker:
        c.breaker === undefined
          ? undefined
          : had?.breaker !== undefined && had.breakerKey === key
            ? had.breaker
            : newBreakerBlock(workers),
      breakerKey: key,
    };
  }
  return {
    workers,
    sidecar:
      previous?.workers === workers ? previous.sidecar : newCountersBlock(workers, SIDECAR_COUNTERS.length),
    clusters,
  };
}

/**
 * Gives back everything worker `worker` held (a worker that died): its limiter slots in every
 * cluster, its half-open probe, and its in-flight count. Returns the slots freed.
 *
 * @example
 * ```ts
 * worker.on('exit', () => releaseWorkerShare(plan, index, Date.now()));
 * ```
 */
export function releaseWorkerShare(plan: SharedPlan, worker: number, now: number): number {
  let freed = 0;
  for (const c of Object.values(plan.clusters)) {
    freed += releaseWorker(c.limits, worker);
    if (c.breaker) releaseProbe(c.breaker, worker, now);
  }
  new Float64Array(plan.sidecar.sab)[worker * SIDECAR_COUNTERS.length] = 0;
  return freed;
}

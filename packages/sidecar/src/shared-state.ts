/**
 * A cluster's `shared_state` block made into a breaker store: `redisStore()` of
 * `@tripswitch/redis`, loaded on demand. The sidecar does not depend on it (nor on ioredis): a
 * sidecar without `shared_state` never loads either, and one with it needs the package installed.
 * @module
 */
import type { BreakerStore, Clock } from 'tripswitch';
import type { ResolvedSharedState } from './config/resolve.js';
import type { Logger } from './proxy/logger.js';

/**
 * A breaker store the sidecar closes when the cluster using it goes away or the sidecar stops.
 *
 * @example
 * ```ts
 * const store: SharedStore = (await loadSharedState())('api', resolveSharedState({ url: 'redis://redis:6379' }), ctx);
 * await store.close();
 * ```
 */
export interface SharedStore extends BreakerStore {
  close(): Promise<void>;
}

/**
 * Makes the store of one cluster's `shared_state` block.
 *
 * @example
 * ```ts
 * const sidecar = new Sidecar(config, { sharedState: await loadSharedState() });
 * ```
 */
export type SharedStoreFactory = (
  cluster: string,
  settings: ResolvedSharedState,
  ctx: { clock: Clock; logger: Logger },
) => SharedStore;

/**
 * Loads `@tripswitch/redis` and returns the factory {@link Sidecar} uses for `shared_state`
 * blocks. Rejects, naming the package to install, when it is not installed.
 *
 * @example
 * ```ts
 * const config = loadConfig('tripswitch.yaml');
 * const sharedState = config.clusters.some((c) => c.shared_state) ? await loadSharedState() : undefined;
 * const sidecar = new Sidecar(config, { sharedState });
 * ```
 */
export async function loadSharedState(): Promise<SharedStoreFactory> {
  let mod: typeof import('@tripswitch/redis');
  try {
    mod = await import('@tripswitch/redis');
  } catch (err) {
    throw new Error(
      `shared_state needs the package @tripswitch/redis (npm install @tripswitch/redis), which could not be loaded: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return (cluster, s, { clock, logger }) => {
    const { url, cluster: nodes, fleet, ...rest } = s;
    return mod.redisStore({
      ...rest,
      ...(url !== undefined ? { url } : {}),
      ...(nodes !== undefined
        ? {
            cluster: nodes.map((n) => {
              const i = n.lastIndexOf(':');
              return { host: n.slice(0, i), port: Number(n.slice(i + 1)) };
            }),
          }
        : {}),
      ...(fleet !== undefined ? { fleet } : {}),
      clock,
      logger: {
        warn: (m: string) => logger.warn(m, { cluster }),
        info: (m: string) => logger.info(m, { cluster }),
      },
    });
  };
}

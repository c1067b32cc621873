/**
 * `whenReady()`: waits for an ioredis client (standalone or Cluster) to be ready, within its own
 * `connectTimeout`. Shared by the outbox and the write store, which both start by waiting for
 * their client rather than queueing commands behind a connection that may never come.
 *
 * @module
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';

/**
 * Resolves once `r` is ready: at once when it is, after connecting it when it was created lazily
 * (`lazyConnect`, status `wait`), or on its `ready` event. Rejects with
 * `<owner>: Redis did not answer within <ms> ms` after the client's `connectTimeout` (a Cluster's
 * per-node one under `redisOptions`), or `defaultMs` when it has none.
 *
 * @example
 * ```ts
 * await whenReady(redis, 'redisWriteStore', 1_000);
 * ```
 */
export async function whenReady(r: Redis | Cluster, owner: string, defaultMs: number): Promise<void> {
  if (r.status === 'ready') return;
  if (r.status === 'wait') await r.connect().catch(() => {});
  if ((r.status as string) === 'ready') return;
  // A Cluster client keeps the per-node options (connectTimeout) under redisOptions.
  const o = r.options as RedisOptions & { redisOptions?: RedisOptions };
  const ms = o.connectTimeout ?? o.redisOptions?.connectTimeout ?? defaultMs;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      r.off('ready', onReady);
      reject(new Error(`${owner}: Redis did not answer within ${ms} ms`));
    }, ms);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    r.once('ready', onReady);
  });
}

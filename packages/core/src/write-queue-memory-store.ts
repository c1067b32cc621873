/**
 * {@link memoryWriteStore}: a {@link WriteQueueStore} that does not survive the process.
 *
 * @module
 */
import type { QueuedWrite, WriteQueueStore } from './write-queue-api.js';

/**
 * A store in memory: writes do not survive the process. For tests, and for writes that may be
 * lost on a restart but should not be lost to a short outage. Closing it keeps its writes, so a
 * second queue on the same store sees them (as after a restart, in tests).
 *
 * @example
 * ```ts
 * const store = memoryWriteStore<Order>();
 * const outbox = writeQueue({ store, send, breaker });
 * ```
 */
export function memoryWriteStore<T>(): WriteQueueStore<T> {
  const writes = new Map<string, QueuedWrite<T>>();
  return {
    load: async () => [...writes.values()],
    append: async (w) => {
      writes.set(w.id, { id: w.id, data: w.data, enqueuedAt: w.enqueuedAt });
    },
    remove: async (id) => {
      writes.delete(id);
    },
    close: async () => {},
  };
}

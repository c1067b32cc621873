// A worker thread for shared-limits.test.ts: floods a SharedLimiter, or takes slots and dies.
// Not a test, not published.
import { parentPort, workerData } from 'node:worker_threads';
import { type LimitsBlock, SharedLimiter } from './shared-limits.js';

const { block, worker, mode, limit, rounds, probe } = workerData as {
  block: LimitsBlock;
  worker: number;
  mode: 'flood' | 'crash' | 'queue';
  limit: number;
  rounds: number;
  /** [in flight now, most seen]: counted independently of the limiter. */
  probe: SharedArrayBuffer;
};
const lim = new SharedLimiter(
  { priority: 'default', max_requests: limit, max_pending_requests: 4 },
  block,
  0,
  worker,
);
const p = new Int32Array(probe);

if (mode === 'flood') {
  let admitted = 0;
  let refused = 0;
  for (let i = 0; i < rounds; i++) {
    if (!lim.tryEnter()) {
      refused++;
      continue;
    }
    admitted++;
    const now = Atomics.add(p, 0, 1) + 1;
    let max = Atomics.load(p, 1);
    while (now > max) {
      const was = Atomics.compareExchange(p, 1, max, now);
      if (was === max) break;
      max = was;
    }
    // hold the slot a little so that the other worker meets it taken
    for (let j = 0; j < (i % 7) * 20; j++) Atomics.load(p, 0);
    Atomics.sub(p, 0, 1);
    lim.release();
  }
  parentPort!.postMessage({ admitted, refused });
} else if (mode === 'queue') {
  // Queues `rounds` requests behind a full limit held by another worker; reports each grant.
  let granted = 0;
  for (let i = 0; i < rounds; i++) {
    const got = lim.acquire(() => {
      granted++;
      parentPort!.postMessage({ granted });
      lim.release();
    });
    if (got === true) {
      granted++;
      parentPort!.postMessage({ granted });
      lim.release();
    }
  }
  // stays up (the port is listened to) until told to go
  parentPort!.once('message', () => process.exit(0));
  parentPort!.postMessage({ queued: lim.pending });
} else {
  // Holds two slots and a place in the queue, then dies of an uncaught error when told to.
  lim.tryEnter();
  lim.tryEnter();
  lim.acquire(() => {});
  parentPort!.once('message', () => {
    throw new Error('worker crash (on purpose)');
  });
  parentPort!.postMessage({ holding: true });
}

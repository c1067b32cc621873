// @tripswitch/tuner's recordTrace on the hot path: the same count breaker as
// `tripswitch:success.count`, with every call recorded (sample 1) to a file in the OS temp dir. The
// difference between the two rows is what recording adds per call. mitata's loop never yields to
// the event loop, where the recorder formats and writes its batches; so every 4,096th call waits
// for one turn of it (setImmediate), which puts the formatting and writing in the measured time too
// (amortised), as in a server, instead of letting the buffer fill and drop lines.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { circuitBreaker } from 'tripswitch';
import { recordTrace } from '@tripswitch/tuner';
import { config, work } from './workload.mjs';

export const library = 'tuner';

export const scenarios = {
  'success.count-recorded': () => {
    const b = circuitBreaker({
      trip: {
        kind: 'count',
        windowSize: config.count.window,
        minimumCalls: config.count.minimumCalls,
        failureRateThreshold: config.count.failureRate,
      },
      openDuration: config.openMs,
    });
    const dir = mkdtempSync(join(tmpdir(), 'tripswitch-bench-rec-'));
    // A rotation bound keeps a long run's file small; dropped lines would mean the disk fell behind.
    const rec = recordTrace(b, { file: join(dir, 'calls.ndjson'), maxBytes: 50_000_000, maxFiles: 1 });
    let n = 0;
    const turn = (r) => new Promise((resolve) => setImmediate(() => resolve(r)));
    return {
      call: () => (++n % 4096 === 0 ? b.execute(work).then(turn) : b.execute(work)),
      check: () => {
        const { dropped } = rec.stats();
        return b.state !== 'closed'
          ? `state is ${b.state}`
          : dropped > 0
            ? `${dropped} lines dropped`
            : undefined;
      },
      dispose: () => {
        void rec.stop().then(() => rmSync(dir, { recursive: true, force: true }));
      },
    };
  },
};

// One instance of a service for outbox-fleet.test.ts: a redisOutbox from the built package that
// enqueues its share of writes and replays whatever the fleet has stored, sending each to the test's
// HTTP sink. Not a test file (does not end in .test.js) and not published.
import { redisOutbox } from './index.js';

interface Job {
  key: string;
  seq: number;
}
const cfg = JSON.parse(process.env.OUTBOX_CHILD ?? '{}') as {
  url: string;
  prefix: string;
  who: string;
  sink: string;
  claimTimeoutMs: number;
  jobs: Job[];
};

const outbox = redisOutbox<Job, number>({
  url: cfg.url,
  prefix: cfg.prefix,
  name: 'fleet',
  consumer: cfg.who,
  pollIntervalMs: 25,
  claimTimeoutMs: cfg.claimTimeoutMs,
  backoff: { delay: () => 25 },
  orderKey: (j) => (j.key === '' ? undefined : j.key),
  send: async (job, { id, attempt, signal }) => {
    const res = await fetch(cfg.sink, {
      method: 'POST',
      body: JSON.stringify({ who: cfg.who, id, attempt, ...job }),
      signal,
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`sink answered ${res.status}`);
    return res.status;
  },
});

process.on('message', async (m: { op: string }) => {
  if (m.op === 'exit') {
    await outbox.close();
    process.exit(0);
  }
});
await outbox.ready;
for (const job of cfg.jobs) await outbox.enqueue(job);
process.send?.({ enqueued: cfg.jobs.length });

// A bare process (no test runner keeping the event loop alive) using redisOutbox from the built
// package: submits a write whose first attempt fails, waits for the replay, closes, prints what it
// saw and must then exit on its own. Run by outbox.test.ts. Not published.
import { redisOutbox } from './index.js';

const url = process.env.OUTBOX_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.OUTBOX_PREFIX ?? `tstest-obbare-${process.pid}`;
let first = true;
const outbox = redisOutbox<{ n: number }, string>({
  url,
  prefix,
  name: 'bare',
  pollIntervalMs: 20,
  backoff: { delay: () => 20 },
  send: async (_data, { attempt }) => {
    if (first) {
      first = false;
      throw new Error('first attempt fails');
    }
    return `sent on attempt ${attempt}`;
  },
});
const sent = new Promise<string>((resolve) => outbox.on('sent', ({ value }) => resolve(value)));
const r = await outbox.submit({ n: 1 });
const value = await sent;
await outbox.close();
console.log(JSON.stringify({ submitted: r.status, value }));
// No process.exit(): the process ends only if the outbox left no timer or socket behind.

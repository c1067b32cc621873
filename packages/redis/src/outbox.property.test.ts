// redisOutbox, property-based against a real Redis: random fleets (1-3 instances), random writes
// (order keys or none, stored by any instance), random send latencies and failures, and an instance
// cut off from Redis at a random moment. Whatever the interleaving: every write is sent (at least
// once), a key's writes start only after the previous one was accepted, no write or key is sent by
// two instances at once, and a write's attempts are 1, 2, 3, ... across instances.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { type RedisOutbox, redisOutbox } from './outbox.js';
import { removeTestKeys, sharedRedis, skipNoRedis, uniquePrefix, waitFor } from './server.test.util.js';

interface Job {
  key: string;
  seq: number;
}

const scenario = fc.record({
  instances: fc.integer({ min: 1, max: 3 }),
  writes: fc.array(fc.record({ key: fc.constantFrom('', 'k0', 'k1', 'k2'), by: fc.nat(2) }), {
    minLength: 3,
    maxLength: 18,
  }),
  // One decision per send, in the order sends happen: fail it (retryable) or not, and its latency.
  sends: fc.array(fc.record({ fail: fc.boolean(), ms: fc.integer({ min: 0, max: 6 }) }), { maxLength: 40 }),
  // Cut one instance off from Redis at the first accepted send once all writes are stored and this
  // many were accepted (never, when past the end).
  cutAfter: fc.integer({ min: 0, max: 25 }),
});

describe('redisOutbox properties on a real Redis', { skip: skipNoRedis }, () => {
  let url = '';
  let stop = async () => {};
  before(async () => {
    ({ url, stop } = await sharedRedis());
  });
  after(async () => {
    await removeTestKeys(url);
    await stop();
  });

  test('any fleet, writes, failures and cut-off: all sent, per-key order, no double send in flight, attempts counted on', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ instances, writes, sends, cutAfter }) => {
        const prefix = uniquePrefix('obprop');
        const clients: Redis[] = [];
        const boxes: RedisOutbox<Job, string>[] = [];
        const accepted: Array<{ id: string; key: string; seq: number }> = [];
        const attempts = new Map<string, number[]>();
        const inFlight = new Map<string, string>();
        const violations: string[] = [];
        let decision = 0;
        let cut = -1;
        // The cut comes once every write is stored (a write stored through a client being cut is
        // ambiguous to the caller, which is not what this property is about).
        let stored = false;
        const seqOf = new Map<string, number>(); // per key, how many were stored
        try {
          for (let i = 0; i < instances; i++) {
            const who = `i${i}`;
            const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
            client.on('error', () => {});
            clients.push(client);
            await waitFor(() => client.status === 'ready', 'client ready', 5_000, 5);
            boxes.push(
              redisOutbox<Job, string>({
                client,
                prefix,
                name: 'p',
                consumer: who,
                pollIntervalMs: 15,
                claimTimeoutMs: 300,
                backoff: { delay: () => 10 },
                orderKey: (j) => (j.key === '' ? undefined : j.key),
                send: async (job, ctx) => {
                  const d = sends[decision++] ?? { fail: false, ms: 0 };
                  for (const slot of [`id:${ctx.id}`, job.key === '' ? '' : `key:${job.key}`]) {
                    if (slot === '') continue;
                    if (inFlight.has(slot))
                      violations.push(`${who} sent ${slot} while ${inFlight.get(slot)} was`);
                    inFlight.set(slot, who);
                  }
                  if (
                    job.key !== '' &&
                    job.seq > 0 &&
                    !accepted.some((a) => a.key === job.key && a.seq === job.seq - 1)
                  )
                    violations.push(
                      `${job.key}#${job.seq} started before ${job.key}#${job.seq - 1} was accepted`,
                    );
                  attempts.set(ctx.id, [...(attempts.get(ctx.id) ?? []), ctx.attempt]);
                  await new Promise((r) => setTimeout(r, d.ms));
                  inFlight.delete(`id:${ctx.id}`);
                  if (job.key !== '') inFlight.delete(`key:${job.key}`);
                  if (d.fail) throw new Error('downstream 503');
                  accepted.push({ id: ctx.id, ...job });
                  if (stored && accepted.length >= cutAfter && instances > 1 && cut < 0) {
                    // This instance is cut off from Redis (its writes wait for the claim timeout).
                    cut = i;
                    clients[i]!.disconnect();
                  }
                  return 'ok';
                },
              }),
            );
          }
          const ids: string[] = [];
          for (const w of writes) {
            const by = boxes[w.by % instances]!;
            const seq = seqOf.get(w.key) ?? 0;
            seqOf.set(w.key, seq + 1);
            ids.push(await by.enqueue({ key: w.key, seq: w.key === '' ? -1 : seq }));
          }
          stored = true;
          await waitFor(
            () => ids.every((id) => accepted.some((a) => a.id === id)),
            `all ${ids.length} writes accepted (${accepted.length} so far)`,
            15_000,
            10,
          );
          assert.deepEqual(violations, []);
          for (const [id, seen] of attempts)
            assert.deepEqual(
              seen,
              seen.map((_, i) => i + 1),
              `attempts of ${id}`,
            );
        } finally {
          await Promise.all(boxes.map((b) => b.close()));
          for (const c of clients) c.disconnect();
        }
      }),
      { numRuns: 8, endOnFailure: true },
    );
  });
});

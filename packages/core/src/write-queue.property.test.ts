// An ordered write queue delivers in submission order, always: whatever the latencies of sends
// and stores, whichever attempts fail, and across restarts (a new queue on the same store).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  circuitBreaker,
  constantBackoff,
  type QueuedWrite,
  type WriteContext,
  type WriteQueue,
  type WriteQueueStore,
  writeQueue,
} from './index.js';
import { TestClock } from './test-clock.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Advances `clock` by `ms`, timer by timer, letting every promise callback run in between. */
async function run(clock: TestClock, ms: number): Promise<void> {
  const end = clock.now() + ms;
  await turn();
  for (let at = clock.nextTimerAt(); at !== undefined && at <= end; at = clock.nextTimerAt()) {
    clock.advance(at - clock.now());
    await turn();
  }
  clock.advance(end - clock.now());
  await turn();
}

/** A memory store whose appends and removes take `latency()` ms on the clock. */
function slowStore(clock: TestClock, latency: () => number): WriteQueueStore<number> {
  const writes = new Map<string, QueuedWrite<number>>();
  const later = (fn: () => void) =>
    new Promise<void>((resolve) =>
      clock.setTimeout(() => {
        fn();
        resolve();
      }, latency()),
    );
  return {
    load: async () => [...writes.values()],
    append: (w) => later(() => writes.set(w.id, w)),
    remove: (id) => later(() => writes.delete(id)),
    close: async () => {},
  };
}

type Step =
  | { kind: 'submit' }
  | { kind: 'enqueue' }
  | { kind: 'wait'; ms: number }
  | { kind: 'restart' }
  | { kind: 'drain' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'submit' } as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'enqueue' } as const) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 300 }).map((ms) => ({ kind: 'wait', ms }) as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' } as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'drain' } as const) },
);

describe('writeQueue (property): ordered delivery', () => {
  it('delivered order = submission order, nothing lost, every write delivered at least once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 30 }),
        // Per send: its latency and whether it fails (cycled).
        fc.array(fc.record({ ms: fc.integer({ min: 0, max: 200 }), fails: fc.boolean() }), {
          minLength: 1,
          maxLength: 20,
        }),
        fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 10 }),
        fc.boolean(),
        async (steps, sends, storeMs, withBreaker) => {
          const clock = new TestClock(0);
          let s = 0;
          const store = slowStore(clock, () => storeMs[s++ % storeMs.length]!);
          let healed = false;
          let n = 0;
          const delivered: number[] = [];
          const send = (data: number, ctx: WriteContext) => {
            const plan = sends[n++ % sends.length]!;
            return new Promise<void>((resolve, reject) => {
              const t = clock.setTimeout(() => {
                ctx.signal.removeEventListener('abort', onAbort);
                if (plan.fails && !healed) reject(new Error(`down (${data})`));
                else {
                  delivered.push(data);
                  resolve();
                }
              }, plan.ms);
              const onAbort = () => {
                clock.clearTimeout(t);
                reject(ctx.signal.reason);
              };
              ctx.signal.addEventListener('abort', onAbort, { once: true });
            });
          };
          const open = (): WriteQueue<number, void> =>
            writeQueue({
              send,
              store,
              clock,
              backoff: constantBackoff(100),
              ...(withBreaker
                ? {
                    breaker: circuitBreaker({
                      clock,
                      trip: { kind: 'consecutive', threshold: 2 },
                      openDuration: 150,
                    }),
                  }
                : {}),
            });
          let q = open();
          let next = 0;
          const accepted: number[] = [];
          const settled: Promise<unknown>[] = [];
          for (const st of steps) {
            if (st.kind === 'submit' || st.kind === 'enqueue') {
              const data = next++;
              const p = st.kind === 'submit' ? q.submit(data) : q.enqueue(data);
              settled.push(
                p.then(
                  () => accepted.push(data),
                  () => {},
                ),
              );
            } else if (st.kind === 'wait') await run(clock, st.ms);
            else if (st.kind === 'drain') void q.drain();
            else {
              // A restart: the old queue finishes closing (deciding every write it accepted)
              // before the new one reads the store, as when a process exits and another starts.
              await clock.settle(q.close());
              q = open();
            }
          }
          // Heal the downstream, restart once more, and let everything finish.
          healed = true;
          await clock.settle(q.close());
          let unsettled = settled.length;
          for (const p of settled) void p.finally(() => unsettled--);
          for (let i = 0; i < 200 && unsettled > 0; i++) await run(clock, 200);
          assert.equal(unsettled, 0, 'every submit and close settled');
          q = open();
          for (let i = 0; i < 100 && (q.size > 0 || i === 0); i++) await run(clock, 500);
          assert.equal(q.size, 0, 'the last queue drained');
          await clock.settle(q.close());

          accepted.sort((a, b) => a - b); // submission order
          const firsts = delivered.filter((d, i) => delivered.indexOf(d) === i);
          for (const id of accepted)
            assert.ok(firsts.includes(id), `write ${id} was accepted and never delivered`);
          // Writes the queue refused (a submit during a close) may be missing, never out of order.
          assert.deepEqual(
            firsts,
            [...firsts].sort((a, b) => a - b),
            `delivered out of submission order: ${firsts.join(',')}`,
          );
        },
      ),
      // Under mutation testing (one run of this file per mutant) fewer runs keep it affordable.
      { numRuns: process.env.__STRYKER_ACTIVE_MUTANT__ === undefined ? 150 : 40 },
    );
  });
});

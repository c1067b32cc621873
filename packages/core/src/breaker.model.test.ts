/**
 * Model-based property test: random sequences of permits and calls in flight, outcomes, clock
 * advances, resets and manual states (with and without listeners and signals) are run against the breaker and against a small reference model written from the specification; every
 * observable (admission, state, retry time, counts) must agree after every step.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type CircuitBreaker,
  type CircuitState,
  circuitBreaker,
  type Permit,
  type Subscription,
  type TripOptions,
} from './index.js';
import { TestClock } from './test-clock.js';

// Under mutation testing (this file runs once per mutant) a tenth of the runs keeps a whole-file
// run affordable; `npm test` always runs the full counts.
const runs = (n: number): number => (process.env.__STRYKER_ACTIVE_MUTANT__ === undefined ? n : n / 10);

interface Config {
  rule:
    | { kind: 'consecutive'; threshold: number }
    | { kind: 'count'; window: number; minimumCalls: number; rate: number }
    | {
        kind: 'time';
        bucketMs: number;
        buckets: number;
        minimumCalls: number;
        rate: number | undefined;
        failureCount: number | undefined;
      };
  base: number;
  maxProbes: number;
  successesToClose: number;
  /** halfOpen.failureRateThreshold */
  probeRate: number | undefined;
  deadlineMs: number;
}

interface ModelPermit {
  gen: number;
  probe: boolean;
  settled: boolean;
}

/** The reference: plain, obviously-correct code, no attention to speed. */
class Model {
  state: CircuitState = 'closed';
  /** The period: bumped by every transition and by a reset; an outcome drives only its own period. */
  gen = 0;
  now: number;
  next = 0;
  halfAt = 0;
  openings = 0;
  consecutive = 0;
  probes = 0;
  probeSuccesses = 0;
  probeFailures = 0;
  /** Count and consecutive rules: every outcome recorded since the window was last cleared. */
  window: boolean[] = [];
  /** Time rule: [bucket index, failure] of every outcome since the window was last cleared. */
  timed: Array<[number, boolean]> = [];
  successes = 0;
  failures = 0;
  rejections = 0;
  neutral = 0;
  constructor(
    readonly c: Config,
    start: number,
  ) {
    this.now = start;
  }

  clearWindow(): void {
    this.window = [];
    this.timed = [];
    this.consecutive = 0;
  }

  to(state: CircuitState): void {
    if (state === this.state) return;
    this.gen++;
    this.state = state;
    if (state === 'open') {
      this.openings++;
      this.next = this.now + Math.min(4 * this.c.base, this.c.base * 2 ** (this.openings - 1));
    } else if (state === 'half-open') {
      this.probes = 0;
      this.probeSuccesses = 0;
      this.probeFailures = 0;
      this.halfAt = this.now;
    } else {
      this.clearWindow();
      if (state !== 'isolated') this.openings = 0;
    }
  }

  acquire(): ModelPermit | undefined {
    if (this.state === 'closed' || this.state === 'disabled' || this.state === 'metrics-only')
      return { gen: this.gen, probe: false, settled: false };
    if (this.state === 'isolated') {
      this.rejections++;
      return undefined;
    }
    if (this.state === 'open') {
      if (this.now < this.next) {
        this.rejections++;
        return undefined;
      }
      this.to('half-open');
    }
    const sample = Math.max(this.c.maxProbes, this.c.successesToClose);
    if (this.probes < this.c.maxProbes && this.probes + this.probeSuccesses + this.probeFailures < sample) {
      this.probes++;
      return { gen: this.gen, probe: true, settled: false };
    }
    this.rejections++;
    return undefined;
  }

  settle(p: ModelPermit, kind: 'success' | 'failure' | 'neutral'): void {
    if (p.settled) return;
    p.settled = true;
    if (kind === 'neutral') {
      this.neutral++;
      if (p.probe && p.gen === this.gen && this.state === 'half-open') this.probes--;
      return;
    }
    const failure = kind === 'failure';
    if (failure) this.failures++;
    else this.successes++;
    if (p.gen !== this.gen) return;
    if (failure) this.consecutive++;
    else this.consecutive = 0;
    if (this.state === 'closed' || this.state === 'metrics-only') {
      if (!this.record(failure)) return;
      if (this.state === 'closed') this.to('open');
      else this.clearWindow(); // metrics-only: `wouldOpen`, and the window starts again
    } else if (this.state === 'half-open' && p.probe) {
      this.probes--;
      if (failure) this.probeFailures++;
      else this.probeSuccesses++;
      // The verdict of the whole sample, taken once the outstanding probes cannot change it.
      const sample = Math.max(this.c.maxProbes, this.c.successesToClose);
      const outstanding = sample - this.probeSuccesses - this.probeFailures;
      const opens = (failures: number) =>
        this.c.probeRate === undefined ? failures > 0 : failures / sample >= this.c.probeRate;
      if (opens(this.probeFailures)) this.to('open');
      else if (!opens(this.probeFailures + outstanding)) this.to('closed');
    }
  }

  /** Records an outcome in the window; true when the rule trips. */
  record(failure: boolean): boolean {
    const r = this.c.rule;
    if (r.kind === 'consecutive') {
      this.window.push(failure);
      return failure && this.consecutive >= r.threshold;
    }
    if (r.kind === 'time') {
      const idx = Math.floor(this.now / r.bucketMs);
      this.timed.push([idx, failure]);
      const live = this.live();
      const f = live.filter(([, x]) => x).length;
      if (r.failureCount !== undefined && f >= r.failureCount) return true;
      return live.length >= r.minimumCalls && r.rate !== undefined && f >= r.rate * live.length;
    }
    this.window.push(failure);
    if (this.window.length > r.window) this.window.shift();
    const f = this.window.filter(Boolean).length;
    return this.window.length >= r.minimumCalls && f >= r.rate * this.window.length;
  }

  live(): Array<[number, boolean]> {
    const r = this.c.rule;
    if (r.kind !== 'time') return [];
    const idx = Math.floor(this.now / r.bucketMs);
    return this.timed.filter(([i]) => i > idx - r.buckets);
  }

  /** [calls, failures] that `stats()` reports for the window. */
  windowCounts(): [number, number] {
    const w: boolean[] = this.c.rule.kind === 'time' ? this.live().map(([, f]) => f) : this.window;
    return [w.length, w.filter(Boolean).length];
  }

  advance(ms: number): void {
    const end = this.now + ms;
    if (this.state === 'half-open' && this.halfAt + this.c.deadlineMs <= end) {
      this.now = this.halfAt + this.c.deadlineMs;
      this.to('open');
    }
    this.now = end;
  }

  manual(op: 'reset' | 'isolate' | 'forceClose' | 'metricsOnly'): void {
    if (op === 'isolate') this.to('isolated');
    else if (op === 'forceClose') this.to('disabled');
    else if (op === 'metricsOnly') this.to('metrics-only');
    else if (this.state !== 'closed') this.to('closed');
    else {
      // Clean counts while closed: a new period all the same.
      this.gen++;
      this.clearWindow();
      this.openings = 0;
    }
  }
}

type Manual = 'reset' | 'isolate' | 'forceClose' | 'metricsOnly';

type Cmd =
  | { op: 'acquire' }
  | { op: 'settle'; index: number; kind: 'success' | 'failure' | 'neutral' }
  | { op: 'advance'; ms: number }
  | { op: Manual };

const configArb: fc.Arbitrary<Config> = fc.record({
  rule: fc.oneof(
    fc.record({ kind: fc.constant('consecutive' as const), threshold: fc.integer({ min: 1, max: 4 }) }),
    fc
      .record({
        kind: fc.constant('count' as const),
        window: fc.integer({ min: 1, max: 6 }),
        minimumCalls: fc.integer({ min: 1, max: 6 }),
        rate: fc.constantFrom(0.25, 0.5, 0.75, 1),
      })
      .map((r) => ({ ...r, minimumCalls: Math.min(r.minimumCalls, r.window) })),
    fc
      .record({
        kind: fc.constant('time' as const),
        bucketMs: fc.constantFrom(5, 10, 20),
        buckets: fc.integer({ min: 1, max: 4 }),
        minimumCalls: fc.integer({ min: 1, max: 5 }),
        rate: fc.constantFrom(0.25, 0.5, 1),
        failureCount: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      })
      .map((r) => ({ ...r, rate: r.failureCount !== undefined && r.rate === 1 ? undefined : r.rate })),
  ),
  base: fc.integer({ min: 1, max: 50 }),
  maxProbes: fc.integer({ min: 1, max: 3 }),
  successesToClose: fc.integer({ min: 1, max: 4 }),
  probeRate: fc.constantFrom(undefined, 0.25, 0.5, 0.75, 1),
  deadlineMs: fc.integer({ min: 1, max: 200 }),
});

const manualArb = fc.constantFrom<{ op: Manual }>(
  { op: 'reset' },
  { op: 'reset' },
  { op: 'isolate' },
  { op: 'forceClose' },
  { op: 'metricsOnly' },
);

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ op: 'acquire' as const }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('settle' as const),
      index: fc.nat(20),
      kind: fc.constantFrom('success' as const, 'failure' as const, 'neutral' as const),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 120 }) }),
  },
  { weight: 1, arbitrary: manualArb },
);

function breakerFor(c: Config, clock: TestClock): CircuitBreaker {
  return circuitBreaker({
    clock,
    trip:
      c.rule.kind === 'consecutive'
        ? c.rule
        : c.rule.kind === 'time'
          ? {
              kind: 'time',
              windowMs: c.rule.bucketMs * c.rule.buckets,
              buckets: c.rule.buckets,
              minimumCalls: c.rule.minimumCalls,
              failureRateThreshold: c.rule.rate,
              failureCount: c.rule.failureCount,
            }
          : {
              kind: 'count',
              windowSize: c.rule.window,
              minimumCalls: c.rule.minimumCalls,
              failureRateThreshold: c.rule.rate,
            },
    openDuration: { base: c.base, multiplier: 2, max: 4 * c.base },
    halfOpen: {
      maxProbes: c.maxProbes,
      successesToClose: c.successesToClose,
      failureRateThreshold: c.probeRate,
      deadlineMs: c.deadlineMs,
    },
  });
}

function applyManual(b: CircuitBreaker, op: Manual): void {
  if (op === 'forceClose') b.close();
  else b[op]();
}

/** Every observable must agree after every step. */
function check(b: CircuitBreaker, model: Model, where: string): void {
  assert.equal(b.state, model.state, `state at ${where}`);
  if (model.state === 'open') assert.equal(b.nextAttemptAt, model.next, `nextAttemptAt at ${where}`);
  const s = b.stats();
  assert.deepEqual(
    [s.successes, s.failures, s.rejections, s.neutral, s.consecutiveFailures],
    [model.successes, model.failures, model.rejections, model.neutral, model.consecutive],
    `counts at ${where}`,
  );
  assert.deepEqual([s.windowCalls, s.windowFailures], model.windowCounts(), `window at ${where}`);
}

function run(c: Config, cmds: Cmd[]): void {
  const clock = new TestClock();
  const model = new Model(c, clock.now());
  const b = breakerFor(c, clock);
  const permits: Array<[Permit, ModelPermit]> = [];
  for (const [step, cmd] of cmds.entries()) {
    const where = `step ${step} ${JSON.stringify(cmd)}`;
    switch (cmd.op) {
      case 'acquire': {
        const real = b.tryAcquire();
        const want = model.acquire();
        assert.equal(real !== undefined, want !== undefined, `admission at ${where}`);
        if (real && want) permits.push([real, want]);
        break;
      }
      case 'settle': {
        if (permits.length === 0) break;
        const [real, want] = permits[cmd.index % permits.length]!;
        real[cmd.kind](cmd.kind === 'failure' ? new Error('f') : undefined);
        model.settle(want, cmd.kind);
        break;
      }
      case 'advance':
        clock.advance(cmd.ms);
        model.advance(cmd.ms);
        break;
      default:
        applyManual(b, cmd.op);
        model.manual(cmd.op);
    }
    check(b, model, where);
  }
  // Whatever happened: at most the breaker's one timer, plus one for a time rule under traffic.
  assert.ok(clock.pending <= 2, `pending timers: ${clock.pending}`);
}

/**
 * Calls through `execute` that stay in flight until a later step settles them, taking the lean path
 * (no signal, nobody listening), the observed path (a `success`/`failure` listener, toggled on and
 * off mid-flight) or the signal path; the caller may abort a call with a signal (a neutral outcome).
 */
type AsyncCmd =
  | { op: 'call'; via: 'lean' | 'signal' | 'permit' }
  | { op: 'settle'; index: number; kind: 'success' | 'failure' }
  | { op: 'abort'; index: number }
  | { op: 'listen' }
  | { op: 'advance'; ms: number }
  | { op: Manual };

const asyncCmdArb: fc.Arbitrary<AsyncCmd> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('call' as const),
      via: fc.constantFrom('lean' as const, 'signal' as const, 'permit' as const),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('settle' as const),
      index: fc.nat(20),
      kind: fc.constantFrom('success' as const, 'failure' as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('abort' as const), index: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'listen' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 120 }) }),
  },
  { weight: 2, arbitrary: manualArb },
);

interface InFlight {
  want: ModelPermit;
  settle(kind: 'success' | 'failure'): Promise<void>;
  abort?: () => Promise<void>;
}

async function runAsync(c: Config, cmds: AsyncCmd[]): Promise<void> {
  const clock = new TestClock();
  const model = new Model(c, clock.now());
  const b = breakerFor(c, clock);
  const calls: InFlight[] = [];
  let listening: Subscription[] | undefined;
  for (const [step, cmd] of cmds.entries()) {
    const where = `step ${step} ${JSON.stringify(cmd)} (listening: ${listening !== undefined})`;
    switch (cmd.op) {
      case 'call': {
        const want = model.acquire();
        if (cmd.via === 'permit') {
          const real = b.tryAcquire();
          assert.equal(real !== undefined, want !== undefined, `admission at ${where}`);
          if (real && want)
            calls.push({
              want,
              settle: async (kind) => (kind === 'success' ? real.success() : real.failure(new Error('f'))),
            });
          break;
        }
        let resolve!: (v: string) => void;
        let reject!: (e: unknown) => void;
        let ran = false;
        const ac = cmd.via === 'signal' ? new AbortController() : undefined;
        const done = b
          .execute(
            () =>
              new Promise<string>((res, rej) => {
                ran = true;
                resolve = res;
                reject = rej;
              }),
            ac?.signal,
          )
          .then(
            () => 'ok',
            (e: Error) => e.name,
          );
        assert.equal(ran, want !== undefined, `admission at ${where}`);
        if (!ran) {
          assert.equal(await done, 'CircuitOpenError', `rejection at ${where}`);
          break;
        }
        calls.push({
          want: want!,
          settle: async (kind) => {
            if (kind === 'success') resolve('v');
            else reject(new Error('f'));
            await done;
          },
          abort:
            ac === undefined
              ? undefined
              : async () => {
                  ac.abort();
                  reject(ac.signal.reason);
                  assert.equal(await done, 'AbortError', `abort at ${where}`);
                },
        });
        break;
      }
      case 'settle':
      case 'abort': {
        if (calls.length === 0) break;
        const i = cmd.index % calls.length;
        const call = calls[i]!;
        if (cmd.op === 'abort') {
          if (call.abort === undefined) break;
          calls.splice(i, 1);
          await call.abort();
          model.settle(call.want, 'neutral');
        } else {
          calls.splice(i, 1);
          await call.settle(cmd.kind);
          model.settle(call.want, cmd.kind);
        }
        break;
      }
      case 'listen':
        if (listening === undefined) listening = [b.on('success', () => {}), b.on('failure', () => {})];
        else {
          for (const sub of listening) sub.dispose();
          listening = undefined;
        }
        break;
      case 'advance':
        clock.advance(cmd.ms);
        model.advance(cmd.ms);
        break;
      default:
        applyManual(b, cmd.op);
        model.manual(cmd.op);
    }
    check(b, model, where);
  }
}

describe('circuitBreaker: model-based property test', () => {
  it('agrees with the reference model on 10,000 random sequences', () => {
    fc.assert(
      fc.property(configArb, fc.array(cmdArb, { minLength: 1, maxLength: 100, size: 'max' }), (c, cmds) =>
        run(c, cmds),
      ),
      { numRuns: runs(10_000) },
    );
  });

  it('execute() with calls in flight across resets and manual states, watched or not, agrees with the model', async () => {
    await fc.assert(
      fc.asyncProperty(
        configArb,
        fc.array(asyncCmdArb, { minLength: 1, maxLength: 80, size: 'max' }),
        (c, cmds) => runAsync(c, cmds),
      ),
      { numRuns: runs(2_000) },
    );
  });

  it('execute() agrees with permits on random async sequences', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.oneof(fc.constant('ok'), fc.constant('fail'), fc.integer({ min: 1, max: 100 })), {
          maxLength: 40,
          size: 'max',
        }),
        fc.constantFrom('consecutive', 'count', 'time', 'custom'),
        async (threshold, steps, kind) => {
          const clock = new TestClock();
          const trip: TripOptions =
            kind === 'consecutive'
              ? { kind, threshold }
              : kind === 'count'
                ? { kind, windowSize: 5, minimumCalls: threshold }
                : kind === 'time'
                  ? { kind, windowMs: 100, buckets: 4, minimumCalls: threshold }
                  : { kind, windowMs: 100, predicate: (c) => c.failures >= threshold };
          const opts = { clock, trip, openDuration: 50 };
          const viaExecute = circuitBreaker(opts);
          const viaPermit = circuitBreaker(opts);
          for (const s of steps) {
            if (typeof s === 'number') {
              clock.advance(s);
              continue;
            }
            const p = viaPermit.tryAcquire();
            if (p) s === 'ok' ? p.success() : p.failure(new Error('x'));
            const r = await viaExecute
              .execute(() => (s === 'ok' ? 1 : Promise.reject(new Error('x'))))
              .then(
                () => 'ok',
                (e: Error) => e.name,
              );
            assert.equal(r === 'CircuitOpenError', p === undefined);
            assert.deepEqual(viaExecute.stats(), viaPermit.stats());
          }
        },
      ),
      { numRuns: runs(1_000) },
    );
  });
});

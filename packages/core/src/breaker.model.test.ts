/**
 * Model-based property test: random sequences of permits, outcomes, clock advances and resets are
 * run against the breaker and against a small reference model written from the specification; every
 * observable (admission, state, retry time, counts) must agree after every step.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type CircuitState, circuitBreaker, type Permit, type TripOptions } from './index.js';
import { TestClock } from './test-clock.js';

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
  gen = 0;
  now: number;
  next = 0;
  halfAt = 0;
  openings = 0;
  consecutive = 0;
  probes = 0;
  probeSuccesses = 0;
  window: boolean[] = [];
  /** Time rule: [bucket index, failure] of every outcome since the last close. */
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

  to(state: CircuitState): void {
    this.gen++;
    this.state = state;
    if (state === 'open') {
      this.openings++;
      this.next = this.now + Math.min(4 * this.c.base, this.c.base * 2 ** (this.openings - 1));
    } else if (state === 'half-open') {
      this.probes = 0;
      this.probeSuccesses = 0;
      this.halfAt = this.now;
    } else if (state === 'closed') {
      this.window = [];
      this.timed = [];
      this.consecutive = 0;
      this.openings = 0;
    }
  }

  acquire(): ModelPermit | undefined {
    if (this.state === 'closed') return { gen: this.gen, probe: false, settled: false };
    if (this.state === 'open') {
      if (this.now < this.next) {
        this.rejections++;
        return undefined;
      }
      this.to('half-open');
    }
    if (this.probes < this.c.maxProbes) {
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
    if (failure) {
      this.failures++;
      this.consecutive++;
    } else {
      this.successes++;
      this.consecutive = 0;
    }
    if (p.gen !== this.gen) return;
    if (this.state === 'closed') {
      const r = this.c.rule;
      if (r.kind === 'consecutive') {
        if (failure && this.consecutive >= r.threshold) this.to('open');
      } else if (r.kind === 'time') {
        const idx = Math.floor(this.now / r.bucketMs);
        this.timed.push([idx, failure]);
        const live = this.timed.filter(([i]) => i > idx - r.buckets);
        const f = live.filter(([, x]) => x).length;
        if (r.failureCount !== undefined && f >= r.failureCount) this.to('open');
        else if (live.length >= r.minimumCalls && r.rate !== undefined && f >= r.rate * live.length)
          this.to('open');
      } else {
        this.window.push(failure);
        if (this.window.length > r.window) this.window.shift();
        const f = this.window.filter(Boolean).length;
        if (this.window.length >= r.minimumCalls && f >= r.rate * this.window.length) this.to('open');
      }
    } else if (this.state === 'half-open' && p.probe) {
      this.probes--;
      if (failure) this.to('open');
      else if (++this.probeSuccesses >= this.c.successesToClose) this.to('closed');
    }
  }

  advance(ms: number): void {
    const end = this.now + ms;
    if (this.state === 'half-open' && this.halfAt + this.c.deadlineMs <= end) {
      this.now = this.halfAt + this.c.deadlineMs;
      this.to('open');
    }
    this.now = end;
  }

  reset(): void {
    if (this.state === 'closed') {
      this.window = [];
      this.timed = [];
      this.consecutive = 0;
      this.openings = 0;
    } else this.to('closed');
  }
}

type Cmd =
  | { op: 'acquire' }
  | { op: 'settle'; index: number; kind: 'success' | 'failure' | 'neutral' }
  | { op: 'advance'; ms: number }
  | { op: 'reset' };

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
  successesToClose: fc.integer({ min: 1, max: 3 }),
  deadlineMs: fc.integer({ min: 1, max: 200 }),
});

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
  { weight: 1, arbitrary: fc.constant({ op: 'reset' as const }) },
);

function run(c: Config, cmds: Cmd[]): void {
  const clock = new TestClock();
  const model = new Model(c, clock.now());
  const b = circuitBreaker({
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
              window: c.rule.window,
              minimumCalls: c.rule.minimumCalls,
              failureRateThreshold: c.rule.rate,
            },
    openDuration: { base: c.base, multiplier: 2, max: 4 * c.base },
    halfOpen: { maxProbes: c.maxProbes, successesToClose: c.successesToClose, deadlineMs: c.deadlineMs },
  });
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
      case 'reset':
        b.reset();
        model.reset();
        break;
    }
    assert.equal(b.state, model.state, `state at ${where}`);
    if (model.state === 'open') assert.equal(b.nextAttemptAt, model.next, `nextAttemptAt at ${where}`);
    const s = b.stats();
    assert.deepEqual(
      [s.successes, s.failures, s.rejections, s.neutral, s.consecutiveFailures],
      [model.successes, model.failures, model.rejections, model.neutral, model.consecutive],
      `counts at ${where}`,
    );
  }
  // Whatever happened: at most the breaker's one timer, plus one for a time rule under traffic.
  assert.ok(clock.pending <= 2, `pending timers: ${clock.pending}`);
}

describe('circuitBreaker: model-based property test', () => {
  it('agrees with the reference model on 10,000 random sequences', () => {
    fc.assert(
      fc.property(configArb, fc.array(cmdArb, { minLength: 1, maxLength: 100, size: 'max' }), (c, cmds) =>
        run(c, cmds),
      ),
      { numRuns: 10_000 },
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
                ? { kind, window: 5, minimumCalls: threshold }
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
      { numRuns: 1_000 },
    );
  });
});

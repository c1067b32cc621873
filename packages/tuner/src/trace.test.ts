import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { candidate } from './candidates.js';
import { replay } from './replay.js';
import { synthesize, traceShapes } from './synth.js';
import {
  findIncidents,
  formatTrace,
  onlyName,
  parseTrace,
  readTrace,
  traceFromCalls,
  writeTrace,
} from './trace.js';

describe('synthesize', () => {
  it('is a function of its options and seed', () => {
    for (const shape of traceShapes) {
      const a = synthesize({ shape, seed: 5, rate: 30, durationMs: 120_000 });
      const b = synthesize({ shape, seed: 5, rate: 30, durationMs: 120_000 });
      const c = synthesize({ shape, seed: 6, rate: 30, durationMs: 120_000 });
      assert.equal(formatTrace(a), formatTrace(b));
      assert.notEqual(formatTrace(a), formatTrace(c));
    }
  });

  it('draws each shape as its parameters say', () => {
    const rateIn = (t: ReturnType<typeof synthesize>, from: number, to: number) => {
      let calls = 0;
      let fails = 0;
      for (let i = 0; i < t.length; i++)
        if (t.start[i]! >= from && t.start[i]! < to) {
          calls++;
          fails += t.failed[i]!;
        }
      return { calls, rate: fails / calls };
    };
    const t0 = 1_700_000_000_000;
    const outage = synthesize({ shape: 'hard-outage', seed: 1, rate: 100, durationMs: 300_000 });
    assert.deepEqual(outage.incidents, [{ start: t0 + 100_000, end: t0 + 200_000, kind: 'hard-outage' }]);
    assert.equal(rateIn(outage, t0 + 100_000, t0 + 200_000).rate, 1);
    const healthy = rateIn(outage, t0, t0 + 100_000);
    assert.ok(Math.abs(healthy.calls - 10_000) < 400, `Poisson arrivals at 100/s: ${healthy.calls}`);
    assert.ok(healthy.rate > 0.005 && healthy.rate < 0.015);

    const flap = synthesize({
      shape: 'flapping',
      seed: 1,
      durationMs: 300_000,
      incidentStartMs: 60_000,
      incidentMs: 90_000,
    });
    assert.deepEqual(
      flap.incidents.map((x) => [x.start - t0, x.end - t0]),
      [
        [60_000, 75_000],
        [105_000, 120_000],
      ],
    );
    assert.equal(rateIn(flap, t0 + 75_000, t0 + 105_000).rate < 0.05, true);

    const brown = synthesize({
      shape: 'brownout',
      seed: 1,
      rate: 200,
      durationMs: 300_000,
      peakLatencyMs: 1_000,
    });
    const lateMedian = (() => {
      const d: number[] = [];
      for (let i = 0; i < brown.length; i++)
        if (brown.start[i]! >= t0 + 190_000 && brown.start[i]! < t0 + 200_000) d.push(brown.duration[i]!);
      d.sort((a, b) => a - b);
      return d[d.length >> 1]!;
    })();
    assert.ok(lateMedian > 800 && lateMedian < 1_100, `latency near the peak: ${lateMedian}`);

    const slow = synthesize({
      shape: 'slow-recovery',
      seed: 1,
      rate: 200,
      durationMs: 400_000,
      incidentStartMs: 100_000,
      incidentMs: 100_000,
      recoveryMs: 100_000,
    });
    assert.equal(slow.incidents[0]!.end, t0 + 300_000);
    const early = rateIn(slow, t0 + 200_000, t0 + 220_000).rate;
    const late = rateIn(slow, t0 + 280_000, t0 + 300_000).rate;
    assert.ok(
      early > 0.8 && late < 0.2 && late > 0.01,
      `failure rate falls during recovery: ${early} -> ${late}`,
    );
  });

  it('rejects bad parameters naming them', () => {
    assert.throws(() => synthesize({ shape: 'nope' as 'healthy' }), /shape must be one of/);
    assert.throws(() => synthesize({ shape: 'healthy', rate: -1 }), /rate must be/);
    assert.throws(() => synthesize({ shape: 'healthy', backgroundErrorRate: 2 }), /backgroundErrorRate/);
  });
});

describe('NDJSON traces', () => {
  it('round-trip through a file, meta line and all', async () => {
    const t = synthesize({ shape: 'flapping', seed: 2, rate: 20, durationMs: 200_000 });
    const file = join(mkdtempSync(join(tmpdir(), 'tuner-')), 'flap.ndjson');
    writeTrace(file, t);
    const back = await readTrace(file);
    assert.equal(back.length, t.length);
    assert.deepEqual(back.incidents, t.incidents);
    assert.deepEqual([...back.start], [...t.start]);
    assert.deepEqual([...back.duration], [...t.duration]);
    assert.deepEqual([...back.failed], [...t.failed]);
    assert.equal(formatTrace(back), formatTrace(t));
  });

  it('sorts calls written out of order and keeps names apart', () => {
    const t = parseTrace(
      [
        '{"t":30,"d":1,"outcome":"success","name":"a"}',
        '{"t":10,"d":1,"outcome":"failure","name":"b"}',
        '{"t":20,"d":1,"outcome":"success","name":"a"}',
      ].join('\n'),
    );
    assert.deepEqual([...t.start], [10, 20, 30]);
    assert.deepEqual([...t.failed], [1, 0, 0]);
    assert.deepEqual([...onlyName(t, 'a').start], [20, 30]);
    assert.throws(() => onlyName(t, 'c'), /no calls named "c"/);
    assert.throws(() => replay(t, candidate({})), /2 breaker names \(a, b\); replay one with onlyName/);
    assert.equal(replay(onlyName(t, 'a'), candidate({})).metrics.sent, 2);
  });

  it('names the line and field of bad input', () => {
    assert.throws(
      () => parseTrace('{"t":1,"d":1,"outcome":"success"}\n{"t":"x"}', 'f.ndjson'),
      /f\.ndjson:2: "t"/,
    );
    assert.throws(() => parseTrace('{"t":1,"d":-1,"outcome":"success"}'), /:1: "d"/);
    assert.throws(() => parseTrace('{"t":1,"d":1,"outcome":"ok"}'), /"outcome"/);
    assert.throws(() => parseTrace('nope'), /:1: not JSON/);
    assert.throws(() => traceFromCalls([], [{ start: 5, end: 1 }]), /incident 0 ends/);
  });

  it('findIncidents finds the outage of a trace written without its meta line', () => {
    const t = synthesize({ shape: 'hard-outage', seed: 3, rate: 50, durationMs: 300_000 });
    const found = findIncidents(t, { bucketMs: 5_000 });
    assert.equal(found.length, 1);
    assert.ok(Math.abs(found[0]!.start - t.incidents[0]!.start) <= 5_000);
    assert.ok(Math.abs(found[0]!.end - t.incidents[0]!.end) <= 5_000);
    assert.deepEqual(findIncidents(synthesize({ shape: 'healthy', seed: 3 })), []);
  });
});

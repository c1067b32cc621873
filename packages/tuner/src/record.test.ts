import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { breakerRegistry, circuitBreaker } from 'tripswitch';
import { TestClock } from 'tripswitch/testing';
import { recordTrace } from './record.js';
import { readTrace } from './trace.js';

const dir = () => mkdtempSync(join(tmpdir(), 'tuner-rec-'));

describe('recordTrace', () => {
  it("writes each settled call's start, duration, outcome and name; idle it holds no timer", async () => {
    const clock = new TestClock(1_000_000);
    const b = circuitBreaker({ name: 'payments', clock, trip: { kind: 'consecutive', threshold: 100 } });
    const file = join(dir(), 'calls.ndjson');
    const rec = recordTrace(b, { file, clock });
    const expected: Array<[number, number, string]> = [];
    for (let i = 0; i < 50; i++) {
      const p = b.acquire();
      const t = clock.now();
      clock.advance(i % 7);
      if (i % 5 === 0) p.failure(new Error('x'));
      else p.success();
      expected.push([t, i % 7, i % 5 === 0 ? 'failure' : 'success']);
      clock.advance(3);
    }
    assert.equal(clock.pending, 1, 'one flush timer while lines wait');
    await rec.flush();
    assert.equal(clock.pending, 0, 'no timer once written');
    await rec.stop();
    const trace = await readTrace(file);
    assert.deepEqual(trace.names, ['payments']);
    assert.deepEqual(
      Array.from({ length: trace.length }, (_, i) => [
        trace.start[i],
        trace.duration[i],
        trace.failed[i] ? 'failure' : 'success',
      ]),
      expected,
    );
    assert.deepEqual(rec.stats(), { recorded: 50, sampledOut: 0, dropped: 0, rotations: 0, writeErrors: 0 });
    b.acquire().success();
    assert.equal(rec.stats().recorded, 50, 'stop() stops listening');
  });

  it('follows every breaker of a registry, including ones added later, until removed', async () => {
    const clock = new TestClock();
    const reg = breakerRegistry({ clock });
    reg.get('a');
    const file = join(dir(), 'reg.ndjson');
    const rec = recordTrace(reg, { file, clock });
    reg.get('a').acquire().success();
    reg.get('b').acquire().failure();
    reg.delete('a');
    reg.get('c').acquire().success();
    await rec.stop();
    const t = await readTrace(file);
    assert.deepEqual(t.names, ['a', 'b', 'c']);
    assert.deepEqual([...t.failed], [0, 1, 0]);
  });

  it('samples with the given fraction', async () => {
    const clock = new TestClock();
    const b = circuitBreaker({ clock });
    let seed = 1;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const rec = recordTrace(b, { file: join(dir(), 's.ndjson'), clock, sample: 0.1, random });
    for (let i = 0; i < 10_000; i++) b.acquire().success();
    await rec.stop();
    const { recorded, sampledOut } = rec.stats();
    assert.equal(recorded + sampledOut, 10_000);
    assert.ok(recorded > 850 && recorded < 1_150, `~10% recorded: ${recorded}`);
  });

  it('rotates by size keeping maxFiles, and drops (counting) beyond the buffer bound', async () => {
    const clock = new TestClock();
    const b = circuitBreaker({ name: 'x', clock });
    const file = join(dir(), 'r.ndjson');
    const rec = recordTrace(b, { file, clock, maxBytes: 2_000, maxFiles: 2, batchCalls: 8 });
    for (let i = 0; i < 500; i++) {
      b.acquire().success();
      if (i % 20 === 0) await rec.flush();
    }
    await rec.stop();
    assert.ok(rec.stats().rotations >= 5);
    assert.ok(existsSync(`${file}.1`) && existsSync(`${file}.2`) && !existsSync(`${file}.3`));
    for (const f of [file, `${file}.1`, `${file}.2`]) assert.ok(readFileSync(f).length <= 2_000 + 8 * 80);

    const rec2 = recordTrace(b, { file: join(dir(), 'd.ndjson'), clock, bufferCalls: 16 });
    for (let i = 0; i < 100; i++) b.acquire().success();
    assert.equal(rec2.stats().dropped, 84, 'the event loop never turned: 16 kept, the rest dropped');
    assert.equal(rec2.stats().recorded + rec2.stats().dropped, 100);
    await rec2.stop();
  });

  it('a file that cannot be written is counted, not thrown', async () => {
    const clock = new TestClock();
    const b = circuitBreaker({ clock });
    const rec = recordTrace(b, { file: join(dir(), 'no', 'such', 'dir', 'x.ndjson'), clock });
    b.acquire().success();
    await rec.flush();
    await new Promise((r) => setImmediate(r));
    b.acquire().success();
    await rec.stop();
    assert.ok(rec.stats().writeErrors >= 1, JSON.stringify(rec.stats()));
  });

  it('rejects bad options naming them', () => {
    const b = circuitBreaker();
    assert.throws(() => recordTrace(b, { file: '' }), /options\.file/);
    assert.throws(() => recordTrace(b, { file: 'x', sample: 0 }), /sample must be in/);
    assert.throws(() => recordTrace(b, { file: 'x', maxBytes: -1 }), /maxBytes/);
    assert.throws(() => recordTrace({} as never, { file: 'x' }), /target must be/);
  });

  it('a bare process records on the system clock, stops and exits on its own', () => {
    const file = join(dir(), 'bare.ndjson');
    const index = new URL('./index.js', import.meta.url).href;
    const code = `
      import { circuitBreaker } from 'tripswitch';
      import { recordTrace } from ${JSON.stringify(index)};
      const b = circuitBreaker({ name: 'bare' });
      const rec = recordTrace(b, { file: ${JSON.stringify(file)} });
      for (let i = 0; i < 10; i++) await b.execute(() => new Promise((r) => setTimeout(r, 1)));
      await rec.stop();
      console.log(JSON.stringify(rec.stats()));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
      encoding: 'utf8',
      timeout: 30_000,
      cwd: new URL('.', import.meta.url).pathname,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).recorded, 10);
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 10);
    for (const l of lines)
      assert.ok(l.d >= 0 && l.t > 1.6e12 && l.name === 'bare' && l.outcome === 'success');
  });
});

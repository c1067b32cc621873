import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { systemClock } from './clock.js';

describe('systemClock', () => {
  it('works where setTimeout returns a number (browsers): unref is a no-op, clearTimeout cancels', async () => {
    const realSet = globalThis.setTimeout;
    const realClear = globalThis.clearTimeout;
    const timers = new Map<number, () => void>();
    let next = 1;
    // A browser's timers: numeric ids, no unref.
    globalThis.setTimeout = ((fn: () => void) => {
      timers.set(next, fn);
      return next++;
    }) as unknown as typeof setTimeout;
    globalThis.clearTimeout = ((id: number) => timers.delete(id)) as unknown as typeof clearTimeout;
    try {
      let fired = 0;
      const a = systemClock.setTimeout(() => fired++, 10);
      assert.equal(a.unref(), a);
      const b = systemClock.setTimeout(() => fired++, 10).unref();
      systemClock.clearTimeout(b);
      assert.deepEqual([...timers.keys()], [1]);
      for (const fn of timers.values()) fn();
      assert.equal(fired, 1);
    } finally {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    }
  });

  it("Node's timers are passed through: unref lets the process exit", () => {
    const script = `
      const { systemClock } = await import(${JSON.stringify(new URL('./clock.js', import.meta.url).href)});
      const t = systemClock.setTimeout(() => console.log('fired'), 60_000).unref();
      console.log(typeof t.hasRef === 'function' ? t.hasRef() : 'no hasRef');
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'false');
  });
});

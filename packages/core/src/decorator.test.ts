import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { circuitBreaker, isCircuitOpenError, withBreaker } from './index.js';
import { TestClock } from './test-clock.js';

describe('decorators', () => {
  it('@withBreaker(b) runs the method through the breaker, keeping this and arguments', async () => {
    const b = circuitBreaker({ clock: new TestClock(), trip: { kind: 'consecutive', threshold: 1 } });
    class Client {
      base = 10;
      @withBreaker(b)
      async add(n: number): Promise<number> {
        if (n < 0) throw new Error('negative');
        return this.base + n;
      }
    }
    const c = new Client();
    assert.equal(await c.add(5), 15);
    assert.equal(Client.prototype.add.name, 'add');
    await assert.rejects(c.add(-1), /negative/);
    assert.equal(b.state, 'open');
    await assert.rejects(c.add(1), isCircuitOpenError);
  });

  it('@breaker.protect works the same, and a trailing AbortSignal becomes the call signal', async () => {
    const b = circuitBreaker({ clock: new TestClock(), trip: { kind: 'consecutive', threshold: 1 } });
    class Client {
      @b.protect
      async get(_url: string, signal?: AbortSignal): Promise<string> {
        return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
      }
    }
    const ac = new AbortController();
    const p = new Client().get('/x', ac.signal);
    ac.abort();
    await assert.rejects(p, { name: 'AbortError' });
    assert.equal(b.state, 'closed', "the caller's abort is neutral");
    assert.equal(b.stats().neutral, 1);
  });

  it('refuses non-method targets', () => {
    const b = circuitBreaker();
    const deco = withBreaker(b) as unknown as (t: unknown, c: { kind: string; name: string }) => unknown;
    assert.throws(() => deco(undefined, { kind: 'field', name: 'x' }), /can only decorate methods/);
    assert.throws(() => withBreaker({} as never), /expected a breaker/);
  });
});

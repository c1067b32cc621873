import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chaosFault } from './chaos/index.js';
import { bindMetrics, type MetricsMakers } from './exporter.js';
import { breakerRegistry, memoryWriteStore, retry, timeout, wrap, writeQueue } from './index.js';
import { TestClock } from './test-clock.js';

/** Makers that log what they do: `make <kind>`, `attach <kind> <name>`, `detach <kind> <name>`. */
function logging(log: string[]): MetricsMakers {
  const kind = (k: string) => () => {
    log.push(`make ${k}`);
    return (name: string) => {
      log.push(`attach ${k} ${name}`);
      return () => log.push(`detach ${k} ${name}`);
    };
  };
  return {
    retry: kind('retry'),
    timeout: kind('timeout'),
    bulkhead: kind('bulkhead'),
    rateLimiter: kind('rateLimiter'),
    fallback: kind('fallback'),
    hedge: kind('hedge'),
    adaptiveLimiter: kind('adaptiveLimiter'),
    chaos: kind('chaos'),
    writeQueue: kind('writeQueue'),
  };
}

describe('bindMetrics', () => {
  it('follows the breakers of the registry, added and removed ones, until disposed', () => {
    const registry = breakerRegistry({ clock: new TestClock() });
    registry.get('a');
    const seen: string[] = [];
    const m = bindMetrics({
      registry,
      breaker: (b) => {
        seen.push(`follow ${b.name}`);
        const s = b.on('stateChange', (e) => seen.push(`${e.name} ${e.to}`));
        return [s, { dispose: () => seen.push(`leave ${b.name}`) }];
      },
      makers: logging([]),
      dispose: () => seen.push('disposed'),
    });
    registry.get('b');
    registry.get('a').isolate();
    registry.delete('b');
    m.dispose();
    m.dispose();
    registry.get('a').reset();
    registry.get('c');
    assert.deepEqual(seen, ['follow a', 'follow b', 'a isolated', 'leave b', 'leave a', 'disposed']);
  });

  it('instrument(): makes a kind once, walks wrap(), skips breakers inside, refuses duplicates and strangers', async () => {
    const log: string[] = [];
    const registry = breakerRegistry({ clock: new TestClock() });
    const m = bindMetrics({ makers: logging(log) });
    const h = m.instrument('x', wrap(retry(), registry.get('b'), timeout({ ms: 5 })));
    m.instrument('y', retry());
    m.instrument('x', chaosFault({ rate: 0 }));
    const q = writeQueue({ send: async () => {}, store: memoryWriteStore() });
    m.instrument('x', q);
    assert.throws(() => m.instrument('x', retry()), /a retry named "x" is already instrumented/);
    // A failed instrument() undoes what it attached before the failure.
    assert.throws(() => m.instrument('z', wrap(timeout({ ms: 1 }), timeout({ ms: 2 }))), /already/);
    assert.throws(() => m.instrument('x', registry.get('b') as never), /breakers are followed/);
    assert.throws(() => m.instrument('x', {} as never), /not a retry/);
    assert.throws(() => m.instrument('', retry()), /non-empty string/);
    h.dispose();
    h[Symbol.dispose]();
    m.instrument('x', retry()); // the name is free again
    m.dispose();
    assert.throws(() => m.instrument('w', retry()), /disposed/);
    await q.close();
    assert.deepEqual(log, [
      'make retry',
      'attach retry x',
      'make timeout',
      'attach timeout x',
      'attach retry y',
      'make chaos',
      'attach chaos x',
      'make writeQueue',
      'attach writeQueue x',
      'attach timeout z',
      'detach timeout z',
      'detach retry x',
      'detach timeout x',
      'attach retry x',
      'detach retry y',
      'detach chaos x',
      'detach writeQueue x',
      'detach retry x',
    ]);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { breakerRegistry, isInvalidOptionError } from './index.js';
import { TestClock } from './test-clock.js';

describe('breakerRegistry', () => {
  it('get-or-create by name, with defaults and per-name overrides', () => {
    const clock = new TestClock();
    const reg = breakerRegistry({
      clock,
      defaults: { trip: { kind: 'consecutive', threshold: 2 }, openDuration: 1_000 },
      overrides: { payments: { openDuration: 9_000, halfOpen: { maxProbes: 2 } } },
    });
    const a = reg.get('search');
    assert.equal(reg.get('search'), a);
    assert.equal(a.name, 'search');
    const p = reg.get('payments');
    p.acquire().failure();
    p.acquire().failure();
    assert.equal(p.nextAttemptAt! - clock.now(), 9_000);
    a.acquire().failure();
    a.acquire().failure();
    assert.equal(a.nextAttemptAt! - clock.now(), 1_000);
    assert.equal(reg.has('payments'), true);
    assert.equal(reg.size, 2);
  });

  it('get(key, options) uses options only on creation', () => {
    const clock = new TestClock();
    const reg = breakerRegistry({ clock });
    const b = reg.get('api.example.com', { openDuration: 5 });
    assert.equal(reg.get('api.example.com', { openDuration: 99 }), b);
  });

  it('list() reports every breaker with state and stats', async () => {
    const reg = breakerRegistry({ clock: new TestClock() });
    await reg.get('a').execute(() => 1);
    reg.get('b').isolate();
    const l = reg.list();
    assert.deepEqual(
      l.map((x) => [x.name, x.state, x.stats.successes]),
      [
        ['a', 'closed', 1],
        ['b', 'isolated', 0],
      ],
    );
  });

  it('emits added and removed; delete disposes', () => {
    const reg = breakerRegistry({ clock: new TestClock() });
    const seen: string[] = [];
    reg.on('added', (e) => seen.push(`+${e.name}`));
    reg.on('removed', (e) => seen.push(`-${e.name}:${e.reason}`));
    reg.get('x');
    reg.get('x');
    assert.equal(reg.delete('x'), true);
    assert.equal(reg.delete('x'), false);
    assert.deepEqual(seen, ['+x', '-x:deleted']);
  });

  it('maxSize evicts the least recently used idle breaker, never an open or busy one', () => {
    const clock = new TestClock();
    const reg = breakerRegistry({
      clock,
      maxSize: 3,
      defaults: { trip: { kind: 'consecutive', threshold: 1 } },
    });
    const removed: string[] = [];
    reg.on('removed', (e) => removed.push(`${e.name}:${e.reason}`));
    reg.get('a').acquire().failure(); // open: not evictable
    const busy = reg.get('b').acquire(); // in flight: not evictable
    reg.get('c');
    reg.get('d'); // evicts c (a open, b busy)
    assert.deepEqual(removed, ['c:evicted']);
    busy.success();
    reg.get('a'); // a becomes most recently used
    reg.get('e'); // b is now the least recently used idle one
    assert.deepEqual(removed, ['c:evicted', 'b:evicted']);
    assert.deepEqual(
      [...reg].map((b) => b.name),
      ['d', 'a', 'e'],
    );
  });

  it('idleEvictMs drops breakers unused for that long, lazily on get/list, holding no timer', () => {
    const clock = new TestClock();
    const reg = breakerRegistry({
      clock,
      idleEvictMs: 60_000,
      defaults: { trip: { kind: 'consecutive', threshold: 1 } },
    });
    reg.get('old');
    reg.get('stuck').acquire().failure(); // open: kept even when unused
    clock.advance(30_000);
    reg.get('recent');
    assert.equal(clock.pending, 0);
    clock.advance(30_000);
    assert.deepEqual(
      reg.list().map((x) => x.name),
      ['stuck', 'recent'],
    );
    clock.advance(30_000);
    reg.get('new');
    assert.deepEqual(
      [...reg].map((b) => b.name),
      ['stuck', 'new'],
    );
  });

  it('validates options and defaults up front', () => {
    assert.throws(() => breakerRegistry({ maxSize: 0 }), {
      message: 'breakerRegistry: option "maxSize" must be an integer >= 1, got 0',
    });
    assert.throws(() => breakerRegistry({ defaults: { openDuration: -1 } }), isInvalidOptionError);
    assert.throws(
      // biome-ignore lint/suspicious/noExplicitAny: testing a bad key
      () => breakerRegistry({ maxsize: 3 } as any),
      /option "maxsize" must be one of the known options/,
    );
    assert.throws(() => breakerRegistry().get(''), /get\(name\)/);
  });
});

describe('breakerRegistry: model-based property test', () => {
  it('keeps exactly the breakers a reference model keeps, in use order, never dropping a busy or open one', async () => {
    const fc = (await import('fast-check')).default;
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    type Op =
      | { op: 'get' | 'delete' | 'hold' | 'release' | 'trip' | 'reset'; name: string }
      | { op: 'advance'; ms: number };
    const opArb: import('fast-check').Arbitrary<Op> = fc.oneof(
      fc.record({
        op: fc.constantFrom('get', 'get', 'get', 'delete', 'hold', 'release', 'trip', 'reset'),
        name: fc.constantFrom(...names),
      }),
      fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 50 }) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 10, max: 100 }),
        fc.array(opArb, { maxLength: 60, size: 'max' }),
        (maxSize, idleEvictMs, ops) => {
          const clock = new TestClock();
          const reg = breakerRegistry({
            clock,
            maxSize,
            idleEvictMs,
            defaults: { trip: { kind: 'consecutive', threshold: 1 }, openDuration: 1e9 },
          });
          // model: name -> { lastUsed, held, open }, Map order = use order
          const m = new Map<string, { lastUsed: number; held: number; open: boolean }>();
          const held = new Map<string, import('./index.js').Permit[]>();
          const idle = (e: { held: number; open: boolean }) => e.held === 0 && !e.open;
          const evictIdle = () => {
            const limit = clock.now() - idleEvictMs;
            for (const [k, e] of [...m]) {
              if (e.lastUsed > limit) break;
              if (idle(e)) m.delete(k);
            }
          };
          const get = (name: string) => {
            evictIdle();
            const e = m.get(name);
            if (e) {
              m.delete(name);
              e.lastUsed = clock.now();
              m.set(name, e);
              return;
            }
            if (m.size >= maxSize) {
              for (const [k, x] of m)
                if (idle(x)) {
                  m.delete(k);
                  break;
                }
            }
            m.set(name, { lastUsed: clock.now(), held: 0, open: false });
          };
          for (const o of ops) {
            if (o.op === 'advance') {
              clock.advance(o.ms);
              continue;
            }
            const { name } = o;
            const present = reg.has(name);
            assert.equal(present, m.has(name));
            switch (o.op) {
              case 'get':
                reg.get(name);
                get(name);
                break;
              case 'delete':
                for (const p of held.get(name) ?? []) p.neutral();
                held.delete(name);
                assert.equal(reg.delete(name), m.delete(name));
                break;
              case 'hold':
                if (!present || m.get(name)!.open) break;
                held.set(name, [...(held.get(name) ?? []), reg.get(name).acquire()]);
                get(name);
                m.get(name)!.held++;
                break;
              case 'release': {
                const list = held.get(name);
                if (!present || !list?.length) break;
                list.pop()!.success();
                m.get(name)!.held--;
                break;
              }
              case 'trip':
                if (!present || m.get(name)!.open) break;
                reg.get(name).acquire().failure();
                get(name);
                m.get(name)!.open = true;
                break;
              case 'reset':
                if (!present) break;
                reg.get(name).reset();
                get(name);
                m.get(name)!.open = false;
                break;
            }
            assert.deepEqual(
              [...reg].map((b) => b.name),
              [...m.keys()],
            );
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

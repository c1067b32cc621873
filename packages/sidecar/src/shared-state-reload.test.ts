// The sidecar's handling of shared_state stores, without Redis: one store per block, kept across a
// reload that leaves the block alone (breaker state included), replaced when it changes, closed
// when the cluster goes or the sidecar stops; a config that needs a store and has no factory is
// refused with an error naming the cluster.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SidecarConfig } from './config/schema.js';
import { memoryLogger } from './proxy/test-helpers.js';
import { Sidecar } from './proxy/server.js';
import type { SharedStoreFactory } from './shared-state.js';

function recordingFactory() {
  const made: Array<{
    cluster: string;
    prefix: string;
    attached: number;
    detached: number;
    closed: boolean;
  }> = [];
  const factory: SharedStoreFactory = (cluster, settings) => {
    const rec = { cluster, prefix: settings.prefix, attached: 0, detached: 0, closed: false };
    made.push(rec);
    return {
      attach: () => {
        rec.attached++;
        return { onTransition: () => {}, detach: () => void rec.detached++ };
      },
      close: async () => {
        rec.closed = true;
      },
    };
  };
  return { made, factory };
}

const config = (prefix?: string, extra: SidecarConfig['clusters'] = []): SidecarConfig => ({
  listeners: [{ port: 0, routes: [{ cluster: 'api' }] }],
  clusters: [
    {
      name: 'api',
      hosts: ['127.0.0.1:1'],
      ...(prefix ? { shared_state: { url: 'redis://127.0.0.1:1', prefix } } : {}),
    },
    ...extra,
  ],
});

test('a shared_state block without a store factory is refused, naming the cluster', () => {
  assert.throws(
    () => new Sidecar(config('p1'), { logger: memoryLogger() }),
    /cluster "api": shared_state needs a store factory/,
  );
});

test('shared_state stores: made per block, kept, replaced and closed with the breaker', async () => {
  const { made, factory } = recordingFactory();
  const s = new Sidecar(config('p1'), { logger: memoryLogger(), sharedState: factory });
  assert.deepEqual(
    made.map((m) => [m.cluster, m.prefix, m.attached]),
    [['api', 'p1', 1]],
    "the cluster's breaker attached to its store",
  );
  const first = s.clusters.get('api')!.breaker!;
  first.isolate();

  await s.reload(config('p1', [{ name: 'other', hosts: ['127.0.0.1:2'] }]));
  assert.equal(made.length, 1, 'an unchanged block keeps its store');
  assert.equal(s.clusters.get('api')!.breaker, first, '... and its breaker, state included');
  assert.equal(s.clusters.get('api')!.breaker!.state, 'isolated');

  await s.reload(config('p2'));
  assert.equal(made.length, 2, 'a changed block makes a new store');
  assert.deepEqual(
    [made[0]!.detached, made[0]!.closed],
    [1, true],
    'the old breaker detached, its store closed',
  );
  assert.notEqual(s.clusters.get('api')!.breaker, first);

  await s.reload(config());
  assert.equal(made[1]!.closed, true, 'a removed block closes its store');
  assert.equal(made.length, 2);
  assert.equal(s.clusters.get('api')!.breaker!.state, 'closed', 'a local breaker again');

  await s.reload(config('p3'));
  assert.equal(made.length, 3);
  await s.shutdown(0);
  assert.equal(made[2]!.closed, true, 'shutdown closes the stores');
});

/**
 * One Grafana dashboard (docs/grafana-dashboard.json) serves the library and the sidecar: every
 * metric and label of its breaker row and its sidecar row must occur in a real sidecar exposition
 * (the library side is checked by packages/prometheus/src/grafana.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { references, samples } from '../../../prometheus/dist/fixture.test.util.js';
import { proxy, send, upstream } from '../proxy/test-helpers.js';
import { sidecarRegistry } from './admin.js';

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}
const dashboard = JSON.parse(
  readFileSync(new URL('../../../../docs/grafana-dashboard.json', import.meta.url), 'utf8'),
) as { panels: Panel[]; templating: { list: { name: string; type: string; query: unknown }[] } };

/** The panels of the rows titled `breakers` and `sidecar`, by row. */
function rows(): Map<string, Panel[]> {
  const out = new Map<string, Panel[]>();
  let current: Panel[] = [];
  for (const p of dashboard.panels) {
    if (p.type === 'row') {
      current = [];
      out.set(p.title, current);
    } else current.push(p);
  }
  return out;
}

test('the breaker row and the sidecar row of the Grafana dashboard read a real sidecar exposition', async () => {
  const u = await upstream((req, res) => {
    res.statusCode = req.url === '/bad' ? 500 : 200;
    res.end('x');
  });
  const p = await proxy(
    [
      {
        name: 'api',
        hosts: [u.host],
        breaker: { trip: { kind: 'consecutive', threshold: 2 }, openDuration: 60_000 },
        circuit_breakers: { thresholds: [{ priority: 'high', max_requests: 10 }] },
      },
    ],
    [{ prefix: '/', cluster: 'api', retry: { attempts: 1, backoff_base_ms: 0, retry_on: [500] } }],
  );
  const registry = sidecarRegistry(p.sidecar);
  try {
    await send(p.port, '/ok');
    await send(p.port, '/ok', { headers: { 'x-tripswitch-priority': 'high' } });
    await send(p.port, '/bad');
    await send(p.port, '/bad');
    assert.equal((await send(p.port, '/ok')).status, 503, 'the breaker opened');
    const labelsOf = new Map<string, Set<string>>();
    for (const s of samples(await registry.metrics())) {
      const set = labelsOf.get(s.name) ?? new Set<string>();
      for (const k of Object.keys(s.labels)) set.add(k);
      labelsOf.set(s.name, set);
    }
    const byRow = rows();
    const breakerRow = byRow.get('Circuit breakers');
    const sidecarRow = [...byRow].find(([title]) => /sidecar/i.test(title))?.[1];
    assert.ok(breakerRow?.length && sidecarRow?.length, 'both rows exist');
    for (const panel of [...breakerRow, ...sidecarRow]) {
      for (const { expr } of panel.targets ?? []) {
        const { selectors, grouping } = references(expr);
        const available = new Set<string>();
        for (const s of selectors) {
          const labels = labelsOf.get(s.name!);
          assert.ok(labels, `${panel.title}: ${s.name} is not in the sidecar's exposition`);
          for (const l of s.labels) assert.ok(labels.has(l), `${panel.title}: ${s.name} has no label ${l}`);
          for (const l of labels) available.add(l);
        }
        for (const l of grouping) assert.ok(available.has(l), `${panel.title}: no label ${l} in ${expr}`);
      }
    }
    // The breaker variable lists the sidecar's clusters; the cluster variable too.
    for (const name of ['service', 'cluster']) {
      const v = dashboard.templating.list.find((x) => x.name === name)!;
      const q = (v.query as { query: string }).query;
      const [, metric, label] = /^label_values\((\w+),\s*(\w+)\)$/.exec(q)!;
      assert.ok(labelsOf.get(metric!)?.has(label!), `${name}: ${q}`);
    }
    // Per priority where the limits are per priority.
    for (const name of ['tripswitch_proxy_open_requests', 'tripswitch_proxy_overflow_total'])
      assert.ok(labelsOf.get(name)?.has('priority'), name);
  } finally {
    registry.dispose();
    await p.sidecar.shutdown(1000);
    await u.close();
  }
});

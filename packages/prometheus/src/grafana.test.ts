/**
 * docs/grafana-dashboard.json must not drift from the code: every metric and label its PromQL
 * names must occur in a real exposition of `prometheusMetrics` (default prefix), driven by a
 * breaker and every policy kind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fullExposition, references, samples } from './fixture.test.util.js';

interface Target {
  refId: string;
  expr: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
}
interface Variable {
  name: string;
  type: string;
  query: unknown;
  datasource?: { uid?: string };
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(
  readFileSync(new URL('../../../docs/grafana-dashboard.json', import.meta.url), 'utf8'),
) as Dashboard;
const queries = dashboard.panels.filter((p) => p.type !== 'row');
const exprs = queries.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
// The sidecar's own families (the sidecar row and its `cluster` variable) are checked against a
// real sidecar exposition by packages/sidecar/src/admin/grafana.test.ts.
const SIDECAR = /\btripswitch_proxy_/;
const libraryExprs = exprs.filter((e) => !SIDECAR.test(e.expr));

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
const DS_UID = '${DS_PROMETHEUS}';
test('references() finds metrics, matcher labels and grouping labels', () => {
  const r = references(
    'histogram_quantile(0.99, sum by (service, le) (rate(a_bucket{service=~"$service", x="y{z}"}[5m]))) / on (service) b unless c',
  );
  assert.deepEqual(
    r.selectors.map((s) => s.name),
    ['a_bucket', 'b', 'c'],
  );
  assert.deepEqual(r.selectors[0]!.labels, ['service', 'x']);
  assert.deepEqual(r.grouping, ['service', 'le', 'service']);
});

test('the dashboard is a well-formed Grafana dashboard', () => {
  assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `${dashboard.schemaVersion}`);
  assert.ok(dashboard.uid && dashboard.title);
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of dashboard.panels) {
    const g = p.gridPos;
    assert.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0 && g.y >= 0, `${p.title}: gridPos`);
  }
  const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  assert.equal(vars.get('DS_PROMETHEUS')?.type, 'datasource');
  assert.equal((vars.get('DS_PROMETHEUS') as { query?: unknown } | undefined)?.query, 'prometheus');
  assert.equal(vars.get('service')?.type, 'query');
  assert.ok(queries.length >= 10);
  for (const p of queries) {
    assert.equal(p.datasource?.uid, DS_UID, `${p.title}: datasource`);
    assert.ok(p.targets?.length, `${p.title}: has targets`);
    const refIds = p.targets.map((t) => t.refId);
    assert.equal(new Set(refIds).size, refIds.length, `${p.title}: unique refIds`);
    for (const t of p.targets) {
      assert.ok(t.expr.trim(), `${p.title}: expr`);
      assert.equal(t.datasource?.uid, DS_UID, `${p.title}: target datasource`);
    }
  }
  for (const v of dashboard.templating.list)
    if (v.type === 'query') assert.equal(v.datasource?.uid, DS_UID, `${v.name}: datasource`);
});

test('every metric and label the dashboard queries occurs in the real exposition', async () => {
  const f = await fullExposition();
  const labelsOf = new Map<string, Set<string>>();
  for (const s of samples(f.text)) {
    const set = labelsOf.get(s.name) ?? new Set<string>();
    for (const k of Object.keys(s.labels)) set.add(k);
    labelsOf.set(s.name, set);
  }
  f.dispose();
  const used = new Set<string>();
  for (const { panel, expr } of libraryExprs) {
    const { selectors, grouping } = references(expr);
    assert.ok(selectors.length > 0, `${panel}: no metric in ${expr}`);
    const available = new Set<string>();
    for (const s of selectors) {
      assert.ok(s.name !== undefined, `${panel}: selector without a metric name in ${expr}`);
      const labels = labelsOf.get(s.name);
      assert.ok(labels, `${panel}: ${s.name} is not in the exposition`);
      for (const l of s.labels) assert.ok(labels.has(l), `${panel}: ${s.name} has no label ${l}`);
      for (const l of labels) available.add(l);
      used.add(s.name);
    }
    for (const l of grouping) assert.ok(available.has(l), `${panel}: no metric of ${expr} has label ${l}`);
  }
  // The panels the dashboard promises.
  for (const name of [
    'circuit_breaker_state',
    'circuit_breaker_calls_total',
    'circuit_breaker_failures_total',
    'circuit_breaker_rejections_total',
    'circuit_breaker_call_duration_seconds_bucket',
    'circuit_breaker_transitions_total',
    'tripswitch_retries_total',
    'tripswitch_retry_giveups_total',
    'tripswitch_timeouts_total',
    'tripswitch_bulkhead_active',
    'tripswitch_bulkhead_queued',
    'tripswitch_bulkhead_rejections_total',
    'tripswitch_hedges_total',
    'tripswitch_hedge_wins_total',
    'tripswitch_adaptive_limit',
    'tripswitch_adaptive_limiter_rejections_total',
    'tripswitch_chaos_injected_total',
  ])
    assert.ok(used.has(name), `no panel shows ${name}`);

  // Template variables: label_values(<metric or {__name__=~"re"}>, <label>).
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query as { query: string }).query;
    if (SIDECAR.test(q)) continue;
    const m = /^label_values\((.+),\s*([a-zA-Z_]\w*)\)$/.exec(q);
    assert.ok(m, `${v.name}: ${q}`);
    const [, selector, label] = m as unknown as [string, string, string];
    const withLabel = [...labelsOf].filter(([, ls]) => ls.has(label)).map(([n]) => n);
    const re = /^\{__name__=~"(.+)"\}$/.exec(selector);
    if (re === null)
      assert.ok(labelsOf.get(selector)?.has(label), `${v.name}: ${selector} has no label ${label}`);
    else {
      const matches = new RegExp(`^(?:${re[1]})$`);
      assert.ok(withLabel.length > 0);
      for (const n of withLabel)
        assert.match(n, matches, `${v.name}: ${n} carries ${label} but is not listed`);
    }
  }
});

test('promtool parses every expression (as recording rules)', (t) => {
  if (spawnSync('promtool', ['--version']).error) {
    t.skip('promtool missing (apt-get install -y prometheus)');
    return;
  }
  const concrete = (e: string) =>
    e
      .replaceAll('$__rate_interval', '1m')
      .replaceAll('$service', '.*')
      .replaceAll('$policy', '.*')
      .replaceAll('$queue', '.*')
      .replaceAll('$cluster', '.*');
  const dir = mkdtempSync(join(tmpdir(), 'tripswitch-grafana-'));
  const check = (list: string[]) => {
    const file = join(dir, 'rules.json');
    const rules = list.map((e, i) => ({ record: `dashboard:expr_${i}`, expr: concrete(e) }));
    // JSON is YAML: promtool reads it as a rule file.
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
    return spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 10_000 });
  };
  try {
    const ok = check(exprs.map((x) => x.expr));
    assert.equal(ok.status, 0, `${ok.stdout}${ok.stderr}`);
    assert.match(ok.stdout, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    const bad = check(['sum by (service (rate(x[1m]))']);
    assert.notEqual(bad.status, 0, 'a broken expression is reported');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Recommending: the Pareto front on hand-made sets, the chosen settings as sidecar YAML that the
 * sidecar's own loader accepts, the chart, and the CLI end to end in a bare child process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '@tripswitch/sidecar';
import { circuitBreaker } from 'tripswitch';
import { type BreakerSettings, candidate, defaultGrid, expandGrid, parseCandidates } from './candidates.js';
import { chartHtml } from './chart.js';
import { choose, dominates, objectives, paretoFront } from './pareto.js';
import { replay } from './replay.js';
import { formatTable, optionsSnippet, sidecarYaml } from './report.js';
import { tune } from './run.js';
import { synthesize } from './synth.js';

describe('paretoFront', () => {
  it('keeps exactly the undominated points of a hand-made set', () => {
    const k = ['a', 'b'] as const;
    const pts = [
      { a: 1, b: 5 }, // 0 front
      { a: 2, b: 2 }, // 1 front
      { a: 5, b: 1 }, // 2 front
      { a: 3, b: 3 }, // 3 dominated by 1
      { a: 2, b: 2 }, // 4 ties 1: stays
      { a: 6, b: 6 }, // 5 dominated by all
      { a: 1, b: 6 }, // 6 dominated by 0
      { a: Number.POSITIVE_INFINITY, b: 0 }, // 7 front: best b
    ];
    assert.deepEqual(paretoFront(pts, k), [0, 1, 2, 4, 7]);
    assert.equal(dominates(pts[1]!, pts[3]!, k), true);
    assert.equal(dominates(pts[1]!, pts[4]!, k), false);
    assert.equal(dominates(pts[0]!, pts[2]!, k), false);
  });

  it('matches a brute-force definition on random sets', () => {
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % 6;
    };
    for (let round = 0; round < 200; round++) {
      const pts = Array.from({ length: 12 }, () => ({ x: rnd(), y: rnd(), z: rnd() }));
      const front = paretoFront(pts, ['x', 'y', 'z']);
      for (const [i, p] of pts.entries()) {
        const beaten = pts.some(
          (q) => q.x <= p.x && q.y <= p.y && q.z <= p.z && (q.x < p.x || q.y < p.y || q.z < p.z),
        );
        assert.equal(front.includes(i), !beaten, `round ${round} point ${i}`);
      }
    }
  });

  it('choose prefers a point that misses no incident, then the smallest scaled sum', () => {
    const base = { letThroughFailures: 0, sent: 0, refused: 0 };
    const m = [
      {
        ...base,
        detectMs: 0,
        missed: 1,
        letThrough: 0,
        falseOpens: 0,
        refusedHealthy: 0,
        closeMs: 0,
        probes: 0,
      },
      {
        ...base,
        detectMs: 100,
        missed: 0,
        letThrough: 10,
        falseOpens: 0,
        refusedHealthy: 50,
        closeMs: 1000,
        probes: 5,
      },
      {
        ...base,
        detectMs: 50,
        missed: 0,
        letThrough: 5,
        falseOpens: 2,
        refusedHealthy: 10,
        closeMs: 500,
        probes: 3,
      },
    ];
    assert.equal(choose(m, [0, 1, 2]), 2);
    assert.equal(choose(m, [0, 1, 2], { falseOpens: 10 }), 1);
    assert.equal(objectives.length, 6);
  });
});

describe('recommendation output', () => {
  const settings: BreakerSettings[] = [
    { trip: { kind: 'consecutive', threshold: 3 }, openDuration: 5_000, halfOpen: { maxProbes: 1 } },
    {
      trip: {
        kind: 'time',
        windowMs: 10_000,
        buckets: 5,
        minimumCalls: 20,
        failureRateThreshold: 0.3,
        slowCallDuration: 1_000,
        slowCallRateThreshold: 0.8,
      },
      openDuration: { base: 2_000, max: 60_000, multiplier: 2 },
      halfOpen: { maxProbes: 3, successesToClose: 3 },
    },
    {
      trip: { kind: 'count', windowSize: 50, minimumCalls: 10, failureRateThreshold: 0.5 },
      eagerHalfOpen: true,
    },
    ...expandGrid(defaultGrid).map((c) => c.settings),
  ];

  it('sidecar YAML loads with the sidecar config loader and gives the same breaker block', () => {
    for (const s of settings) {
      const cfg = parseConfig(
        sidecarYaml(s, { cluster: 'pay ments', hosts: ['10.0.0.2:3001'] }),
        'chosen.yaml',
      );
      const cluster = cfg.clusters[0]!;
      assert.equal(cluster.name, 'pay-ments');
      assert.deepEqual(cluster.breaker, JSON.parse(JSON.stringify(s)));
    }
  });

  it('the options snippet evaluates to options circuitBreaker accepts', () => {
    for (const s of settings.slice(0, 3)) {
      const code = optionsSnippet('payments', s).trim();
      const opts = new Function('circuitBreaker', `return ${code}`)((o: unknown) => o) as Record<
        string,
        unknown
      >;
      assert.deepEqual(opts, { name: 'payments', ...s });
      circuitBreaker(opts).dispose();
    }
  });

  it('candidates YAML: a list and a grid; bad input names the candidate and field', () => {
    const list = parseCandidates(
      'candidates:\n  - label: mine\n    trip: { kind: consecutive, threshold: 4 }\ngrid:\n  trip:\n    - { kind: count, windowSize: [20, 40] }\n  openDuration: [1000, 2000]\n',
    );
    assert.deepEqual(
      list.map((c) => c.label),
      [
        'mine',
        'count 20 calls >=50% min 20, open 1s',
        'count 20 calls >=50% min 20, open 2s',
        'count 40 calls >=50% min 20, open 1s',
        'count 40 calls >=50% min 20, open 2s',
      ],
    );
    assert.throws(
      () => parseCandidates('candidates:\n  - trip: { kind: count, failureRateThreshold: 2 }\n', 'c.yaml'),
      /c\.yaml: candidates\[0\].*failureRateThreshold/,
    );
    assert.throws(
      () => parseCandidates('candidates:\n  - opnDuration: 5\n', 'c.yaml'),
      /candidates\[0\]: unknown field "opnDuration"/,
    );
    assert.throws(() => parseCandidates('grids: {}\n', 'c.yaml'), /unknown key "grids"/);
  });

  it('the chart is one self-contained HTML page with a band per candidate', () => {
    const trace = synthesize({ shape: 'flapping', seed: 1, rate: 20, durationMs: 200_000 });
    const rs = [candidate({ trip: { kind: 'consecutive', threshold: 3 } }), candidate({})].map((c) =>
      replay(trace, c),
    );
    const html = chartHtml(trace, rs, { chosen: 1, title: 'a <b> test' });
    assert.match(html, /^<!doctype html>/);
    assert.doesNotMatch(html, /<script|src=|href=/, 'nothing loaded from elsewhere');
    assert.match(html, /a &#60;b&#62; test/);
    assert.equal(
      (html.match(/<title>open<\/title>/g) ?? []).length,
      rs.reduce((n, r) => n + r.transitions.filter((t) => t.to === 'open').length, 0),
    );
    assert.ok(html.includes('&#62; consecutive 5'), 'the chosen one is marked');
  });

  it('tune over healthy + outage traces puts the chosen one on the front, and the table marks it', () => {
    const traces = [
      synthesize({ shape: 'healthy', seed: 2, rate: 20, durationMs: 300_000 }),
      synthesize({ shape: 'hard-outage', seed: 2, rate: 20, durationMs: 300_000 }),
    ];
    const cands = [
      candidate({ trip: { kind: 'count', windowSize: 20, minimumCalls: 10, failureRateThreshold: 0.02 } }), // opens on noise
      candidate({ trip: { kind: 'consecutive', threshold: 3 }, openDuration: 5_000 }),
      candidate({ trip: { kind: 'time', windowMs: 30_000, minimumCalls: 20 }, openDuration: 30_000 }),
    ];
    const r = tune(traces, cands);
    assert.ok(r.front.includes(r.chosen));
    assert.ok(r.results[0]!.metrics.falseOpens > 0);
    assert.equal(r.results[2]!.metrics.missed, 0);
    const table = formatTable(r.results, r.front, r.chosen);
    assert.match(table.split('\n')[1]!, /^>/);
  });
});

describe('tripswitch-tune CLI', () => {
  it('synth then run: exits 0 on its own, writes a loadable YAML and a chart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tuner-cli-'));
    const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
    const opts = { encoding: 'utf8' as const, cwd: dir, timeout: 60_000 };
    const s = spawnSync(
      process.execPath,
      [
        cli,
        'synth',
        'hard-outage',
        '--rate',
        '20',
        '--duration',
        '200000',
        '--name',
        'payments',
        '-o',
        'o.ndjson',
      ],
      opts,
    );
    assert.equal(s.status, 0, s.stderr);
    writeFileSync(
      join(dir, 'c.yaml'),
      'grid:\n  trip:\n    - { kind: consecutive, threshold: [3, 5] }\n  openDuration: [2000, 10000]\n',
    );
    const r = spawnSync(
      process.execPath,
      [cli, 'run', '-t', 'o.ndjson', '-c', 'c.yaml', '--html', 'c.html', '--yaml', 'chosen.yaml'],
      opts,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /replayed 4 candidates/);
    assert.match(r.stdout, /circuitBreaker\(\{ name: 'payments'/);
    const cfg = parseConfig(readFileSync(join(dir, 'chosen.yaml'), 'utf8'));
    assert.equal(cfg.clusters[0]!.name, 'payments');
    assert.match(readFileSync(join(dir, 'c.html'), 'utf8'), /<svg/);
    // The sidecar's `tripswitch tune` runs the same `run`.
    const sidecarCli = fileURLToPath(
      new URL('dist/cli.js', import.meta.resolve('@tripswitch/sidecar/package.json')),
    );
    const viaSidecar = spawnSync(
      process.execPath,
      [sidecarCli, 'tune', '-t', 'o.ndjson', '--config', 'c.yaml'],
      opts,
    );
    assert.equal(viaSidecar.status, 0, viaSidecar.stderr);
    assert.match(viaSidecar.stdout, /replayed 4 candidates/);
    const help = spawnSync(process.execPath, [sidecarCli, 'tune', '--help'], opts);
    assert.match(help.stdout, /Usage: tripswitch tune run/);
    const bad = spawnSync(process.execPath, [cli, 'synth', 'meteor'], opts);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /shape must be one of/);
  });
});

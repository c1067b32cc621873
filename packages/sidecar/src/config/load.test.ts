import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { httpServerProblem, isConfigError, loadConfig, maxWorkers, parseConfig } from './load.js';
import { resolveConfig } from './resolve.js';
import { configSchema } from './schema.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function problems(text: string) {
  try {
    parseConfig(text, 't.yaml');
  } catch (err) {
    assert.ok(isConfigError(err));
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

test('the example config is valid', () => {
  const cfg = loadConfig(join(root, '..', '..', 'examples', 'tripswitch.yaml'));
  assert.equal(cfg.clusters[0]!.name, 'payments');
});

test('schema/tripswitch.schema.json is the ajv schema, written out', () => {
  const file = JSON.parse(readFileSync(join(root, 'schema', 'tripswitch.schema.json'), 'utf8'));
  assert.deepEqual(file, JSON.parse(JSON.stringify(configSchema)));
});

test('errors give the path and the line:column of the bad field', () => {
  const text = [
    'listeners:', //                        1
    '  - port: 8080', //                    2
    '    routes:', //                       3
    '      - prefix: /x', //                4
    '        cluster: a', //                5
    'clusters:', //                         6
    '  - name: a', //                       7
    '    hosts: [127.0.0.1:3000]', //       8
    '    lb_policy: random', //             9
    '    outlier_detection:', //            10
    '      consecutive_5xx: -1', //         11
    '    colour: blue', //                  12
  ].join('\n');
  const ps = problems(text);
  const by = (path: string) => ps.find((p) => p.path === path);
  assert.deepEqual(
    { line: by('/clusters/0/lb_policy')?.line, col: by('/clusters/0/lb_policy')?.col },
    { line: 9, col: 16 },
  );
  assert.match(by('/clusters/0/lb_policy')!.message, /round_robin/);
  assert.equal(by('/clusters/0/outlier_detection/consecutive_5xx')?.line, 11);
  assert.equal(by('/clusters/0/colour')?.line, 12);
  assert.equal(by('/clusters/0/colour')?.col, 5);
  assert.match(by('/clusters/0/colour')!.message, /unknown field "colour"/);
});

test('cross-references and duplicates are checked with lines too', () => {
  const ps = problems(
    [
      'listeners:',
      '  - port: 8080',
      '    routes:',
      '      - cluster: missing',
      'clusters:',
      '  - name: a',
      '    hosts: [127.0.0.1:1]',
      '  - name: a',
      '    hosts: [127.0.0.1:2]',
      '    circuit_breakers:',
      '      thresholds:',
      '        - { priority: default, max_retries: 1, retry_budget: { budget_percent: 10 } }',
    ].join('\n'),
  );
  assert.deepEqual(
    ps.map((p) => [p.path, p.line]),
    [
      ['/clusters/1/name', 8],
      ['/clusters/1/circuit_breakers/thresholds/0', 12],
      ['/listeners/0/routes/0/cluster', 4],
    ],
  );
});

test('breaker options are judged by the library itself, reported at the breaker block', () => {
  const ps = problems(
    [
      'listeners: [{ port: 1, routes: [{ cluster: a }] }]',
      'clusters:',
      '  - name: a',
      '    hosts: [127.0.0.1:1]',
      '    breaker:',
      '      trip: { kind: count, windowSize: 10, minimumCalls: 20, failureRateThreshold: 0.5 }',
    ].join('\n'),
  );
  assert.equal(ps.length, 1);
  assert.equal(ps[0]!.path, '/clusters/0/breaker');
  assert.equal(ps[0]!.line, 6);
  assert.match(ps[0]!.message, /minimumCalls/);
});

test('the example config builds a running sidecar (breakers accepted by the library)', async () => {
  const { Sidecar } = await import('../proxy/server.js');
  const s = new Sidecar(loadConfig(join(root, '..', '..', 'examples', 'tripswitch.yaml')));
  assert.equal(s.clusters.get('payments')!.breaker!.state, 'closed');
  assert.equal(s.clusters.get('payments')!.limits.high.budgetPercent, 20);
  await s.shutdown(100);
});

test('YAML syntax errors and a missing section are reported with positions', () => {
  const syntax = problems('listeners: [\n  - port: 1\n');
  assert.ok(syntax[0]!.line >= 1);
  const missing = problems('listeners:\n  - port: 1\n    routes: [{ cluster: a }]\n');
  assert.ok(missing.some((p) => /missing required field "clusters"/.test(p.message)));
});

test('the message lists file:line:col for every problem', () => {
  try {
    parseConfig('listeners: []\nclusters: []\n', 'x.yaml');
    assert.fail('expected an error');
  } catch (err) {
    assert.ok(isConfigError(err));
    assert.match(err.message, /x\.yaml:1:12 \/listeners:/);
  }
});

test('retry.buffer_body_bytes: an integer 0..16 MiB, errors with line:col', () => {
  const cfg = (v: string) =>
    [
      'listeners:', //                                   1
      '  - port: 8080', //                               2
      '    routes:', //                                  3
      '      - cluster: a', //                           4
      '        retry:', //                               5
      '          attempts: 2', //                        6
      `          buffer_body_bytes: ${v}`, //            7
      'clusters:', //                                    8
      '  - name: a', //                                  9
      '    hosts: [127.0.0.1:3000]', //                  10
    ].join('\n');
  for (const good of ['0', '65536', '16777216']) {
    const c = parseConfig(cfg(good), 't.yaml');
    assert.equal(c.listeners[0]!.routes[0]!.retry!.buffer_body_bytes, Number(good));
  }
  for (const bad of ['-1', '16777217', '1.5', 'lots']) {
    const ps = problems(cfg(bad));
    const p = ps.find((x) => x.path === '/listeners/0/routes/0/retry/buffer_body_bytes');
    assert.ok(p, `${bad}: ${JSON.stringify(ps)}`);
    assert.deepEqual({ line: p.line, col: p.col }, { line: 7, col: 30 });
  }
});

describe('tls blocks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tripswitch-tls-config-'));
  const pem = (name: string) => {
    const p = join(dir, name);
    writeFileSync(p, 'not a certificate\n');
    return p;
  };
  const missing = join(dir, 'missing-ca.pem');

  test('a missing ca_file names the field, the line and the file', () => {
    const ps = problems(
      [
        'listeners: [{ port: 1, routes: [{ cluster: a }] }]', // 1
        'clusters:', //                                          2
        '  - name: a', //                                        3
        '    hosts: [https://127.0.0.1:1]', //                   4
        '    tls:', //                                           5
        `      ca_file: ${missing}`, //                          6
      ].join('\n'),
    );
    assert.equal(ps.length, 1);
    assert.equal(ps[0]!.path, '/clusters/0/tls/ca_file');
    assert.deepEqual([ps[0]!.line, ps[0]!.col], [6, 16]);
    assert.ok(ps[0]!.message.includes(missing), ps[0]!.message);
    assert.match(ps[0]!.message, /ENOENT/);
  });

  test('a file that is not a certificate is refused at load', () => {
    const ps = problems(
      [
        'listeners: [{ port: 1, routes: [{ cluster: a }] }]',
        'clusters:',
        '  - name: a',
        '    hosts: [https://127.0.0.1:1]',
        `    tls: { cert_file: ${pem('c.pem')}, key_file: ${pem('k.pem')} }`,
      ].join('\n'),
    );
    assert.equal(ps.length, 1);
    assert.match(ps[0]!.path, /^\/clusters\/0\/tls/);
    assert.equal(ps[0]!.line, 5);
    assert.match(ps[0]!.message, /unusable certificate or key/);
  });

  test('relative paths start from baseDir (loadConfig: the config file directory)', () => {
    const text = [
      'listeners: [{ port: 1, routes: [{ cluster: a }] }]',
      'clusters:',
      '  - name: a',
      '    hosts: [https://127.0.0.1:1]',
      '    tls: { ca_file: nope.pem }',
    ].join('\n');
    try {
      parseConfig(text, 't.yaml', { baseDir: dir });
      assert.fail('expected an error');
    } catch (err) {
      assert.ok(isConfigError(err));
      assert.ok(err.problems[0]!.message.includes(join(dir, 'nope.pem')));
    }
  });

  test('tls on a cluster with non-https hosts, cert without key, client certs without a CA', () => {
    const ps = problems(
      [
        'listeners:', //                                                   1
        '  - port: 1', //                                                  2
        '    routes: [{ cluster: a }]', //                                 3
        `    tls: { cert_file: ${missing}, key_file: ${missing},`, //     4
        '           request_client_cert: true }', //                      5
        '  - port: 2', //                                                  6
        '    routes: [{ cluster: a }]', //                                 7
        `    tls: { cert_file: x, key_file: y, ca_file: z }`, //          8
        'clusters:', //                                                    9
        '  - name: a', //                                                  10
        '    hosts: [https://127.0.0.1:1, 127.0.0.1:2]', //               11
        '    tls: { servername: a.test }', //                             12
      ].join('\n'),
    );
    const by = (path: string) => ps.filter((p) => p.path === path);
    assert.equal(by('/clusters/0/hosts/1')[0]?.line, 11);
    assert.match(by('/clusters/0/hosts/1')[0]!.message, /not https/);
    assert.equal(by('/listeners/0/tls')[0]?.line, 4);
    assert.match(by('/listeners/0/tls')[0]!.message, /request_client_cert: true needs ca_file/);
    assert.equal(by('/listeners/1/tls/ca_file')[0]?.line, 8);
    assert.match(by('/listeners/1/tls/ca_file')[0]!.message, /only used with request_client_cert/);
    // The listener's missing files are reported too, each at its field.
    assert.equal(by('/listeners/0/tls/cert_file')[0]?.line, 4);
  });

  test('http_server: own on a tls listener is refused at the field', () => {
    const ps = problems(
      [
        'listeners:', //                                                   1
        '  - port: 1', //                                                  2
        '    routes: [{ cluster: a }]', //                                 3
        `    tls: { cert_file: ${missing}, key_file: ${missing} }`, //    4
        '    http_server: own', //                                        5
        'clusters: [{ name: a, hosts: [127.0.0.1:1] }]', //               6
      ].join('\n'),
    );
    const at = ps.find((p) => p.path === '/listeners/0/http_server');
    assert.equal(at?.line, 5);
    assert.equal(
      at?.message,
      'http_server: own reads plain HTTP only; this listener has a tls block (use node, which tls listeners get by default)',
    );
  });

  test('http_server: own on a Node without the parser it needs is refused, naming why; node and no field are not', () => {
    const routes = [{ cluster: 'a' }];
    const lacks = () => 'node:_http_common has no HTTPParser class';
    assert.equal(
      httpServerProblem({ port: 1, routes, http_server: 'own' }, lacks),
      `http_server: own needs node's internal HTTP parser, which this Node (${process.version}) does not give: node:_http_common has no HTTPParser class (use node, which listeners get by default here)`,
    );
    assert.equal(httpServerProblem({ port: 1, routes, http_server: 'node' }, lacks), undefined);
    assert.equal(httpServerProblem({ port: 1, routes }, lacks), undefined);
    // Where own can run, an explicit own on a plain listener is fine; on a tls listener it is not.
    assert.equal(
      httpServerProblem({ port: 1, routes, http_server: 'own' }, () => undefined),
      undefined,
    );
    assert.match(
      httpServerProblem(
        { port: 1, routes, http_server: 'own', tls: { cert_file: 'c', key_file: 'k' } },
        () => undefined,
      ) ?? '',
      /this listener has a tls block/,
    );
  });

  test('a plain listener without http_server resolves to own; one with tls, or with node, to node', () => {
    const cfg = parseConfig(
      [
        'listeners:',
        '  - { port: 1, routes: [{ cluster: a }] }',
        '  - { port: 2, http_server: node, routes: [{ cluster: a }] }',
        'clusters: [{ name: a, hosts: [127.0.0.1:1] }]',
      ].join('\n'),
      't.yaml',
    );
    assert.deepEqual(
      resolveConfig(cfg).listeners.map((l) => l.http_server),
      ['own', 'node'],
    );
    // A tls listener (its files are not read by resolveConfig).
    const tls = { ...cfg.listeners[0]!, tls: { cert_file: 'c.pem', key_file: 'k.pem' } };
    assert.equal(resolveConfig({ ...cfg, listeners: [tls] }).listeners[0]!.http_server, 'node');
  });

  test('http_server other than node or own is a schema error at the field', () => {
    const ps = problems(
      'listeners: [{ port: 1, http_server: fast, routes: [{ cluster: a }] }]\nclusters: [{ name: a, hosts: [127.0.0.1:1] }]\n',
    );
    assert.ok(
      ps.some((p) => p.path === '/listeners/0/http_server'),
      JSON.stringify(ps),
    );
  });

  test('http_server: own on a plain listener is valid', () => {
    const cfg = parseConfig(
      'listeners: [{ port: 1, http_server: own, routes: [{ cluster: a }] }]\nclusters: [{ name: a, hosts: [127.0.0.1:1] }]\n',
      't.yaml',
    );
    assert.equal(cfg.listeners[0]!.http_server, 'own');
  });

  test('cert_file without key_file (and the reverse) is a schema error', () => {
    for (const [field, other] of [
      ['cert_file', 'key_file'],
      ['key_file', 'cert_file'],
    ]) {
      const ps = problems(
        [
          'listeners: [{ port: 1, routes: [{ cluster: a }] }]',
          'clusters:',
          '  - name: a',
          '    hosts: [https://127.0.0.1:1]',
          `    tls: { ${field}: x.pem }`,
        ].join('\n'),
      );
      assert.equal(ps.length, 1, JSON.stringify(ps));
      assert.equal(ps[0]!.path, '/clusters/0/tls');
      assert.equal(ps[0]!.line, 5);
      assert.match(ps[0]!.message, new RegExp(other!));
    }
  });
});

test('workers: an integer from 1 to 4 x the cores; not with shared_state; with record_trace', () => {
  const cfg = (v: string, extra = '') =>
    [
      `workers: ${v}`, //                                1
      'listeners:', //                                   2
      '  - port: 8080', //                               3
      '    routes: [{ prefix: /, cluster: a }]', //      4
      'clusters:', //                                    5
      '  - name: a', //                                  6
      '    hosts: [127.0.0.1:3000]', //                  7
      extra,
    ].join('\n');
  const most = maxWorkers();
  assert.equal(most, 4 * availableParallelism());
  for (const good of ['1', '2', String(most)])
    assert.equal(parseConfig(cfg(good), 't.yaml').workers, Number(good));
  for (const bad of ['0', '1.5', 'two'])
    assert.ok(
      problems(cfg(bad)).some((p) => p.path === '/workers' && p.line === 1),
      `${bad}: ${JSON.stringify(problems(cfg(bad)))}`,
    );
  assert.deepEqual(problems(cfg(String(most + 1))), [
    {
      path: '/workers',
      line: 1,
      col: 10,
      message: `workers must be at most ${most} (4 x the ${most / 4} cores of this machine), got ${most + 1}`,
    },
  ]);
  const shared = problems(cfg('2', '    shared_state: { url: "redis://127.0.0.1:6379" }'));
  assert.deepEqual(
    shared.map((p) => [p.path, p.message]),
    [
      [
        '/clusters/0/shared_state',
        'shared_state cannot be combined with workers > 1 (the workers already share one breaker; use one or the other)',
      ],
    ],
  );
  assert.equal(
    parseConfig(cfg('1', '    shared_state: { url: "redis://127.0.0.1:6379" }'), 't.yaml').workers,
    1,
  );
  // recorded in the main thread, whose breaker settles every worker's calls
  assert.equal(
    parseConfig(cfg('2', `    record_trace: { file: ${join(tmpdir(), 'w.ndjson')} }`), 't.yaml').workers,
    2,
  );
});

describe('record_trace', () => {
  const cfg = (...blocks: string[]) =>
    [
      'listeners: [{ port: 1, routes: [{ cluster: c0 }] }]',
      'clusters:',
      ...blocks.flatMap((b, i) => [`  - name: c${i}`, '    hosts: [127.0.0.1:1]', `    ${b}`]),
    ].join('\n');
  const dir = mkdtempSync(join(tmpdir(), 'tripswitch-record-config-'));

  test('each field is checked, the error naming it', () => {
    const ps = problems(
      cfg(
        'record_trace: { file: t.ndjson, sample_rate: 0, max_bytes: 0, max_files: -1, colour: 1 }',
        'record_trace: { sample_rate: 1.5 }',
        'record_trace: { file: "" }',
      ),
    );
    const got = ps.map((p) => `${p.path}: ${p.message}`);
    for (const want of [
      /^\/clusters\/0\/record_trace\/sample_rate: must be > 0$/,
      /^\/clusters\/0\/record_trace\/max_bytes: must be >= 1$/,
      /^\/clusters\/0\/record_trace\/max_files: must be >= 0$/,
      /^\/clusters\/0\/record_trace\/colour: unknown field "colour"/,
      /^\/clusters\/1\/record_trace\/sample_rate: must be <= 1$/,
      /^\/clusters\/1\/record_trace: .*file/,
      /^\/clusters\/2\/record_trace\/file: must NOT have fewer than 1 characters$/,
    ])
      assert.ok(
        got.some((g) => want.test(g)),
        `${want} in:\n${got.join('\n')}`,
      );
  });

  test('a file relative to the config directory, a missing directory, one file per cluster, no breaker', () => {
    let parsed = parseConfig(cfg('record_trace: { file: a.ndjson }'), 't.yaml', { baseDir: dir });
    assert.equal(parsed.clusters[0]!.record_trace!.file, join(dir, 'a.ndjson'));
    try {
      parsed = parseConfig(
        cfg(
          'record_trace: { file: nowhere/a.ndjson }',
          'record_trace: { file: a.ndjson }',
          'record_trace: { file: ./a.ndjson }',
          'breaker: { enabled: false }\n    record_trace: { file: b.ndjson }',
        ),
        't.yaml',
        { baseDir: dir },
      );
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(isConfigError(err));
      assert.deepEqual(
        err.problems.map((p) => `${p.path} (line ${p.line}): ${p.message}`),
        [
          `/clusters/0/record_trace/file (line 5): directory ${join(dir, 'nowhere')} does not exist`,
          `/clusters/2/record_trace/file (line 11): ${join(dir, 'a.ndjson')} is also the record_trace file of cluster "c1" (one file per cluster)`,
          `/clusters/3/record_trace (line 15): records the breaker's calls, which breaker.enabled: false turns off`,
        ],
      );
    }
  });
});

#!/usr/bin/env node
// Bytes allocated per call on the hot paths, per library (optional; not part of `npm run bench`).
//
//   node bench/hot-path-check.mjs [--filter <regex>] [--max-added <bytes>]
//
// Each case runs in its own process with a 64 MB young generation, so N calls fit without a
// scavenge: heapUsed growth over N calls / N = bytes allocated per call. A run during which a GC
// happened is discarded and repeated with fewer calls. "added" subtracts the bare `await fn()` case, which goes
// through the same wrapper. With --max-added, exits 1 when a tripswitch case allocates more than
// that per call (a regression check for the breaker's owner).
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const cases = [
  ['baseline', 'success.await'],
  ['tripswitch', 'success.consecutive'],
  ['tripswitch', 'success.count'],
  ['tripswitch', 'success.time'],
  ['cockatiel', 'success.consecutive'],
  ['cockatiel', 'success.time'],
  ['opossum', 'success.rolling'],
  ['baseline', 'open.await-rejected'],
  ['tripswitch', 'open.execute'],
  ['cockatiel', 'open.execute'],
  ['opossum', 'open.execute'],
  ['baseline', 'permit.noop'],
  ['tripswitch', 'permit.try-acquire'],
  ['tripswitch', 'composite.breaker-timeout'],
  ['cockatiel', 'composite.breaker-timeout'],
  ['opossum', 'composite.breaker-timeout'],
  ['tripswitch', 'composite.retry-breaker-timeout'],
  ['cockatiel', 'composite.retry-breaker-timeout'],
];
const baselineFor = (scenario) =>
  scenario.startsWith('permit.')
    ? 'baseline:permit.noop'
    : scenario.startsWith('open.')
      ? 'baseline:open.await-rejected'
      : 'baseline:success.await';

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    filter: { type: 'string' },
    'max-added': { type: 'string' },
  },
});

if (values.child) {
  const [library, scenario] = values.child.split(':');
  process.stdout.write(`@@result ${JSON.stringify(await child(library, scenario))}\n`);
} else {
  await parent();
}

async function child(library, name) {
  const mod = await import(`./cases/${library}.mjs`);
  const reason = mod.unavailable?.(name);
  if (reason) return { skipped: reason };
  const scenario = await mod.scenarios[name]();
  const sync = name.startsWith('permit.');
  let sink;
  const op = sync
    ? () => {
        sink = scenario.call();
      }
    : async () => {
        try {
          sink = await scenario.call();
        } catch (error) {
          sink = error;
        }
      };
  let n = sync ? 200_000 : 20_000;
  let gcs = 0;
  const obs = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  obs.observe({ entryTypes: ['gc'] });
  const flush = () => new Promise((resolve) => setTimeout(resolve, 20)); // gc entries arrive late
  for (let i = 0; i < 50_000; i++) await op(); // optimise first
  for (let attempt = 0; attempt < 8; attempt++) {
    globalThis.gc();
    await flush();
    const seen = gcs;
    const before = process.memoryUsage().heapUsed;
    if (sync) for (let i = 0; i < n; i++) op();
    else for (let i = 0; i < n; i++) await op();
    const after = process.memoryUsage().heapUsed;
    await flush();
    if (gcs === seen) {
      obs.disconnect();
      scenario.dispose?.();
      return { bytes: (after - before) / n, calls: n, sink: typeof sink };
    }
    n = Math.max(1_000, n >> 1); // a heavy allocator: fewer calls so they fit in the young generation
  }
  obs.disconnect();
  return { error: 'a GC ran during every attempt' };
}

async function parent() {
  const run = promisify(execFile);
  const filter = values.filter ? new RegExp(values.filter) : undefined;
  const results = {};
  for (const [library, scenario] of cases) {
    const id = `${library}:${scenario}`;
    if (filter && !filter.test(id) && library !== 'baseline') continue;
    const { stdout } = await run(
      process.execPath,
      [
        '--expose-gc',
        '--min-semi-space-size=64',
        '--max-semi-space-size=64',
        fileURLToPath(import.meta.url),
        '--child',
        id,
      ],
      { cwd: join(here, '..'), timeout: 60_000 },
    );
    const line = stdout.split('\n').find((l) => l.startsWith('@@result '));
    results[id] = line ? JSON.parse(line.slice(9)) : { error: stdout.slice(-300) };
  }
  const out = ['| case | bytes allocated / call | added over its baseline |', '|---|--:|--:|'];
  let over = false;
  const max = values['max-added'] === undefined ? undefined : Number(values['max-added']);
  for (const [id, r] of Object.entries(results)) {
    if (r.skipped || r.error) {
      out.push(`| ${id} | ${r.skipped ? `skipped: ${r.skipped}` : `error: ${r.error}`} | |`);
      continue;
    }
    const base = results[baselineFor(id.split(':')[1])];
    const added = id.startsWith('baseline:') || base?.bytes === undefined ? undefined : r.bytes - base.bytes;
    if (max !== undefined && id.startsWith('tripswitch:') && added > max) over = true;
    out.push(`| ${id} | ${r.bytes.toFixed(1)} | ${added === undefined ? '' : added.toFixed(1)} |`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
  if (over) {
    process.stderr.write(`a tripswitch case allocates more than ${max} bytes per call over its baseline\n`);
    process.exitCode = 1;
  }
}

#!/usr/bin/env node
// `npm run bench`: runs every case in its own process, interleaving rounds, and reports.
//
//   npm run bench                      all cases, 3 rounds
//   npm run bench -- --filter open     only cases whose id matches /open/
//   npm run bench -- --quick           1 round, shorter sampling (a smoke run, not for publishing)
//   npm run bench -- --rounds 7 --cpu-ms 400
//   npm run bench -- --stat min        lowest round instead of the median (a machine under load)
//
// Writes bench/results/latest.md and bench/results/latest.json and prints the Markdown to stdout;
// progress goes to stderr.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { sections } from './cases/index.mjs';
import { environment } from './lib/env.mjs';
import { aggregate, compare, fmtBytes, fmtNs, markdown } from './lib/report.mjs';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
process.chdir(root);

const args = process.argv.slice(2);
const { values } = parseArgs({
  args,
  options: {
    rounds: { type: 'string' },
    filter: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'cpu-ms': { type: 'string' },
    'warm-ms': { type: 'string' },
    reps: { type: 'string' },
    batch: { type: 'string', default: '1024' },
    'no-redis': { type: 'boolean', default: false },
    stat: { type: 'string', default: 'median' },
  },
});
const options = {
  args,
  rounds: Number(values.rounds ?? (values.quick ? 1 : 5)),
  cpuMs: Number(values['cpu-ms'] ?? (values.quick ? 150 : 250)),
  warmMs: Number(values['warm-ms'] ?? (values.quick ? 80 : 150)),
  reps: Number(values.reps ?? (values.quick ? 3 : 5)),
  batch: Number(values.batch),
  stat: values.stat === 'min' ? 'min' : 'median',
};
const filter = values.filter ? new RegExp(values.filter) : undefined;
const log = (s) => process.stderr.write(`${s}\n`);

checkBuild();

const env = environment();
const ids = sections.flatMap((s) => s.cases.map(([id]) => id)).filter((id) => !filter || filter.test(id));
const rounds = Object.fromEntries(ids.map((id) => [id, []]));
const started = performance.now();

// Every "added" number depends on a baseline, so baselines run twice per round (first and last),
// which halves the weight of one disturbed baseline process.
const baselines = ids.filter((id) => id.startsWith('baseline:'));
for (let round = 1; round <= options.rounds; round++) {
  for (const id of [...ids, ...baselines]) {
    if (rounds[id].some((r) => r.skipped)) continue; // a skip does not change between rounds
    const r = await runCase(id);
    rounds[id].push(r);
    log(`[round ${round}/${options.rounds}] ${id.padEnd(46)} ${describe(id, r)}`);
  }
}

const results = Object.fromEntries(ids.map((id) => [id, aggregate(id, rounds[id], options.stat)]));
const redis = values['no-redis'] ? { skipped: 'disabled with --no-redis' } : await redisSection();
const overload =
  filter && !filter.test('overload')
    ? { skipped: `not selected by --filter ${values.filter}` }
    : await scriptSection('overload.mjs', 'the overload simulation');
env.loadavgEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
const elapsedMs = performance.now() - started;
const comparison = compare(results);
const md = markdown({ env, results, comparison, redis, overload, options, elapsedMs });

mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(join(here, 'results', 'latest.md'), md);
writeFileSync(
  join(here, 'results', 'latest.json'),
  `${JSON.stringify({ env, options, results, comparison, rounds, redis, overload }, null, 2)}\n`,
);
process.stdout.write(`${md}\n`);
log(`wrote bench/results/latest.md and latest.json in ${(elapsedMs / 1000).toFixed(0)} s`);

async function runCase(id) {
  const [library, scenario] = id.split(':');
  const argv = [
    '--expose-gc',
    join(here, 'case.mjs'),
    library,
    scenario,
    '--cpu-ms',
    String(options.cpuMs),
    '--warm-ms',
    String(options.warmMs),
    '--reps',
    String(options.reps),
    '--batch',
    String(options.batch),
  ];
  try {
    const { stdout } = await run(process.execPath, argv, { timeout: 90_000, maxBuffer: 16 * 2 ** 20 });
    return parseResult(stdout) ?? { error: `no result line; stdout: ${stdout.slice(-300)}` };
  } catch (error) {
    return (
      parseResult(error.stdout ?? '') ?? {
        error: `${error.message}\n${String(error.stderr ?? '').slice(-500)}`,
      }
    );
  }
}

function parseResult(stdout) {
  const line = stdout.split('\n').find((l) => l.startsWith('@@result '));
  return line ? JSON.parse(line.slice('@@result '.length)) : undefined;
}

function describe(id, r) {
  if (r.skipped) return `skipped: ${r.skipped}`;
  if (r.error) return `ERROR: ${r.error.split('\n')[0]}`;
  const v = id.includes(':heap.') ? fmtBytes(r.bytes) : fmtNs(r.ns);
  return r.problems?.length ? `${v}  INVALID: ${r.problems.join('; ')}` : v;
}

/** Warn when the compiled core is missing or older than its sources: the bench imports dist. */
function checkBuild() {
  const dist = join(root, 'packages/core/dist');
  if (!existsSync(join(dist, 'index.js'))) {
    log('packages/core/dist is missing: run `npm run build` first.');
    process.exit(1);
  }
  // tsc -b rewrites only the outputs that changed, so compare each source with its own output.
  const src = join(root, 'packages/core/src');
  const stale = readdirSync(src).filter((f) => {
    if (!f.endsWith('.ts') || f.endsWith('.d.ts') || f.endsWith('.test.ts')) return false;
    const out = join(dist, f.replace(/\.ts$/, '.js'));
    return !existsSync(out) || statSync(join(src, f)).mtimeMs > statSync(out).mtimeMs;
  });
  if (stale.length)
    log(`warning: packages/core/src is newer than dist (${stale.join(', ')}); run \`npm run build\`.`);
}

/**
 * The optional Redis section (issue 5). Runs bench/redis.mjs, which the Redis package provides, only
 * when it exists, @tripswitch/redis is built, and a Redis server answers PING on 127.0.0.1:6379.
 */
async function redisSection() {
  const script = join(here, 'redis.mjs');
  if (!existsSync(script))
    return { skipped: 'bench/redis.mjs is not present (the Redis package provides it).' };
  if (!existsSync(join(root, 'packages/redis/dist/index.js')))
    return { skipped: 'packages/redis/dist is missing; run `npm run build`.' };
  if (!(await redisAnswers())) return { skipped: 'no Redis server answered PING on 127.0.0.1:6379.' };
  log('running bench/redis.mjs ...');
  try {
    const { stdout } = await run(process.execPath, [script, ...(values.quick ? ['--quick'] : [])], {
      timeout: 120_000,
      maxBuffer: 16 * 2 ** 20,
    });
    const jsonLine = stdout.split('\n').find((l) => l.startsWith('@@json '));
    const text = stdout
      .split('\n')
      .filter((l) => !l.startsWith('@@json '))
      .join('\n')
      .trim();
    return {
      markdown: text || '(bench/redis.mjs printed nothing)',
      json: jsonLine && JSON.parse(jsonLine.slice(7)),
    };
  } catch (error) {
    return { skipped: `bench/redis.mjs failed: ${error.message.split('\n')[0]}` };
  }
}

/** A section printed by a script of its own (Markdown, plus one `@@json` line). */
async function scriptSection(file, what) {
  log(`running bench/${file} ...`);
  try {
    const { stdout } = await run(process.execPath, [join(here, file), ...(values.quick ? ['--quick'] : [])], {
      timeout: 120_000,
      maxBuffer: 16 * 2 ** 20,
    });
    const jsonLine = stdout.split('\n').find((l) => l.startsWith('@@json '));
    const text = stdout
      .split('\n')
      .filter((l) => !l.startsWith('@@json '))
      .join('\n')
      .trim();
    return { markdown: text || `(${what} printed nothing)`, json: jsonLine && JSON.parse(jsonLine.slice(7)) };
  } catch (error) {
    return { skipped: `bench/${file} failed: ${error.message.split('\n')[0]}` };
  }
}

function redisAnswers() {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: 6379 });
    let reply = '';
    const done = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      reply += d;
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

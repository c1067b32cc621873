#!/usr/bin/env node
// `npm run mutation -- <module> [--concurrency N] [--tests a.test,b.test] [--ranges 10-12,40:4-40:30]`:
// StrykerJS on one core
// module (packages/core/src/<module>.ts, with its parts <module>-*.ts when it is split by job, as
// breaker.ts is), judged by its own compiled tests (<module>.test.js and <module>.*.test.js). On
// demand only: slow, and not part of CI or `npm test`. `--ranges` mutates only those lines (or
// line:column spans, Stryker's mutate-range syntax) of the module, e.g. to re-run the survivors of a
// whole-file run after adding tests; a range in one of the parts names its file:
// `--ranges breaker-core.ts:120-140`.
// Writes reports/mutation/<module>.html and .json; prints survivors and the score.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    concurrency: { type: 'string', default: '2' },
    tests: { type: 'string', default: '' },
    ranges: { type: 'string', default: '' },
  },
});
const modules = readdirSync('packages/core/src')
  .filter(
    (f) =>
      f.endsWith('.ts') &&
      !f.includes('.test') &&
      existsSync(`packages/core/src/${f.replace(/\.ts$/, '.test.ts')}`),
  )
  .map((f) => f.replace(/\.ts$/, ''));
const mod = positionals[0]?.replace(/\.ts$/, '');
if (!mod || !existsSync(`packages/core/src/${mod}.ts`)) {
  console.error(
    `usage: npm run mutation -- <module> [--concurrency N] [--tests a.test,...] [--ranges 10-12,part.ts:10-12,...]\nmodules with tests: ${modules.join(', ')}`,
  );
  process.exit(2);
}
const ranges = values.ranges
  .split(',')
  .filter(Boolean)
  // `120-140` is a range of <module>.ts; `breaker-core.ts:120-140` one of that part.
  .map((r) => (/^[\w.-]+\.ts:/.test(r) ? `packages/core/src/${r}` : `packages/core/src/${mod}.ts:${r}`));
const mutate = ranges.length > 0 ? ['--mutate', ranges.join(',')] : [];
const r = spawnSync('npx', ['stryker', 'run', 'stryker.config.mjs', ...mutate], {
  stdio: 'inherit',
  env: {
    ...process.env,
    TRIPSWITCH_MUTATE: mod,
    TRIPSWITCH_MUTATE_CONCURRENCY: values.concurrency,
    TRIPSWITCH_MUTATE_TESTS: values.tests,
  },
});
process.exit(r.status ?? 1);

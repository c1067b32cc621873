#!/usr/bin/env node
// `npm run mutation -- <module> [--concurrency N] [--tests a.test,b.test]`: StrykerJS on one core
// module (packages/core/src/<module>.ts), judged by its own compiled tests (<module>.test.js and
// <module>.*.test.js). On demand only: slow, and not part of CI or `npm test`.
// Writes reports/mutation/<module>.html and .json; prints survivors and the score.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    concurrency: { type: 'string', default: '2' },
    tests: { type: 'string', default: '' },
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
    `usage: npm run mutation -- <module> [--concurrency N]\nmodules with tests: ${modules.join(', ')}`,
  );
  process.exit(2);
}
const r = spawnSync('npx', ['stryker', 'run', 'stryker.config.mjs'], {
  stdio: 'inherit',
  env: {
    ...process.env,
    TRIPSWITCH_MUTATE: mod,
    TRIPSWITCH_MUTATE_CONCURRENCY: values.concurrency,
    TRIPSWITCH_MUTATE_TESTS: values.tests,
  },
});
process.exit(r.status ?? 1);

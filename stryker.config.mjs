// StrykerJS, on demand only (not in CI, not in `npm test`): `npm run mutation -- <module>`.
// One core module at a time, judged by that module's own compiled tests. See docs/testing.md.
//
// The command runner has no per-test coverage, so every surviving mutant runs the module's whole
// test set: keep that set fast. `tsc -b packages/core` compiles the instrumented sources once per sandbox;
// each mutant is then selected at run time through __STRYKER_ACTIVE_MUTANT__.
import { existsSync, readdirSync } from 'node:fs';

const mod = process.env.TRIPSWITCH_MUTATE;
if (!mod) throw new Error('stryker.config.mjs: run it through `npm run mutation -- <module>`');
const src = 'packages/core/src';
if (!existsSync(`${src}/${mod}.ts`)) throw new Error(`no such core module: ${src}/${mod}.ts`);
// write-queue.ts -> write-queue.test.js, write-queue.*.test.js (model, property tests ...).
const extra = (process.env.TRIPSWITCH_MUTATE_TESTS ?? '').split(',').filter(Boolean);
const rank = (f) => (f === `${mod}.test` ? 0 : /\.(model|property)\.test$/.test(f) ? 2 : 1);
const tests = readdirSync(src)
  .filter((f) => f === `${mod}.test.ts` || (f.startsWith(`${mod}.`) && f.endsWith('.test.ts')))
  .map((f) => f.replace(/\.ts$/, ''))
  // The module's own test file first, model and property tests (the slow ones) last.
  .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
  .concat(extra)
  .map((f) => `packages/core/dist/${f}.js`);
if (tests.length === 0) throw new Error(`no tests for ${mod}: expected ${src}/${mod}.test.ts`);
// A module split by job into parts (breaker.ts, the public entry, and breaker-core.ts,
// breaker-options.ts ...) is mutated as a whole and judged by the module's tests: the parts have
// no tests of their own, and the guarantees the tests pin span them.
const parts = readdirSync(src)
  .filter((f) => f.startsWith(`${mod}-`) && f.endsWith('.ts') && !f.includes('.test'))
  .sort()
  .map((f) => `${src}/${f}`);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'command',
  // One `node --test` per file, chained with &&: a mutant killed by the first file does not wait
  // for the others (most are killed by the module's own test file, in a fraction of the set's time).
  commandRunner: { command: tests.map((t) => `node --test --test-reporter=dot ${t}`).join(' && ') },
  buildCommand: 'npx tsc -b packages/core',
  mutate: [`${src}/${mod}.ts`, ...parts],
  coverageAnalysis: 'off',
  concurrency: Number(process.env.TRIPSWITCH_MUTATE_CONCURRENCY ?? 2),
  timeoutMS: 5_000,
  timeoutFactor: 3,
  // Only core is needed in the sandbox (node_modules is linked, not copied).
  ignorePatterns: [
    'packages/*',
    '!packages/core',
    'packages/core/dist',
    'bench',
    'docs',
    'artifacts',
    'reports',
    '.bench-tmp',
    'scripts/smoke',
  ],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${mod}.html` },
  jsonReporter: { fileName: `reports/mutation/${mod}.json` },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true, reportMutants: true },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
  thresholds: { high: 85, low: 70, break: null },
};

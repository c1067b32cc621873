#!/usr/bin/env node
// Runs every compiled test file with node's test runner. Node 20's `--test` has no glob support,
// so the file list is collected here. Pass package names to narrow: `node scripts/run-tests.mjs core`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const only = process.argv.slice(2);
const files = [];
const walk = (dir) => {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.test.js')) files.push(p);
  }
};
for (const pkg of readdirSync('packages')) {
  if (only.length && !only.includes(pkg)) continue;
  const dist = join('packages', pkg, 'dist');
  if (existsSync(dist)) walk(dist);
}
files.sort();
if (files.length === 0) {
  console.error('no test files found under packages/*/dist; did `tsc -b` run?');
  process.exit(1);
}
const tap = join(mkdtempSync(join(tmpdir(), 'tripswitch-test-')), 'report.tap');
const args = [
  '--test',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tap}`,
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 1}`,
  ...files,
];
// A test file whose process never exits (a handle left open after a timeout) would hold the runner,
// and CI, forever: the whole run gets a deadline (TEST_DEADLINE_S, default 900 s; ~3 min is usual).
const deadline = Number(process.env.TEST_DEADLINE_S ?? 900);
const r = spawnSync(process.execPath, args, {
  stdio: 'inherit',
  timeout: deadline * 1000,
  killSignal: 'SIGKILL',
});
if (r.error?.code === 'ETIMEDOUT')
  console.log(
    `\nrun-tests: the suite did not finish within ${deadline} s (a test file that never exits?); killed`,
  );
// A plain closing line, read from the TAP summary, so the result is unambiguous in any log.
const report = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
const count = (k) => Number(report.match(new RegExp(`^# ${k} (\\d+)$`, 'm'))?.[1] ?? 0);
// CI installs every tool the suite uses, so there a skip means something was not tested: it fails
// the run, naming the skipped tests (their reasons say which tool is missing).
const skipped = count('skipped');
const ci = process.env.CI === 'true' || process.env.CI === '1';
if (ci && skipped > 0) {
  const lines = report.split('\n').filter((l) => /^\s*ok \d+ .*# SKIP/.test(l));
  console.log(`\nCI=${process.env.CI}: ${skipped} test(s) skipped, which fails the run:`);
  for (const l of lines) console.log(`  ${l.trim()}`);
}
// The failures again, just above the closing line: a CI log is often read from its end only, and
// the spec reporter's account of a failure is hundreds of lines up. Leaf failures only (a suite
// whose subtests failed adds nothing), without stack frames, at most ~60 lines each.
const digest = [];
const lines = report.split('\n');
for (let k = 0; k < lines.length; k++) {
  const m = /^(\s*)not ok \d+ - (.*)$/.exec(lines[k]);
  if (!m) continue;
  const block = [];
  for (let j = k + 1; j < lines.length && lines[j].trim() !== '...'; j++) block.push(lines[j]);
  if (block.some((l) => l.includes("failureType: 'subtestsFailed'"))) continue;
  const pad = m[1].length + 2;
  const kept = [];
  let inStack = false;
  for (const l of block) {
    const t = l.slice(pad);
    if (/^(stack|duration_ms|---)/.test(t.trim()) && !t.startsWith(' ')) inStack = t.startsWith('stack');
    else if (!t.startsWith(' ')) inStack = false;
    if (inStack || t.startsWith('duration_ms') || t.startsWith('---')) continue;
    kept.push(`    ${t}`);
  }
  digest.push(`  ${m[2]}`, ...kept.slice(0, 60));
}
if (digest.length > 0) console.log(`\nfailures (from the TAP report):\n${digest.join('\n')}\n`);
console.log(`${count('pass')} passed, ${count('fail') + count('cancelled')} failed, ${skipped} skipped`);
const status = r.status ?? 1;
process.exit(status !== 0 ? status : ci && skipped > 0 ? 1 : 0);

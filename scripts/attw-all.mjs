#!/usr/bin/env node
// @arethetypeswrong/cli on every workspace package, packed as it would be published. The packages
// are ESM-only, so the esm-only profile: node16 from ESM and bundler resolution must be clean;
// CommonJS callers use require(esm) (checked at run time by packages/core/src/consumers.test.ts).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const attw = resolve('node_modules', '.bin', 'attw');
let bad = 0;
for (const pkg of readdirSync('packages')) {
  const dir = join('packages', pkg);
  const { name, private: priv } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (priv) continue;
  const r = spawnSync(
    attw,
    ['--pack', '.', '--profile', 'esm-only', '--format', 'ascii', '--no-emoji', '--no-color'],
    {
      cwd: dir,
      encoding: 'utf8',
    },
  );
  if (r.status === 0) console.log(`${name}: attw clean (esm-only profile)`);
  else {
    bad++;
    console.log(`${name}: attw found problems\n${r.stdout}${r.stderr}`);
  }
}
process.exit(bad ? 1 : 0);

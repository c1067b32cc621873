#!/usr/bin/env node
// publint every workspace package; exits non-zero on any error or warning.
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import { readFileSync, readdirSync } from 'node:fs';

let bad = 0;
for (const pkg of readdirSync('packages')) {
  const dir = `packages/${pkg}`;
  const json = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8'));
  const { messages } = await publint({ pkgDir: dir, level: 'warning', strict: true });
  for (const m of messages) {
    bad++;
    console.log(`${json.name}: ${m.type}: ${formatMessage(m, json)}`);
  }
  if (messages.length === 0) console.log(`${json.name}: publint clean`);
}
process.exit(bad ? 1 : 0);

// What the numbers were measured on, printed with every report.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

const version = (pkgJson) => {
  try {
    return JSON.parse(readFileSync(pkgJson, 'utf8')).version;
  } catch {
    return 'not installed';
  }
};

const git = (...args) => {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
};

export function environment() {
  const cpus = os.cpus();
  const dirty = git('status', '--porcelain', '--', 'packages/core/src') !== '';
  return {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: `${cpus[0]?.model ?? 'unknown'} (${cpus.length} logical cores)`,
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    loadavgStart: os.loadavg().map((x) => Number(x.toFixed(2))),
    versions: {
      tripswitch: `${version('packages/core/package.json')} @ ${git('rev-parse', '--short', 'HEAD') || 'unknown'}${dirty ? ' + uncommitted core changes' : ''}`,
      cockatiel: version('node_modules/cockatiel/package.json'),
      opossum: version('node_modules/opossum/package.json'),
      mitata: version('node_modules/mitata/package.json'),
    },
  };
}

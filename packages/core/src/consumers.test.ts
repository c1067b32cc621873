// The packages are ESM-only. CommonJS callers load them through require(esm), unflagged from Node
// 20.19 and 22.12 (hence `engines`), which fails if any module in an entry's graph uses top-level
// await. Each published entry of every workspace package is required from a .cjs file and imported
// from a .mjs file, in a bare child process resolving the package by name as a consumer would.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const packagesDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Entry {
  /** What a consumer writes: `tripswitch`, `tripswitch/fetch`, `@tripswitch/redis`. */
  specifier: string;
  /** The package's directory in the workspace. */
  dir: string;
}

/** Every `exports` subpath of every workspace package that points at JavaScript. */
function entries(): Entry[] {
  const out: Entry[] = [];
  for (const d of readdirSync(packagesDir)) {
    let pkg: { name: string; private?: boolean; exports?: Record<string, unknown> };
    try {
      pkg = JSON.parse(readFileSync(join(packagesDir, d, 'package.json'), 'utf8'));
    } catch {
      continue;
    }
    if (pkg.private || !pkg.exports) continue;
    for (const [sub, target] of Object.entries(pkg.exports)) {
      const js = typeof target === 'string' ? target : (target as { default?: string }).default;
      if (!js?.endsWith('.js')) continue;
      out.push({
        specifier: sub === '.' ? pkg.name : `${pkg.name}${sub.slice(1)}`,
        dir: join(packagesDir, d),
      });
    }
  }
  return out;
}

// A consumer project: node_modules links to the workspace packages, so resolution goes through
// each package.json `exports` as it would from the registry. Node follows the links to their real
// paths, where the packages' own dependencies resolve from the repo's node_modules.
const project = mkdtempSync(join(tmpdir(), 'tripswitch-consumer-'));
after(() => rmSync(project, { recursive: true, force: true }));
const all = entries();
for (const e of all) {
  const name = e.specifier
    .split('/')
    .slice(0, e.specifier.startsWith('@') ? 2 : 1)
    .join('/');
  const link = join(project, 'node_modules', name);
  mkdirSync(dirname(link), { recursive: true });
  try {
    symlinkSync(e.dir, link, 'dir');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

function run(file: string, source: string): { status: number | null; stdout: string; stderr: string } {
  writeFileSync(join(project, file), source);
  const r = spawnSync(process.execPath, [file], { cwd: project, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('package metadata', () => {
  it('engines says exactly what CI tests: the Node majors .ci/run runs the suite on, in every package', () => {
    const ci = readFileSync(join(packagesDir, '..', '.ci', 'run'), 'utf8');
    const extra = ci
      .match(/for major in ([\d ]+); do suite/)?.[1]
      ?.trim()
      .split(/\s+/);
    assert.ok(extra, '.ci/run names the extra Node majors');
    // The suite also runs on the machine's Node, 20 (labelled node20 in .ci/run).
    const majors = ['20', ...extra].sort();
    for (const d of ['..', ...readdirSync(packagesDir).map((p) => join('packages', p))]) {
      const file = join(packagesDir, '..', d, 'package.json');
      let engines: string | undefined;
      try {
        engines = JSON.parse(readFileSync(file, 'utf8')).engines?.node;
      } catch {
        continue;
      }
      assert.ok(engines, `${d}/package.json has engines.node`);
      const ranges = engines.split('||').map((r) => r.trim());
      assert.deepEqual(ranges.map((r) => r.match(/^\^(\d+)\./)?.[1]).sort(), majors, `${d}: ${engines}`);
    }
  });

  it('no package points at a made-up place (repository, homepage, bugs)', () => {
    for (const d of readdirSync(packagesDir)) {
      const text = readFileSync(join(packagesDir, d, 'package.json'), 'utf8');
      assert.doesNotMatch(text, /example\.(invalid|com|org)|localhost/, `packages/${d}/package.json`);
    }
  });
});

describe('API reference (TypeDoc, npm run docs)', () => {
  it("covers every published entry: each package's typedoc.json lists the sources of its exports", () => {
    for (const d of readdirSync(packagesDir)) {
      const dir = join(packagesDir, d);
      let pkg: { private?: boolean; exports?: Record<string, unknown> };
      try {
        pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      } catch {
        continue;
      }
      if (pkg.private || !pkg.exports) continue;
      let listed = ['src/index.ts']; // typedoc.json's packageOptions default
      try {
        listed = JSON.parse(readFileSync(join(dir, 'typedoc.json'), 'utf8')).entryPoints;
      } catch {}
      const wanted = Object.values(pkg.exports)
        .map((t) => (typeof t === 'string' ? t : (t as { default?: string }).default))
        .filter((t): t is string => t?.endsWith('.js') === true)
        .map((t) => t.replace('./dist/', 'src/').replace(/\.js$/, '.ts'));
      assert.deepEqual([...listed].sort(), wanted.sort(), `packages/${d}/typedoc.json entryPoints`);
    }
  });
});

describe('consumers load every published entry by name', () => {
  it('finds the entries (the test would pass vacuously otherwise)', () => {
    const names = all.map((e) => e.specifier);
    for (const s of ['tripswitch', 'tripswitch/testing', 'tripswitch/fetch', '@tripswitch/redis'])
      assert.ok(names.includes(s), `${s} in ${names.join(', ')}`);
  });

  it('CommonJS: require() from a .cjs file (require(esm)) gives the exports, and the process exits', () => {
    const src = `
      const out = {};
      for (const s of ${JSON.stringify(all.map((e) => e.specifier))}) out[s] = Object.keys(require(s)).length;
      const { circuitBreaker, isCircuitOpenError } = require('tripswitch');
      const b = circuitBreaker({ trip: { kind: 'consecutive', threshold: 1 } });
      b.execute(() => { throw new Error('x'); }).catch(() => b.execute(() => 1)).catch((e) => {
        out.rejected = isCircuitOpenError(e);
        console.log(JSON.stringify(out));
      });
    `;
    const r = run('consumer.cjs', src);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, number | boolean>;
    for (const e of all)
      assert.ok((out[e.specifier] as number) > 0, `${e.specifier} has exports: ${r.stdout}`);
    assert.equal(out.rejected, true);
  });

  it('ESM: import from a .mjs file gives the same exports', () => {
    const src = `
      const out = {};
      for (const s of ${JSON.stringify(all.map((e) => e.specifier))}) out[s] = Object.keys(await import(s)).length;
      console.log(JSON.stringify(out));
    `;
    const esm = run('consumer.mjs', src);
    assert.equal(esm.status, 0, esm.stderr);
    const cjs = run(
      'count.cjs',
      `const o = {}; for (const s of ${JSON.stringify(all.map((e) => e.specifier))}) o[s] = Object.keys(require(s)).length; console.log(JSON.stringify(o));`,
    );
    assert.equal(cjs.status, 0, cjs.stderr);
    // require(esm) returns the namespace object: the same keys (plus `module.exports` interop,
    // which only appears when a module exports that name).
    assert.deepEqual(JSON.parse(cjs.stdout), JSON.parse(esm.stdout));
  });
});

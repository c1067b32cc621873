// The entries meant to run anywhere (browsers, workers, Bun, Deno) must not import `node:*`: one
// static import of a builtin and the module fails to load in a browser. The Bun, Deno and Chromium
// smoke suites (scripts/smoke) run them for real; this checks the module graph on every test run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const dist = dirname(fileURLToPath(import.meta.url));
const pkg = JSON.parse(readFileSync(join(dist, '..', 'package.json'), 'utf8')) as {
  exports: Record<string, string | { default: string }>;
};
const target = (sub: string) => {
  const t = pkg.exports[sub];
  assert.ok(t && typeof t === 'object', `exports["${sub}"]`);
  return resolve(dist, '..', t.default);
};

/** Portable entries: everything but `./undici` (an undici interceptor) and `./file-store` (node:fs). */
const portable = ['.', './testing', './fetch', './chaos', './exporter'];

/** Every specifier a module imports, statically or with `import()` (comments ignored). */
function specifiers(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName);
}

/** The module graph of `file` (relative imports followed), with the outside specifiers it reaches. */
function graph(file: string): { files: Set<string>; external: Map<string, string> } {
  const files = new Set<string>();
  const external = new Map<string, string>();
  const visit = (f: string) => {
    if (files.has(f)) return;
    files.add(f);
    for (const s of specifiers(readFileSync(f, 'utf8'))) {
      if (s.startsWith('.')) visit(resolve(dirname(f), s));
      else external.set(s, f);
    }
  };
  visit(file);
  return { files, external };
}

const builtin = (s: string) => s.startsWith('node:') || builtinModules.includes(s.split('/')[0]!);

describe('portable entries', () => {
  it('the import scan sees imports (it would pass vacuously otherwise)', () => {
    const g = graph(target('./file-store'));
    assert.ok([...g.external.keys()].some(builtin), [...g.external.keys()].join(', '));
    assert.ok(graph(target('.')).files.size > 10);
  });

  for (const sub of portable) {
    it(`${sub === '.' ? 'tripswitch' : `tripswitch${sub.slice(1)}`} imports no Node builtin and no package`, () => {
      const { external } = graph(target(sub));
      const found = [...external].map(([s, f]) => `${s} (in ${f.slice(dist.length + 1)})`);
      assert.deepEqual(found, []);
    });
  }

  it('without process.getBuiltinModule (no diagnostics channels) a breaker still trips, rejects and closes', () => {
    // A bare process where the runtime offers no builtins, as in a browser: channels are silent.
    const script = `
      delete process.getBuiltinModule;
      const { circuitBreaker, isCircuitOpenError } = await import(${JSON.stringify(pathToFileURL(target('.')).href)});
      const { TestClock } = await import(${JSON.stringify(pathToFileURL(target('./testing')).href)});
      const clock = new TestClock();
      const b = circuitBreaker({ clock, trip: { kind: 'consecutive', threshold: 1 }, openDuration: 1000 });
      await b.execute(() => { throw new Error('x'); }).catch(() => {});
      const rejected = await b.execute(() => 1).catch((e) => isCircuitOpenError(e));
      clock.advance(1000);
      const probe = await b.execute(() => 'ok');
      console.log(JSON.stringify({ rejected, probe, state: b.state }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { rejected: true, probe: 'ok', state: 'closed' });
  });
});

#!/usr/bin/env node
// Compiles a consumer project against the published types, as a user gets them: every workspace
// package is packed (npm pack) and installed from its tarball into a fresh project, which is then
// type-checked with `strict` and `skipLibCheck: false` by each supported TypeScript (installed into
// the tool cache by scripts/tool-cache.mjs, not into the repo):
//
//   defaults         module nodenext, no lib, no types: each compiler's defaults, every entry
//   node-nodenext    module nodenext, every entry, @types/node (types: ["node"])
//   node-bundler     module preserve + moduleResolution bundler, every entry, @types/node
//   browser-bundler  lib es2022 + dom, no Node types, the entries meant to run in a browser
//   browser-nodenext the same with module nodenext (a browser project type-checked by tsc alone)
//
// Each also compiles the README's first example. Needs `npm run build` first.
// CONSUMER_TS=5.4,7 narrows the compilers; KEEP=1 keeps the project directory for a look.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ensureTool } from './tool-cache.mjs';

/** The oldest supported TypeScript is 5.4: the first with `module: preserve`. */
const versions = (process.env.CONSUMER_TS ?? '5.4,5.9,7').split(',');
/** Entries that must type-check (and, see scripts/smoke, run) without Node: lib dom, no @types/node. */
const browserEntries = ['tripswitch', 'tripswitch/testing', 'tripswitch/fetch', 'tripswitch/chaos'];

const root = resolve(import.meta.dirname ?? join(new URL('.', import.meta.url).pathname), '..');
const work = mkdtempSync(join(tmpdir(), 'tripswitch-consumer-types-'));
const project = join(work, 'project');
mkdirSync(project);

const packages = readdirSync(join(root, 'packages'))
  .map((d) => ({
    dir: join(root, 'packages', d),
    json: JSON.parse(readFileSync(join(root, 'packages', d, 'package.json'), 'utf8')),
  }))
  .filter((p) => !p.json.private);

// 1. Tarballs, exactly what `npm publish` would upload.
const tarballs = join(work, 'tarballs');
mkdirSync(tarballs);
const packed = JSON.parse(
  execFileSync('npm', ['pack', '--json', '--pack-destination', tarballs, ...packages.map((p) => p.dir)], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }),
);
const fileOf = Object.fromEntries(packed.map((p) => [p.name, `file:${join(tarballs, p.filename)}`]));

// 2. The consumer project. Peer dependencies and @types/node at the versions the repo has installed,
// so the install is served from npm's cache. `overrides` makes the packages' dependencies on each
// other resolve to the tarballs rather than to the registry.
const installed = (name) =>
  JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
const peers = new Set(packages.flatMap((p) => Object.keys(p.json.peerDependencies ?? {})));
for (const name of Object.keys(fileOf)) peers.delete(name);
writeFileSync(
  join(project, 'package.json'),
  `${JSON.stringify(
    {
      name: 'consumer',
      private: true,
      type: 'module',
      dependencies: {
        ...fileOf,
        ...Object.fromEntries([...peers].map((n) => [n, installed(n)])),
        '@types/node': installed('@types/node'),
      },
      overrides: fileOf,
    },
    null,
    2,
  )}\n`,
);
execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
  cwd: project,
  stdio: ['ignore', 'inherit', 'inherit'],
});

// 3. Sources: one file importing every entry (a namespace import type-checks its whole .d.ts
// graph), one importing the browser entries, and the README's first example.
const entries = packages.flatMap((p) =>
  Object.entries(p.json.exports ?? {})
    .filter(([, t]) => typeof t === 'object' && t.types)
    .map(([sub]) => (sub === '.' ? p.json.name : `${p.json.name}${sub.slice(1)}`)),
);
const importAll = (list) =>
  `${list.map((s, i) => `import * as m${i} from '${s}';`).join('\n')}\nexport const modules = [${list.map((_, i) => `m${i}`).join(', ')}];\n`;
mkdirSync(join(project, 'src'));
writeFileSync(join(project, 'src', 'all.ts'), importAll(entries));
writeFileSync(join(project, 'src', 'browser.ts'), importAll(browserEntries));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const example = readme.split('## A first example')[1]?.match(/```ts\n([\s\S]*?)```/)?.[1];
if (!example) throw new Error("consumer-types: no ```ts block after '## A first example' in README.md");
writeFileSync(join(project, 'src', 'readme-example.ts'), example);

const base = { strict: true, skipLibCheck: false, noEmit: true, target: 'es2022', lib: ['es2022'] };
const configs = {
  // What `tsc --strict --module nodenext` does with no lib and no types: the compiler's defaults
  // (TypeScript 7 loads no @types/* unless listed; the default lib includes dom).
  defaults: { files: ['all.ts', 'readme-example.ts'], options: { module: 'nodenext', lib: undefined } },
  'node-nodenext': {
    files: ['all.ts', 'readme-example.ts'],
    options: { module: 'nodenext', types: ['node'] },
  },
  'node-bundler': {
    files: ['all.ts', 'readme-example.ts'],
    options: { module: 'preserve', moduleResolution: 'bundler', types: ['node'] },
  },
  'browser-bundler': {
    files: ['browser.ts', 'readme-example.ts'],
    options: { module: 'preserve', moduleResolution: 'bundler', lib: ['es2022', 'dom'], types: [] },
  },
  'browser-nodenext': {
    files: ['browser.ts', 'readme-example.ts'],
    options: { module: 'nodenext', lib: ['es2022', 'dom'], types: [] },
  },
};
for (const [name, c] of Object.entries(configs)) {
  writeFileSync(
    join(project, `tsconfig.${name}.json`),
    `${JSON.stringify({ compilerOptions: { ...base, ...c.options }, files: c.files.map((f) => `src/${f}`) }, null, 2)}\n`,
  );
}

// 4. Every compiler on every config, two at a time (CI has 2 cores; each tsc is single-threaded
// apart from TypeScript 7's checker). Results print in a fixed order.
const jobs = versions.flatMap((v) => {
  const tsc = ensureTool('typescript', v);
  const version = execFileSync(tsc, ['--version'], { encoding: 'utf8' }).trim();
  return Object.keys(configs).map((name) => ({ label: `TypeScript ${v} (${version}) ${name}`, tsc, name }));
});
const compile = (job) =>
  new Promise((done) => {
    const t = performance.now();
    execFile(
      job.tsc,
      ['-p', `tsconfig.${job.name}.json`],
      { cwd: project, maxBuffer: 16 << 20 },
      (err, stdout, stderr) =>
        done({ ...job, ok: !err, ms: Math.round(performance.now() - t), output: `${stdout}${stderr}` }),
    );
  });
const results = new Array(jobs.length);
let next = 0;
await Promise.all(
  [0, 1].map(async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await compile(jobs[i]);
    }
  }),
);
let failures = 0;
for (const r of results) {
  if (r.ok) console.log(`ok    ${r.label} (${r.ms} ms)`);
  else {
    failures++;
    console.log(`FAIL  ${r.label}\n${r.output.replace(/^/gm, '      ')}`);
  }
}
if (process.env.KEEP) console.log(`project kept in ${project}`);
else rmSync(work, { recursive: true, force: true });
console.log(
  failures
    ? `consumer types: ${failures} failed`
    : `consumer types: all passed (${versions.length} TypeScript versions x ${Object.keys(configs).length} configs)`,
);
process.exit(failures ? 1 : 0);

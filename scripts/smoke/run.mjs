#!/usr/bin/env node
// Runs the smoke suite (scripts/smoke/smoke.mjs) on the built core in other runtimes:
//
//   node scripts/smoke/run.mjs [bun] [deno] [chromium] [node]    (default: bun deno chromium)
//
// Bun and Deno come from the npm registry (packages `bun`, `deno`) through the tool cache; Chromium
// is the Debian package at /usr/bin/chromium, driven by playwright-core, loading the built ESM
// files of packages/core/dist from a page with an import map. A local HTTP server on 127.0.0.1
// serves the page and files and plays the upstream for the fetch checks. Needs `npm run build`.
// Exits non-zero if any check fails in any runtime, or a runtime does not answer in time.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve } from 'node:path';
import { ensureTool } from '../tool-cache.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const DEADLINE_MS = 90_000; // per runtime; the checks themselves take well under a second

/** The entries the page maps, from the core's exports map (the portable ones, see consumer-types). */
const core = JSON.parse(readFileSync(join(root, 'packages/core/package.json'), 'utf8'));
const importMap = {
  imports: Object.fromEntries(
    ['.', './fetch', './testing', './chaos'].map((sub) => [
      sub === '.' ? 'tripswitch' : `tripswitch${sub.slice(1)}`,
      `/packages/core/${core.exports[sub].default.replace('./', '')}`,
    ]),
  ),
};
if (!existsSync(join(root, 'packages/core/dist/index.js'))) {
  console.error('smoke: packages/core/dist is missing; run `npm run build` first');
  process.exit(1);
}

// The server: the upstream routes for the fetch checks, and static files for the page.
const hits = new Map();
const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const path = url.pathname;
  hits.set(path, (hits.get(path) ?? 0) + 1);
  if (path === '/favicon.ico') return res.writeHead(204).end();
  if (path === '/ok') return res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  if (path.startsWith('/fail/')) return res.writeHead(503).end('down');
  if (path.startsWith('/flaky/'))
    return hits.get(path) < 3 ? res.writeHead(503).end('down') : res.writeHead(200).end('recovered');
  if (path === '/hits')
    return res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ hits: hits.get(url.searchParams.get('path')) ?? 0 }));
  if (path === '/smoke.html')
    return res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html>
<meta charset="utf-8"><title>tripswitch smoke</title>
<script type="importmap">${JSON.stringify(importMap)}</script>
<script type="module">
  import { smoke } from '/scripts/smoke/smoke.mjs';
  window.__smoke = await smoke(location.origin);
</script>`);
  // Static: only JavaScript under packages/core/dist and scripts/smoke.
  const file = normalize(join(root, path));
  const allowed = [join(root, 'packages/core/dist/'), join(root, 'scripts/smoke/')].some((d) =>
    file.startsWith(d),
  );
  if (allowed && ['.js', '.mjs'].includes(extname(file)) && existsSync(file))
    return res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(file));
  res.writeHead(404).end();
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

/** Runs a runtime binary on cli.mjs; resolves with its parsed JSON line. */
function runCli(cmd, args, env = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').at(-1);
      try {
        if (code !== 0) throw new Error(`exit ${code ?? signal}`);
        resolvePromise(JSON.parse(line));
      } catch (e) {
        reject(new Error(`${cmd} ${args.join(' ')}: ${e.message}\nstdout: ${out}\nstderr: ${err}`));
      }
    });
  });
}

async function runChromium() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (apt-get install chromium)`);
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'tripswitch-smoke-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    timeout: 30_000,
  });
  const problems = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      // The 503s of the fetch checks are logged by the browser as failed loads: expected.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
        problems.push(`console.error: ${m.text()}`);
    });
    await page.goto(`${base}/smoke.html`, { timeout: 30_000 });
    await page.waitForFunction(() => window.__smoke, undefined, { timeout: DEADLINE_MS });
    const result = await page.evaluate(() => window.__smoke);
    const version = context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent));
    result.runtime = `chromium ${version}`;
    if (problems.length)
      result.results.push({ name: 'no page errors', ok: false, error: problems.join('\n') });
    return result;
  } catch (e) {
    throw new Error(`${e.message}${problems.length ? `\n${problems.join('\n')}` : ''}`);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

const runners = {
  node: () => runCli(process.execPath, ['scripts/smoke/cli.mjs', base]),
  bun: () => runCli(ensureTool('bun', '1'), ['scripts/smoke/cli.mjs', base]),
  deno: () =>
    runCli(
      ensureTool('deno', '2'),
      [
        'run',
        '--no-prompt',
        '--allow-net=127.0.0.1',
        `--allow-read=${root}`,
        '--allow-env',
        'scripts/smoke/cli.mjs',
        base,
      ],
      { DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
    ),
  chromium: runChromium,
};
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : ['bun', 'deno', 'chromium'];
for (const w of wanted)
  if (!runners[w]) throw new Error(`smoke: unknown runtime "${w}" (${Object.keys(runners).join(', ')})`);

// One runtime at a time: the machine is small, and the fetch checks count hits per run.
let failed = 0;
for (const name of wanted) {
  const t = performance.now();
  try {
    const { runtime, results } = await runners[name]();
    const ms = Math.round(performance.now() - t);
    const bad = results.filter((r) => !r.ok);
    console.log(
      `${bad.length ? 'FAIL' : 'ok  '}  ${name}: ${runtime} (${results.length - bad.length}/${results.length} checks, ${ms} ms)`,
    );
    for (const r of results)
      console.log(
        `        ${r.ok ? 'ok  ' : 'FAIL'} ${r.name}${r.info ? ` (${r.info})` : ''}${r.ok ? '' : `\n${r.error.replace(/^/gm, '          ')}`}`,
      );
    // Runtimes with node:diagnostics_channel must get the breakers' events there; a page has none.
    const dc = results.find((r) => r.name.startsWith('diagnostics'))?.info ?? '';
    const wantDc = name === 'chromium' ? /silent/ : /published/;
    if (!wantDc.test(dc)) console.log(`        FAIL diagnostics channels: expected ${wantDc} in "${dc}"`);
    if (bad.length || results.length < 5 || !wantDc.test(dc)) failed++;
  } catch (e) {
    failed++;
    console.log(`FAIL  ${name}: ${e.message}`);
  }
}
server.close();
console.log(failed ? `smoke: ${failed} runtime(s) failed` : `smoke: all passed (${wanted.join(', ')})`);
process.exit(failed ? 1 : 0);

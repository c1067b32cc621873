/**
 * The dashboard in headless Chromium (the Debian package at /usr/bin/chromium, driven by
 * playwright-core; no browser is ever downloaded). Skips when Chromium is missing.
 * Keeps a screenshot at artifacts/dashboard.png.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { breakerRegistry } from 'tripswitch';
import { createDashboardHandler } from './index.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
// packages/sidecar/dist/dashboard/ -> repository root
const ARTIFACTS = fileURLToPath(new URL('../../../../artifacts/', import.meta.url));

test('dashboard in headless Chromium: lists breakers, shows a state change within 1 s', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} not installed (apt-get install chromium): browser test skipped`);
    return;
  }
  const registry = breakerRegistry({ defaults: { trip: { kind: 'consecutive', threshold: 3 } } });
  const payments = registry.get('payments');
  const search = registry.get('search');
  const evil = '<img src=x onerror="window.__xss=1">';
  registry.get(evil);
  const dashboard = createDashboardHandler(registry, { intervalMs: 500 });
  const server = createServer((req, res) => {
    if (!dashboard(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const profile = mkdtempSync(join(tmpdir(), 'tripswitch-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport: { width: 1100, height: 560 },
    timeout: 30_000,
  });
  const problems: string[] = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
    });
    await page.goto(`http://127.0.0.1:${port}/dashboard`, { timeout: 10_000 });
    await page.waitForFunction(() => document.querySelectorAll('[data-breaker]').length === 3, undefined, {
      timeout: 5_000,
    });
    const names = await page.$$eval('[data-breaker]', (els) =>
      els.map((e) => e.getAttribute('data-breaker')),
    );
    assert.deepEqual(names, [evil, 'payments', 'search'].sort());
    const states = await page.$$eval('[data-breaker]', (els) => els.map((e) => e.getAttribute('data-state')));
    assert.deepEqual(states, ['closed', 'closed', 'closed']);
    assert.equal(dashboard.clients, 1);

    // The hostile name is text, not markup.
    const evilCard = await page.$$eval(
      '[data-breaker]',
      (els, n) => {
        const card = els.find((e) => e.getAttribute('data-breaker') === n)!;
        return { text: card.querySelector('h2')!.textContent, imgs: document.querySelectorAll('img').length };
      },
      evil,
    );
    assert.deepEqual(evilCard, { text: evil, imgs: 0 });

    // Some traffic so the numbers and chart are not empty.
    for (let i = 0; i < 40; i++) {
      await payments.execute(() => new Promise((r) => setTimeout(r, 1 + (i % 5))));
      await search.execute(() => i).catch(() => {});
    }
    await page.waitForFunction(
      () => {
        const v = document.querySelectorAll('[data-breaker="payments"] .stat .v');
        return v[1]?.textContent === '40';
      },
      undefined,
      { timeout: 2_000 },
    );

    // The page notes (wall clock) when a card's data-state changes, to time the push without
    // Playwright's own polling.
    await page.evaluate(() => {
      const w = window as unknown as { __changes: Record<string, number> };
      w.__changes = {};
      new MutationObserver((records) => {
        for (const r of records) {
          const e = r.target as Element;
          w.__changes[`${e.getAttribute('data-breaker')}=${e.getAttribute('data-state')}`] ??= Date.now();
        }
      }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-state'] });
    });
    const seenAt = (key: string) =>
      page.evaluate((k) => (window as unknown as { __changes: Record<string, number> }).__changes[k], key);

    // State change 1: isolate by hand.
    let wall = Date.now();
    let t0 = performance.now();
    payments.isolate();
    await page.waitForSelector('[data-breaker="payments"][data-state="isolated"]', { timeout: 1_000 });
    const isolateMs = performance.now() - t0;
    t.diagnostic(
      `isolate -> DOM: ${isolateMs.toFixed(1)} ms seen by the test, ${(await seenAt('payments=isolated'))! - wall} ms in the page`,
    );

    // State change 2: failures until the breaker trips (consecutive threshold 3).
    wall = Date.now();
    t0 = performance.now();
    for (let i = 0; i < 3; i++)
      await search
        .execute(() => {
          throw new Error('boom');
        })
        .catch(() => {});
    assert.equal(search.state, 'open');
    await page.waitForSelector('[data-breaker="search"][data-state="open"]', { timeout: 1_000 });
    const tripMs = performance.now() - t0;
    t.diagnostic(
      `trip by failures -> DOM: ${tripMs.toFixed(1)} ms seen by the test, ${(await seenAt('search=open'))! - wall} ms in the page`,
    );
    for (let i = 0; i < 5; i++) await search.execute(() => 1).catch(() => {});
    const badge = await page.textContent('[data-breaker="search"] .badge');
    assert.equal(badge, 'open');

    // A breaker added to the registry shows up (registry 'added' is pushed at once).
    registry.get('inventory');
    await page.waitForSelector('[data-breaker="inventory"][data-state="closed"]', { timeout: 1_000 });
    // Let the chart gather a couple of points, then keep a screenshot.
    await page.waitForTimeout(1_200);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    // The server ends every stream: the page reconnects by itself (retry: 2000).
    dashboard.close();
    assert.equal(dashboard.clients, 0);
    const t1 = performance.now();
    payments.reset();
    await page.waitForSelector('[data-breaker="payments"][data-state="closed"]', { timeout: 6_000 });
    t.diagnostic(`reconnect after server-side close: ${(performance.now() - t1).toFixed(0)} ms`);
    assert.equal(dashboard.clients, 1);

    const xss = await page.evaluate(() => (window as unknown as { __xss?: number }).__xss);
    assert.equal(xss, undefined);
    // The stream being cut shows up as an EventSource error in some Chromium versions; anything
    // else (a CSP refusal, a script error) is a bug.
    const real = problems.filter((p) => !/EventSource|\/dashboard\/events/.test(p));
    assert.deepEqual(real, []);
  } finally {
    await context.close();
    dashboard.close();
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
    rmSync(profile, { recursive: true, force: true });
  }
});

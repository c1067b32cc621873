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
import { TestClock } from 'tripswitch/testing';
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

const waitOpts = { timeout: 15_000, polling: 50 } as const;

test('dashboard in headless Chromium: a real trip and recovery, with reasons, counts, sorting and filter', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} not installed (apt-get install chromium): browser test skipped`);
    return;
  }
  const registry = breakerRegistry({
    defaults: {
      trip: { kind: 'time', windowMs: 10_000, minimumCalls: 10, failureRateThreshold: 0.5 },
      openDuration: 2_000,
    },
  });
  const payments = registry.get('payments');
  const search = registry.get('search');
  const evil = '<img src=x onerror="window.__xss=1">';
  registry.get(evil);
  // Enough breakers that the grid has to be sorted and filtered to be read.
  for (let i = 0; i < 997; i++) registry.get(`svc-${String(i).padStart(3, '0')}`);
  // History before any page connects: the collector follows the breakers from here.
  const dashboard = createDashboardHandler(registry, {
    redact: (e) => String((e as Error).message).replace(/token=\S+/, 'token=***'),
  });
  for (let i = 0; i < 20; i++) await search.execute(() => i);
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
    viewport: { width: 1280, height: 860 },
    timeout: 60_000,
  });
  const problems: string[] = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
    });
    await page.goto(`http://127.0.0.1:${port}/dashboard`, { timeout: 30_000 });
    await page.waitForFunction(
      () => document.querySelectorAll('.tile[data-breaker]').length === 1000,
      undefined,
      waitOpts,
    );
    const summary = await page.textContent('#summary');
    assert.match(summary ?? '', /^1,000 breakers · 0 open/);

    // The hostile name is text, not markup.
    const evilText = await page.$$eval(
      '.tile[data-breaker]',
      (els, n) => els.find((e) => e.getAttribute('data-breaker') === n)!.querySelector('.nm')!.textContent,
      evil,
    );
    assert.equal(evilText, evil);
    assert.equal(await page.evaluate(() => document.querySelectorAll('img').length), 0);

    // Traffic before the page opened is in the numbers (history from the handler's creation).
    await page.click('.tile[data-breaker="search"]');
    await page.waitForFunction(
      () =>
        document.querySelector('#detail[data-breaker="search"] [data-k="success"] .v')?.textContent === '20',
      undefined,
      waitOpts,
    );

    // Filter: one tile left.
    await page.fill('#filter', 'paym');
    await page.waitForFunction(
      () =>
        Array.from(document.querySelectorAll('.tile')).filter((e) => !(e as HTMLElement).hidden).length === 1,
      undefined,
      waitOpts,
    );
    await page.fill('#filter', '');

    // A real trip: 10 successes then 10 failures in the 10 s window -> 50 % -> open.
    for (let i = 0; i < 10; i++) await payments.execute(() => i);
    for (let i = 0; i < 10; i++)
      await payments
        .execute(() => {
          throw new Error(`upstream refused token=s3cr3t (${i})`);
        })
        .catch(() => {});
    assert.equal(payments.state, 'open');
    for (let i = 0; i < 3; i++) await payments.execute(() => 1).catch(() => {});
    await page.click('.tile[data-breaker="payments"]');
    await page.waitForSelector('.tile[data-breaker="payments"][data-state="open"]', waitOpts);
    await page.waitForFunction(
      () => {
        const r = document.querySelector('.tile[data-breaker="payments"] .reason')?.textContent ?? '';
        return /failure-rate: 10\/20 calls failed \(50\.0%\) in the last 10 s · probe (in \d s|due)/.test(r);
      },
      undefined,
      waitOpts,
    );
    // Sorted by error % (the default), the open breaker comes first.
    assert.equal(await page.getAttribute('#grid .tile', 'data-breaker'), 'payments');
    await page.waitForFunction(
      () => {
        const k = (n: string) =>
          document.querySelector(`#detail[data-breaker="payments"] [data-k="${n}"] .v`)?.textContent;
        return k('success') === '10' && k('failure') === '10' && k('rejected') === '3';
      },
      undefined,
      waitOpts,
    );
    const detailText = (await page.textContent('#detail')) ?? '';
    assert.match(detailText, /reason: failure-rate — 10\/20 calls failed \(50\.0%\) in the last 10 s/);
    assert.match(detailText, /last failure: upstream refused token=\*\*\* \(9\)/);
    assert.doesNotMatch(detailText, /s3cr3t/);
    // The charts have axes and a time scale, and an open band.
    assert.ok((await page.$$('#c-rate text')).length >= 10);
    assert.match((await page.textContent('#c-rate')) ?? '', /now.*-1 min/);
    await page.waitForSelector('#c-err rect.st-open', waitOpts);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png') });

    // Sort by name: alphabetical.
    await page.selectOption('#sort', 'name');
    await page.waitForFunction(
      () => document.querySelector('#grid .tile')?.getAttribute('data-breaker')?.startsWith('<img'),
      undefined,
      waitOpts,
    );

    // Recovery: after the open period a probe succeeds and the breaker closes.
    const due = payments.nextAttemptAt!;
    while (Date.now() < due) await new Promise((r) => setTimeout(r, Math.max(10, due - Date.now())));
    await payments.execute(() => 'ok');
    assert.equal(payments.state, 'closed');
    await page.waitForSelector('.tile[data-breaker="payments"][data-state="closed"]', waitOpts);
    await page.waitForFunction(
      () =>
        document.querySelector('.tile[data-breaker="payments"] .reason')?.textContent === '' &&
        document.querySelector('#detail[data-breaker="payments"]')?.getAttribute('data-state') === 'closed' &&
        document.querySelector('#detail [data-k="success"] .v')?.textContent === '11',
      undefined,
      waitOpts,
    );

    // The server ends every stream: the page reconnects by itself (retry: 2000) and resynchronises.
    dashboard.close();
    assert.equal(dashboard.clients, 0);
    // Wait (bounded) for the page's reconnection to reach the server.
    const deadline = Date.now() + 15_000;
    while ((dashboard.clients as number) !== 1) {
      assert.ok(Date.now() < deadline, 'the page did not reconnect within 15 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    // With 1,000 breakers on the page: time from a state change to the DOM (reported, not asserted tight).
    const t0 = performance.now();
    search.isolate();
    await page.waitForSelector('.tile[data-breaker="search"][data-state="isolated"]', waitOpts);
    t.diagnostic(`1,000 breakers: isolate -> DOM ${(performance.now() - t0).toFixed(0)} ms`);

    const xss = await page.evaluate(() => (window as unknown as { __xss?: number }).__xss);
    assert.equal(xss, undefined);
    // The stream being cut shows up as an EventSource error in some Chromium versions; anything
    // else (a CSP refusal, a script error) is a bug.
    const real = problems.filter((p) => !/EventSource|\/dashboard\/events/.test(p));
    assert.deepEqual(real, []);
  } finally {
    await context.close();
    dashboard.dispose();
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
    rmSync(profile, { recursive: true, force: true });
  }
});

test('dashboard in headless Chromium: five minutes of history from before the page opened (docs screenshot)', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} not installed (apt-get install chromium): browser test skipped`);
    return;
  }
  // Five minutes of traffic on a TestClock, with a 80 s outage of `payments` in the middle:
  // deterministic, and over before the browser starts.
  const clock = new TestClock(Date.UTC(2026, 11, 1, 15, 0, 0));
  const registry = breakerRegistry({
    clock,
    defaults: {
      trip: { kind: 'time', windowMs: 10_000, minimumCalls: 10, failureRateThreshold: 0.5 },
      openDuration: 5_000,
    },
  });
  const names = [
    'payments',
    'search',
    'inventory',
    'shipping',
    'pricing',
    'reviews',
    'recommendations',
    'auth',
  ];
  const breakers = names.map((n) => registry.get(n));
  const dashboard = createDashboardHandler(registry, {
    clock,
    redact: (e) => String((e as Error).message).replace(/password=\S+/, 'password=***'),
  });
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  for (let s = 0; s < 300; s++) {
    for (const [k, b] of breakers.entries()) {
      const calls = Math.round((30 - k * 3) * (0.8 + 0.4 * rnd()));
      const outage = k === 0 && s >= 150 && s < 230;
      const flaky = k === 2 && s >= 240 && s < 255;
      for (let j = 0; j < calls; j++) {
        const p = b.tryAcquire();
        if (p === undefined) continue;
        const ms = 2 + Math.floor(rnd() * 20);
        clock.advance(ms / 100); // keep the second: calls overlap in reality
        if (outage || (flaky && rnd() < 0.6))
          p.failure(new Error('connect ECONNREFUSED db:5432 password=hunter2'));
        else if (rnd() < 0.01) p.failure(new Error('upstream 503'));
        else p.success();
      }
    }
    clock.advance(1000 - (clock.now() % 1000));
  }
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
    viewport: { width: 1280, height: 720 },
    timeout: 60_000,
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`http://127.0.0.1:${port}/dashboard`, { timeout: 30_000 });
    await page.waitForFunction(
      () => document.querySelectorAll('.tile[data-breaker]').length === 8,
      undefined,
      waitOpts,
    );
    await page.click('.tile[data-breaker="payments"]');
    await page.waitForSelector('#detail[data-breaker="payments"] #c-rate polyline', waitOpts);
    // The outage (seconds 150-230 of 300) is a band in the middle of the chart, not at its end.
    const band = await page.$$eval('#c-err rect.st-open', (rs) =>
      rs.map((r) => [Number(r.getAttribute('x')), Number(r.getAttribute('width'))]),
    );
    assert.ok(band.length >= 1, 'an open band');
    const [x = 0, w = 0] = band[0]!;
    assert.ok(x > 250 && x < 400 && w > 80, `band at ${x} width ${w}`);
    assert.match((await page.textContent('#c-rate')) ?? '', /-5 min/);
    assert.doesNotMatch((await page.textContent('body')) ?? '', /hunter2/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-history.png') });
  } finally {
    await context.close();
    dashboard.dispose();
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
    rmSync(profile, { recursive: true, force: true });
  }
});

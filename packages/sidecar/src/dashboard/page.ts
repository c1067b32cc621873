/**
 * The dashboard page: one self-contained HTML document (no CDN, no external font, no image).
 * The script and the stylesheet are constants, allowed by their SHA-256 hashes in the
 * Content-Security-Policy; the only per-mount value (the base path) travels in a `data-` attribute,
 * so the hashes never change. The script builds every node with `textContent`/`setAttribute`;
 * no data ever goes through `innerHTML`.
 * @module
 */
import { createHash } from 'node:crypto';

/** The page's stylesheet. */
export const PAGE_STYLE = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1d2330;--muted:#697386;--card:#fff;--line:#e3e6ec;
--closed:#1f9d55;--open:#d64545;--half:#d98c1a;--isolated:#7a3fbf;--disabled:#5f6b7a;--metrics:#2f7dbf}
@media (prefers-color-scheme:dark){:root{--bg:#12151b;--fg:#e6e9ef;--muted:#98a2b3;--card:#1b2029;--line:#2a313d}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header.top{display:flex;align-items:baseline;gap:12px;padding:14px 20px;border-bottom:1px solid var(--line)}
header.top h1{font-size:17px;margin:0}
#status{font-size:12px;color:var(--muted)}
#status.live::before{content:"\\25CF ";color:var(--closed)}
#status.down::before{content:"\\25CF ";color:var(--open)}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:14px;padding:18px 20px}
#empty{padding:18px 20px;color:var(--muted)}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card>header{display:flex;justify-content:space-between;align-items:center;gap:8px;margin-bottom:8px}
.card h2{font-size:15px;margin:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.badge{font-size:12px;font-weight:600;padding:2px 8px;border-radius:999px;color:#fff;background:var(--disabled);white-space:nowrap}
.badge.s-closed{background:var(--closed)}.badge.s-open{background:var(--open)}
.badge.s-half-open{background:var(--half)}.badge.s-isolated{background:var(--isolated)}
.badge.s-disabled{background:var(--disabled)}.badge.s-metrics-only{background:var(--metrics)}
.card[data-state="open"],.card[data-state="isolated"]{border-color:var(--open)}
.card[data-state="half-open"]{border-color:var(--half)}
.stats{display:grid;grid-template-columns:repeat(3,1fr);gap:6px 10px;margin-bottom:8px}
.stat .k{display:block;font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
.stat .v{font-variant-numeric:tabular-nums;font-weight:600}
svg.spark{width:100%;height:44px;display:block;background:var(--bg);border-radius:4px}
svg.spark .calls{fill:none;stroke:var(--metrics);stroke-width:1.5}
svg.spark .failures{fill:none;stroke:var(--open);stroke-width:1.5}
svg.spark .rejections{fill:none;stroke:var(--half);stroke-width:1.5;stroke-dasharray:3 2}
svg.spark rect.st-open,svg.spark rect.st-isolated{fill:var(--open);opacity:.18}
svg.spark rect.st-half-open{fill:var(--half);opacity:.18}
.legend{font-size:11px;color:var(--muted);margin-top:4px}
.legend span{margin-right:10px}
.legend .c{color:var(--metrics)}.legend .f{color:var(--open)}.legend .r{color:var(--half)}
`;

/** The page's script (plain ES2020, runs in any current browser). */
export const PAGE_SCRIPT = `
(() => {
  'use strict';
  const base = document.body.getAttribute('data-base') || '';
  const grid = document.getElementById('grid');
  const empty = document.getElementById('empty');
  const status = document.getElementById('status');
  const SVG = 'http://www.w3.org/2000/svg';
  const KNOWN = ['closed', 'open', 'half-open', 'isolated', 'disabled', 'metrics-only'];
  const W = 240, H = 44;
  const cards = new Map();

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const svgEl = (tag, cls) => {
    const e = document.createElementNS(SVG, tag);
    if (cls) e.setAttribute('class', cls);
    return e;
  };
  const num = (x) => (typeof x === 'number' && isFinite(x) ? x : 0);
  const pct = (x) => (num(x) * 100).toFixed(1) + '%';
  const ms = (x) => (typeof x !== 'number' || !isFinite(x) ? '\\u2013' : x < 10 ? x.toFixed(2) + ' ms' : Math.round(x) + ' ms');
  const int = (x) => num(x).toLocaleString('en-US');

  function stat(parent, label) {
    const d = el('div', 'stat');
    d.append(el('span', 'k', label));
    const v = el('span', 'v', '\\u2013');
    d.append(v);
    parent.append(d);
    return v;
  }

  function makeCard(name) {
    const card = el('section', 'card');
    card.setAttribute('data-breaker', name);
    const head = el('header');
    const title = el('h2', null, name);
    title.title = name;
    const badge = el('span', 'badge');
    head.append(title, badge);
    const stats = el('div', 'stats');
    const c = {
      card, badge,
      rate: stat(stats, 'failure rate'),
      calls: stat(stats, 'calls'),
      rej: stat(stats, 'rejections'),
      p50: stat(stats, 'p50'),
      p99: stat(stats, 'p99'),
    };
    const svg = svgEl('svg', 'spark');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'calls, failures and rejections per second');
    c.bands = svgEl('g');
    c.lCalls = svgEl('polyline', 'calls');
    c.lFail = svgEl('polyline', 'failures');
    c.lRej = svgEl('polyline', 'rejections');
    svg.append(c.bands, c.lCalls, c.lFail, c.lRej);
    const legend = el('div', 'legend');
    legend.append(el('span', 'c', 'calls/s'), el('span', 'f', 'failures/s'), el('span', 'r', 'rejected/s'));
    card.append(head, stats, svg, legend);
    return c;
  }

  function points(values, max, n) {
    const step = W / Math.max(1, n - 1);
    const off = n - values.length;
    let s = '';
    for (let i = 0; i < values.length; i++) {
      const x = (off + i) * step;
      const y = H - 2 - (num(values[i]) / max) * (H - 4);
      s += x.toFixed(1) + ',' + y.toFixed(1) + ' ';
    }
    return s;
  }

  function draw(c, series, stateNames) {
    const n = 120;
    const calls = series.calls || [], fail = series.failures || [], rej = series.rejections || [];
    let max = 1;
    for (const a of [calls, fail, rej]) for (const v of a) if (num(v) > max) max = num(v);
    c.lCalls.setAttribute('points', points(calls, max, n));
    c.lFail.setAttribute('points', points(fail, max, n));
    c.lRej.setAttribute('points', points(rej, max, n));
    while (c.bands.firstChild) c.bands.firstChild.remove();
    const states = series.states || [];
    const step = W / Math.max(1, n - 1);
    const off = n - states.length;
    for (let i = 0; i < states.length; ) {
      const name = stateNames[states[i]];
      let j = i + 1;
      while (j < states.length && states[j] === states[i]) j++;
      if (name === 'open' || name === 'isolated' || name === 'half-open') {
        const r = svgEl('rect', 'st-' + name);
        r.setAttribute('x', ((off + i) * step - step / 2).toFixed(1));
        r.setAttribute('width', ((j - i) * step).toFixed(1));
        r.setAttribute('y', '0');
        r.setAttribute('height', String(H));
        c.bands.append(r);
      }
      i = j;
    }
  }

  function update(snap) {
    const list = Array.isArray(snap.breakers) ? snap.breakers : [];
    const names = new Set();
    let added = false;
    for (const b of list) {
      const name = String(b.name);
      names.add(name);
      let c = cards.get(name);
      if (!c) {
        c = makeCard(name);
        cards.set(name, c);
        added = true;
      }
      const state = KNOWN.includes(b.state) ? b.state : 'unknown';
      c.card.setAttribute('data-state', state);
      c.badge.className = 'badge s-' + state;
      c.badge.textContent = state;
      c.rate.textContent = pct(b.failureRate);
      c.calls.textContent = int(b.calls);
      c.rej.textContent = int(b.rejections);
      c.p50.textContent = ms(b.latency && b.latency.p50);
      c.p99.textContent = ms(b.latency && b.latency.p99);
      draw(c, b.series || {}, Array.isArray(snap.states) ? snap.states : KNOWN);
    }
    for (const [name, c] of cards) {
      if (!names.has(name)) {
        c.card.remove();
        cards.delete(name);
      }
    }
    if (added) for (const b of list) grid.append(cards.get(String(b.name)).card);
    empty.hidden = cards.size > 0;
  }

  function setStatus(text, cls) {
    status.textContent = text;
    status.className = cls;
  }

  let es;
  function connect() {
    es = new EventSource(base + '/events');
    es.addEventListener('snapshot', (e) => {
      try { update(JSON.parse(e.data)); } catch (err) { console.error('dashboard: bad snapshot', err); }
    });
    es.onopen = () => setStatus('live', 'live');
    es.onerror = () => {
      setStatus('reconnecting\\u2026', 'down');
      // The browser retries by itself unless the stream was refused; then retry by hand.
      if (es.readyState === 2) setTimeout(connect, 3000);
    };
  }
  connect();
})();
`;

const sha256 = (s: string) => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

/** The Content-Security-Policy of the page: its own hashed script and style, same-origin SSE only. */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(PAGE_SCRIPT)}`,
  `style-src ${sha256(PAGE_STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** CSP for the JSON and SSE responses (nothing to run or embed). */
export const DATA_CSP = "default-src 'none'; frame-ancestors 'none'";

/** Escapes text for HTML text and double-quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The page HTML for a mount point.
 *
 * @example
 * ```ts
 * res.end(renderPage({ basePath: '/dashboard', title: 'tripswitch' }));
 * ```
 */
export function renderPage(opts: { basePath: string; title: string }): string {
  const title = escapeHtml(opts.title);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>${title}</title>
<style>${PAGE_STYLE}</style>
</head>
<body data-base="${escapeHtml(opts.basePath)}">
<header class="top"><h1>${title}</h1><span id="status">connecting\u2026</span></header>
<div id="empty">No breakers yet.</div>
<main id="grid"></main>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

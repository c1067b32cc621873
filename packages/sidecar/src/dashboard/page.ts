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
[hidden]{display:none!important}
body{margin:0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header.top{display:flex;flex-wrap:wrap;align-items:center;gap:12px;padding:12px 20px;border-bottom:1px solid var(--line)}
header.top h1{font-size:17px;margin:0}
#status,#summary{font-size:12px;color:var(--muted)}
#status.live::before{content:"\\25CF ";color:var(--closed)}
#status.down::before{content:"\\25CF ";color:var(--open)}
.controls{margin-left:auto;display:flex;gap:8px;align-items:center}
.controls input,.controls select{font:inherit;padding:3px 6px;border:1px solid var(--line);border-radius:4px;background:var(--card);color:var(--fg)}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:8px;padding:14px 20px}
#empty{padding:18px 20px;color:var(--muted)}
.tile{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 10px;cursor:pointer;display:grid;grid-template-columns:34px 1fr;gap:2px 8px;align-items:center}
.tile:hover,.tile.sel{outline:2px solid var(--metrics)}
.tile[data-state="open"],.tile[data-state="isolated"]{border-color:var(--open)}
.tile[data-state="half-open"]{border-color:var(--half)}
.dot{grid-row:span 2;justify-self:center;border-radius:50%;background:var(--closed);opacity:.85}
.tile .hd{display:flex;gap:6px;align-items:center;min-width:0}
.tile .nm{font-weight:600;flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tile .nums{font-variant-numeric:tabular-nums;color:var(--muted);font-size:12px;white-space:nowrap}
.tile .reason{grid-column:1/-1;font-size:12px;color:var(--open);min-height:1em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.badge{font-size:11px;font-weight:600;padding:1px 7px;border-radius:999px;color:#fff;background:var(--disabled);white-space:nowrap}
.s-closed{background:var(--closed)}.s-open{background:var(--open)}.s-half-open{background:var(--half)}
.s-isolated{background:var(--isolated)}.s-disabled{background:var(--disabled)}.s-metrics-only{background:var(--metrics)}
#detail{margin:14px 20px 0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px}
#detail header{display:flex;gap:10px;align-items:center;margin-bottom:6px}
#detail h2{font-size:16px;margin:0}
#detail .close{margin-left:auto;font:inherit;cursor:pointer;background:none;border:1px solid var(--line);border-radius:4px;color:var(--fg)}
#detail .why{color:var(--open);margin-bottom:6px}
.kv{display:flex;flex-wrap:wrap;gap:4px 18px;margin:6px 0}
.kv div{font-variant-numeric:tabular-nums}.kv .k{color:var(--muted);font-size:11px;text-transform:uppercase;margin-right:4px}
.cluster{font-size:12px;font-variant-numeric:tabular-nums;margin:4px 0 8px}.cluster .ejected{color:var(--open)}
.lastfail{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;word-break:break-all;color:var(--muted)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:12px}
svg.chart{width:100%;height:170px;display:block}
svg.chart .axis{stroke:var(--muted);stroke-width:1}
svg.chart .grid{stroke:var(--line);stroke-width:1}
svg.chart text{fill:var(--muted);font-size:10px}
svg.chart .calls{fill:none;stroke:var(--metrics);stroke-width:1.5}
svg.chart .failures,svg.chart .err{fill:none;stroke:var(--open);stroke-width:1.5}
svg.chart .rejections{fill:none;stroke:var(--half);stroke-width:1.5;stroke-dasharray:3 2}
svg.chart rect.st-open,svg.chart rect.st-isolated{fill:var(--open);opacity:.15}
svg.chart rect.st-half-open{fill:var(--half);opacity:.2}
.legend{font-size:11px;color:var(--muted)}.legend span{margin-right:10px}
.legend .c{color:var(--metrics)}.legend .f{color:var(--open)}.legend .r{color:var(--half)}
`;

/** The page's script (plain ES2020, runs in any current browser). */
export const PAGE_SCRIPT = `
(() => {
  'use strict';
  const base = document.body.getAttribute('data-base') || '';
  const $ = (id) => document.getElementById(id);
  const grid = $('grid'), empty = $('empty'), status = $('status'), summary = $('summary');
  const filterIn = $('filter'), sortIn = $('sort'), detail = $('detail');
  const SVG = 'http://www.w3.org/2000/svg';
  const KNOWN = ['closed', 'open', 'half-open', 'isolated', 'disabled', 'metrics-only'];
  const COLORS = { closed: 'var(--closed)', open: 'var(--open)', 'half-open': 'var(--half)', isolated: 'var(--isolated)', disabled: 'var(--disabled)', 'metrics-only': 'var(--metrics)' };
  const CODES = ['closed', 'metrics-only', 'disabled', 'half-open', 'open', 'isolated']; // series.states codes
  const rows = new Map(); // id -> { row, tile }
  let offset = 0; // server clock minus local clock
  let order = [];
  let renderQueued = false;
  let selected = null; // breaker name shown in detail

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const svgEl = (tag, attrs) => {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  };
  const num = (x) => (typeof x === 'number' && isFinite(x) ? x : 0);
  const pct = (x) => (num(x) * 100).toFixed(1) + '%';
  const ms = (x) => (typeof x !== 'number' || !isFinite(x) ? '\\u2013' : x < 10 ? x.toFixed(1) + ' ms' : Math.round(x) + ' ms');
  const rate = (x) => (num(x) < 10 ? num(x).toFixed(1) : Math.round(num(x)).toLocaleString('en-US')) + '/s';
  const int = (x) => num(x).toLocaleString('en-US');
  const probeText = (x) => {
    if (typeof x !== 'number') return '';
    const s = Math.max(0, Math.ceil((x - (Date.now() + offset)) / 1000));
    return s > 0 ? 'probe in ' + s + ' s' : 'probe due';
  };

  function makeTile(r) {
    const t = el('div', 'tile');
    t.setAttribute('data-breaker', r.n);
    t.tabIndex = 0;
    const dot = el('span', 'dot');
    const nm = el('span', 'nm', r.n);
    nm.title = r.n;
    const badge = el('span', 'badge');
    const head = el('div', 'hd');
    head.append(nm, badge);
    const nums = el('div', 'nums');
    const reason = el('div', 'reason');
    t.append(dot, head, nums, reason);
    t.addEventListener('click', () => select(r.n));
    t.addEventListener('keydown', (e) => { if (e.key === 'Enter') select(r.n); });
    return { tile: t, dot, badge, nums, reason };
  }

  function paint(entry) {
    const r = entry.row, v = entry.view;
    const state = KNOWN.includes(r.s) ? r.s : 'unknown';
    v.tile.setAttribute('data-state', state);
    v.badge.className = 'badge s-' + state;
    v.badge.textContent = state;
    v.nums.textContent = 'err ' + pct(r.e) + ' \\u00b7 ' + rate(r.q) + ' \\u00b7 p99 ' + ms(r.p);
    v.nums.title = 'error % and rate over ' + (r.w || 'the window');
    const size = 10 + Math.min(22, Math.log10(1 + num(r.q)) * 8);
    v.dot.style.width = v.dot.style.height = size.toFixed(0) + 'px';
    v.dot.style.background = COLORS[state] || 'var(--disabled)';
    const why = r.r ? r.r + (r.d ? ': ' + r.d : '') : '';
    const probe = probeText(r.x);
    v.reason.textContent = why + (why && probe ? ' \\u00b7 ' : '') + probe;
    v.reason.title = v.reason.textContent;
  }

  function sortKey() { return sortIn.value; }
  function render() {
    renderQueued = false;
    const f = filterIn.value.trim().toLowerCase();
    const list = [];
    let open = 0;
    for (const entry of rows.values()) {
      if (entry.row.s === 'open' || entry.row.s === 'isolated') open++;
      const show = !f || entry.row.n.toLowerCase().includes(f);
      entry.view.tile.hidden = !show;
      if (show) list.push(entry);
    }
    const k = sortKey();
    const byName = (a, b) => (a.row.n < b.row.n ? -1 : a.row.n > b.row.n ? 1 : 0);
    const sev = (s) => (s === 'open' || s === 'isolated' ? 2 : s === 'half-open' ? 1 : 0);
    list.sort(k === 'name' ? byName : k === 'volume'
      ? (a, b) => num(b.row.q) - num(a.row.q) || byName(a, b)
      : (a, b) => sev(b.row.s) - sev(a.row.s) || num(b.row.e) - num(a.row.e) || byName(a, b));
    let same = list.length === order.length;
    for (let i = 0; same && i < list.length; i++) if (list[i] !== order[i]) same = false;
    if (!same) {
      // Re-appending in order moves each node once; only done when the order changed.
      for (const e of list) grid.append(e.view.tile);
      order = list;
    }
    summary.textContent = int(rows.size) + ' breakers \\u00b7 ' + open + ' open' + (f ? ' \\u00b7 ' + list.length + ' shown' : '');
    empty.hidden = rows.size > 0;
  }
  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    setTimeout(render, 0);
  }

  function reset(data) {
    offset = num(data.at) - Date.now();
    for (const e of rows.values()) e.view.tile.remove();
    rows.clear();
    order = [];
    for (const r of data.rows || []) {
      const entry = { row: r, view: makeTile(r) };
      rows.set(r.i, entry);
      paint(entry);
    }
    render();
  }

  function apply(data) {
    offset = num(data.at) - Date.now();
    for (const id of data.del || []) {
      const e = rows.get(id);
      if (e) { e.view.tile.remove(); rows.delete(id); }
    }
    let selChanged = false;
    for (const ch of data.set || []) {
      let e = rows.get(ch.i);
      if (!e) {
        e = { row: { i: ch.i }, view: null };
        rows.set(ch.i, e);
      }
      for (const k in ch) {
        if (ch[k] === null && k !== 'p') delete e.row[k];
        else e.row[k] = ch[k];
      }
      if (!e.view) e.view = makeTile(e.row);
      paint(e);
      if (e.row.n === selected && 's' in ch) selChanged = true;
    }
    queueRender();
    if (selChanged) loadDetail();
  }

  // ---- detail: one breaker, with charts over the collector's history --------------------------
  let detailTimer = null;
  function select(name) {
    selected = name;
    for (const e of rows.values()) e.view.tile.classList.toggle('sel', e.row.n === name);
    detail.hidden = false;
    loadDetail();
    if (detailTimer === null) detailTimer = setInterval(loadDetail, 1000);
  }
  $('close').addEventListener('click', () => {
    selected = null;
    detail.hidden = true;
    clearInterval(detailTimer);
    detailTimer = null;
    for (const e of rows.values()) e.view.tile.classList.remove('sel');
  });

  let loading = false;
  async function loadDetail() {
    if (selected === null || loading) return;
    loading = true;
    const name = selected;
    try {
      const r = await fetch(base + '/breaker.json?name=' + encodeURIComponent(name), { cache: 'no-store' });
      if (r.ok && selected === name) showDetail(await r.json());
    } catch (err) {
      console.warn('dashboard: detail', err);
    } finally {
      loading = false;
    }
  }

  function showDetail(b) {
    detail.setAttribute('data-breaker', b.name);
    detail.setAttribute('data-state', b.state);
    $('d-name').textContent = b.name;
    const badge = $('d-state');
    badge.className = 'badge s-' + (KNOWN.includes(b.state) ? b.state : 'unknown');
    badge.textContent = b.state;
    const why = b.reason ? 'reason: ' + b.reason + (b.reasonDetail ? ' \\u2014 ' + b.reasonDetail : '') : '';
    const probe = b.state === 'open' ? probeText(b.nextAttemptAt) : '';
    $('d-why').textContent = why + (why && probe ? ' \\u00b7 ' : '') + probe;
    const kv = $('d-counts');
    while (kv.firstChild) kv.firstChild.remove();
    const add = (k, v, key) => {
      const d = el('div');
      d.setAttribute('data-k', key);
      d.append(el('span', 'k', k), el('span', 'v', v));
      kv.append(d);
    };
    const c = b.counts || {};
    add('error %', pct(b.window && b.window.errorRate) + ' (' + ((b.window && b.window.label) || '') + ')', 'error');
    add('rate', rate(b.window && b.window.rate), 'rate');
    for (const k of ['success', 'failure', 'slow', 'timeout', 'rejected', 'neutral']) add(k, int(c[k]), k);
    const l = b.latency || {};
    add('p50', ms(l.p50), 'p50');
    add('p90', ms(l.p90), 'p90');
    add('p99', ms(l.p99), 'p99');
    const lf = $('d-lastfail');
    lf.textContent = b.lastFailure ? 'last failure: ' + b.lastFailure.message : '';
    const cl = $('d-cluster');
    while (cl.firstChild) cl.firstChild.remove();
    if (b.cluster) {
      for (const p in b.cluster.limits) {
        const l = b.cluster.limits[p];
        const d = el('div', null, 'limits ' + p + ': ' + int(l.active) + '/' + int(l.maxRequests) + ' active, ' +
          int(l.pending) + '/' + int(l.maxPending) + ' pending, ' + int(l.retries) + '/' + int(l.maxRetries) + ' retries');
        d.setAttribute('data-limit', p);
        cl.append(d);
      }
      for (const h of b.cluster.hosts) {
        const d = el('div', h.ejected ? 'ejected' : null, 'host ' + h.address + ': ' + int(h.active) + ' active, ' +
          int(h.ejections) + ' ejections' + (h.ejected ? ' \u00b7 ejected' + (typeof h.ejectedUntil === 'number' ? ' for ' + Math.max(0, Math.ceil((h.ejectedUntil - (Date.now() + offset)) / 1000)) + ' s' : '') : ''));
        d.setAttribute('data-host', h.address);
        cl.append(d);
      }
    }
    chart($('c-rate'), b.series, 'rate');
    chart($('c-err'), b.series, 'err');
  }

  function chart(svg, s, kind) {
    while (svg.firstChild) svg.firstChild.remove();
    const W = 600, H = 170, L = 44, R = 8, T = 8, B = 22;
    const n = 300; // five minutes of one-second points
    // The newest second is still filling: drawn, it would always dip at the right edge.
    const done = (a) => (a || []).slice(0, -1);
    const calls = done(s && s.calls), fail = done(s && s.failures), rej = done(s && s.rejections);
    const states = done(s && s.states);
    const end = num(s && s.start) + (calls.length - 1) * 1000;
    const x = (i) => L + ((n - calls.length + i) / (n - 1)) * (W - L - R);
    let max = kind === 'err' ? 100 : 1;
    if (kind !== 'err') for (const a of [calls, fail, rej]) for (const v of a) if (num(v) > max) max = num(v);
    // nice y scale
    if (kind !== 'err') { const m = Math.pow(10, Math.floor(Math.log10(max))); max = Math.ceil(max / m) * m; }
    const y = (v) => T + (1 - num(v) / max) * (H - T - B);
    // state bands
    for (let i = 0; i < states.length; ) {
      let j = i + 1;
      while (j < states.length && states[j] === states[i]) j++;
      const name = CODES[states[i]] || '';
      if (name === 'open' || name === 'isolated' || name === 'half-open')
        svg.append(svgEl('rect', { class: 'st-' + name, x: x(i).toFixed(1), y: T, width: Math.max(1, x(j) - x(i)).toFixed(1), height: H - T - B }));
      i = j;
    }
    // y axis: 4 ticks
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4, yy = y(v).toFixed(1);
      svg.append(svgEl('line', { class: 'grid', x1: L, x2: W - R, y1: yy, y2: yy }));
      const t = svgEl('text', { x: L - 4, y: Number(yy) + 3, 'text-anchor': 'end' });
      t.textContent = kind === 'err' ? v + '%' : (v >= 10 ? Math.round(v) : v.toFixed(1));
      svg.append(t);
    }
    // x axis: a label every minute, clock time of the server
    svg.append(svgEl('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    for (let m = 0; m <= 5; m++) {
      const xx = L + ((n - 1 - m * 60) / (n - 1)) * (W - L - R);
      const t = svgEl('text', { x: xx.toFixed(1), y: H - 6, 'text-anchor': m === 0 ? 'end' : 'middle' });
      const d = new Date(end - m * 60000);
      t.textContent = m === 0 ? 'now' : '-' + m + ' min ' + String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
      svg.append(t);
      svg.append(svgEl('line', { class: 'axis', x1: xx.toFixed(1), x2: xx.toFixed(1), y1: H - B, y2: H - B + 3 }));
    }
    const line = (vals, cls) => {
      let p = '';
      for (let i = 0; i < vals.length; i++) p += x(i).toFixed(1) + ',' + y(vals[i]).toFixed(1) + ' ';
      svg.append(svgEl('polyline', { class: cls, points: p }));
    };
    if (kind === 'err') line(calls.map((c, i) => (c > 0 ? (100 * num(fail[i])) / c : 0)), 'err');
    else { line(calls, 'calls'); line(fail, 'failures'); line(rej, 'rejections'); }
  }

  filterIn.addEventListener('input', queueRender);
  sortIn.addEventListener('change', queueRender);
  // Countdowns tick locally; the stream only sends when something changes.
  setInterval(() => {
    for (const e of rows.values()) if (typeof e.row.x === 'number') paint(e);
  }, 1000);

  function setStatus(text, cls) {
    status.textContent = text;
    status.className = cls;
  }
  let es;
  function connect() {
    es = new EventSource(base + '/events');
    es.addEventListener('snapshot', (e) => {
      try { reset(JSON.parse(e.data)); } catch (err) { console.error('dashboard: bad snapshot', err); }
    });
    es.addEventListener('delta', (e) => {
      try { apply(JSON.parse(e.data)); } catch (err) { console.error('dashboard: bad delta', err); }
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
<header class="top"><h1>${title}</h1><span id="status">connecting\u2026</span><span id="summary"></span>
<span class="controls"><input id="filter" type="search" placeholder="filter by name" aria-label="filter by name">
<label>sort <select id="sort"><option value="error">error %</option><option value="volume">volume</option><option value="name">name</option></select></label></span></header>
<section id="detail" hidden><header><h2 id="d-name"></h2><span id="d-state" class="badge"></span><button id="close" class="close" type="button">close</button></header>
<div id="d-why" class="why"></div><div id="d-counts" class="kv"></div><div id="d-lastfail" class="lastfail"></div><div id="d-cluster" class="cluster"></div>
<div class="charts"><div><svg id="c-rate" class="chart" viewBox="0 0 600 170" role="img" aria-label="calls, failures and rejections per second, last 5 minutes"></svg>
<div class="legend"><span class="c">calls/s</span><span class="f">failures/s</span><span class="r">rejected/s</span></div></div>
<div><svg id="c-err" class="chart" viewBox="0 0 600 170" role="img" aria-label="error % per second, last 5 minutes"></svg>
<div class="legend"><span class="f">error %</span> \u00b7 shaded: open / half-open</div></div></div></section>
<div id="empty">No breakers yet.</div>
<main id="grid"></main>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

/**
 * A self-contained HTML page (inline SVG, no script, no external file): the trace's error rate and
 * latency over time, its incidents shaded, and one band per candidate coloured by breaker state.
 * @module
 */
import type { ReplayResult } from './replay.js';
import type { Incident, Trace } from './trace.js';

/**
 * Options of {@link chartHtml}.
 *
 * @example
 * ```ts
 * chartHtml(trace, results, { title: 'payments, 2026-11-30 outage', buckets: 300 });
 * ```
 */
export interface ChartOptions {
  title?: string;
  /** Time buckets the error rate and latency are drawn in. @default 400 */
  buckets?: number;
  /** Index (into `results`) of the chosen candidate, drawn first and marked. */
  chosen?: number;
  /** Incidents to shade. @default trace.incidents */
  incidents?: readonly Incident[];
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
const STATE_COLOURS: Record<string, string> = {
  closed: '#4caf50',
  open: '#e53935',
  'half-open': '#fb8c00',
  isolated: '#8e24aa',
  disabled: '#9e9e9e',
  'metrics-only': '#90a4ae',
};

/**
 * The chart as an HTML document.
 *
 * @example
 * ```ts
 * writeFileSync('tune.html', chartHtml(trace, frontResults, { chosen: 0 }));
 * ```
 */
export function chartHtml(
  trace: Trace,
  results: readonly ReplayResult[],
  options: ChartOptions = {},
): string {
  const n = trace.length;
  const t0 = n ? trace.start[0]! : 0;
  const t1 = n ? trace.start[n - 1]! : 1;
  const span = Math.max(1, t1 - t0);
  const B = Math.max(10, Math.min(2_000, Math.floor(options.buckets ?? 400)));
  const bucketMs = span / B;
  const calls = new Uint32Array(B);
  const fails = new Uint32Array(B);
  const lat: number[][] = Array.from({ length: B }, () => []);
  for (let i = 0; i < n; i++) {
    const b = Math.min(B - 1, Math.floor((trace.start[i]! - t0) / bucketMs));
    calls[b]!++;
    fails[b]! += trace.failed[i]!;
    lat[b]!.push(trace.duration[i]!);
  }
  const p50 = new Float64Array(B);
  const p99 = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const d = lat[b]!.sort((x, y) => x - y);
    if (d.length === 0) continue;
    p50[b] = d[Math.floor(d.length * 0.5)]!;
    p99[b] = d[Math.min(d.length - 1, Math.floor(d.length * 0.99))]!;
  }
  let maxLat = 1;
  for (const v of p99) maxLat = Math.max(maxLat, v);

  const W = 1100;
  const left = 330;
  const plotW = W - left - 20;
  const x = (t: number) => left + ((t - t0) / span) * plotW;
  const panelH = 110;
  const bandH = 16;
  const order = results.map((_, i) => i);
  if (options.chosen !== undefined)
    order.sort((a, b) => Number(b === options.chosen) - Number(a === options.chosen));
  const top1 = 30;
  const top2 = top1 + panelH + 30;
  const top3 = top2 + panelH + 30;
  const H = top3 + order.length * (bandH + 4) + 40;
  const out: string[] = [];
  const incidents = options.incidents ?? trace.incidents;
  for (const inc of incidents)
    out.push(
      `<rect x="${x(inc.start).toFixed(1)}" y="${top1}" width="${Math.max(1, x(inc.end) - x(inc.start)).toFixed(1)}" height="${H - top1 - 30}" fill="#fdecea"><title>${esc(inc.kind ?? 'incident')}: ${((inc.start - t0) / 1000).toFixed(1)} s to ${((inc.end - t0) / 1000).toFixed(1)} s</title></rect>`,
    );
  const path = (vals: ArrayLike<number>, top: number, max: number) => {
    const pts: string[] = [];
    for (let b = 0; b < B; b++) {
      if (calls[b] === 0) continue;
      const px = x(t0 + (b + 0.5) * bucketMs);
      const py = top + panelH - (Math.min(vals[b]!, max) / max) * panelH;
      pts.push(`${pts.length ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`);
    }
    return pts.join('');
  };
  const rate = Float64Array.from({ length: B }, (_, b) => (calls[b] ? fails[b]! / calls[b]! : 0));
  out.push(`<text x="10" y="${top1 + 14}" class="l">error rate (0-100%)</text>`);
  out.push(`<rect x="${left}" y="${top1}" width="${plotW}" height="${panelH}" class="frame"/>`);
  out.push(`<path d="${path(rate, top1, 1)}" stroke="#c62828" fill="none" stroke-width="1.5"/>`);
  out.push(`<text x="10" y="${top2 + 14}" class="l">latency p50 / p99 (0-${Math.round(maxLat)} ms)</text>`);
  out.push(`<rect x="${left}" y="${top2}" width="${plotW}" height="${panelH}" class="frame"/>`);
  out.push(`<path d="${path(p99, top2, maxLat)}" stroke="#90caf9" fill="none" stroke-width="1.5"/>`);
  out.push(`<path d="${path(p50, top2, maxLat)}" stroke="#1565c0" fill="none" stroke-width="1.5"/>`);
  for (const [row, i] of order.entries()) {
    const r = results[i]!;
    const y = top3 + row * (bandH + 4);
    const label = `${i === options.chosen ? '> ' : ''}${r.candidate.label}`;
    out.push(
      `<text x="10" y="${y + 12}" class="s">${esc(label.length > 58 ? `${label.slice(0, 57)}…` : label)}</text>`,
    );
    let state = 'closed';
    let from = t0;
    const seg = (to: number) => {
      if (to > from)
        out.push(
          `<rect x="${x(from).toFixed(1)}" y="${y}" width="${Math.max(0.5, x(to) - x(from)).toFixed(1)}" height="${bandH}" fill="${STATE_COLOURS[state] ?? '#000'}"><title>${state}</title></rect>`,
        );
    };
    for (const tr of r.transitions) {
      seg(Math.min(tr.at, t1));
      state = tr.to;
      from = Math.min(tr.at, t1);
    }
    seg(t1);
  }
  for (let k = 0; k <= 10; k++) {
    const t = t0 + (span * k) / 10;
    out.push(
      `<text x="${x(t).toFixed(1)}" y="${H - 12}" class="s" text-anchor="middle">${((t - t0) / 1000).toFixed(0)} s</text>`,
    );
  }
  const legend = Object.entries(STATE_COLOURS)
    .slice(0, 3)
    .map(([s, c]) => `<span style="background:${c}">&nbsp;&nbsp;&nbsp;</span> ${s}`)
    .join(' &nbsp; ');
  const title = esc(options.title ?? 'tripswitch-tune');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font:14px system-ui,sans-serif;margin:20px}svg .l{font-size:13px}svg .s{font-size:11px}svg .frame{fill:none;stroke:#ccc}</style>
</head><body><h1>${title}</h1>
<p>${n.toLocaleString('en')} calls over ${(span / 1000).toFixed(0)} s; shaded: incidents. Bands: each candidate's breaker state during the replay. ${legend}</p>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">
${out.join('\n')}
</svg></body></html>
`;
}

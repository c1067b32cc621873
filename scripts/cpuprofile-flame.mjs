#!/usr/bin/env node
// Renders a V8 .cpuprofile (node --cpu-prof) as a flame graph SVG (stacks merged by function,
// widths by sample count, no dependencies) and prints the top functions by self time as a
// Markdown table. Used for the profiles in docs/sidecar.md.
//
//   node scripts/cpuprofile-flame.mjs <in.cpuprofile> <out.svg> [title] [top N]
import { readFileSync, writeFileSync } from 'node:fs';

const [input, output, title = 'CPU profile', topArg = '20'] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node scripts/cpuprofile-flame.mjs <in.cpuprofile> <out.svg> [title] [top N]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(input, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const samples = new Map();
for (const s of profile.samples) samples.set(s, (samples.get(s) ?? 0) + 1);
const total = profile.samples.length;

const label = (n) => {
  const f = n.callFrame;
  const file = f.url ? f.url.replace(/^.*\/(node_modules|packages)\//, '$1/').replace(/^file:\/\//, '') : '';
  return `${f.functionName || '(anonymous)'}${file ? ` ${file.split('/').slice(-2).join('/')}:${f.lineNumber + 1}` : ''}`;
};

// Self time per function label.
const self = new Map();
for (const [id, count] of samples) {
  const l = label(byId.get(id));
  self.set(l, (self.get(l) ?? 0) + count);
}

// Merged tree: root -> children by label.
const root = { name: 'all', value: 0, children: new Map() };
for (const [id, count] of samples) {
  const stack = [];
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur);
    if (n.callFrame.functionName === '(root)') break;
    stack.push(label(n));
  }
  let node = root;
  root.value += count;
  for (let i = stack.length - 1; i >= 0; i--) {
    let c = node.children.get(stack[i]);
    if (!c) {
      c = { name: stack[i], value: 0, children: new Map() };
      node.children.set(stack[i], c);
    }
    c.value += count;
    node = c;
  }
}

const W = 1200;
const H = 16;
const rects = [];
let depthMax = 0;
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
function lay(node, x, depth) {
  const w = (node.value / total) * W;
  if (w < 0.3) return;
  depthMax = Math.max(depthMax, depth);
  rects.push({ x, depth, w, name: node.name, value: node.value });
  let cx = x;
  for (const c of [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    lay(c, cx, depth + 1);
    cx += (c.value / total) * W;
  }
}
lay(root, 0, 0);
const height = (depthMax + 1) * H + 40;
const color = (name) => {
  if (name.includes('node_modules/undici')) return '#e8a33d';
  if (name.includes('sidecar/')) return '#4fa3d9';
  if (name.includes('core/')) return '#7bc47f';
  if (/^\(garbage collector\)|^\(program\)|^\(idle\)/.test(name)) return '#bbbbbb';
  if (name.includes('node:') || !name.includes(' ')) return '#d9745a';
  return '#e0c060';
};
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="monospace" font-size="11">\n<title>${esc(title)}</title>\n`;
svg += `<text x="4" y="14" font-size="13">${esc(title)} (${total} samples; orange = undici, blue = sidecar, green = tripswitch core, red = node internals)</text>\n`;
for (const r of rects) {
  const y = height - (r.depth + 1) * H;
  const pct = ((r.value / total) * 100).toFixed(1);
  const chars = Math.floor((r.w - 4) / 6.6);
  const text = chars > 2 ? esc(r.name.length > chars ? `${r.name.slice(0, chars - 1)}…` : r.name) : '';
  svg += `<g><title>${esc(r.name)} (${pct} %)</title><rect x="${r.x.toFixed(1)}" y="${y}" width="${r.w.toFixed(1)}" height="${H - 1}" fill="${color(r.name)}"/>`;
  if (text) svg += `<text x="${(r.x + 2).toFixed(1)}" y="${y + 11}">${text}</text>`;
  svg += '</g>\n';
}
svg += '</svg>\n';
writeFileSync(output, svg);

const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg));
console.log('| self % | function |');
console.log('|---|---|');
for (const [name, count] of top) console.log(`| ${((count / total) * 100).toFixed(1)} | \`${name}\` |`);

/**
 * What a tuning run prints: the table of candidates, and the chosen settings as `circuitBreaker()`
 * options and as a sidecar YAML file.
 * @module
 */
import { stringify } from 'yaml';
import type { BreakerSettings } from './candidates.js';
import type { ReplayResult } from './replay.js';

const ms = (v: number) =>
  !Number.isFinite(v) ? 'never' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;

/**
 * A plain-text table, one row per result: the chosen one first (marked `>`), then the rest of the
 * front (marked `*`), then the others.
 *
 * @example
 * ```ts
 * process.stdout.write(formatTable(results, front, chosen));
 * ```
 */
export function formatTable(
  results: readonly ReplayResult[],
  front: readonly number[],
  chosen?: number,
): string {
  const onFront = new Set(front);
  const head = [
    '',
    '#',
    'candidate',
    'detect',
    'missed',
    'let through',
    'false opens',
    'refused ok',
    'close',
    'probes',
  ];
  const rank = (i: number) => (i === chosen ? 2 : onFront.has(i) ? 1 : 0);
  const order = results.map((_, i) => i).sort((a, b) => rank(b) - rank(a) || a - b);
  const rows = order.map((i) => {
    const m = results[i]!.metrics;
    return [
      i === chosen ? '>' : onFront.has(i) ? '*' : '',
      String(i),
      results[i]!.candidate.label,
      ms(m.detectMs),
      String(m.missed),
      String(m.letThrough),
      String(m.falseOpens),
      String(m.refusedHealthy),
      ms(m.closeMs),
      String(m.probes),
    ];
  });
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    r
      .map((x, c) => (c === 2 ? x.padEnd(widths[c]!) : x.padStart(widths[c]!)))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}

/**
 * The settings as a `circuitBreaker()` call to paste into code.
 *
 * @example
 * ```ts
 * console.log(optionsSnippet('payments', chosen.candidate.settings));
 * // circuitBreaker({ name: 'payments', trip: { kind: 'time', windowMs: 10000, ... }, openDuration: 5000 })
 * ```
 */
export function optionsSnippet(name: string, settings: BreakerSettings): string {
  const js = (v: unknown): string => {
    if (Array.isArray(v)) return `[${v.map(js).join(', ')}]`;
    if (typeof v === 'object' && v !== null)
      return `{ ${Object.entries(v)
        .map(([k, x]) => `${k}: ${js(x)}`)
        .join(', ')} }`;
    return typeof v === 'string' ? `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'` : String(v);
  };
  return `circuitBreaker(${js({ name, ...settings })});\n`;
}

/**
 * Options of {@link sidecarYaml}.
 *
 * @example
 * ```ts
 * sidecarYaml(settings, { cluster: 'payments', hosts: ['10.0.0.2:3001'], port: 8080 });
 * ```
 */
export interface SidecarYamlOptions {
  /** Cluster name (characters outside `A-Za-z0-9_.-` become `-`). @default 'upstream' */
  cluster?: string;
  /** The cluster's hosts. @default ['127.0.0.1:3001'] */
  hosts?: string[];
  /** The listener's port. @default 8080 */
  port?: number;
}

/**
 * A complete sidecar config (a listener routing `/` to one cluster) whose cluster carries the
 * settings as its `breaker` block; it loads with the sidecar's `loadConfig`.
 *
 * @example
 * ```ts
 * writeFileSync('tripswitch.yaml', sidecarYaml(chosen.candidate.settings, { cluster: 'payments' }));
 * ```
 */
export function sidecarYaml(settings: BreakerSettings, options: SidecarYamlOptions = {}): string {
  const cluster = (options.cluster ?? 'upstream').replace(/[^A-Za-z0-9_.-]/g, '-') || 'upstream';
  const breaker: Record<string, unknown> = {};
  if (settings.trip) breaker.trip = settings.trip;
  if (settings.openDuration !== undefined) breaker.openDuration = settings.openDuration;
  if (settings.halfOpen) breaker.halfOpen = settings.halfOpen;
  if (settings.eagerHalfOpen !== undefined) breaker.eagerHalfOpen = settings.eagerHalfOpen;
  const doc = {
    listeners: [{ port: options.port ?? 8080, routes: [{ prefix: '/', cluster }] }],
    clusters: [{ name: cluster, hosts: options.hosts ?? ['127.0.0.1:3001'], breaker }],
  };
  return `# chosen by tripswitch-tune; the breaker block is what was replayed\n${stringify(doc)}`;
}

/**
 * Reads a sidecar YAML file: parse, validate against {@link configSchema} with ajv, then check what a
 * schema cannot (route targets exist, names are unique). Every problem names the JSON path and the
 * line:column of the offending YAML node.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { circuitBreaker } from 'tripswitch';
import { realClock } from '../clock.js';
import { breakerOptions } from './breaker.js';
import { CONFIG_DEFAULTS } from './resolve.js';
import { ownServerProblem } from '../proxy/llhttp.js';
import { type ListenerConfig, type SidecarConfig, configSchema } from './schema.js';
import { readTlsFiles } from './tls.js';

/**
 * One problem in a configuration file.
 *
 * @example
 * ```ts
 * for (const p of err.problems) console.error(`${file}:${p.line}:${p.col} ${p.path}: ${p.message}`);
 * ```
 */
export interface ConfigProblem {
  /** JSON-pointer-like path, e.g. `/clusters/0/outlier_detection/consecutive_5xx`. */
  path: string;
  /** 1-based line of the offending node (0 when unknown). */
  line: number;
  /** 1-based column. */
  col: number;
  message: string;
}

/**
 * Thrown by {@link loadConfig} / {@link parseConfig}; `problems` lists every error found.
 *
 * @example
 * ```ts
 * try { loadConfig('tripswitch.yaml'); } catch (e) { if (isConfigError(e)) console.error(e.message); }
 * ```
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ERR_SIDECAR_CONFIG';
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super(
      `invalid config ${file}:\n${problems.map((p) => `  ${file}:${p.line}:${p.col} ${p.path || '/'}: ${p.message}`).join('\n')}`,
    );
  }
}

/**
 * True for a {@link ConfigError} (checked by code).
 * @example
 * ```ts
 * if (isConfigError(err)) for (const p of err.problems) console.log(p.line, p.message);
 * ```
 */
export function isConfigError(err: unknown): err is ConfigError {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ERR_SIDECAR_CONFIG';
}

/**
 * The most worker threads `workers` may ask for: 4 x the cores (more threads than cores only add
 * context switches; the headroom is for a machine whose core count the container hides).
 *
 * @example
 * ```ts
 * maxWorkers(); // 8 on a 2-core machine
 * ```
 */
export function maxWorkers(): number {
  return 4 * availableParallelism();
}

let compiled: ReturnType<Ajv['compile']> | undefined;
function validator() {
  compiled ??= new Ajv({ allErrors: true, strict: false }).compile(configSchema);
  return compiled;
}

/** Finds the YAML node at a path; `key` asks for the map key instead of its value. */
function locate(
  root: Node | null | undefined,
  segments: string[],
  key: boolean,
): [number, number] | undefined {
  let node: unknown = root;
  let last: [number, number] | undefined;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === seg);
      if (!pair) return last;
      if (key && i === segments.length - 1 && isScalar(pair.key) && pair.key.range)
        return [pair.key.range[0], 0];
      node = pair.value;
      if (isScalar(pair.key) && pair.key.range) last = [pair.key.range[0], 0];
    } else if (isSeq(node)) {
      node = node.items[Number(seg)];
    } else return last;
    const r = (node as { range?: [number, number] } | undefined)?.range;
    if (r) last = [r[0], 0];
  }
  return last ?? (root?.range ? [root.range[0], 0] : undefined);
}

function describe(e: ErrorObject): { segments: string[]; key: boolean; message: string } {
  const segments = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (e.keyword === 'additionalProperties') {
    const extra = String((e.params as { additionalProperty: string }).additionalProperty);
    return { segments: [...segments, extra], key: true, message: `unknown field "${extra}"` };
  }
  if (e.keyword === 'required') {
    return {
      segments,
      key: false,
      message: `missing required field "${(e.params as { missingProperty: string }).missingProperty}"`,
    };
  }
  if (e.keyword === 'enum') {
    const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v));
    return { segments, key: false, message: `must be one of ${allowed.join(', ')}` };
  }
  return { segments, key: false, message: e.message ?? e.keyword };
}

/**
 * What is wrong with a listener's explicit `http_server` (undefined: nothing): `own` on a tls
 * listener, or `own` on a Node without node's internal parser that it needs (`ownProblem` says
 * why; given here so that a test can try both answers). Without the field a listener gets what
 * it can have (`defaultHttpServer` in resolve.ts), so only an explicit `own` is refused.
 * @example
 * ```ts
 * httpServerProblem({ port: 1, routes: [{ cluster: 'a' }], http_server: 'own', tls: { cert_file: 'c', key_file: 'k' } });
 * ```
 */
export function httpServerProblem(
  l: ListenerConfig,
  ownProblem: () => string | undefined = ownServerProblem,
): string | undefined {
  if (l.http_server !== 'own') return undefined;
  if (l.tls)
    return 'http_server: own reads plain HTTP only; this listener has a tls block (use node, which tls listeners get by default)';
  const why = ownProblem();
  if (why !== undefined)
    return `http_server: own needs node's internal HTTP parser, which this Node (${process.version}) does not give: ${why} (use node, which listeners get by default here)`;
  return undefined;
}

/**
 * Options of {@link parseConfig}.
 *
 * @example
 * ```ts
 * const options: ParseConfigOptions = { baseDir: '/etc/tripswitch' }; // tls files named relative to it
 * ```
 */
export interface ParseConfigOptions {
  /** Directory that relative `tls` file paths start from. @default process.cwd() */
  baseDir?: string;
}

/**
 * Parses and validates YAML text, and reads the certificate and key files named by `tls` blocks.
 * Throws {@link ConfigError}.
 *
 * @example
 * ```ts
 * const cfg = parseConfig(readFileSync('tripswitch.yaml', 'utf8'), 'tripswitch.yaml', { baseDir: '.' });
 * ```
 */
export function parseConfig(
  text: string,
  file = '<config>',
  options: ParseConfigOptions = {},
): SidecarConfig {
  const baseDir = options.baseDir ?? process.cwd();
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const pos = (offset: number | undefined) => {
    if (offset === undefined) return { line: 0, col: 0 };
    const p = lc.linePos(offset);
    return { line: p.line, col: p.col };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => ({ path: '', ...pos(e.pos[0]), message: e.message.split('\n')[0]! })),
    );
  }
  const value = doc.toJS() as unknown;
  const validate = validator();
  const problems: ConfigProblem[] = [];
  if (!validate(value)) {
    const seen = new Set<string>();
    for (const e of validate.errors ?? []) {
      // oneOf/anyOf repeat each branch's complaint; the branch errors are enough.
      if (e.keyword === 'oneOf' || e.keyword === 'anyOf' || e.keyword === 'if') continue;
      const d = describe(e);
      const path = `/${d.segments.join('/')}`;
      const k = `${path} ${d.message}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const at = locate(doc.contents as Node, d.segments, d.key);
      problems.push({ path, ...pos(at?.[0]), message: d.message });
    }
    throw new ConfigError(file, problems);
  }
  const cfg = value as SidecarConfig;
  const at = (segments: (string | number)[], message: string) => {
    const s = segments.map(String);
    problems.push({ path: `/${s.join('/')}`, ...pos(locate(doc.contents as Node, s, false)?.[0]), message });
  };
  const readTls = (segments: (string | number)[], block: Parameters<typeof readTlsFiles>[0]) => {
    for (const p of readTlsFiles(block, baseDir).problems)
      at(p.field ? [...segments, p.field] : segments, p.message);
  };
  const names = new Set<string>();
  const traceFiles = new Map<string, string>();
  cfg.clusters.forEach((c, i) => {
    if (c.tls) {
      c.hosts.forEach((h, j) => {
        if (!h.startsWith('https://'))
          at(['clusters', i, 'hosts', j], `"${h}" is not https:// (the cluster has a tls block)`);
      });
      readTls(['clusters', i, 'tls'], c.tls);
    }
    if (names.has(c.name)) at(['clusters', i, 'name'], `duplicate cluster name "${c.name}"`);
    names.add(c.name);
    const pr = new Set<string>();
    c.circuit_breakers?.thresholds?.forEach((t, j) => {
      if (pr.has(t.priority))
        at(
          ['clusters', i, 'circuit_breakers', 'thresholds', j, 'priority'],
          `duplicate priority "${t.priority}"`,
        );
      pr.add(t.priority);
      if (t.retry_budget && t.max_retries !== undefined)
        at(['clusters', i, 'circuit_breakers', 'thresholds', j], 'set max_retries or retry_budget, not both');
    });
    if (c.shared_state && (c.shared_state.url === undefined) === (c.shared_state.cluster === undefined))
      at(
        ['clusters', i, 'shared_state'],
        'give one of url (redis://, rediss://, or redis-sentinel:// for Sentinel) or cluster (Redis Cluster nodes)',
      );
    if (c.shared_state && c.breaker?.enabled === false)
      at(['clusters', i, 'shared_state'], 'shares the breaker, which breaker.enabled: false turns off');
    if (c.record_trace) {
      const r = c.record_trace;
      if (c.breaker?.enabled === false)
        at(
          ['clusters', i, 'record_trace'],
          "records the breaker's calls, which breaker.enabled: false turns off",
        );
      // Relative to the config file, as tls files are; the recorder (and a reload) see the absolute path.
      r.file = resolve(baseDir, r.file);
      const dir = dirname(r.file);
      if (!existsSync(dir)) at(['clusters', i, 'record_trace', 'file'], `directory ${dir} does not exist`);
      const other = traceFiles.get(r.file);
      if (other !== undefined)
        at(
          ['clusters', i, 'record_trace', 'file'],
          `${r.file} is also the record_trace file of cluster "${other}" (one file per cluster)`,
        );
      traceFiles.set(r.file, c.name);
    }
    // The breaker block is circuitBreaker()'s options: let the library judge them, so the rules
    // (e.g. minimumCalls <= windowSize) live in one place.
    if (c.breaker && c.breaker.enabled !== false) {
      try {
        circuitBreaker(breakerOptions(c.name, c.breaker, realClock)).dispose();
      } catch (err) {
        at(['clusters', i, 'breaker'], err instanceof Error ? err.message : String(err));
      }
    }
  });
  if (cfg.workers !== undefined) {
    const most = maxWorkers();
    if (cfg.workers > most)
      at(
        ['workers'],
        `workers must be at most ${most} (4 x the ${most / 4} cores of this machine), got ${cfg.workers}`,
      );
    if (cfg.workers > 1)
      cfg.clusters.forEach((c, i) => {
        if (c.shared_state)
          at(
            ['clusters', i, 'shared_state'],
            'shared_state cannot be combined with workers > 1 (the workers already share one breaker; use one or the other)',
          );
      });
  }
  const ports = new Set<string>();
  cfg.listeners.forEach((l, i) => {
    const key = `${l.address ?? CONFIG_DEFAULTS.listener.address}:${l.port}`;
    if (l.port !== 0 && ports.has(key)) at(['listeners', i, 'port'], `duplicate listener ${key}`);
    ports.add(key);
    if (
      l.request_timeout_ms !== undefined &&
      l.request_timeout_ms > 0 &&
      (l.headers_timeout_ms ?? CONFIG_DEFAULTS.listener.headers_timeout_ms) > l.request_timeout_ms
    )
      at(
        ['listeners', i, 'request_timeout_ms'],
        `request_timeout_ms (${l.request_timeout_ms}) is shorter than headers_timeout_ms (${l.headers_timeout_ms ?? CONFIG_DEFAULTS.listener.headers_timeout_ms})`,
      );
    const hs = httpServerProblem(l);
    if (hs !== undefined) at(['listeners', i, 'http_server'], hs);
    if (l.tls) {
      if (l.tls.request_client_cert === true && l.tls.ca_file === undefined)
        at(
          ['listeners', i, 'tls'],
          'request_client_cert: true needs ca_file (the CA client certificates must chain to)',
        );
      if (l.tls.ca_file !== undefined && l.tls.request_client_cert !== true)
        at(['listeners', i, 'tls', 'ca_file'], 'ca_file is only used with request_client_cert: true');
      readTls(['listeners', i, 'tls'], l.tls);
    }
    l.routes.forEach((r, j) => {
      if (!names.has(r.cluster))
        at(['listeners', i, 'routes', j, 'cluster'], `unknown cluster "${r.cluster}"`);
    });
  });
  if (problems.length > 0) throw new ConfigError(file, problems);
  return cfg;
}

/**
 * Reads and validates a YAML file; relative `tls` file paths start from the file's directory.
 * Throws {@link ConfigError} (or the fs error).
 *
 * @example
 * ```ts
 * const cfg = loadConfig('examples/tripswitch.yaml');
 * ```
 */
export function loadConfig(file: string): SidecarConfig {
  return parseConfig(readFileSync(file, 'utf8'), file, { baseDir: dirname(resolve(file)) });
}

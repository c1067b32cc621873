/**
 * Routes as the request path uses them: a listener's routes compiled once per (re)load against the
 * clusters in force, and the first-match lookup by Host and path prefix.
 * @module
 */
import type { IncomingMessage } from 'node:http';
import { type Backoff, fullJitterBackoff } from 'tripswitch';
import type { ResolvedFallback, ResolvedRoute } from '../config/resolve.js';
import type { Cluster } from './cluster.js';

/** A route's retry policy, ready for the retry filter. */
export interface CompiledRetry {
  attempts: number;
  statuses: Set<number>;
  connectFailure: boolean;
  reset: boolean;
  /** tripswitch's full-jitter exponential backoff (Envoy's algorithm) over base..max. */
  backoff: Backoff;
  nonIdempotent: boolean;
  /** Largest request body read into memory for replay; 0 = bodies are never retried. */
  bufferBodyBytes: number;
}

/** A response kept for the `last_good` fallback. */
export interface CachedResponse {
  status: number;
  /** Flat name/value list, as given to writeHead. */
  headers: string[];
  body: Buffer;
}

/** One route, compiled. */
export interface CompiledRoute {
  prefix: string;
  host: string | undefined;
  cluster: Cluster;
  high: boolean;
  timeoutMs: number;
  retry: CompiledRetry | undefined;
  fallback: ResolvedFallback | undefined;
  /** Last good GET responses by URL, when the fallback is `last_good`. */
  lastGood: Map<string, CachedResponse> | undefined;
  maxCacheBody: number;
}

/**
 * Compiles a resolved route against the clusters in force; `previous` (the same route before a
 * reload) hands over its last-good cache.
 */
export function compileRoute(
  r: ResolvedRoute,
  clusters: ReadonlyMap<string, Cluster>,
  previous?: CompiledRoute,
): CompiledRoute {
  const cluster = clusters.get(r.cluster)!;
  const rt = r.retry;
  const on = rt.retry_on;
  const f = r.fallback;
  const lastGood = f !== undefined && 'last_good' in f;
  return {
    prefix: r.prefix,
    host: r.host,
    cluster,
    high: r.priority === 'high',
    timeoutMs: r.timeout_ms,
    retry:
      rt.attempts > 0
        ? {
            attempts: rt.attempts,
            statuses: new Set(on.filter((x): x is number => typeof x === 'number')),
            connectFailure: on.includes('connect-failure'),
            reset: on.includes('reset'),
            backoff: fullJitterBackoff({
              initialDelay: rt.backoff_base_ms,
              maxDelay: Math.max(rt.backoff_base_ms, rt.backoff_max_ms),
            }),
            nonIdempotent: rt.retry_non_idempotent,
            bufferBodyBytes: rt.buffer_body_bytes,
          }
        : undefined,
    fallback: f,
    lastGood: lastGood ? (previous?.lastGood ?? new Map()) : undefined,
    maxCacheBody: lastGood ? f.max_body_bytes : 0,
  };
}

function hostMatches(pattern: string, hostHeader: string | undefined): boolean {
  if (!hostHeader) return false;
  let h = hostHeader.toLowerCase();
  const colon = h.lastIndexOf(':');
  if (colon > 0 && !h.endsWith(']')) h = h.slice(0, colon);
  if (pattern.startsWith('*.')) return h.endsWith(pattern.slice(1));
  return h === pattern;
}

/** The first route matching the request's Host (exact or `*.suffix`, port ignored) and path prefix. */
export function findRoute(routes: readonly CompiledRoute[], req: IncomingMessage): CompiledRoute | undefined {
  const url = req.url ?? '/';
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    if (r.host !== undefined && !hostMatches(r.host, req.headers.host)) continue;
    if (!url.startsWith(r.prefix)) continue;
    return r;
  }
  return undefined;
}

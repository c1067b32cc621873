/**
 * The fallback filter: what the client gets instead of a refusal or a failed upstream answer when
 * the route has a `fallback`, either a static response or, for a GET, the last good (200) response
 * to the same URL, which {@link LastGoodRecorder} keeps as responses stream through.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledRoute } from './route.js';

/** Most URLs kept per route (oldest dropped first). */
const MAX_URLS = 1000;

/** True when the route can answer this request from its fallback. */
export function hasFallback(route: CompiledRoute, req: IncomingMessage): boolean {
  const f = route.fallback;
  if (f === undefined) return false;
  if ('status' in f) return true;
  return req.method === 'GET' && route.lastGood!.has(req.url!);
}

/** Answers from the route's fallback (counted), marked `x-tripswitch-fallback: <reason>`. */
export function serveFallback(
  route: CompiledRoute,
  req: IncomingMessage,
  res: ServerResponse,
  reason: string,
): void {
  const f = route.fallback!;
  route.cluster.counters.fallbacks++;
  if (res.headersSent || res.destroyed) return;
  if ('status' in f) {
    const body = f.body;
    res.writeHead(f.status, {
      'content-length': Buffer.byteLength(body),
      ...f.headers,
      'x-tripswitch-fallback': reason,
    });
    res.end(body);
    return;
  }
  const hit = route.lastGood!.get(req.url!);
  if (!hit) return;
  const headers: string[] = [];
  for (let i = 0; i < hit.headers.length; i += 2) {
    const lk = hit.headers[i]!.toLowerCase();
    if (lk !== 'content-length' && lk !== 'x-tripswitch-fallback')
      headers.push(hit.headers[i]!, hit.headers[i + 1]!);
  }
  headers.push('content-length', String(hit.body.length), 'x-tripswitch-fallback', `last-good;${reason}`);
  res.writeHead(hit.status, headers);
  res.end(hit.body);
}

/**
 * Copies a 200 response to a GET on a `last_good` route as it streams to the client, up to the
 * route's `max_body_bytes`, and keeps it once it completes.
 */
export class LastGoodRecorder {
  #chunks: Buffer[] | undefined = [];
  #size = 0;

  private constructor(
    readonly route: CompiledRoute,
    readonly url: string,
    readonly headers: string[],
  ) {}

  /** A recorder when this response is one to keep, else undefined. */
  static for(
    route: CompiledRoute,
    req: IncomingMessage,
    status: number,
    headers: string[],
  ): LastGoodRecorder | undefined {
    return route.lastGood !== undefined && status === 200 && req.method === 'GET'
      ? new LastGoodRecorder(route, req.url!, headers)
      : undefined;
  }

  add(chunk: Buffer): void {
    if (this.#chunks === undefined) return;
    this.#size += chunk.length;
    if (this.#size > this.route.maxCacheBody) this.#chunks = undefined;
    else this.#chunks.push(chunk);
  }

  /** The response completed: keep it (unless it outgrew the limit). */
  commit(): void {
    if (this.#chunks === undefined) return;
    const cache = this.route.lastGood!;
    if (cache.size >= MAX_URLS && !cache.has(this.url)) cache.delete(cache.keys().next().value!);
    cache.set(this.url, { status: 200, headers: this.headers, body: Buffer.concat(this.#chunks) });
    this.#chunks = undefined;
  }
}

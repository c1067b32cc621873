/**
 * Browser protection of the admin API. A page on any site can make the browser send a form POST to
 * 127.0.0.1, and DNS rebinding makes a hostile name resolve to it (the browser then calls it
 * same-origin); neither carries a bearer token, so a token does not help on loopback, where none is
 * required. Two checks: the Host header must be one of the admin's own names (rebinding sends the
 * hostile name), and a state-changing request must not come from another origin (Origin,
 * Sec-Fetch-Site). Clients that are not browsers (curl, Prometheus) send neither Origin nor
 * Sec-Fetch-Site and are unaffected.
 * @module
 */
import type { IncomingMessage } from 'node:http';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
// Loopback names: the admin is reached by them whatever address it is bound to.
const LOOPBACK = ['localhost', '127.0.0.1', '::1'];

/** The host name of a Host header or URL authority, lower-cased, without port or IPv6 brackets. */
function hostname(authority: string): string {
  let h = authority.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(1, end) : h;
  }
  const colon = h.lastIndexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

/**
 * The names the admin answers to: loopback names, the bound address (unless a wildcard) and
 * `extra` (the names it is reached by, e.g. behind a port-forward or ingress).
 *
 * @example
 * ```ts
 * const names = adminNames('127.0.0.1', ['admin.internal']);
 * ```
 */
export function adminNames(address: string, extra: readonly string[] = []): Set<string> {
  const names = new Set(LOOPBACK);
  if (address !== '0.0.0.0' && address !== '::')
    names.add(hostname(address.includes(':') ? `[${address}]` : address));
  for (const n of extra) names.add(hostname(n));
  return names;
}

/**
 * Why the admin must refuse this request (403), or undefined. `checkHost`: the Host must be one of
 * `names` (on when no token is required: a token already stops a rebinding page).
 *
 * @example
 * ```ts
 * const why = browserRefusal(req, names, !token);
 * if (why) return send(res, 403, JSON.stringify({ error: why }));
 * ```
 */
export function browserRefusal(
  req: IncomingMessage,
  names: ReadonlySet<string>,
  checkHost: boolean,
): string | undefined {
  const host = req.headers.host;
  if (checkHost && host !== undefined && !names.has(hostname(host)))
    return `Host "${host}" is not a name of this admin listener (add it to admin.allowed_hosts)`;
  if (SAFE.has(req.method ?? 'GET')) return undefined;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none')
    return `cross-origin request refused (Sec-Fetch-Site: ${site})`;
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return `cross-origin request refused (Origin: ${origin})`;
  }
  // Same origin: the page was served by this admin under the Host it is now calling.
  if (
    host === undefined ||
    url.host.toLowerCase() !== host.trim().toLowerCase() ||
    !names.has(hostname(url.host))
  )
    return `cross-origin request refused (Origin: ${origin})`;
  return undefined;
}

/**
 * Which requests the server reads at all: a request target it can parse, a `Host` it answers to
 * (DNS rebinding), and for WebSocket upgrades an `Origin` it trusts (a page on another site).
 * Pure functions of the request's strings; `serve()` answers 400 or 403 when they object.
 */
import { isIP } from 'node:net'

/**
 * The request target as a URL (path and query), or null when it cannot be read: such a request
 * gets 400. Origin-form (`/path?query`) and absolute-form (`http://host/path`) are read;
 * anything else (`//999.999.999.999/`, `http://[/`) is refused, never thrown.
 *
 * @example
 * requestTarget('/metrics?x=1')?.pathname // '/metrics'
 * requestTarget('http://[/') // null
 */
export function requestTarget(target: string | undefined): URL | null {
  if (target === undefined || target.length === 0) return null
  // '//host/x' is no path (RFC 3986 forbids an empty first segment) and URL parsers read a host in it.
  if (target.startsWith('//')) return null
  try {
    if (target.startsWith('/')) return new URL(`http://localhost${target}`)
    const url = new URL(target)
    return url.protocol === 'http:' ||
      url.protocol === 'https:' ||
      url.protocol === 'ws:' ||
      url.protocol === 'wss:'
      ? url
      : null
  } catch {
    return null
  }
}

/** Who may talk to the server, beside what the token decides. */
export interface OriginPolicy {
  /** The server listens on a loopback address: `Host` must then name a loopback host (or an allowed one). */
  readonly loopback: boolean
  /** Extra `Host` names accepted (lowercase, no port): the names a reverse proxy forwards. */
  readonly allowedHosts: ReadonlySet<string>
  /** Origins (`scheme://host[:port]`, as browsers send them) whose pages may open WebSockets. */
  readonly allowOrigins: ReadonlySet<string>
}

/**
 * Builds the policy from the listening host and the `--allowed-host` / `--allow-origin` lists.
 * Origins are normalised as browsers send them (`https://Example.com:443/` → `https://example.com`).
 *
 * @example
 * const policy = originPolicy('127.0.0.1', [], ['https://grafana.example.com'])
 */
export function originPolicy(
  listenHost: string,
  allowedHosts: readonly string[] = [],
  allowOrigins: readonly string[] = [],
): OriginPolicy {
  return {
    loopback: isLoopbackHost(listenHost),
    allowedHosts: new Set(allowedHosts.map((h) => hostName(h.toLowerCase()))),
    allowOrigins: new Set(allowOrigins.map(normalizeOrigin)),
  }
}

/**
 * Why the `Host` header is refused (answer 403), or undefined when it is accepted. On a loopback
 * listener it must name a loopback host (`localhost`, 127.0.0.0/8, `[::1]`) or an allowed host:
 * a page from evil.example whose DNS name now points at 127.0.0.1 sends `Host: evil.example`.
 *
 * @example
 * hostProblem(originPolicy('127.0.0.1'), 'evil.example:8080') // 'Host evil.example is not ...'
 */
export function hostProblem(policy: OriginPolicy, host: string | undefined): string | undefined {
  // Names a public listener answers to are not known here: the token guards it.
  if (!policy.loopback) return undefined
  if (host === undefined || host === '') return 'the request has no Host header'
  const name = hostName(host.toLowerCase())
  if (policy.allowedHosts.has(name) || isLoopbackHost(name)) return undefined
  return `Host ${clip(name)} is not a loopback name and not allowed with --allowed-host`
}

/**
 * Why a WebSocket upgrade's `Origin` is refused (answer 403), or undefined. No `Origin` (a
 * program, not a browser) is accepted; a browser's origin must be the server's own (its
 * host:port equals the `Host` header) or listed in `allowOrigins`.
 *
 * @example
 * originProblem(policy, 'http://127.0.0.1:8080', '127.0.0.1:8080') // undefined: the dashboard itself
 * originProblem(policy, 'https://evil.example', '127.0.0.1:8080') // 'Origin https://evil.example ...'
 */
export function originProblem(
  policy: OriginPolicy,
  origin: string | undefined,
  host: string | undefined,
): string | undefined {
  if (origin === undefined) return undefined
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return `Origin ${clip(origin)} cannot be read`
  }
  if (policy.allowOrigins.has(url.origin)) return undefined
  if (host !== undefined && url.host !== '' && url.host === host.toLowerCase()) return undefined
  return `Origin ${clip(origin)} is not this server's own and not allowed with --allow-origin`
}

/** Whether `host` (a name or address, IPv6 with or without brackets) is a loopback host. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase()
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  const bare = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h
  if (bare === '::1') return true
  return isIP(bare) === 4 && bare.startsWith('127.')
}

/** `origin` as a browser sends it; unchanged when it is not a URL (it then matches nothing). */
function normalizeOrigin(origin: string): string {
  try {
    return new URL(origin).origin
  } catch {
    return origin
  }
}

/** The host of a `Host` header without its port; IPv6 keeps its brackets. */
function hostName(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    return end < 0 ? host : host.slice(0, end + 1)
  }
  const colon = host.indexOf(':')
  // Two colons: a bare IPv6 address, as --allowed-host may be given.
  if (colon >= 0 && host.indexOf(':', colon + 1) < 0) return host.slice(0, colon)
  return host
}

function clip(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s)
}

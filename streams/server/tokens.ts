/**
 * The token gate: who may use the server when it has a token. Tokens are compared in constant
 * time (digests of equal length, `timingSafeEqual`); an address that keeps presenting wrong
 * tokens is refused (429) for a while; the dashboard logs in once and then holds a session
 * cookie (HttpOnly, SameSite=Strict), so the token never sits in a URL.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

/** Shortest token `serve` accepts. */
export const MIN_TOKEN_LENGTH = 16

/** A command that prints a good token. */
export const MAKE_TOKEN_COMMAND = `node -e "console.log(require('crypto').randomBytes(24).toString('base64url'))"`

/**
 * Why `token` is refused at start, or undefined.
 *
 * @example
 * tokenProblem('s3cret') // 'the token is 6 characters; use at least 16: make one with node -e ...'
 */
export function tokenProblem(token: string): string | undefined {
  if (token.length >= MIN_TOKEN_LENGTH && !/\s/.test(token)) return undefined
  const what = /\s/.test(token) ? 'contains whitespace' : `is ${token.length} characters`
  return `the token ${what}; use at least ${MIN_TOKEN_LENGTH} characters without spaces: make one with ${MAKE_TOKEN_COMMAND}`
}

/** What the gate says about a request. */
export type Verdict = 'ok' | 'refused' | 'limited'

export interface TokenGateOptions {
  /** Wrong tokens an address may present before it is refused with 429. Default 5. */
  maxFailures?: number
  /** How long an address that reached maxFailures is refused, in ms. Default 60 000. */
  lockoutMs?: number
  /** How long a dashboard session lasts, in ms. Default 12 h. */
  sessionMs?: number
  /** Cookie name (it includes the port: browsers share cookies across ports). Default 'rxrnn_session'. */
  cookieName?: string
  /** Adds `Secure` to the cookie (served over TLS). */
  secure?: boolean
  now?: () => number
}

interface Failures {
  count: number
  /** Refused until then (ms), once count reached maxFailures. */
  until: number
}

/** Addresses tracked at most; the oldest is forgotten first (a flood of addresses cannot grow memory). */
const MAX_TRACKED = 10_000
/** Sessions held at most; the oldest is dropped first. */
const MAX_SESSIONS = 1_000

/**
 * Checks requests against the server's token (none: everything is 'ok').
 *
 * @example
 * const gate = new TokenGate(process.env.RXRNN_TOKEN)
 * if (gate.authorize(req.socket.remoteAddress ?? '', req, url) !== 'ok') res.writeHead(401).end()
 */
export class TokenGate {
  /** The session cookie's name (`serve` adds its port once listening). */
  cookieName: string
  private readonly digest: Buffer | undefined
  private readonly failures = new Map<string, Failures>()
  private readonly sessions = new Map<string, number>()
  private readonly maxFailures: number
  private readonly lockoutMs: number
  private readonly sessionMs: number
  private readonly secure: boolean
  private readonly now: () => number
  /** Requests refused for a wrong token, and for too many of them. */
  refused = 0
  limited = 0

  constructor(token: string | undefined, options: TokenGateOptions = {}) {
    this.digest = token === undefined ? undefined : sha256(token)
    this.maxFailures = options.maxFailures ?? 5
    this.lockoutMs = options.lockoutMs ?? 60_000
    this.sessionMs = options.sessionMs ?? 12 * 3_600_000
    this.cookieName = options.cookieName ?? 'rxrnn_session'
    this.secure = options.secure ?? false
    this.now = options.now ?? Date.now
  }

  get required(): boolean {
    return this.digest !== undefined
  }

  /** Whether `presented` is the token, in time that does not depend on where they differ. */
  matches(presented: string): boolean {
    return this.digest === undefined || timingSafeEqual(sha256(presented), this.digest)
  }

  /**
   * A request's verdict from its `Authorization: Bearer`, its `?token=` (programs that cannot
   * set headers) or its session cookie. A wrong token counts against the address.
   */
  authorize(address: string, req: IncomingMessage, url: URL | null): Verdict {
    if (this.digest === undefined) return 'ok'
    if (this.locked(address)) return this.limit()
    const header = req.headers.authorization
    const bearer = header?.startsWith('Bearer ') ? header.slice(7) : undefined
    const presented = bearer ?? url?.searchParams.get('token') ?? undefined
    if (presented !== undefined) return this.check(address, presented)
    if (this.hasSession(req)) return 'ok'
    this.refused++
    return 'refused'
  }

  /**
   * The dashboard's login: on the right token, a `Set-Cookie` value for a new session (the
   * token itself never goes into the cookie).
   */
  login(address: string, presented: string): { verdict: Verdict; cookie?: string } {
    if (this.digest === undefined) return { verdict: 'ok' }
    if (this.locked(address)) return { verdict: this.limit() }
    const verdict = this.check(address, presented)
    if (verdict !== 'ok') return { verdict }
    const id = randomBytes(32).toString('base64url')
    const now = this.now()
    for (const [sid, expires] of this.sessions) if (expires <= now) this.sessions.delete(sid)
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!)
    this.sessions.set(id, now + this.sessionMs)
    const secure = this.secure ? '; Secure' : ''
    const maxAge = Math.floor(this.sessionMs / 1000)
    return {
      verdict,
      cookie: `${this.cookieName}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}${secure}`,
    }
  }

  /** Whether the request holds a live session cookie. */
  hasSession(req: IncomingMessage): boolean {
    const id = readCookie(req.headers.cookie, this.cookieName)
    if (id === undefined) return false
    const expires = this.sessions.get(id)
    if (expires === undefined) return false
    if (expires > this.now()) return true
    this.sessions.delete(id)
    return false
  }

  /** Seconds until `address` may try again (for Retry-After), 0 when it may now. */
  retryAfter(address: string): number {
    const f = this.failures.get(address)
    return f && f.until > this.now() ? Math.ceil((f.until - this.now()) / 1000) : 0
  }

  private check(address: string, presented: string): Verdict {
    if (this.matches(presented)) {
      this.failures.delete(address)
      return 'ok'
    }
    let f = this.failures.get(address)
    if (!f) {
      if (this.failures.size >= MAX_TRACKED) this.failures.delete(this.failures.keys().next().value!)
      f = { count: 0, until: 0 }
      this.failures.set(address, f)
    }
    f.count++
    if (f.count >= this.maxFailures) f.until = this.now() + this.lockoutMs
    this.refused++
    return 'refused'
  }

  private locked(address: string): boolean {
    const f = this.failures.get(address)
    if (!f || f.until === 0) return false
    if (f.until > this.now()) return true
    // The lockout is over: a fresh allowance.
    this.failures.delete(address)
    return false
  }

  private limit(): Verdict {
    this.limited++
    return 'limited'
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** The value of cookie `name` in a `Cookie` header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

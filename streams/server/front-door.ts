/**
 * The server's front door: the HTTP (or HTTPS) listener and the WebSocket upgrade. Every request
 * passes `admission` before any route sees it (a readable target, a `Host` the server answers
 * to; for upgrades also a trusted `Origin`, the token and a free connection place); every
 * listener is guarded, so an exception ends its own socket (500, or a destroyed socket) and is
 * logged while the server goes on.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { WebSocketServer } from 'ws'
import type { HttpRoute } from './dashboard/index.js'
import type { ConnectionLimits } from './limits.js'
import { hostProblem, type OriginPolicy, originProblem, requestTarget } from './origins.js'
import type { TokenGate } from './tokens.js'

export interface FrontDoorOptions {
  policy: OriginPolicy
  gate: TokenGate
  limits: ConnectionLimits
  /** Routes tried in order after admission; `/metrics` is also behind the token. */
  routes: readonly (HttpRoute | undefined)[]
  /** `GET /metrics`: the Prometheus text and its content type. */
  metrics: { text(): Promise<string>; readonly contentType: string }
  /** A WebSocket that passed admission, with the socket under it and the peer's address. */
  onSocket(ws: WebSocket, tcp: Duplex, address: string): void
  maxPayload: number
  tls?: { cert: string | Buffer; key: string | Buffer }
  headersTimeoutMs: number
  requestTimeoutMs: number
  log(line: string): void
}

/** An HTTP refusal: status, a one-line body, and Retry-After (s) for 429. */
export interface Refusal {
  status: number
  text: string
  retryAfter?: number
}

/**
 * @example
 * const door = new FrontDoor({ policy, gate, limits, routes: [dashboard], metrics, onSocket, ... })
 * const port = await door.listen(8080, '127.0.0.1')
 */
export class FrontDoor {
  /** Requests refused, by reason (target, host, origin, token, token_limited, connections). */
  readonly refused = new Map<string, number>()
  private readonly http: Server
  private readonly wss: WebSocketServer

  constructor(private readonly o: FrontDoorOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: o.maxPayload, perMessageDeflate: false })
    const headersTimeout = o.headersTimeoutMs
    const serverOptions = {
      headersTimeout,
      requestTimeout: Math.max(headersTimeout, o.requestTimeoutMs),
      // How often Node looks for requests past those timeouts (its default, 30 s, lets them linger).
      connectionsCheckingInterval: Math.min(1000, Math.max(50, headersTimeout / 4)),
    }
    const handler = (req: IncomingMessage, res: ServerResponse) =>
      this.guard(() => this.onRequest(req, res), res)
    this.http = o.tls
      ? createHttpsServer({ ...serverOptions, cert: o.tls.cert, key: o.tls.key }, handler)
      : createHttpServer(serverOptions, handler)
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.guard(() => this.onUpgrade(req, socket, head), socket),
    )
    // Unparseable requests, failed TLS handshakes: that socket ends, nothing else happens.
    this.http.on('clientError', (_error: Error, socket: Duplex) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
      else socket.destroy()
    })
    this.http.on('tlsClientError', () => {})
  }

  /** Starts listening; resolves with the port. */
  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(port, host, () => {
        this.http.off('error', reject)
        resolve()
      })
    })
    return (this.http.address() as AddressInfo).port
  }

  /** Stops accepting; resolves once every connection is gone (those left are cut after `graceMs`). */
  close(graceMs: number, cut: () => void): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wss.close()
      this.http.close(() => resolve())
      setTimeout(() => {
        cut()
        this.http.closeAllConnections()
      }, graceMs).unref()
    })
  }

  /** Runs a listener; an exception ends that one socket (500, or destroyed), is logged, and the server goes on. */
  guard(run: () => void, socket?: Duplex | ServerResponse): void {
    try {
      run()
    } catch (error) {
      this.o.log(`internal error: ${error instanceof Error ? error.stack : error}`)
      if (socket === undefined) return
      if ('writeHead' in socket && !socket.headersSent)
        respond(socket, { status: 500, text: 'internal error' })
      else socket.destroy()
    }
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Until ws takes the socket over nothing listens for its errors: a client that resets now
    // (ECONNRESET on a write) must not crash the server.
    socket.on('error', () => {})
    const address = req.socket.remoteAddress ?? 'unknown'
    const refusal = this.admission(req, requestTarget(req.url), address, true)
    if (refusal) {
      socket.end(rawResponse(refusal))
      return
    }
    const full = this.o.limits.admit(address)
    if (full) {
      this.refuse('connections', address, full)
      socket.end(rawResponse({ status: 503, text: `too many connections: ${full}` }))
      return
    }
    // Whatever happens next (a handshake ws refuses, a close), the place is given back once.
    socket.once('close', () => this.o.limits.release(address))
    this.wss.handleUpgrade(req, socket, head, (ws) =>
      this.guard(() => this.o.onSocket(ws, socket, address), socket),
    )
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const address = req.socket.remoteAddress ?? 'unknown'
    const url = requestTarget(req.url)
    const refusal = this.admission(req, url, address, false)
    if (refusal) {
      respond(res, refusal)
      return
    }
    if (url!.pathname === '/metrics') {
      const denied = this.tokenRefusal(req, url!, address)
      if (denied) {
        respond(res, denied)
        return
      }
      void this.o.metrics.text().then(
        (text) => res.writeHead(200, { 'content-type': this.o.metrics.contentType }).end(text),
        (error: unknown) => {
          this.o.log(`internal error in /metrics: ${error instanceof Error ? error.stack : error}`)
          respond(res, { status: 500, text: 'internal error' })
        },
      )
      return
    }
    for (const route of this.o.routes) if (route?.(req, res)) return
    respond(res, { status: 404, text: 'rxrnn: connect with WebSocket' })
  }

  /** Why a request is refused before any route sees it, or undefined. */
  private admission(
    req: IncomingMessage,
    url: URL | null,
    address: string,
    upgrade: boolean,
  ): Refusal | undefined {
    if (url === null) {
      this.refuse('target', address, 'a request target that cannot be read')
      return { status: 400, text: 'the request target cannot be read' }
    }
    const hostIssue = hostProblem(this.o.policy, req.headers.host)
    if (hostIssue) {
      this.refuse('host', address, hostIssue)
      return { status: 403, text: hostIssue }
    }
    if (!upgrade) return undefined
    const originIssue = originProblem(this.o.policy, req.headers.origin, req.headers.host)
    if (originIssue) {
      this.refuse('origin', address, originIssue)
      return { status: 403, text: originIssue }
    }
    return this.tokenRefusal(req, url, address)
  }

  private tokenRefusal(req: IncomingMessage, url: URL, address: string): Refusal | undefined {
    const { gate } = this.o
    const verdict = gate.authorize(address, req, url)
    if (verdict === 'ok') return undefined
    if (verdict === 'limited') {
      this.refuse('token_limited', address, 'too many wrong tokens')
      return {
        status: 429,
        text: 'too many wrong tokens; try again later',
        retryAfter: gate.retryAfter(address),
      }
    }
    this.refuse('token', address, 'wrong or missing token')
    return { status: 401, text: 'a token is required: send Authorization: Bearer <token>' }
  }

  private refuse(reason: string, address: string, problem: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1)
    this.o.log(`refused ${address}: ${problem}`)
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

/** A refusal as raw HTTP, for a socket ws has not taken over. */
function rawResponse(r: Refusal): string {
  const body = `${r.text}\n`
  const retry = r.retryAfter ? `Retry-After: ${r.retryAfter}\r\n` : ''
  return (
    `HTTP/1.1 ${r.status} ${STATUS_TEXT[r.status] ?? 'Error'}\r\nConnection: close\r\n${retry}` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

function respond(res: ServerResponse, r: Refusal): void {
  const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' }
  // A refused client gets no kept-alive connection to try again on.
  if (r.status >= 400 && r.status !== 404) headers.connection = 'close'
  if (r.retryAfter) headers['retry-after'] = String(r.retryAfter)
  res.writeHead(r.status, headers).end(`${r.text}\n`)
}

/**
 * How a server meets its clients (`EndpointOptions`: what `ServeOptions` and `GatewayOptions`
 * extend) and the checks they pass before anything starts. Kept apart from `endpoint.ts` so the
 * published types of `rxrnn/server` need no `ws` types.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { RxrnnError } from '../../src/index.js'
import { tokenProblem } from './tokens.js'

/** How a server meets its clients. Every limit has a default fit for a server on the internet. */
export interface EndpointOptions {
  /** Default 127.0.0.1: reachable from this machine only, unless you say otherwise. */
  host?: string
  /** Default 0 (any free port; read it from `server.port`). */
  port?: number
  /**
   * When set (16 characters or more), a connection must present it: `Authorization: Bearer …`,
   * `?token=` (programs that cannot set headers) or the dashboard's session cookie; others get
   * 401, and an address with 5 wrong tokens gets 429 for a minute. Also guards `GET /metrics`.
   */
  token?: string
  /** Origins (`https://app.example.com`) whose pages may open WebSockets, beside the server's own. */
  allowOrigins?: readonly string[]
  /** Host names accepted beside loopback names when listening on loopback (behind a proxy). */
  allowedHosts?: readonly string[]
  /** Serve HTTPS and wss:// with this certificate and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer }
  /** Largest frame accepted, in bytes; a larger one closes the connection with 1009. Default 1 MiB. */
  maxPayload?: number
  /** Bytes a connection may hold unsent (frame overhead included) before frames to it are dropped. Default 4 MiB. */
  maxBufferedBytes?: number
  /** Bytes all connections together may hold unsent. Default 256 MiB. */
  maxBufferedTotal?: number
  /** A connection over its byte budget this long is closed with 1013. Default 5000 ms. */
  slowReaderGraceMs?: number
  /** Open WebSocket connections at most; more get HTTP 503. Default 1024. */
  maxConnections?: number
  /** Open WebSocket connections per remote address at most. Default 256. */
  maxConnectionsPerAddress?: number
  /** How often every connection is pinged, in ms. Default 5000. */
  pingIntervalMs?: number
  /** A connection that sends nothing, not even a pong, this long is terminated. Default 30 000 ms. */
  idleTimeoutMs?: number
  /** Time a client has to send a request's headers, in ms. Default 10 000. */
  headersTimeoutMs?: number
  /** Time a client has to send a whole HTTP request, in ms. Default 30 000. */
  requestTimeoutMs?: number
  /** Keys one subscribe may name. Default 1000. */
  maxSubscribeKeys?: number
  /** New keys one connection may create per second (bursts as large); the rest get `rate_limited`. Default 1000. */
  maxNewKeysPerSecond?: number
  /** How often metrics frames go to subscribers. Default 1000 ms. */
  metricsIntervalMs?: number
  /** Serves extra HTTP routes; return false to fall through. Host checks apply to them too. */
  http?: (req: IncomingMessage, res: ServerResponse) => boolean
  /** Serves the live dashboard on GET / (after `http`'s routes). Default true. */
  dashboard?: boolean
  /** Log lines (refusals, errors). Default: none. */
  log?: (line: string) => void
}

/**
 * Refuses, before anything starts, endpoint options that cannot work: a token too short (the
 * message says how to make one), an idle timeout not longer than the ping interval.
 */
export function checkEndpointOptions(options: EndpointOptions, what = 'serve'): void {
  if (options.token !== undefined) {
    const problem = tokenProblem(options.token)
    if (problem) throw new RxrnnError('bad_config', `Cannot ${what} with this --token: ${problem}`)
  }
  const pingInterval = options.pingIntervalMs ?? 5000
  const idleTimeout = options.idleTimeoutMs ?? 30_000
  if (!(idleTimeout > pingInterval)) {
    throw new RxrnnError(
      'bad_config',
      `--idle-timeout (${idleTimeout} ms) must be longer than --ping-interval (${pingInterval} ms): live peers answer each ping`,
    )
  }
}

/**
 * The client-facing half of a server, whatever answers the ticks: the front door (HTTP/HTTPS,
 * admission by target, Host, Origin, token and connection limits, `/metrics`, the dashboard),
 * the hub and its connections (byte budgets, heartbeat, slow readers), the dispatcher (hostile
 * frames, new-key rate) and the Prometheus registry. `serve()` composes it with a local learner,
 * the NATS gateway with its relay to the workers: both get the same flags, defaults and guarantees.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { RxrnnError } from '../../src/index.js'
import type { FrameExpectations, MetricsFrame } from '../transport/protocol.js'
import { DEFAULT_MAX_SUBSCRIBE_KEYS } from '../transport/protocol.js'
import type { SendBudget } from './connection.js'
import { dashboardRoutes } from './dashboard/index.js'
import { Dispatcher } from './dispatcher.js'
import { FrontDoor } from './front-door.js'
import type { Hub } from './hub.js'
import { ConnectionLimits } from './limits.js'
import { originPolicy } from './origins.js'
import { ServerMetrics } from './prometheus.js'
import type { ConnectionCounters, EndpointModel } from './tick-handler.js'
import { TokenGate, tokenProblem } from './tokens.js'

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

/**
 * @example
 * checkEndpointOptions(options)
 * const hub = new Hub()
 * const endpoint = new Endpoint(options, hub, new LearnerTicks(learner, hub).endpointModel())
 * await endpoint.listen()
 * console.log(endpoint.url)
 */
export class Endpoint {
  readonly host: string
  /** Set by `listen`. */
  port = 0
  /** The byte budgets every connection draws from, and what they dropped. */
  readonly budget: SendBudget
  /** Connections closed as slow readers, ticks refused for new keys too fast, dead peers cut. */
  readonly counts = { slowClosed: 0, rateLimited: 0, deadPeers: 0 }
  /** What `GET /metrics` serves; add series of your own to `prometheus.registry`. */
  readonly prometheus: ServerMetrics
  /** The metrics frame subscribers get. */
  readonly metrics: () => MetricsFrame
  private readonly gate: TokenGate
  private readonly door: FrontDoor
  private readonly timers: NodeJS.Timeout[] = []

  constructor(
    private readonly options: EndpointOptions,
    readonly hub: Hub,
    model: EndpointModel,
  ) {
    const log = options.log ?? (() => {})
    this.host = options.host ?? '127.0.0.1'
    const maxPayload = options.maxPayload ?? 1 << 20
    const maxSubscribeKeys = options.maxSubscribeKeys ?? DEFAULT_MAX_SUBSCRIBE_KEYS
    const expect: FrameExpectations & { maxBytes: number; maxValues: number } = {
      ...model.expectations,
      maxSubscribeKeys,
      maxBytes: maxPayload,
      // A tick holds its values (x and y); a subscribe up to maxSubscribeKeys keys.
      maxValues: 64 + 2 * model.maxTickValues + 2 * maxSubscribeKeys,
    }
    const budget: SendBudget = {
      perConnection: options.maxBufferedBytes ?? 4 << 20,
      total: options.maxBufferedTotal ?? 256 << 20,
      held: 0,
      dropped: 0,
      sampledOut: 0,
    }
    this.budget = budget
    const counts = this.counts
    this.gate = new TokenGate(options.token, { secure: options.tls !== undefined })
    const counters = (): ConnectionCounters => ({
      ...hub.roles(),
      dropped: budget.dropped,
      sampledOut: budget.sampledOut,
      slowClosed: counts.slowClosed,
      rateLimited: counts.rateLimited,
    })
    this.metrics = () => model.metrics(counters())
    this.prometheus = new ServerMetrics({
      ...model.figures,
      connections: () => hub.connections.size,
      producers: () => hub.roles().producers,
      subscribers: () => hub.roles().subscribers,
      droppedFrames: () => budget.dropped,
      sampledOutFrames: () => budget.sampledOut,
      slowSubscribersClosed: () => counts.slowClosed,
      rateLimited: () => counts.rateLimited,
      refusedByReason: (): Iterable<[string, number]> => this.door.refused,
      bufferedBytes: () => budget.held,
      deadPeers: () => counts.deadPeers,
    })
    const dispatcher = new Dispatcher({
      handler: model.handler,
      hub,
      budget,
      expect,
      maxNewKeysPerSecond: options.maxNewKeysPerSecond ?? 1000,
      metrics: this.metrics,
      tickSeconds: this.prometheus.tickSeconds,
      counts,
      log,
    })
    this.door = new FrontDoor({
      policy: originPolicy(this.host, options.allowedHosts, options.allowOrigins),
      gate: this.gate,
      limits: new ConnectionLimits(options.maxConnections ?? 1024, options.maxConnectionsPerAddress ?? 256),
      routes: [options.http, options.dashboard === false ? undefined : dashboardRoutes({ gate: this.gate })],
      metrics: this.prometheus,
      onSocket: (ws, tcp, address) => dispatcher.connect(ws, tcp, address),
      maxPayload,
      ...(options.tls ? { tls: options.tls } : {}),
      headersTimeoutMs: options.headersTimeoutMs ?? 10_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      log,
    })
  }

  /** `ws://host:port`, or `wss://host:port` with TLS (once listening). */
  get url(): string {
    const urlHost = this.host.includes(':') ? `[${this.host}]` : this.host
    return `${this.options.tls ? 'wss' : 'ws'}://${urlHost}:${this.port}`
  }

  /**
   * Listens, and starts the metrics frames, the heartbeat and the slow-reader sweep. Rejects
   * when it cannot listen (EADDRINUSE and the like).
   */
  async listen(): Promise<void> {
    const { options, hub, counts } = this
    const log = options.log ?? (() => {})
    this.port = await this.door.listen(options.port ?? 0, this.host)
    this.gate.cookieName = `rxrnn_session_${this.port}`
    this.every(options.metricsIntervalMs ?? 1000, () => hub.broadcast('metrics', null, this.metrics))
    const idleTimeout = options.idleTimeoutMs ?? 30_000
    this.every(options.pingIntervalMs ?? 5000, () => {
      counts.deadPeers += hub.heartbeat(Date.now(), idleTimeout)
    })
    const grace = options.slowReaderGraceMs ?? 5000
    this.every(Math.max(10, Math.min(250, grace / 4)), () => {
      for (const conn of hub.closeSlowReaders(Date.now(), grace)) {
        counts.slowClosed++
        log(
          `closed ${conn.address}: over its byte budget for ${grace} ms (a reader too slow for its subscription)`,
        )
      }
    })
  }

  /** Runs `run` every `ms` (unref'd; an exception is logged and the timer goes on) until `close`. */
  every(ms: number, run: () => void): void {
    const timer = setInterval(() => this.door.guard(run), ms)
    timer.unref()
    this.timers.push(timer)
  }

  /** Runs a callback from outside the server's listeners (a NATS message): an exception is logged, never thrown. */
  guard(run: () => void): void {
    this.door.guard(run)
  }

  /**
   * Stops the timers, closes every connection with `code` (synchronously, before the first
   * await) and stops listening; peers that do not answer the close handshake are cut after a
   * second.
   */
  async close(code = 1001): Promise<void> {
    for (const timer of this.timers) clearInterval(timer)
    for (const conn of this.hub.connections) conn.socket.close(code, 'server shutting down')
    await this.door.close(1000, () => {
      for (const conn of this.hub.connections) conn.socket.terminate()
    })
  }
}

/**
 * The client-facing half of a server, whatever answers the ticks: the front door (HTTP/HTTPS,
 * admission by target, Host, Origin, token and connection limits, `/metrics`, the dashboard),
 * the hub and its connections (byte budgets, heartbeat, slow readers), the dispatcher (hostile
 * frames, new-key rate) and the Prometheus registry. `serve()` composes it with a local learner,
 * the NATS gateway with its relay to the workers: both get the same flags, defaults and guarantees.
 * Its options are in `endpoint-options.ts` (public types that need no `ws` types).
 */
import type { FrameExpectations, MetricsFrame } from '../transport/protocol.js'
import { DEFAULT_MAX_SUBSCRIBE_KEYS } from '../transport/protocol.js'
import type { SendBudget } from './connection.js'
import { dashboardRoutes } from './dashboard/index.js'
import { Dispatcher } from './dispatcher.js'
import type { EndpointOptions } from './endpoint-options.js'
import { FrontDoor } from './front-door.js'
import type { Hub } from './hub.js'
import { ConnectionLimits } from './limits.js'
import { originPolicy } from './origins.js'
import { ServerMetrics } from './prometheus.js'
import type { ConnectionCounters, EndpointModel } from './tick-handler.js'
import { TokenGate } from './tokens.js'

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

/**
 * `serve()`: wires the server's units together. Each is a file of its own, testable without the
 * others: `learner.ts` (keyed trainer, monitor, deferred updates; no transport), `frames.ts`
 * (pure frame builders, encode-once `SharedFrame`), `connection.ts` (one client: corking,
 * subscription, byte budget), `hub.ts` (connections, broadcast, heartbeat, slow readers),
 * `dispatcher.ts` (what each client frame does), `front-door.ts` (HTTP/HTTPS, upgrade admission,
 * /metrics), `origins.ts`, `tokens.ts`, `limits.ts`, `checkpointer.ts`, `prometheus.ts`.
 *
 * Extension points: a further per-tick output (a forecast ahead, an interval, an anomaly score)
 * is a field of `TickResult` set in `Learner.tick` and copied into the prediction frame by
 * `predictionFrame`; another transport (a NATS gateway) drives a `Learner` directly and builds
 * its replies with `frames.ts`, or calls `Dispatcher` with its own connections.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { KeyedTrainer, Model, ModelConfig, OnlineTrainer, TrainerOptions } from '../../src/index.js'
import { RxrnnError } from '../../src/index.js'
import type { Monitor } from '../operators/monitor.js'
import type { FrameExpectations, MetricsFrame } from '../transport/protocol.js'
import { DEFAULT_MAX_SUBSCRIBE_KEYS } from '../transport/protocol.js'
import { readCheckpoint, removeStaleTemporaries } from './checkpoint.js'
import { Checkpointer, checkResumed, type ExplicitSettings } from './checkpointer.js'
import type { SendBudget } from './connection.js'
import { dashboardRoutes } from './dashboard/index.js'
import { Dispatcher } from './dispatcher.js'
import type { ServeForecastingOptions, ServerForecasting } from './forecasting.js'
import { registerForecastingMetrics } from './forecasting-metrics.js'
import { metricsFrame, updateFrame } from './frames.js'
import { FrontDoor } from './front-door.js'
import { Hub } from './hub.js'
import { Learner } from './learner.js'
import { ConnectionLimits, defaultMaxMemory, heapBytesPerKey, memoryProblem } from './limits.js'
import { originPolicy } from './origins.js'
import { ServerMetrics } from './prometheus.js'
import { TokenGate, tokenProblem } from './tokens.js'

/** Options of `serve`. Every limit has a default fit for a server on the internet. */
export interface ServeOptions {
  /** The model, or a config to build one. */
  model: Model | ModelConfig
  trainer: TrainerOptions
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
  /** Keys held at most (least recently seen are evicted first). Default 100 000. */
  maxKeys?: number
  /** Refuse to start when maxKeys × bytes per key exceeds this. Default: half the machine's memory. */
  maxMemory?: number
  /**
   * New keys start at staggered phases of their TBPTT window, so many keys never update on the
   * same tick (a latency spike for every producer). Default true.
   */
  staggerUpdates?: boolean
  /**
   * Answer first, learn after: each tick is answered from the forward pass, and the weight
   * updates its window completes run once the replies to the current batch of ticks are on their
   * way (KeyedTrainer.observeDeferred), so no reply waits behind an update. A key's next tick runs
   * its own pending update first. Off: every update runs before its tick's reply, and the order of
   * updates and other keys' ticks no longer depends on how ticks were batched. Default true.
   */
  deferUpdates?: boolean
  /** Keys unseen this long are evicted. Default: never. */
  idleMs?: number
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
  /**
   * Crash recovery: resume from `path` when it exists, write a checkpoint there every `everyMs`
   * (atomically: a crash leaves the last good one) and a final one on close.
   */
  checkpoint?: { path: string; everyMs: number }
  /** On resume, the model and trainer settings the user set: each must match the checkpoint's. */
  explicit?: ExplicitSettings
  /**
   * Intervals, anomaly scores, drift detection, irregular time and missing values (see
   * ServeForecastingOptions); the horizon is `trainer.horizon`. Default: none of them.
   */
  forecasting?: ServeForecastingOptions
  /** Log lines (refusals, errors). Default: none. */
  log?: (line: string) => void
}

/** A running server. */
export interface RxrnnServer {
  readonly host: string
  readonly port: number
  /** `ws://host:port`, or `wss://host:port` with TLS. */
  readonly url: string
  readonly model: Model
  readonly trainer: OnlineTrainer
  readonly keyed: KeyedTrainer
  readonly monitor: Monitor
  /** What `GET /metrics` serves. */
  readonly prometheus: ServerMetrics
  /** Intervals, anomalies and drift per key (with `forecasting` or a trainer horizon), else null. */
  readonly forecasting: ServerForecasting | null
  /** The metrics frame subscribers get. */
  metrics(): MetricsFrame
  /** Writes a checkpoint now (when configured); resolves when it is on disk or the failure is logged. */
  checkpoint(): Promise<void>
  /**
   * Closes every connection with `code` (default 1001, going away), writes a final checkpoint
   * and stops listening. Rejects when the final checkpoint fails, naming the last good one.
   */
  close(code?: number): Promise<void>
}

/**
 * Starts the streaming server: producers push ticks over WebSocket (binary msgpack or JSON
 * text), the model learns online per key (shared weights, per-key hidden state and TBPTT
 * window), every tick is answered with its prediction, and updates and metrics go to the
 * connections that subscribe. See the README's protocol and Security sections.
 *
 * @example
 * import { serve } from 'rxrnn/server'
 * const server = await serve({
 *   model: { cell: 'gru', inputSize: 3, hiddenSize: 32, outputSize: 1 },
 *   trainer: { k1: 16, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 }, clipNorm: 1 },
 *   port: 8080,
 * })
 * console.log(`listening on ${server.url}`)
 */
export async function serve(options: ServeOptions): Promise<RxrnnServer> {
  const log = options.log ?? (() => {})
  if (options.token !== undefined) {
    const problem = tokenProblem(options.token)
    if (problem) throw new RxrnnError('bad_config', `Cannot serve with this --token: ${problem}`)
  }
  const host = options.host ?? '127.0.0.1'
  const pingInterval = options.pingIntervalMs ?? 5000
  const idleTimeout = options.idleTimeoutMs ?? 30_000
  if (!(idleTimeout > pingInterval)) {
    throw new RxrnnError(
      'bad_config',
      `--idle-timeout (${idleTimeout} ms) must be longer than --ping-interval (${pingInterval} ms): live peers answer each ping`,
    )
  }
  const hub = new Hub()
  const counts = { slowClosed: 0, rateLimited: 0, deadPeers: 0 }

  // The learner, resumed from the checkpoint when there is one.
  const checkpointPath = options.checkpoint?.path
  if (checkpointPath) await removeStaleTemporaries(checkpointPath)
  const saved = checkpointPath ? readCheckpoint(checkpointPath) : null
  const learner = new Learner({
    model: options.model,
    trainer: options.trainer,
    resumeFrom: saved,
    ...(options.maxKeys === undefined ? {} : { maxKeys: options.maxKeys }),
    ...(options.idleMs === undefined ? {} : { idleMs: options.idleMs }),
    staggerUpdates: options.staggerUpdates ?? true,
    deferUpdates: options.deferUpdates ?? true,
    onUpdate: (key, report) => hub.broadcast('updates', key, () => updateFrame(key, report)),
    ...(options.forecasting ? { forecasting: options.forecasting } : {}),
  })
  const { keyed, monitor } = learner
  if (saved) {
    checkResumed(learner.trainer, checkpointPath!, options.explicit)
    log(`resumed from ${checkpointPath}: ${keyed.size} keys, ${learner.trainer.optimizer.t} updates learned`)
  }
  // The forecasting state sits beside the checkpoint (`<path>.forecast`); without it, keys calibrate afresh.
  const forecasting = learner.forecasting
  const forecastPath = checkpointPath ? `${checkpointPath}.forecast` : null
  const savedForecast = forecasting && saved && forecastPath ? readCheckpoint(forecastPath) : null
  if (forecasting && savedForecast) {
    try {
      forecasting.restore(savedForecast)
    } catch (error) {
      if (!(error instanceof RxrnnError)) throw error
      log(`${forecastPath}: ${error.message}; the keys' intervals and drift detectors start afresh`)
    }
  }
  const memory = memoryProblem(
    // A key's forecasting state (intervals, detectors) counts too.
    heapBytesPerKey(keyed.bytesPerKey() + (learner.forecasting?.bytesPerKey() ?? 0)),
    keyed.maxKeys,
    options.maxMemory ?? defaultMaxMemory(),
  )
  if (memory) throw new RxrnnError('bad_config', `Cannot serve: its keys may not fit in memory: ${memory}`)
  const checkpointer = options.checkpoint
    ? new Checkpointer(options.checkpoint.path, options.checkpoint.everyMs, () => keyed.snapshot(), log)
    : undefined
  const forecastCheckpointer =
    options.checkpoint && forecasting && forecastPath
      ? new Checkpointer(forecastPath, options.checkpoint.everyMs, () => forecasting.snapshot(), log)
      : undefined

  const maxPayload = options.maxPayload ?? 1 << 20
  const maxSubscribeKeys = options.maxSubscribeKeys ?? DEFAULT_MAX_SUBSCRIBE_KEYS
  const expect: FrameExpectations & { maxBytes: number; maxValues: number } = {
    ...learner.expectations(),
    maxSubscribeKeys,
    maxBytes: maxPayload,
    // A tick holds inputSize + outputSize numbers; a subscribe up to maxSubscribeKeys keys.
    maxValues:
      64 + 2 * (learner.model.config.inputSize + learner.model.config.outputSize) + 2 * maxSubscribeKeys,
  }
  const budget: SendBudget = {
    perConnection: options.maxBufferedBytes ?? 4 << 20,
    total: options.maxBufferedTotal ?? 256 << 20,
    held: 0,
    dropped: 0,
    sampledOut: 0,
  }
  const gate = new TokenGate(options.token, { secure: options.tls !== undefined })

  const metrics = (): MetricsFrame => {
    const frame = baseMetrics()
    // Realised coverage (row 0, every key), anomalies and drift alarms so far.
    if (forecasting) Object.assign(frame, forecasting.metrics())
    return frame
  }
  const baseMetrics = (): MetricsFrame =>
    metricsFrame(monitor.snapshot(), {
      ...hub.roles(),
      dropped: budget.dropped,
      sampledOut: budget.sampledOut,
      keys: keyed.size,
      evicted: keyed.evicted,
      slowClosed: counts.slowClosed,
      rateLimited: counts.rateLimited,
    })
  const prometheus = new ServerMetrics({
    ticks: () => monitor.events,
    updates: () => monitor.updates,
    skippedUpdates: () => monitor.skippedUpdates,
    rolledBackUpdates: () => monitor.rolledBack,
    loss: () => monitor.snapshot().lossAverage,
    gradNorm: () => monitor.snapshot().gradNorm,
    clipRate: () => monitor.snapshot().clipRate,
    keys: () => keyed.size,
    evictedKeys: () => keyed.evicted,
    connections: () => hub.connections.size,
    producers: () => hub.roles().producers,
    subscribers: () => hub.roles().subscribers,
    rejectedByCode: () => learner.rejectedByCode,
    droppedFrames: () => budget.dropped,
    sampledOutFrames: () => budget.sampledOut,
    slowSubscribersClosed: () => counts.slowClosed,
    rateLimited: () => counts.rateLimited,
    refusedByReason: (): Iterable<[string, number]> => door.refused,
    bufferedBytes: () => budget.held,
    deadPeers: () => counts.deadPeers,
  })
  if (forecasting)
    registerForecastingMetrics(prometheus.registry, () => forecasting, options.forecasting?.coverage)

  const dispatcher = new Dispatcher({
    learner,
    hub,
    budget,
    expect,
    maxNewKeysPerSecond: options.maxNewKeysPerSecond ?? 1000,
    metrics,
    tickSeconds: prometheus.tickSeconds,
    counts,
    log,
  })

  const door = new FrontDoor({
    policy: originPolicy(host, options.allowedHosts, options.allowOrigins),
    gate,
    limits: new ConnectionLimits(options.maxConnections ?? 1024, options.maxConnectionsPerAddress ?? 256),
    routes: [options.http, options.dashboard === false ? undefined : dashboardRoutes({ gate })],
    metrics: prometheus,
    onSocket: (ws, tcp, address) => dispatcher.connect(ws, tcp, address),
    maxPayload,
    ...(options.tls ? { tls: options.tls } : {}),
    headersTimeoutMs: options.headersTimeoutMs ?? 10_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    log,
  })

  const port = await door.listen(options.port ?? 0, host)
  const timers: NodeJS.Timeout[] = []
  const every = (ms: number, run: () => void): void => {
    const timer = setInterval(() => door.guard(run), ms)
    timer.unref()
    timers.push(timer)
  }
  every(options.metricsIntervalMs ?? 1000, () => hub.broadcast('metrics', null, metrics))
  if (options.idleMs !== undefined) every(Math.max(100, options.idleMs / 2), () => learner.evictIdle())
  every(pingInterval, () => {
    counts.deadPeers += hub.heartbeat(Date.now(), idleTimeout)
  })
  const grace = options.slowReaderGraceMs ?? 5000
  every(Math.max(10, Math.min(250, grace / 4)), () => {
    for (const conn of hub.closeSlowReaders(Date.now(), grace)) {
      counts.slowClosed++
      log(
        `closed ${conn.address}: over its byte budget for ${grace} ms (a reader too slow for its subscription)`,
      )
    }
  })
  checkpointer?.start()
  forecastCheckpointer?.start()

  gate.cookieName = `rxrnn_session_${port}`
  const urlHost = host.includes(':') ? `[${host}]` : host

  return {
    host,
    port,
    url: `${options.tls ? 'wss' : 'ws'}://${urlHost}:${port}`,
    model: learner.model,
    trainer: learner.trainer,
    keyed,
    monitor,
    prometheus,
    forecasting,
    metrics,
    checkpoint: async () => {
      await checkpointer?.save()
      await forecastCheckpointer?.save()
    },
    async close(code = 1001) {
      for (const timer of timers) clearInterval(timer)
      // Queued updates run (and reach subscribers) before the connections close.
      learner.flush()
      for (const conn of hub.connections) conn.socket.close(code, 'server shutting down')
      const final = checkpointer?.final()
      // Settled here, thrown below: the server stops listening whatever the checkpoint does.
      final?.catch(() => {})
      // The forecasting state is auxiliary: its failure is logged, not thrown.
      const forecastFinal = forecastCheckpointer?.final().catch((error: unknown) => log(String(error)))
      // Peers that do not answer the close handshake are cut after a grace period.
      await door.close(1000, () => {
        for (const conn of hub.connections) conn.socket.terminate()
      })
      await forecastFinal
      await final
    },
  }
}

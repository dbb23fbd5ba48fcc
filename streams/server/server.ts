import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { WebSocketServer } from 'ws'
import type { ForecastFields, ModelConfig, TrainerOptions, UpdateReport } from '../../src/index.js'
import { createModel, KeyedTrainer, Model, OnlineTrainer, RxrnnError } from '../../src/index.js'
import { Monitor } from '../operators/monitor.js'
import type { FrameEncoding } from '../transport/codec.js'
import { decodeClientFrame, encodeFrame } from '../transport/codec.js'
import type {
  Channel,
  ClientFrame,
  MetricsFrame,
  ModelSummary,
  PredictionFrame,
  TickFrame,
} from '../transport/protocol.js'
import { errorFrame, PROTOCOL_VERSION } from '../transport/protocol.js'
import { readCheckpoint, removeStaleTemporaries, writeFileAtomic } from './checkpoint.js'
import { dashboardRoutes } from './dashboard/index.js'
import type { ServeForecastingOptions } from './forecasting.js'
import { ServerForecasting } from './forecasting.js'

/** How long replies may wait in a corked socket while later ticks of the same chunk run, in ms. */
const CORK_BUDGET_MS = 1

const noUpdates: readonly UpdateReport[] = []

/** The TCP socket under a ws connection. */
interface Corkable {
  cork(): void
  uncork(): void
}

/** Ends the cork `send` started this turn (a plain function: no closure per batch of replies). */
function endCork(conn: Connection, tcp: Corkable): void {
  conn.corked = false
  tcp.uncork()
}

/** Options of `serve`. */
export interface ServeOptions {
  /** The model, or a config to build one. */
  model: Model | ModelConfig
  trainer: TrainerOptions
  /** Default 127.0.0.1: reachable from this machine only, unless you say otherwise. */
  host?: string
  /** Default 0 (any free port; read it from `server.port`). */
  port?: number
  /** When set, a connection must present it (`Authorization: Bearer …` or `?token=`); others get 401. */
  token?: string
  /** Largest frame accepted, in bytes; a larger one closes the connection with 1009. Default 1 MiB. */
  maxPayload?: number
  /** Keys held at most (least recently seen are evicted first). Default 100 000. */
  maxKeys?: number
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
  /** Bytes a connection may have unsent before frames to it are dropped (and counted). Default 4 MiB. */
  maxBufferedBytes?: number
  /** How often metrics frames go to subscribers. Default 1000 ms. */
  metricsIntervalMs?: number
  /** Serves extra HTTP routes (the dashboard); return false to fall through to 404. */
  http?: (req: IncomingMessage, res: ServerResponse) => boolean
  /** Serves the live dashboard on GET / (after `http`'s routes). Default true. */
  dashboard?: boolean
  /**
   * Crash recovery: resume from `path` when it exists, write a checkpoint there every `everyMs`
   * (atomically: a crash leaves the last good one) and a final one on close.
   */
  checkpoint?: { path: string; everyMs: number }
  /** Log lines (connections, errors). Default: none. */
  log?: (line: string) => void
  /**
   * Intervals, anomaly scores, drift detection, irregular time and missing values (see
   * ServeForecastingOptions); the horizon is `trainer.horizon`. Default: none of them.
   */
  forecasting?: ServeForecastingOptions
}

/** A running server. */
export interface RxrnnServer {
  readonly host: string
  readonly port: number
  /** `ws://host:port` */
  readonly url: string
  readonly model: Model
  readonly trainer: OnlineTrainer
  readonly keyed: KeyedTrainer
  readonly monitor: Monitor
  /** Intervals, anomalies and drift per key (with `forecasting` or a trainer horizon), else null. */
  readonly forecasting: ServerForecasting | null
  /** The metrics frame subscribers get. */
  metrics(): MetricsFrame
  /** Writes a checkpoint now (when configured); resolves when it is safely on disk. */
  checkpoint(): Promise<void>
  /** Closes every connection with `code` (default 1001, going away), writes a final checkpoint and stops listening. */
  close(code?: number): Promise<void>
}

interface Connection {
  readonly socket: WebSocket
  /** Encoding of the last frame received: replies use the encoding of the request. */
  encoding: FrameEncoding
  producer: boolean
  channels: Set<Channel>
  keys: Set<string> | null
  dropped: number
  /** The TCP socket is corked until the end of this event-loop turn (see `send`), since corkedAt (ms). */
  corked: boolean
  corkedAt: number
  /** The subscriber's maxRate (frames per second per channel, metrics excepted), or null. */
  maxRate: number | null
  /** Per sampled channel: the second being counted and the frames sent in it. */
  rate: { predictions: [number, number]; hidden: [number, number]; updates: [number, number] }
  /** Frames left out by maxRate. */
  sampledOut: number
}

/**
 * Starts the streaming server: producers push ticks over WebSocket (binary msgpack or JSON
 * text), the model learns online per key (shared weights, per-key hidden state and TBPTT
 * window), every tick is answered with its prediction, and updates and metrics go to the
 * connections that subscribe. See the README's protocol section for the frames.
 *
 * @example
 * import { serve } from 'rxrnn/streams'
 * const server = await serve({
 *   model: { cell: 'gru', inputSize: 3, hiddenSize: 32, outputSize: 1 },
 *   trainer: { k1: 16, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 }, clipNorm: 1 },
 *   port: 8080,
 * })
 * console.log(`listening on ${server.url}`)
 */
export async function serve(options: ServeOptions): Promise<RxrnnServer> {
  const log = options.log ?? (() => {})
  const previousTargets = new Map<string, Float64Array>()
  const targetScratch = new Float64Array(1)
  const oneTarget = (y: number): Float64Array => {
    targetScratch[0] = y
    return targetScratch
  }
  // Assigned once the trainer exists; keys evicted before that have nothing to forget there.
  let forecasting: ServerForecasting | null = null
  const onEvict = (key: string) => {
    previousTargets.delete(key)
    forecasting?.delete(key)
  }
  if (options.checkpoint) await removeStaleTemporaries(options.checkpoint.path)
  const saved = options.checkpoint ? readCheckpoint(options.checkpoint.path) : null
  let keyed: KeyedTrainer
  if (saved) {
    keyed = KeyedTrainer.fromSnapshot(saved, { onEvict })
    log(
      `resumed from ${options.checkpoint!.path}: ${keyed.size} keys, ${keyed.trainer.optimizer.t} updates learned ` +
        '(the checkpoint decides the model and trainer settings; those given now are ignored)',
    )
  } else {
    const model = options.model instanceof Model ? options.model : createModel(options.model)
    keyed = new KeyedTrainer(new OnlineTrainer(model, options.trainer), {
      ...(options.maxKeys === undefined ? {} : { maxKeys: options.maxKeys }),
      ...(options.idleMs === undefined ? {} : { idleMs: options.idleMs }),
      staggerUpdates: options.staggerUpdates ?? true,
      onEvict,
    })
  }
  const trainer = keyed.trainer
  const model = trainer.model
  const horizonActive = trainer.options.horizon > 1
  if (options.forecasting || horizonActive)
    forecasting = new ServerForecasting(keyed, options.forecasting ?? {})
  // The forecasting state sits next to the checkpoint (`<path>.forecast`); without it, keys calibrate afresh.
  const forecastPath = options.checkpoint ? `${options.checkpoint.path}.forecast` : null
  const savedForecast = forecasting && saved && forecastPath ? readCheckpoint(forecastPath) : null
  if (forecasting && savedForecast) {
    try {
      forecasting.restore(savedForecast)
    } catch (error) {
      if (!(error instanceof RxrnnError)) throw error
      log(`${forecastPath}: ${error.message}; the keys' intervals and drift detectors start afresh`)
    }
  }
  const monitor = new Monitor()
  const host = options.host ?? '127.0.0.1'
  const maxPayload = options.maxPayload ?? 1 << 20
  const maxBufferedBytes = options.maxBufferedBytes ?? 4 << 20
  const classification = trainer.loss.name === 'cross_entropy'
  const expect = {
    inputSize: forecasting?.rawInputSize ?? model.config.inputSize,
    outputSize: forecasting?.width ?? model.config.outputSize,
    allowMissing: forecasting?.inputs?.missing !== undefined && forecasting?.inputs?.missing !== null,
    task: classification ? ('classification' as const) : ('regression' as const),
    maxBytes: maxPayload,
  }
  const summary: ModelSummary = {
    cell: model.config.cell,
    inputSize: model.config.inputSize,
    hiddenSize: model.config.hiddenSize,
    numLayers: model.config.numLayers,
    // With a multi-horizon head: the target's width (each `ahead` row), and the horizon.
    outputSize: expect.outputSize,
    ...(horizonActive ? { horizon: trainer.options.horizon } : {}),
    dtype: model.config.dtype,
    task: expect.task,
    loss: trainer.loss.name,
    k1: trainer.options.k1,
    k2: trainer.options.k2,
    optimizer: trainer.optimizer.config.type,
    lr: trainer.optimizer.config.lr,
    clipNorm: trainer.options.clipNorm ?? null,
  }
  const connections = new Set<Connection>()
  let dropped = 0
  let sampledOut = 0

  const send = (conn: Connection, frame: object, encoding: FrameEncoding = conn.encoding): void => {
    // A slow reader never slows the model: past the byte budget its frames are dropped and counted.
    if (conn.socket.bufferedAmount > maxBufferedBytes || conn.socket.readyState !== conn.socket.OPEN) {
      conn.dropped++
      dropped++
      return
    }
    // Replies to the ticks of one incoming TCP chunk leave in one write: cork the socket at the
    // first, uncork when this turn of the event loop is done. Under load this is the difference
    // between a syscall per tick and a syscall per batch; a lone tick is not delayed. A long
    // chunk (a backlog after a stall) is flushed every CORK_BUDGET_MS, so its first replies do
    // not wait for its last ticks and their weight updates.
    const tcp = (conn.socket as unknown as { _socket?: Corkable })._socket
    if (tcp) {
      if (!conn.corked) {
        conn.corked = true
        conn.corkedAt = performance.now()
        tcp.cork()
        process.nextTick(endCork, conn, tcp)
      } else if (performance.now() - conn.corkedAt > CORK_BUDGET_MS) {
        tcp.uncork()
        tcp.cork()
        conn.corkedAt = performance.now()
      }
    }
    conn.socket.send(encodeFrame(frame, encoding))
  }

  // Subscribers per channel, so a tick with no one listening costs no loop over connections.
  const subscribers: Record<Channel, number> = { predictions: 0, updates: 0, metrics: 0, hidden: 0 }
  const setChannels = (conn: Connection, channels: Iterable<Channel>): void => {
    for (const c of conn.channels) subscribers[c]--
    conn.channels = new Set(channels)
    for (const c of conn.channels) subscribers[c]++
  }

  /** Whether maxRate lets one more frame of this channel through to this connection now. */
  const underRate = (conn: Connection, channel: Channel): boolean => {
    if (conn.maxRate === null || channel === 'metrics') return true
    const counter = conn.rate[channel]
    const second = Math.floor(Date.now() / 1000)
    if (counter[0] !== second) {
      counter[0] = second
      counter[1] = 0
    }
    if (counter[1] >= conn.maxRate) {
      conn.sampledOut++
      sampledOut++
      return false
    }
    counter[1]++
    return true
  }

  // `essential` frames (anomalies, drift alarms: rare, and the point of watching) pass maxRate.
  const broadcast = (
    channel: Channel,
    key: string | null,
    frame: object,
    except?: Connection,
    essential = false,
  ): void => {
    if (subscribers[channel] === 0) return
    for (const conn of connections) {
      if (conn === except || !conn.channels.has(channel)) continue
      if (!essential && !underRate(conn, channel)) continue
      if (key !== null && conn.keys && !conn.keys.has(key)) continue
      send(conn, frame)
    }
  }

  const onUpdate = (key: string, u: UpdateReport): void => {
    monitor.update(u, key)
    broadcast('updates', key, {
      type: 'update',
      key,
      step: u.step,
      update: u.update,
      loss: u.loss,
      gradNorm: u.gradNorm,
      clippedGradNorm: u.clippedGradNorm,
      clipped: u.clipped,
      skipped: u.skipped,
      rolledBack: u.rolledBack,
      ...(u.reason ? { reason: u.reason } : {}),
      clipRate: u.clipRate,
      ...(u.gradientFlow ? { gradientFlow: u.gradientFlow } : {}),
      ...(u.spectralRadius ? { spectralRadius: u.spectralRadius } : {}),
    })
  }

  const deferUpdates = options.deferUpdates ?? true
  let flushScheduled = false
  const flushUpdates = (): void => {
    flushScheduled = false
    for (const { key, report } of keyed.runDueUpdates()) onUpdate(key, report)
  }
  // After this turn's I/O (and the uncork of its replies): setImmediate.
  const scheduleFlush = (): void => {
    if (flushScheduled || keyed.dueUpdates === 0) return
    flushScheduled = true
    setImmediate(flushUpdates)
  }
  // A checkpoint can hold windows that were complete but not yet learned from.
  scheduleFlush()

  const onTick = (conn: Connection, tick: TickFrame): void => {
    conn.producer = true
    let prediction: number[]
    let forecast: ForecastFields | null = null
    try {
      let output: ArrayLike<number>
      let updates: readonly UpdateReport[] = noUpdates
      const x = forecasting ? forecasting.prepare(tick.key, tick.x, tick.t) : tick.x
      if (deferUpdates) {
        output = keyed.observeDeferred(tick.key, x, tick.y ?? null)
        scheduleFlush()
      } else {
        const observed = keyed.observe(tick.key, x, tick.y ?? null)
        output = observed.prediction
        updates = observed.updates
      }
      // Intervals, anomaly and drift (with a horizon, `y` is row 0 of the head's rows).
      if (forecasting) forecast = forecasting.annotate(tick.key, output, tick.y)
      // A plain array for the frame (a typed array would go out as msgpackr's extension); a loop,
      // not Array.from, which walks an iterator.
      const width = expect.outputSize
      prediction = new Array<number>(width)
      for (let i = 0; i < width; i++) prediction[i] = output[i]!
      monitor.event()
      const y = tick.y
      if (y !== undefined && y !== null) {
        if (classification) monitor.scoreClassification(prediction, typeof y === 'number' ? y : y[0]!)
        else {
          // Each key's last target, for the persistence baseline: one buffer per key, rewritten.
          let previous = previousTargets.get(tick.key)
          monitor.scoreRegression(prediction, typeof y === 'number' ? oneTarget(y) : y, previous ?? null)
          if (!previous) previousTargets.set(tick.key, (previous = new Float64Array(expect.outputSize)))
          if (typeof y === 'number') previous[0] = y
          else previous.set(y)
        }
      }
      for (const u of updates) onUpdate(tick.key, u)
    } catch (error) {
      if (!(error instanceof RxrnnError)) throw error
      monitor.reject(error, tick, tick.key)
      send(conn, errorFrame(error.code, error.message, tick.id))
      return
    }
    const reply: PredictionFrame = {
      type: 'prediction',
      key: tick.key,
      y: prediction,
    }
    if (tick.id !== undefined) reply.id = tick.id
    if (forecast) addForecastFields(reply, forecast)
    send(conn, reply)
    if (forecast) {
      monitor.forecast(forecast)
      if (forecast.drift) broadcast('updates', tick.key, forecast.drift, undefined, true)
    }
    if (subscribers.predictions > 0) {
      // Other subscribers also get the target, when the tick had one.
      const y = tick.y
      const shared =
        y === undefined ? reply : { ...reply, target: typeof y === 'number' ? [y] : Array.from(y) }
      broadcast('predictions', tick.key, shared, conn, reply.isAnomaly === true)
    }
    if (subscribers.hidden > 0) {
      const entry = keyed.entry(tick.key)
      if (entry)
        broadcast('hidden', tick.key, {
          type: 'hidden',
          key: tick.key,
          h: Array.from(entry.sequence.state.hidden()),
        })
    }
  }

  const onFrame = (conn: Connection, frame: ClientFrame): void => {
    switch (frame.type) {
      case 'tick':
        onTick(conn, frame)
        return
      case 'subscribe':
        setChannels(conn, frame.channels)
        conn.keys = frame.keys ? new Set(frame.keys) : null
        conn.maxRate = frame.maxRate ?? null
        send(conn, {
          type: 'subscribed',
          channels: frame.channels,
          ...(frame.keys ? { keys: frame.keys } : {}),
          ...(frame.id === undefined ? {} : { id: frame.id }),
        })
        if (conn.channels.has('metrics')) send(conn, metrics())
        return
      case 'unsubscribe':
        setChannels(conn, [])
        conn.keys = null
        send(conn, { type: 'subscribed', channels: [] })
        return
      case 'reset':
        keyed.reset(frame.key)
        forecasting?.book.tracker(frame.key)?.forgetForecasts()
        scheduleFlush()
        previousTargets.delete(frame.key)
        return
      case 'hello':
        send(conn, {
          type: 'welcome',
          version: PROTOCOL_VERSION,
          model: summary,
          ...(frame.id === undefined ? {} : { id: frame.id }),
        })
        return
    }
  }

  const metrics = (): MetricsFrame => {
    const m = monitor.snapshot()
    let producers = 0
    let subscribers = 0
    for (const c of connections) {
      if (c.producer) producers++
      if (c.channels.size > 0) subscribers++
    }
    const frame: MetricsFrame = {
      type: 'metrics',
      t: m.time,
      events: m.events,
      eventsPerSecond: m.eventsPerSecond,
      loss: Number.isFinite(m.lossAverage) ? m.lossAverage : null,
      gradNorm: Number.isFinite(m.gradNorm) ? m.gradNorm : null,
      clipRate: m.updates > 0 ? m.clipRate : null,
      skippedUpdates: m.skippedUpdates,
      rejected: m.rejected,
      dropped,
      producers,
      subscribers,
      keys: keyed.size,
      updates: m.updates,
      rolledBack: m.rolledBack,
      sampledOut,
      evicted: keyed.evicted,
    }
    if (forecasting) Object.assign(frame, forecasting.metrics())
    if (m.regression && m.regression.n > 0) {
      frame.rmse = m.regression.rmse
      frame.mae = m.regression.mae
      frame.persistenceRmse = m.regression.persistenceRmse
      frame.persistenceMae = m.regression.persistenceMae
    }
    if (m.classification && m.classification.n > 0) {
      frame.accuracy = m.classification.accuracy
      frame.logLoss = m.classification.logLoss
    }
    return frame
  }

  const authorized = (req: IncomingMessage): boolean => {
    if (options.token === undefined) return true
    const header = req.headers.authorization
    if (header === `Bearer ${options.token}`) return true
    const query = new URL(req.url ?? '/', 'http://localhost').searchParams.get('token')
    return query === options.token
  }

  const wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false })
  const dashboard = options.dashboard === false ? undefined : dashboardRoutes({ token: options.token })
  const http = createServer((req, res) => {
    if (options.http?.(req, res)) return
    if (dashboard?.(req, res)) return
    res.writeHead(404, { 'content-type': 'text/plain' }).end('rxrnn: connect with WebSocket\n')
  })
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!authorized(req)) {
      // Until ws takes the socket over nothing listens for its errors: a client that resets now
      // (ECONNRESET on this write) must not crash the server.
      socket.on('error', () => {})
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      log(`refused a connection from ${req.socket.remoteAddress}: wrong or missing token`)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
  })
  wss.on('connection', (socket: WebSocket) => {
    const conn: Connection = {
      socket,
      encoding: 'msgpack',
      producer: false,
      channels: new Set(),
      keys: null,
      dropped: 0,
      corked: false,
      corkedAt: 0,
      maxRate: null,
      rate: { predictions: [0, 0], hidden: [0, 0], updates: [0, 0] },
      sampledOut: 0,
    }
    connections.add(conn)
    socket.on('message', (data, isBinary) => {
      const decoded = decodeClientFrame(data as Buffer, isBinary, expect)
      conn.encoding = decoded.encoding
      if (!decoded.ok) {
        monitor.reject(new RxrnnError(decoded.error.code, decoded.error.message), data)
        send(conn, decoded.error)
        return
      }
      try {
        onFrame(conn, decoded.frame)
      } catch (error) {
        log(
          `internal error on a ${decoded.frame.type} frame: ${error instanceof Error ? error.stack : error}`,
        )
        send(conn, errorFrame('internal', 'The server failed on this frame; it goes on. Please report this.'))
      }
    })
    socket.on('error', (error) => log(`connection error: ${error.message}`))
    socket.on('close', () => {
      setChannels(conn, [])
      connections.delete(conn)
    })
  })

  const metricsTimer = setInterval(() => {
    if (subscribers.metrics > 0) broadcast('metrics', null, metrics())
  }, options.metricsIntervalMs ?? 1000)
  metricsTimer.unref()
  const evictTimer =
    options.idleMs === undefined
      ? undefined
      : setInterval(
          () => {
            for (const key of keyed.evictIdle()) previousTargets.delete(key)
            // An evicted key's queued update ran as it left: its report goes out now.
            scheduleFlush()
          },
          Math.max(100, options.idleMs / 2),
        )
  evictTimer?.unref()

  let writing: Promise<void> = Promise.resolve()
  const checkpoint = (): Promise<void> => {
    const target = options.checkpoint
    if (!target) return Promise.resolve()
    // The snapshot is taken now, synchronously, so it is one consistent state; writes queue up.
    const bytes = keyed.snapshot()
    const forecastBytes = forecasting?.snapshot()
    writing = writing
      .then(() => writeFileAtomic(target.path, bytes))
      .then(() => (forecastBytes ? writeFileAtomic(`${target.path}.forecast`, forecastBytes) : undefined))
      .catch((error) =>
        log(`checkpoint to ${target.path} failed: ${error instanceof Error ? error.message : error}`),
      )
    return writing
  }
  const checkpointTimer = options.checkpoint ? setInterval(checkpoint, options.checkpoint.everyMs) : undefined
  checkpointTimer?.unref()

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(options.port ?? 0, host, () => {
      http.off('error', reject)
      resolve()
    })
  })
  const port = (http.address() as AddressInfo).port
  const urlHost = host.includes(':') ? `[${host}]` : host

  return {
    host,
    port,
    url: `ws://${urlHost}:${port}`,
    model,
    trainer,
    keyed,
    monitor,
    forecasting,
    metrics,
    checkpoint,
    close(code = 1001) {
      clearInterval(metricsTimer)
      if (evictTimer) clearInterval(evictTimer)
      if (checkpointTimer) clearInterval(checkpointTimer)
      // Queued updates run (and reach subscribers) before the connections close.
      flushUpdates()
      for (const conn of connections) conn.socket.close(code, 'server shutting down')
      const final = checkpoint()
      return new Promise<void>((resolve) => {
        wss.close()
        http.close(() => final.then(resolve))
        // Peers that do not answer the close handshake are cut after a grace period.
        setTimeout(() => {
          for (const conn of connections) conn.socket.terminate()
          http.closeAllConnections()
        }, 1000).unref()
      })
    },
  }
}

/** The forecasting fields of a prediction frame (only those present). */
function addForecastFields(reply: PredictionFrame, f: ForecastFields): void {
  if (f.ahead) reply.ahead = f.ahead
  if (f.lower) reply.lower = f.lower
  if (f.upper) reply.upper = f.upper
  if (f.aheadLower) reply.aheadLower = f.aheadLower
  if (f.aheadUpper) reply.aheadUpper = f.aheadUpper
  if (f.anomaly !== undefined) reply.anomaly = f.anomaly
  if (f.isAnomaly !== undefined) reply.isAnomaly = f.isAnomaly
}

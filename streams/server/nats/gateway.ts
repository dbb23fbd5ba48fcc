/**
 * The WebSocket server as a gateway to NATS workers: producers speak the WebSocket protocol
 * unchanged; their ticks go into the partition streams (batched per partition, acked by
 * JetStream), and each prediction a worker publishes is relayed to the connection that sent the
 * tick. Subscribers follow `predictions` (every partition's) and `metrics`, which sum the metrics
 * the workers publish; the dashboard and `GET /metrics` (Prometheus text) show every worker.
 *
 * Routing: the gateway gives each tick an id of its own (a random 21-bit tag of this gateway,
 * times 2^32, plus a counter; a safe integer) and keeps (connection, the producer's id) under it
 * until the answer comes: answers meant for another gateway are ignored, replays after a worker
 * restart answer only ticks still waiting, so each tick is answered once.
 */
import { randomInt } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type WebSocket, WebSocketServer } from 'ws'
import {
  decodeClientFrame,
  decodeFrame,
  encodeFrame,
  type FrameData,
  type FrameEncoding,
} from '../../transport/codec.js'
import { partitionOf } from '../../transport/partition.js'
import type { Channel, FrameExpectations, MetricsFrame, ModelSummary } from '../../transport/protocol.js'
import { errorFrame, PROTOCOL_VERSION } from '../../transport/protocol.js'
import { dashboardRoutes } from '../dashboard/index.js'
import { loadNatsClients } from './clients.js'
import { DEFAULT_SUBJECT_PREFIX, NatsNames } from './subjects.js'
import type { WorkerMetricsFrame } from './worker.js'

export interface GatewayOptions {
  /** NATS server URL(s). */
  servers: string | string[]
  /** Partitions of the deployment; must match the workers'. Default 16. */
  partitions?: number
  subjectPrefix?: string
  host?: string
  /** Default 0: any free port. */
  port?: number
  /** When set, connections must present it (`Authorization: Bearer …` or `?token=`). */
  token?: string
  /** What ticks must look like (input and output sizes, task), checked before publishing. */
  expect?: FrameExpectations
  /** What `welcome` reports about the model (the workers hold it). */
  model?: ModelSummary
  /** Ticks per message at most; a batch also goes at the end of each event-loop turn. Default 64. */
  batchTicks?: number
  /** Largest frame accepted. Default 1 MiB. */
  maxPayload?: number
  /** Ticks awaiting their answer at most; past it the oldest are forgotten (and counted). Default 1 000 000. */
  maxWaiting?: number
  metricsIntervalMs?: number
  /** Serve the dashboard on GET /. Default true. */
  dashboard?: boolean
  log?: (line: string) => void
}

export interface RxrnnGateway {
  readonly host: string
  readonly port: number
  readonly url: string
  /** The metrics frame subscribers get: the workers' figures summed. */
  metrics(): MetricsFrame
  /** The latest metrics of each worker, by worker id. */
  workers(): ReadonlyMap<string, WorkerMetricsFrame>
  close(code?: number): Promise<void>
}

interface GatewayConnection {
  readonly socket: WebSocket
  encoding: FrameEncoding
  channels: Set<Channel>
  keys: Set<string> | null
  producer: boolean
}

interface Waiting {
  conn: GatewayConnection
  id: number | undefined
}

const TAG_SPAN = 2 ** 32

/**
 * Starts the gateway. `rxrnn serve --nats <url> --partitions <P>` runs it.
 *
 * @example
 * const gateway = await serveGateway({ servers: 'nats://127.0.0.1:4222', partitions: 16, port: 8080 })
 * console.log(`listening on ${gateway.url}`)
 */
export async function serveGateway(options: GatewayOptions): Promise<RxrnnGateway> {
  const clients = await loadNatsClients()
  const log = options.log ?? (() => {})
  const partitions = options.partitions ?? 16
  const names = new NatsNames(options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX)
  const batchTicks = options.batchTicks ?? 64
  const maxPayload = options.maxPayload ?? 1 << 20
  const maxWaiting = options.maxWaiting ?? 1_000_000
  const expect = { ...options.expect, maxBytes: maxPayload }
  const nc = await clients.transport.connect({ servers: options.servers, name: 'rxrnn gateway' })
  const js = clients.jetstream.jetstream(nc)

  const tag = randomInt(1, 2 ** 21)
  let counter = 0
  const waiting = new Map<number, Waiting>()
  const connections = new Set<GatewayConnection>()
  const batches: unknown[][] = Array.from({ length: partitions }, () => [])
  const batchIds: number[][] = Array.from({ length: partitions }, () => [])
  let flushScheduled = false
  let published = 0
  let forgotten = 0
  let rejected = 0
  let publishFailures = 0
  const workerMetrics = new Map<string, WorkerMetricsFrame>()

  const send = (conn: GatewayConnection, frame: object): void => {
    if (conn.socket.readyState === conn.socket.OPEN) conn.socket.send(encodeFrame(frame, conn.encoding))
  }

  const flush = (p: number): void => {
    const frames = batches[p]!
    if (frames.length === 0) return
    const ids = batchIds[p]!
    batches[p] = []
    batchIds[p] = []
    published += frames.length
    js.publish(names.ticksSubject(p), encodeFrame(frames, 'msgpack')).catch((error: Error) => {
      publishFailures++
      // JetStream did not take them: their senders learn it now, instead of waiting forever.
      for (const id of ids) {
        const w = waiting.get(id)
        if (!w) continue
        waiting.delete(id)
        send(
          w.conn,
          errorFrame(
            'internal',
            `the tick could not be stored in JetStream (${error.message}); send it again`,
            w.id,
          ),
        )
      }
    })
  }
  const flushAll = (): void => {
    flushScheduled = false
    for (let p = 0; p < partitions; p++) flush(p)
  }

  const enqueue = (p: number, frame: unknown, id: number | undefined): void => {
    batches[p]!.push(frame)
    if (id !== undefined) batchIds[p]!.push(id)
    if (batches[p]!.length >= batchTicks) flush(p)
    else if (!flushScheduled) {
      flushScheduled = true
      setImmediate(flushAll)
    }
  }

  const onMessage = (conn: GatewayConnection, data: FrameData, isBinary: boolean): void => {
    const decoded = decodeClientFrame(data, isBinary, expect)
    conn.encoding = decoded.encoding
    if (!decoded.ok) {
      rejected++
      send(conn, decoded.error)
      return
    }
    const frame = decoded.frame
    switch (frame.type) {
      case 'tick': {
        conn.producer = true
        const id = tag * TAG_SPAN + (counter = (counter + 1) % TAG_SPAN)
        waiting.set(id, { conn, id: frame.id })
        if (waiting.size > maxWaiting) {
          // Insertion order: the first key is the oldest tick still waiting.
          waiting.delete(waiting.keys().next().value as number)
          forgotten++
        }
        const tick: Record<string, unknown> = { type: 'tick', key: frame.key, x: frame.x, id }
        if (frame.y !== undefined) tick.y = frame.y
        enqueue(partitionOf(frame.key, partitions), tick, id)
        return
      }
      case 'reset':
        enqueue(partitionOf(frame.key, partitions), { type: 'reset', key: frame.key }, undefined)
        return
      case 'hello':
        send(conn, {
          type: 'welcome',
          version: PROTOCOL_VERSION,
          model: options.model ?? {
            cell: 'unknown',
            inputSize: 0,
            hiddenSize: 0,
            numLayers: 0,
            outputSize: 0,
          },
          ...(frame.id === undefined ? {} : { id: frame.id }),
        })
        return
      case 'subscribe': {
        const channels = frame.channels.filter((c) => c === 'predictions' || c === 'metrics')
        conn.channels = new Set(channels)
        conn.keys = frame.keys === undefined ? null : new Set(frame.keys)
        send(conn, {
          type: 'subscribed',
          channels,
          ...(frame.id === undefined ? {} : { id: frame.id }),
        })
        return
      }
      case 'unsubscribe':
        conn.channels = new Set()
        send(conn, {
          type: 'subscribed',
          channels: [],
          ...(frame.id === undefined ? {} : { id: frame.id }),
        })
    }
  }

  // Every partition's answers: relayed to the tick's sender, and to subscribers of predictions.
  const predictionsSub = nc.subscribe(names.allPredictions, {
    callback: (_error, msg) => {
      const decoded = decodeFrame(msg.data, msg.data[0] !== 0x7b && msg.data[0] !== 0x5b)
      if (!decoded.ok) return
      const frame = decoded.value as { type?: string; id?: number; key?: string; y?: number[] }
      const id = frame.id
      const w = id === undefined ? undefined : waiting.get(id)
      if (w) {
        waiting.delete(id!)
        const reply: Record<string, unknown> =
          frame.type === 'prediction' ? { type: 'prediction', key: frame.key, y: frame.y } : { ...frame }
        if (w.id === undefined) delete reply.id
        else reply.id = w.id
        delete reply.partition
        delete reply.seq
        send(w.conn, reply)
      }
      if (frame.type === 'prediction' && w) {
        for (const conn of connections) {
          if (conn.channels.has('predictions') && (conn.keys === null || conn.keys.has(frame.key!))) {
            send(conn, {
              type: 'prediction',
              key: frame.key,
              y: frame.y,
              ...(w.id === undefined ? {} : { id: w.id }),
            })
          }
        }
      }
    },
  })
  const metricsSub = nc.subscribe(names.allMetrics, {
    callback: (_error, msg) => {
      try {
        const frame = JSON.parse(new TextDecoder().decode(msg.data)) as WorkerMetricsFrame
        if (frame.type === 'worker-metrics' && typeof frame.worker === 'string')
          workerMetrics.set(frame.worker, frame)
      } catch {
        // Not ours: ignored.
      }
    },
  })

  let lastEvents = 0
  let lastTime = performance.now()
  const metrics = (): MetricsFrame => {
    let events = 0
    let rejectedByWorkers = 0
    let keys = 0
    let owned = 0
    let scoredError = 0
    let scored = 0
    for (const w of workerMetrics.values()) {
      events += w.ticks
      rejectedByWorkers += w.rejected
      for (const p of w.partitions) {
        keys += p.keys
        owned++
        if (p.mse !== null) {
          scoredError += p.mse * p.ticks
          scored += p.ticks
        }
      }
    }
    const now = performance.now()
    const rate = ((events - lastEvents) * 1000) / Math.max(1, now - lastTime)
    lastEvents = events
    lastTime = now
    let producers = 0
    let subscribers = 0
    for (const c of connections) {
      if (c.producer) producers++
      if (c.channels.size > 0) subscribers++
    }
    return {
      type: 'metrics',
      t: Date.now(),
      events,
      eventsPerSecond: rate,
      loss: scored > 0 ? scoredError / scored : null,
      gradNorm: null,
      clipRate: null,
      skippedUpdates: 0,
      rejected: rejected + rejectedByWorkers,
      dropped: forgotten + publishFailures,
      producers,
      subscribers,
      keys,
      workers: workerMetrics.size,
      partitionsOwned: owned,
      published,
      waiting: waiting.size,
    }
  }
  const metricsTimer = setInterval(() => {
    const frame = metrics()
    for (const conn of connections) if (conn.channels.has('metrics')) send(conn, frame)
  }, options.metricsIntervalMs ?? 1000)
  metricsTimer.unref()

  const authorized = (req: IncomingMessage): boolean => {
    if (options.token === undefined) return true
    if (req.headers.authorization === `Bearer ${options.token}`) return true
    return new URL(req.url ?? '/', 'http://localhost').searchParams.get('token') === options.token
  }
  const dashboard = options.dashboard === false ? undefined : dashboardRoutes({ token: options.token })
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.split('?')[0] === '/metrics' && req.method === 'GET') {
      if (!authorized(req)) return void res.writeHead(401).end()
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
      return void res.end(prometheusText(metrics(), workerMetrics))
    }
    if (dashboard?.(req, res)) return
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
  })
  const wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false })
  http.on('upgrade', (req, socket, head) => {
    if (!authorized(req)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n')
      log(`refused a connection from ${req.socket.remoteAddress}: wrong or missing token`)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
  })
  wss.on('connection', (socket: WebSocket) => {
    const conn: GatewayConnection = {
      socket,
      encoding: 'msgpack',
      channels: new Set(),
      keys: null,
      producer: false,
    }
    connections.add(conn)
    socket.on('message', (data, isBinary) => onMessage(conn, data as FrameData, isBinary))
    socket.on('close', () => connections.delete(conn))
    socket.on('error', () => {})
  })
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(options.port ?? 0, host, () => resolve())
  })
  const port = (http.address() as AddressInfo).port
  const url = `ws://${host.includes(':') ? `[${host}]` : host}:${port}`

  return {
    host,
    port,
    url,
    metrics,
    workers: () => workerMetrics,
    async close(code = 1001) {
      clearInterval(metricsTimer)
      flushAll()
      for (const conn of connections) conn.socket.close(code)
      wss.close()
      await new Promise<void>((resolve) => http.close(() => resolve()))
      predictionsSub.unsubscribe()
      metricsSub.unsubscribe()
      await nc.drain().catch(() => {})
    },
  }
}

/** The gateway's and every worker's figures in Prometheus' text format. */
function prometheusText(m: MetricsFrame, workers: ReadonlyMap<string, WorkerMetricsFrame>): string {
  const lines = [
    '# HELP rxrnn_ticks_total Ticks the workers learned from.',
    '# TYPE rxrnn_ticks_total counter',
    `rxrnn_ticks_total ${m.events}`,
    '# HELP rxrnn_gateway_published_ticks_total Ticks this gateway published to JetStream.',
    '# TYPE rxrnn_gateway_published_ticks_total counter',
    `rxrnn_gateway_published_ticks_total ${m.published}`,
    '# HELP rxrnn_gateway_waiting Ticks published and not answered yet.',
    '# TYPE rxrnn_gateway_waiting gauge',
    `rxrnn_gateway_waiting ${m.waiting}`,
    '# HELP rxrnn_workers Workers whose metrics this gateway has received.',
    '# TYPE rxrnn_workers gauge',
    `rxrnn_workers ${workers.size}`,
  ]
  const series: [string, string, (p: WorkerMetricsFrame['partitions'][number]) => number | null][] = [
    ['rxrnn_partition_ticks_total', 'counter', (p) => p.ticks],
    ['rxrnn_partition_updates_total', 'counter', (p) => p.updates],
    ['rxrnn_partition_rejected_total', 'counter', (p) => p.rejected],
    ['rxrnn_partition_sequence', 'gauge', (p) => p.seq],
    ['rxrnn_partition_checkpointed_sequence', 'gauge', (p) => p.checkpointed],
    ['rxrnn_partition_keys', 'gauge', (p) => p.keys],
    ['rxrnn_partition_mse', 'gauge', (p) => p.mse],
  ]
  for (const [name, type, value] of series) {
    lines.push(`# TYPE ${name} ${type}`)
    for (const w of workers.values()) {
      const worker = w.worker.replaceAll('\\', '\\\\').replaceAll('"', '\\"')
      for (const p of w.partitions) {
        const v = value(p)
        if (v !== null) lines.push(`${name}{worker="${worker}",partition="${p.partition}"} ${v}`)
      }
    }
  }
  return `${lines.join('\n')}\n`
}

/**
 * The WebSocket server as a gateway to NATS workers: producers speak the WebSocket protocol
 * unchanged; their ticks go into the partition streams (batched per partition, acked by
 * JetStream), and each prediction a worker publishes is relayed to the connection that sent the
 * tick (`relay.ts`). Subscribers follow `predictions` (every partition's) and `metrics`, which sum
 * the metrics the workers publish (`worker-progress.ts`).
 *
 * Clients meet the very units `serve()` uses (`Endpoint`: origins and hosts, the token gate with
 * its constant-time comparison and 429s, connection limits, heartbeat, timeouts, byte budgets,
 * slow readers, TLS, hostile-frame handling, the dashboard, and `GET /metrics` through the
 * server's Prometheus registry), with the same options and defaults.
 */
import type { FrameExpectations, MetricsFrame, ModelSummary } from '../../transport/protocol.js'
import { Endpoint } from '../endpoint.js'
import { checkEndpointOptions, type EndpointOptions } from '../endpoint-options.js'
import { registerForecastingMetrics } from '../forecasting-metrics.js'
import { Hub } from '../hub.js'
import type { ServerMetrics } from '../prometheus.js'
import type { ConnectionCounters, EndpointModel, LearningFigures } from '../tick-handler.js'
import { connectNats, loadNatsClients } from './clients.js'
import { NatsRelay } from './relay.js'
import { DEFAULT_SUBJECT_PREFIX, NatsNames } from './subjects.js'
import type { WorkerMetricsFrame } from './worker.js'
import { WorkerProgress } from './worker-progress.js'

/** Values an `x` or a `y` may hold when the gateway is not told the model's sizes (the workers check them). */
const UNKNOWN_VECTOR_VALUES = 16_384

/** Options of `serveGateway`: where the workers are, and every option of `serve`'s endpoint. */
export interface GatewayOptions extends EndpointOptions {
  /** NATS server URL(s). */
  servers: string | string[]
  /** Partitions of the deployment; must match the workers'. Default 16. */
  partitions?: number
  subjectPrefix?: string
  /** What ticks must look like (input and output sizes, task), checked before publishing. */
  expect?: FrameExpectations
  /** What `welcome` reports about the model (the workers hold it). */
  model?: ModelSummary
  /** Ticks per message at most; a batch also goes at the end of each event-loop turn. Default 64. */
  batchTicks?: number
  /** Ticks awaiting their answer at most; past it the oldest are forgotten (and counted). Default 1 000 000. */
  maxWaiting?: number
  /**
   * Ticks one connection may have awaiting their answer; more are refused with `rate_limited`,
   * so that one producer cannot push everyone else's ticks out of the waiting list. Default 65 536.
   */
  maxWaitingPerConnection?: number
  /**
   * Keys the gateway remembers as known (least recently ticked forgotten first); a tick for
   * another key counts against its connection's `maxNewKeysPerSecond`. Default 100 000.
   */
  maxKnownKeys?: number
}

export interface RxrnnGateway {
  readonly host: string
  readonly port: number
  /** `ws://host:port`, or `wss://host:port` with TLS. */
  readonly url: string
  /** What `GET /metrics` serves. */
  readonly prometheus: ServerMetrics
  /** The metrics frame subscribers get: the workers' figures summed. */
  metrics(): MetricsFrame
  /** The latest metrics of each worker, by worker id. */
  workers(): ReadonlyMap<string, WorkerMetricsFrame>
  /** Publishes the pending ticks, closes every connection with `code` (default 1001) and the NATS connection. */
  close(code?: number): Promise<void>
}

const UNKNOWN_MODEL: ModelSummary = {
  cell: 'unknown',
  inputSize: 0,
  hiddenSize: 0,
  numLayers: 0,
  outputSize: 0,
}

/**
 * Starts the gateway. `rxrnn serve --nats <url> --partitions <P>` runs it.
 *
 * @example
 * const gateway = await serveGateway({
 *   servers: 'nats://127.0.0.1:4222', partitions: 16, port: 8080, token: process.env.RXRNN_TOKEN,
 * })
 * console.log(`listening on ${gateway.url}`)
 */
export async function serveGateway(options: GatewayOptions): Promise<RxrnnGateway> {
  checkEndpointOptions(options, 'serve the gateway')
  const clients = await loadNatsClients()
  const partitions = options.partitions ?? 16
  const names = new NatsNames(options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX)
  const nc = await connectNats(clients, options.servers, 'rxrnn gateway')
  const js = clients.jetstream.jetstream(nc)

  const hub = new Hub()
  const progress = new WorkerProgress()
  const relay = new NatsRelay(
    {
      partitions,
      names,
      publish: (subject, data) => js.publish(subject, data),
      summary: options.model ?? UNKNOWN_MODEL,
      ...(options.batchTicks === undefined ? {} : { batchTicks: options.batchTicks }),
      ...(options.maxWaiting === undefined ? {} : { maxWaiting: options.maxWaiting }),
      ...(options.maxKnownKeys === undefined ? {} : { maxKnownKeys: options.maxKnownKeys }),
      ...(options.maxWaitingPerConnection === undefined
        ? {}
        : { maxWaitingPerConnection: options.maxWaitingPerConnection }),
    },
    hub,
  )
  let endpoint: Endpoint
  try {
    // A certificate that cannot be read, a port in use: the NATS connection must not keep the process alive.
    endpoint = new Endpoint(options, hub, gatewayModel(relay, progress, options.expect ?? {}))
    relay.register(endpoint.prometheus.registry)
    progress.register(endpoint.prometheus.registry)
    // The workers' forecasting, summed (NaN and 0 when none forecasts).
    registerForecastingMetrics(endpoint.prometheus.registry, () => progress.forecastFigures())
    await endpoint.listen()
  } catch (error) {
    await nc.drain().catch(() => {})
    throw error
  }
  const guard = endpoint.guard.bind(endpoint)

  // Every partition's answers, and every worker's metrics. Whatever arrives there, a bug on one
  // message is logged and the gateway goes on.
  const predictionsSub = nc.subscribe(names.allPredictions, {
    callback: (_error, msg) => guard(() => relay.answer(msg.data)),
  })
  const metricsSub = nc.subscribe(names.allMetrics, {
    callback: (_error, msg) => guard(() => progress.receive(msg.data)),
  })

  return {
    host: endpoint.host,
    port: endpoint.port,
    url: endpoint.url,
    prometheus: endpoint.prometheus,
    metrics: endpoint.metrics,
    workers: () => progress.workers,
    async close(code = 1001) {
      relay.flushAll()
      await endpoint.close(code)
      predictionsSub.unsubscribe()
      metricsSub.unsubscribe()
      await nc.drain().catch(() => {})
    },
  }
}

/** The relay and the workers' progress as what an `Endpoint` serves. */
function gatewayModel(relay: NatsRelay, progress: WorkerProgress, expect: FrameExpectations): EndpointModel {
  const figures: LearningFigures = {
    ticks: () => progress.totals().ticks,
    updates: () => progress.totals().updates,
    // The workers do not report these: 0 and NaN (an absent gauge), not a guess.
    skippedUpdates: () => 0,
    rolledBackUpdates: () => 0,
    loss: () => progress.totals().mse,
    gradNorm: () => Number.NaN,
    clipRate: () => Number.NaN,
    keys: () => progress.totals().keys,
    evictedKeys: () => 0,
    rejectedByCode: () => relay.rejectedByCode,
  }
  let lastEvents = 0
  let lastTime = performance.now()
  const metrics = (c: ConnectionCounters): MetricsFrame => {
    const t = progress.totals()
    const now = performance.now()
    const rate = ((t.ticks - lastEvents) * 1000) / Math.max(1, now - lastTime)
    lastEvents = t.ticks
    lastTime = now
    let rejected = 0
    for (const n of relay.rejectedByCode.values()) rejected += n
    return {
      type: 'metrics',
      t: Date.now(),
      events: t.ticks,
      eventsPerSecond: rate,
      loss: Number.isFinite(t.mse) ? t.mse : null,
      gradNorm: null,
      clipRate: null,
      skippedUpdates: 0,
      rejected,
      dropped: c.dropped,
      producers: c.producers,
      subscribers: c.subscribers,
      keys: t.keys,
      updates: t.updates,
      sampledOut: c.sampledOut,
      slowClosed: c.slowClosed,
      rateLimited: c.rateLimited,
      workers: t.workers,
      partitionsOwned: t.partitionsOwned,
      rejectedByWorkers: t.rejected,
      published: relay.published,
      waiting: relay.waitingCount,
      forgotten: relay.forgotten,
      publishFailures: relay.publishFailures,
      // With forecasting workers: realised coverage (row 0, every key), anomalies and drift alarms.
      ...progress.forecastFigures(),
    }
  }
  return {
    handler: relay,
    expectations: expect,
    maxTickValues: (expect.inputSize ?? UNKNOWN_VECTOR_VALUES) + (expect.outputSize ?? UNKNOWN_VECTOR_VALUES),
    metrics,
    figures,
  }
}

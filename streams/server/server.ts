/**
 * `serve()`: wires the server's units together. Each is a file of its own, testable without the
 * others: `learner.ts` (keyed trainer, monitor, deferred updates; no transport), `learner-ticks.ts`
 * (the learner as the tick handler: replies and broadcasts), `frames.ts` (pure frame builders,
 * encode-once `SharedFrame`), `connection.ts` (one client: corking, subscription, byte budget),
 * `hub.ts` (connections, broadcast, heartbeat, slow readers), `dispatcher.ts` (what each client
 * frame does), `front-door.ts` (HTTP/HTTPS, upgrade admission, /metrics), `endpoint.ts` (the
 * client-facing units composed, with their options and defaults), `origins.ts`, `tokens.ts`,
 * `limits.ts`, `checkpointer.ts`, `prometheus.ts`.
 *
 * Extension points: a further per-tick output (a forecast ahead, an interval, an anomaly score)
 * is a field of `TickResult` set in `Learner.tick` and copied into the prediction frame by
 * `predictionFrame`; another transport answers ticks by implementing `TickHandler`
 * (`tick-handler.ts`) and composing an `Endpoint`, as the NATS gateway (`nats/gateway.ts`) does.
 */
import type { KeyedTrainer, Model, ModelConfig, OnlineTrainer, TrainerOptions } from '../../src/index.js'
import { RxrnnError } from '../../src/index.js'
import type { Monitor } from '../operators/monitor.js'
import type { MetricsFrame } from '../transport/protocol.js'
import { readCheckpoint, removeStaleTemporaries } from './checkpoint.js'
import { Checkpointer, checkResumed, type ExplicitSettings } from './checkpointer.js'
import { Endpoint } from './endpoint.js'
import { checkEndpointOptions, type EndpointOptions } from './endpoint-options.js'
import type { ServeForecastingOptions, ServerForecasting } from './forecasting.js'
import { registerForecastingMetrics } from './forecasting-metrics.js'
import { updateFrame } from './frames.js'
import { Hub } from './hub.js'
import { Learner, type ServerKeyExtras } from './learner.js'
import { LearnerTicks } from './learner-ticks.js'
import { defaultMaxMemory, heapBytesPerKey, memoryProblem } from './limits.js'
import type { ServerMetrics } from './prometheus.js'

/**
 * Options of `serve`: the model and its learning here, how clients are met (host, port, token,
 * origins, TLS, limits, budgets, timeouts, dashboard) in `EndpointOptions`. Every limit has a
 * default fit for a server on the internet.
 */
export interface ServeOptions extends EndpointOptions {
  /** The model, or a config to build one. */
  model: Model | ModelConfig
  trainer: TrainerOptions
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
}

/** A running server. */
export interface RxrnnServer {
  readonly host: string
  readonly port: number
  /** `ws://host:port`, or `wss://host:port` with TLS. */
  readonly url: string
  readonly model: Model
  readonly trainer: OnlineTrainer
  /** Shared weights, and per key the state, the window and what the server keeps (`extras`). */
  readonly keyed: KeyedTrainer<ServerKeyExtras>
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
  checkEndpointOptions(options)
  const hub = new Hub()

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
    heapBytesPerKey(keyed.bytesPerKey() + (forecasting?.bytesPerKey() ?? 0)),
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

  const endpoint = new Endpoint(options, hub, new LearnerTicks(learner, hub).endpointModel())
  if (forecasting)
    registerForecastingMetrics(
      endpoint.prometheus.registry,
      () => forecasting.metrics(),
      options.forecasting?.coverage,
    )
  await endpoint.listen()
  if (options.idleMs !== undefined)
    endpoint.every(Math.max(100, options.idleMs / 2), () => learner.evictIdle())
  checkpointer?.start()
  forecastCheckpointer?.start()

  return {
    host: endpoint.host,
    port: endpoint.port,
    url: endpoint.url,
    model: learner.model,
    trainer: learner.trainer,
    keyed,
    monitor,
    prometheus: endpoint.prometheus,
    forecasting,
    metrics: endpoint.metrics,
    checkpoint: async () => {
      await checkpointer?.save()
      await forecastCheckpointer?.save()
    },
    async close(code = 1001) {
      // Queued updates run (and reach subscribers) before the connections close.
      learner.flush()
      // Closes every connection at once; the server stops listening whatever the checkpoint does.
      const closing = endpoint.close(code)
      const final = checkpointer?.final()
      // Settled here, thrown below.
      final?.catch(() => {})
      // The forecasting state is auxiliary: its failure is logged, not thrown.
      const forecastFinal = forecastCheckpointer?.final().catch((error: unknown) => log(String(error)))
      await closing
      await forecastFinal
      await final
    },
  }
}

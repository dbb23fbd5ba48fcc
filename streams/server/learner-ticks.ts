/**
 * `serve()`'s tick handler: a local `Learner` answers each tick at once, the reply goes to its
 * sender, and subscribers of `predictions` (with the target) and `hidden` get theirs.
 */
import { RxrnnError } from '../../src/index.js'
import type { ErrorFrame, MetricsFrame, TickFrame } from '../transport/protocol.js'
import type { Connection } from './connection.js'
import { hiddenFrame, metricsFrame, predictionFrame } from './frames.js'
import type { Hub } from './hub.js'
import type { Learner } from './learner.js'
import type { ConnectionCounters, EndpointModel, LearningFigures, TickHandler } from './tick-handler.js'

/**
 * @example
 * const hub = new Hub()
 * const learner = new Learner({ model, trainer, onUpdate: (key, u) => hub.broadcast('updates', key, () => updateFrame(key, u)) })
 * const handler = new LearnerTicks(learner, hub)
 */
export class LearnerTicks implements TickHandler {
  constructor(
    readonly learner: Learner,
    private readonly hub: Hub,
  ) {}

  get summary() {
    return this.learner.summary
  }

  has(key: string): boolean {
    return this.learner.has(key)
  }

  tick(conn: Connection, tick: TickFrame): void {
    const { hub, learner } = this
    const { key, y } = tick
    // Throws RxrnnError (state unchanged) for a tick the model cannot take.
    const result = learner.tick(key, tick.x, y, tick.t)
    conn.send(predictionFrame(key, tick.id, result))
    // A drift alarm goes to `updates` subscribers; it, and anomalous predictions, pass maxRate.
    const drift = result.forecast?.drift
    if (drift) hub.broadcast('updates', key, () => drift, undefined, true)
    // Other subscribers also get the target, when the tick had one.
    if (hub.following.predictions > 0) {
      const target = y === undefined ? undefined : typeof y === 'number' ? [y] : Array.from(y)
      const anomalous = result.forecast?.isAnomaly === true
      hub.broadcast('predictions', key, () => predictionFrame(key, tick.id, result, target), conn, anomalous)
    }
    if (hub.following.hidden > 0) {
      const h = learner.hidden(key)
      if (h) hub.broadcast('hidden', key, () => hiddenFrame(key, h))
    }
  }

  reset(key: string): void {
    this.learner.reset(key)
  }

  reject(error: ErrorFrame, frame: unknown, key?: string): void {
    this.learner.monitor.reject(new RxrnnError(error.code, error.message), frame, key)
    this.learner.reject(error)
  }

  /** What an `Endpoint` needs to serve this learner. */
  endpointModel(): EndpointModel {
    const { learner } = this
    const { monitor, keyed } = learner
    const c = learner.model.config
    const figures: LearningFigures = {
      ticks: () => monitor.events,
      updates: () => monitor.updates,
      skippedUpdates: () => monitor.skippedUpdates,
      rolledBackUpdates: () => monitor.rolledBack,
      loss: () => monitor.snapshot().lossAverage,
      gradNorm: () => monitor.snapshot().gradNorm,
      clipRate: () => monitor.snapshot().clipRate,
      keys: () => keyed.size,
      evictedKeys: () => keyed.evicted,
      rejectedByCode: () => learner.rejectedByCode,
    }
    return {
      handler: this,
      expectations: learner.expectations(),
      maxTickValues: c.inputSize + c.outputSize,
      metrics: (counters: ConnectionCounters): MetricsFrame => {
        const frame = metricsFrame(monitor.snapshot(), {
          ...counters,
          keys: keyed.size,
          evicted: keyed.evicted,
        })
        // Realised coverage (row 0, every key), anomalies and drift alarms so far.
        if (learner.forecasting) Object.assign(frame, learner.forecasting.metrics())
        return frame
      },
      figures,
    }
  }
}

/**
 * The frames the server sends, built by pure functions that return the protocol's own types
 * (`ServerFrame`), and `SharedFrame`: one frame for many connections, encoded at most once per
 * encoding whatever the number of subscribers.
 */
import type { UpdateReport } from '../../src/index.js'
import { assignForecastFields } from '../operators/forecasting.js'
import type { MetricsSnapshot } from '../operators/monitor.js'
import type { FrameEncoding } from '../transport/codec.js'
import { encodeFrame } from '../transport/codec.js'
import type {
  Channel,
  HiddenFrame,
  MetricsFrame,
  ModelSummary,
  PredictionFrame,
  ServerFrame,
  SubscribedFrame,
  UpdateFrame,
  WelcomeFrame,
} from '../transport/protocol.js'
import { PROTOCOL_VERSION } from '../transport/protocol.js'
import type { TickResult } from './learner.js'

/**
 * The answer to a tick (and, with `target`, what other subscribers of `predictions` get), from
 * what the learner gave back. A per-tick output added to `TickResult` (a forecast ahead, an
 * interval, an anomaly score) is copied into the frame here.
 *
 * @example
 * predictionFrame('sensor-7', 42, { y: [0.3] }) // { type: 'prediction', key: 'sensor-7', y: [0.3], id: 42 }
 */
export function predictionFrame(
  key: string,
  id: number | undefined,
  result: TickResult,
  target?: number[],
): PredictionFrame {
  const frame: PredictionFrame = { type: 'prediction', key, y: result.y }
  if (id !== undefined) frame.id = id
  if (target !== undefined) frame.target = target
  if (result.forecast) assignForecastFields(frame, result.forecast, false)
  return frame
}

/** An update report as subscribers of `updates` get it. */
export function updateFrame(key: string, u: UpdateReport): UpdateFrame {
  const frame: UpdateFrame = {
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
    clipRate: u.clipRate,
  }
  if (u.reason) frame.reason = u.reason
  if (u.gradientFlow) frame.gradientFlow = u.gradientFlow
  if (u.spectralRadius) frame.spectralRadius = u.spectralRadius
  return frame
}

/** A key's top-layer hidden state as a plain array. */
export function hiddenFrame(key: string, h: ArrayLike<number>): HiddenFrame {
  return { type: 'hidden', key, h: Array.from(h) }
}

/** The answer to subscribe (and to unsubscribe, with no channels). */
export function subscribedFrame(channels: Channel[], keys?: string[], id?: number): SubscribedFrame {
  const frame: SubscribedFrame = { type: 'subscribed', channels }
  if (keys !== undefined) frame.keys = keys
  if (id !== undefined) frame.id = id
  return frame
}

/** The answer to hello. */
export function welcomeFrame(model: ModelSummary, id?: number): WelcomeFrame {
  const frame: WelcomeFrame = { type: 'welcome', version: PROTOCOL_VERSION, model }
  if (id !== undefined) frame.id = id
  return frame
}

/** The server's counters beside the monitor's: what a metrics frame adds to the learner's figures. */
export interface ServerCounters {
  dropped: number
  sampledOut: number
  producers: number
  subscribers: number
  keys: number
  evicted: number
  slowClosed: number
  rateLimited: number
}

/** The metrics frame subscribers get, from the monitor's snapshot and the server's counters. */
export function metricsFrame(m: MetricsSnapshot, c: ServerCounters): MetricsFrame {
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
    dropped: c.dropped,
    producers: c.producers,
    subscribers: c.subscribers,
    keys: c.keys,
    updates: m.updates,
    rolledBack: m.rolledBack,
    sampledOut: c.sampledOut,
    evicted: c.evicted,
    slowClosed: c.slowClosed,
    rateLimited: c.rateLimited,
  }
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

/**
 * A frame going to several connections: encoded on first use per encoding and the bytes
 * shared (a JSON frame as UTF-8 bytes, sent as a text frame), so twenty subscribers cost one
 * encoding, not twenty.
 *
 * @example
 * const shared = new SharedFrame(updateFrame(key, report))
 * for (const conn of subscribers) conn.sendShared(shared)
 */
export class SharedFrame {
  private msgpack: Uint8Array | undefined
  private json: Buffer | undefined

  constructor(readonly frame: ServerFrame) {}

  bytes(encoding: FrameEncoding): Uint8Array {
    if (encoding === 'msgpack') return (this.msgpack ??= encodeFrame(this.frame, 'msgpack'))
    return (this.json ??= Buffer.from(encodeFrame(this.frame, 'json'), 'utf8'))
  }
}

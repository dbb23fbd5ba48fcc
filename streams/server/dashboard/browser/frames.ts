/**
 * What each frame of the protocol does to the page's histories, typed against the protocol's
 * own `ServerFrame` union. Hidden states come only on the 'hidden' channel (prediction frames
 * never carry them).
 */
import type {
  DriftFrame,
  MetricsFrame,
  ModelSummary,
  PredictionFrame,
  ServerFrame,
  UpdateFrame,
} from '../../../transport/protocol.js'
import { buildCharts } from './charts.js'
import { buildOutputPicker, describeModel } from './header.js'
import {
  $,
  argmax,
  FLOW_CURVES,
  KeyHistory,
  M,
  MAX_KEYS,
  MAX_OUTPUTS,
  now,
  P,
  setStatus,
  state,
  U,
} from './state.js'

export function onFrame(f: ServerFrame): void {
  state.frames++
  switch (f.type) {
    case 'welcome':
      onWelcome(f.model)
      return
    case 'subscribed':
      setStatus('live', 'live')
      return
    case 'prediction':
      onPrediction(f)
      return
    case 'hidden':
      keyHistory(f.key, null)?.pushHidden(f.h)
      return
    case 'update':
      onUpdate(f)
      return
    case 'drift':
      onDrift(f)
      return
    case 'metrics':
      onMetrics(f)
      return
    case 'error':
      console.warn(`rxrnn server: ${f.code}: ${f.message}`)
      return
  }
}

function onWelcome(model: ModelSummary): void {
  const signature = JSON.stringify(model)
  if (signature === state.signature) return
  // A new model (first connection, or the server restarted with another): start over.
  state.model = model
  state.signature = signature
  state.classification = model.task === 'classification'
  state.keys.clear()
  state.untracked.clear()
  state.selected = null
  state.output = 0
  state.metrics.clear()
  state.lastMetrics = null
  $('model').textContent = describeModel(model)
  buildCharts()
  buildOutputPicker()
  state.keysDirty = true
  state.dirty = true
}

function keyHistory(key: string, y: readonly number[] | null): KeyHistory | undefined {
  let k = state.keys.get(key)
  if (k) return k
  if (!state.model || state.keys.size >= MAX_KEYS) {
    if (!state.untracked.has(key)) {
      state.untracked.add(key)
      state.keysDirty = true
    }
    return undefined
  }
  const outputs = state.classification
    ? 1
    : Math.min(MAX_OUTPUTS, state.model.outputSize ?? (Array.isArray(y) ? y.length : 1))
  k = new KeyHistory(key, outputs, Math.max(1, state.model.numLayers ?? 1))
  state.keys.set(key, k)
  state.keysDirty = true
  if (state.selected === null) state.selected = key
  return k
}

function onPrediction(f: PredictionFrame): void {
  const k = keyHistory(f.key, f.y)
  if (!k) return
  if (Array.isArray(f.ahead)) k.ahead = { ahead: f.ahead, lower: f.aheadLower, upper: f.aheadUpper }
  // Anomalies are kept however the ticks are sampled.
  if (!k.sample() && f.isAnomaly !== true) return
  const row = k.predictions.row
  const o = k.outputs
  row[0] = k.ticks
  if (state.classification) {
    row[1] = argmax(f.y)
    row[2] = Array.isArray(f.target) ? f.target[0] : null
  } else {
    for (let d = 0; d < o; d++) {
      const target = Array.isArray(f.target) ? f.target[d] : null
      row[P.y(o, d)] = f.y?.[d]
      row[P.target(o, d)] = target
      row[P.lower(o, d)] = f.lower?.[d]
      row[P.upper(o, d)] = f.upper?.[d]
      row[P.anomaly(o, d)] = f.isAnomaly === true ? (target ?? f.y?.[d]) : null
    }
  }
  k.predictions.commit()
  if (f.key === state.selected) state.dirty = true
}

/**
 * A drift alarm: a mark at the key's latest tick, at its latest prediction, drawn at once (the
 * prediction frames after it may be sampled out by maxRate; drift frames never are).
 */
function onDrift(f: DriftFrame): void {
  const k = keyHistory(f.key, null)
  if (!k || state.classification) return
  const row = k.predictions.row
  row[0] = k.ticks
  row[P.drift(k.outputs)] = k.predictions.last(P.y(k.outputs, 0)) ?? 0
  k.predictions.commit()
  if (f.key === state.selected) state.dirty = true
}

function onUpdate(f: UpdateFrame): void {
  const k = keyHistory(f.key, null)
  if (!k) return
  const row = k.updates.row
  row[U.t] = now()
  row[U.loss] = f.loss
  row[U.gradNorm] = f.gradNorm
  row[U.clippedGradNorm] = f.clippedGradNorm ?? f.gradNorm
  row[U.clippedMark] = f.clipped ? f.gradNorm : null
  row[U.clipRate] = typeof f.clipRate === 'number' ? 100 * f.clipRate : null
  row[U.gain] = f.gradientFlow?.logGainPerStep
  const rho = Array.isArray(f.spectralRadius) ? f.spectralRadius : []
  for (let l = 0; l < k.layers; l++) row[U.rho + l] = rho[l]
  k.updates.commit()
  const flow = f.gradientFlow
  if (flow && Array.isArray(flow.norms) && flow.norms.length > 0) {
    k.flows.push({ update: f.update, norms: flow.norms, gain: flow.logGainPerStep })
    if (k.flows.length > FLOW_CURVES) k.flows.shift()
  }
  if (f.key === state.selected) state.dirty = true
}

function onMetrics(f: MetricsFrame): void {
  const prev = state.lastMetrics
  const row = state.metrics.row
  row[M.t] = f.t / 1000
  row[M.rate] = f.eventsPerSecond
  if (prev && typeof f.updates === 'number' && typeof prev.updates === 'number' && f.t > prev.t) {
    row[M.updateRate] = ((f.updates - prev.updates) * 1000) / (f.t - prev.t)
  }
  row[M.loss] = f.loss
  row[M.rmse] = num(f.rmse)
  row[M.persistenceRmse] = num(f.persistenceRmse)
  row[M.mae] = num(f.mae)
  row[M.persistenceMae] = num(f.persistenceMae)
  row[M.accuracy] = num(f.accuracy)
  row[M.logLoss] = num(f.logLoss)
  row[M.producers] = f.producers
  row[M.subscribers] = f.subscribers
  row[M.dropped] = f.dropped
  row[M.rejected] = f.rejected
  state.metrics.commit()
  state.lastMetrics = f
  state.dirty = true
}

/** A metrics field that is a number, else null (the frame's extra fields are an open record). */
function num(v: unknown): number | null {
  return typeof v === 'number' ? v : null
}

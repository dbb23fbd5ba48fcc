// @ts-nocheck: browser code in plain JavaScript, served as /dashboard/app.js exactly as written (see index.ts).
/**
 * The dashboard in the browser: one WebSocket back to the server speaking the rxrnn protocol in
 * JSON text frames, bounded histories (per key, and for the global metrics), and uPlot charts
 * redrawn at most ten times a second however fast the ticks come.
 */

/** Points kept per series. */
const HISTORY = 2000
/** Columns of the hidden-state heatmap. */
const HEATMAP_STEPS = 240
/** Gradient-flow curves drawn (the latest updates). */
const FLOW_CURVES = 6
/** Keys followed in detail; ticks of further keys are counted only. */
const MAX_KEYS = 64
const MAX_OUTPUTS = 8
const DRAW_EVERY_MS = 100
/**
 * Predictions (and hidden states) kept per key and second, at most: past it every n-th tick is
 * kept, so the history spans ≥ 4 s however fast the key ticks. Counting ticks, not clock time,
 * keeps the sample even when frames arrive in bursts.
 */
const KEEP_PER_SECOND = 500
const BACKOFF_MIN_MS = 250
const BACKOFF_MAX_MS = 5000

const uPlot = globalThis.uPlot
const $ = (id) => document.getElementById(id)
/** Seconds since the epoch, sub-millisecond: uPlot's time axis unit. */
const now = () => (performance.timeOrigin + performance.now()) / 1000

const colors = {
  text: '#e6edf3',
  muted: '#8b949e',
  grid: 'rgba(240, 246, 252, 0.07)',
  actual: '#d0d7de',
  blue: '#4e9bff',
  orange: '#f0883e',
  green: '#3fb950',
  purple: '#bc8cff',
  red: '#f85149',
  yellow: '#e3b341',
  teal: '#39c5cf',
  gray: '#6e7681',
  baseline: '#a3adb8',
}

/** A ring of rows of numbers (NaN for missing), read out as uPlot columns (null for missing). */
class Table {
  constructor(width, capacity = HISTORY) {
    this.width = width
    this.capacity = capacity
    this.data = new Float64Array(width * capacity)
    this.row = new Array(width).fill(null)
    this.start = 0
    this.length = 0
  }

  /** Appends `this.row`. */
  commit() {
    const i = (this.start + this.length) % this.capacity
    if (this.length < this.capacity) this.length++
    else this.start = (this.start + 1) % this.capacity
    const base = i * this.width
    for (let c = 0; c < this.width; c++) {
      const v = this.row[c]
      this.data[base + c] = typeof v === 'number' && Number.isFinite(v) ? v : Number.NaN
      this.row[c] = null
    }
  }

  /** Column `c` in time order; `positive` drops values ≤ 0 (for log scales). */
  column(c, positive = false) {
    const out = new Array(this.length)
    for (let j = 0; j < this.length; j++) {
      const v = this.data[((this.start + j) % this.capacity) * this.width + c]
      out[j] = Number.isNaN(v) || (positive && v <= 0) ? null : v
    }
    return out
  }

  last(c) {
    if (this.length === 0) return null
    const v = this.data[((this.start + this.length - 1) % this.capacity) * this.width + c]
    return Number.isNaN(v) ? null : v
  }

  clear() {
    this.start = 0
    this.length = 0
  }
}

// Metrics columns.
const M = {
  t: 0,
  rate: 1,
  updateRate: 2,
  loss: 3,
  rmse: 4,
  persistenceRmse: 5,
  mae: 6,
  persistenceMae: 7,
  accuracy: 8,
  logLoss: 9,
  producers: 10,
  subscribers: 11,
  dropped: 12,
  rejected: 13,
}
/** Prediction columns of output d for a key with `o` outputs. */
const P = {
  y: (_o, d) => 1 + d,
  target: (o, d) => 1 + o + d,
  lower: (o, d) => 1 + 2 * o + d,
  upper: (o, d) => 1 + 3 * o + d,
  anomaly: (o, d) => 1 + 4 * o + d,
  drift: (o) => 1 + 5 * o,
}

// Update columns; spectral radii follow, one per layer.
const U = { t: 0, loss: 1, gradNorm: 2, clippedGradNorm: 3, clippedMark: 4, clipRate: 5, gain: 6, rho: 7 }

/** What the page keeps about one key. */
class KeyHistory {
  constructor(key, outputs, layers) {
    this.key = key
    this.outputs = outputs
    this.layers = layers
    // t, then y, target, lower, upper and an anomaly mark per output, then a drift mark (see P).
    this.predictions = new Table(2 + 5 * outputs)
    /** The latest forecast's `ahead`, `aheadLower`, `aheadUpper` (rows of outputs), or null. */
    this.ahead = null
    this.updates = new Table(U.rho + layers)
    /** The latest updates' gradient flow, oldest first: { update, norms, gain }. */
    this.flows = []
    /** The latest hidden states, oldest first. */
    this.hidden = []
    /** Ticks seen since the page started following this key: the x of the prediction chart. */
    this.ticks = 0
    this.stride = 1
    this.windowStart = performance.now()
    this.windowTicks = 0
  }

  /** Counts a tick; true when it is one to keep. */
  sample() {
    this.ticks++
    this.windowTicks++
    const t = performance.now()
    if (t - this.windowStart >= 1000) {
      const perSecond = (this.windowTicks * 1000) / (t - this.windowStart)
      this.stride = Math.max(1, Math.ceil(perSecond / KEEP_PER_SECOND))
      this.windowStart = t
      this.windowTicks = 0
    }
    return this.ticks % this.stride === 0
  }

  pushHidden(h) {
    if (!Array.isArray(h) || h.length === 0) return
    this.hidden.push(Float32Array.from(h))
    if (this.hidden.length > HEATMAP_STEPS) this.hidden.shift()
  }
}

const state = {
  status: 'connecting',
  model: null,
  signature: '',
  classification: false,
  keys: new Map(),
  untracked: new Set(),
  selected: null,
  output: 0,
  metrics: new Table(14),
  lastMetrics: null,
  dirty: true,
  keysDirty: false,
  draws: 0,
  frames: 0,
  drawMs: { last: 0, max: 0 },
}

// ---------------------------------------------------------------- frames

function onFrame(f) {
  state.frames++
  switch (f.type) {
    case 'welcome':
      return onWelcome(f.model)
    case 'subscribed':
      setStatus('live', 'live')
      return
    case 'prediction':
      return onPrediction(f)
    case 'hidden':
      // A dedicated channel, if the server has one: { type: 'hidden', key, h }.
      keyHistory(f.key, null)?.pushHidden(f.h)
      return
    case 'update':
      return onUpdate(f)
    case 'drift':
      return onDrift(f)
    case 'metrics':
      return onMetrics(f)
    case 'error':
      console.warn(`rxrnn server: ${f.code}: ${f.message}`)
      return
  }
}

function onWelcome(model) {
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

function keyHistory(key, y) {
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

function onPrediction(f) {
  const k = keyHistory(f.key, f.y)
  if (!k) return
  if (Array.isArray(f.ahead)) k.ahead = { ahead: f.ahead, lower: f.aheadLower, upper: f.aheadUpper }
  // Anomalies are kept however the ticks are sampled.
  if (!k.sample() && !f.isAnomaly) return
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
      row[P.anomaly(o, d)] = f.isAnomaly ? (target ?? f.y?.[d]) : null
    }
  }
  k.predictions.commit()
  if (f.h) k.pushHidden(f.h)
  if (f.key === state.selected) state.dirty = true
}

/**
 * A drift alarm: a mark at the key's latest tick, at its latest prediction, drawn at once (the
 * prediction frames after it may be sampled out by maxRate; drift frames never are).
 */
function onDrift(f) {
  const k = keyHistory(f.key, null)
  if (!k || state.classification) return
  const row = k.predictions.row
  row[0] = k.ticks
  row[P.drift(k.outputs)] = k.predictions.last(P.y(k.outputs, 0)) ?? 0
  k.predictions.commit()
  if (f.key === state.selected) state.dirty = true
}

function onUpdate(f) {
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
  const norms = f.gradientFlow?.norms
  if (Array.isArray(norms) && norms.length > 0) {
    k.flows.push({ update: f.update ?? f.step, norms, gain: f.gradientFlow.logGainPerStep })
    if (k.flows.length > FLOW_CURVES) k.flows.shift()
  }
  if (f.key === state.selected) state.dirty = true
}

function onMetrics(f) {
  const prev = state.lastMetrics
  const row = state.metrics.row
  row[M.t] = f.t / 1000
  row[M.rate] = f.eventsPerSecond
  if (prev && typeof f.updates === 'number' && typeof prev.updates === 'number' && f.t > prev.t) {
    row[M.updateRate] = ((f.updates - prev.updates) * 1000) / (f.t - prev.t)
  }
  row[M.loss] = f.loss
  row[M.rmse] = f.rmse
  row[M.persistenceRmse] = f.persistenceRmse
  row[M.mae] = f.mae
  row[M.persistenceMae] = f.persistenceMae
  row[M.accuracy] = f.accuracy
  row[M.logLoss] = f.logLoss
  row[M.producers] = f.producers
  row[M.subscribers] = f.subscribers
  row[M.dropped] = f.dropped
  row[M.rejected] = f.rejected
  state.metrics.commit()
  state.lastMetrics = f
  state.dirty = true
}

// ---------------------------------------------------------------- charts

const charts = {}

function axis(label, extra = {}) {
  return {
    label,
    stroke: colors.muted,
    font: '11px system-ui, sans-serif',
    labelFont: '12px system-ui, sans-serif',
    labelSize: 20,
    size: 56,
    grid: { stroke: colors.grid, width: 1 },
    ticks: { stroke: colors.grid, width: 1, size: 4 },
    ...extra,
  }
}

function line(label, stroke, extra = {}) {
  return { label, stroke, width: 1.5, spanGaps: true, points: { show: false }, value: legendValue, ...extra }
}

function legendValue(_u, v) {
  return v == null ? '–' : format(v)
}

const timeSeries = {
  label: 'time',
  value: (_u, v) => (v == null ? '–' : clockLabels(null, [v], 0, 0, 0.1)[0]),
}
const timeAxis = () => axis('time (local clock)', { size: 40, values: clockLabels })
const logAxis = (label) => axis(label, { values: decadeLabels })

/** hh:mm:ss, with tenths when the ticks are less than a second apart. */
function clockLabels(_u, splits, _axis, _space, increment) {
  return splits.map((v) => {
    const d = new Date(v * 1000)
    const hms = [d.getHours(), d.getMinutes(), d.getSeconds()]
      .map((n) => String(n).padStart(2, '0'))
      .join(':')
    return increment < 1 ? `${hms}.${Math.floor((d.getMilliseconds() + 0.5) / 100)}` : hms
  })
}

/** A label on each power of ten only (uPlot also places ticks at 2…9 × 10^k). */
function decadeLabels(_u, splits) {
  return splits.map((v) => {
    const e = Math.log10(v)
    if (!(v > 0) || Math.abs(e - Math.round(e)) > 1e-6) return ''
    const k = Math.round(e)
    return k >= -3 && k <= 4 ? String(10 ** k >= 1 ? 10 ** k : Number((10 ** k).toFixed(-k))) : `1e${k}`
  })
}
const noPoints = () => null

function chart(id, series, axes, scales = {}, height = 220, hooks = {}, more = {}) {
  const el = $(id).querySelector('.chart')
  el.replaceChildren()
  const u = new uPlot(
    {
      width: Math.max(300, el.clientWidth),
      height,
      series,
      axes,
      scales,
      hooks,
      legend: { live: true },
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      ...more,
    },
    series.map(() => []),
    el,
  )
  new ResizeObserver(() => {
    const width = Math.max(300, el.clientWidth)
    if (width !== u.width) u.setSize({ width, height })
  }).observe(el)
  return u
}

function buildCharts() {
  const model = state.model
  const logY = { y: { distr: 3, log: 10 } }
  const outputUnit = state.classification ? 'class' : 'value (target units)'

  charts.prediction = chart(
    'p-prediction',
    [
      { label: 'tick', value: (_u, v) => (v == null ? '–' : `#${v}`) },
      line(state.classification ? 'actual class' : 'actual (target)', colors.actual, { width: 1.25 }),
      line(state.classification ? 'predicted class (argmax)' : 'predicted', colors.orange, { width: 1.75 }),
      line('interval low', colors.blue, { width: 0.75, dash: [3, 3] }),
      line('interval high', colors.blue, { width: 0.75, dash: [3, 3] }),
      marks('anomaly', colors.red, 7),
      marks('drift', colors.yellow, 11),
    ],
    [axis('tick of this key (since the page opened)', { size: 40 }), axis(outputUnit)],
    { x: { time: false } },
    250,
    {},
    { bands: [{ series: [4, 3], fill: 'rgba(78, 155, 255, 0.12)' }] },
  )

  charts.horizon = chart(
    'p-horizon',
    [
      { label: 'ticks ahead', value: (_u, v) => (v == null ? '–' : `+${v}`) },
      line('forecast', colors.orange, { width: 2, points: { show: true, size: 5 } }),
      line('interval low', colors.blue, { width: 1, dash: [3, 3] }),
      line('interval high', colors.blue, { width: 1, dash: [3, 3] }),
    ],
    [axis('ticks ahead', { size: 40 }), axis(outputUnit)],
    { x: { time: false } },
    200,
    {},
    { bands: [{ series: [3, 2], fill: 'rgba(78, 155, 255, 0.15)' }] },
  )

  charts.loss = chart(
    'p-loss',
    [
      timeSeries,
      line('update loss (key)', colors.blue),
      line('mean loss, all keys', colors.purple, { dash: [6, 4] }),
    ],
    [timeAxis(), logAxis(`${model.loss ?? 'loss'} (log)`)],
    logY,
  )

  charts.error = chart(
    'p-error',
    state.classification
      ? [timeSeries, line('accuracy', colors.green), line('log loss', colors.purple)]
      : [
          timeSeries,
          line('RMSE model', colors.blue, { width: 2 }),
          line('RMSE persistence', colors.baseline, { dash: [7, 4], width: 2 }),
          line('MAE model', colors.teal),
          line('MAE persistence', colors.baseline, { dash: [2, 3], width: 1.5 }),
        ],
    [timeAxis(), axis(state.classification ? 'accuracy · log loss' : 'error (target units)')],
  )

  const clipNorm = typeof model.clipNorm === 'number' ? model.clipNorm : null
  charts.grad = chart(
    'p-grad',
    [
      timeSeries,
      line('‖g‖ before clipping', colors.orange),
      line('‖g‖ after clipping', colors.blue),
      {
        label: 'clipped',
        stroke: colors.red,
        fill: colors.red,
        paths: noPoints,
        points: { show: true, size: 6, stroke: colors.red, fill: colors.red },
        value: (_u, v) => (v == null ? '–' : 'clipped'),
      },
      line(clipNorm === null ? 'no clipping threshold' : `threshold ${format(clipNorm)}`, colors.baseline, {
        dash: [5, 4],
        width: 1.25,
      }),
      line('clip rate', colors.green, {
        scale: 'pct',
        width: 1.25,
        value: (_u, v) => (v == null ? '–' : `${v.toFixed(0)}%`),
      }),
    ],
    [
      timeAxis(),
      logAxis('‖g‖ (log)'),
      axis('clip rate (%)', {
        scale: 'pct',
        side: 1,
        grid: { show: false },
        values: (_u, ticks) => ticks.map((v) => `${v}%`),
      }),
    ],
    { ...logY, pct: { range: [0, 100] } },
  )

  const flowColors = ['#1d3d6b', '#244d85', '#2c5fa3', '#3572c2', '#3f86e0', '#6cb0ff']
  const flowSeries = [{ label: 'k steps back', value: (_u, v) => (v == null ? '–' : `k = ${v}`) }]
  for (let i = 0; i < FLOW_CURVES; i++) {
    const age = FLOW_CURVES - 1 - i
    flowSeries.push(
      line(age === 0 ? 'latest update' : `${age} before`, flowColors[i], { width: age === 0 ? 2.25 : 1.25 }),
    )
  }
  flowSeries.push(line('fitted gain (latest)', colors.yellow, { dash: [6, 4], width: 1.5 }))
  charts.flow = chart(
    'p-flow',
    flowSeries,
    [axis('steps back k (through the TBPTT window)', { size: 40 }), logAxis('‖∂L/∂h‖ (log)')],
    { x: { time: false }, ...logY },
  )

  const rhoColors = [colors.purple, colors.teal, colors.green, colors.blue]
  const gainSeries = [timeSeries, line('ln gain / step', colors.yellow, { scale: 'gain', width: 2 })]
  const layers = Math.max(1, model.numLayers ?? 1)
  for (let l = 0; l < layers; l++) {
    gainSeries.push(
      line(layers > 1 ? `ρ(W_hh) layer ${l}` : 'ρ(W_hh)', rhoColors[l % rhoColors.length], { scale: 'rho' }),
    )
  }
  gainSeries.push(line('ρ = 1', colors.gray, { scale: 'rho', dash: [4, 4], width: 1 }))
  charts.gain = chart(
    'p-gain',
    gainSeries,
    [
      timeAxis(),
      axis('ln gain per step back', { scale: 'gain' }),
      axis('spectral radius ρ', { scale: 'rho', side: 1, grid: { show: false } }),
    ],
    {
      gain: {
        range: (_u, min, max) => {
          const m = 1.15 * Math.max(Math.abs(min ?? 0), Math.abs(max ?? 0), 0.05)
          return [-m, m]
        },
      },
      rho: { range: (_u, _min, max) => [0, Math.max(1.25, 1.1 * (max ?? 0))] },
    },
    220,
    { drawClear: [shadeGainRegions] },
  )

  charts.throughput = chart(
    'p-throughput',
    [timeSeries, line('ticks / s', colors.blue, { width: 2 }), line('updates / s', colors.orange)],
    [timeAxis(), axis('per second')],
  )

  const stepped = uPlot.paths.stepped({ align: 1 })
  charts.connections = chart(
    'p-connections',
    [
      timeSeries,
      line('producers', colors.green, { paths: stepped, width: 2 }),
      line('subscribers', colors.blue, { paths: stepped, width: 2 }),
      line('dropped', colors.red, { scale: 'frames' }),
      line('rejected', colors.yellow, { scale: 'frames' }),
    ],
    [
      timeAxis(),
      axis('connections', { values: (_u, ticks) => ticks.map((v) => (Number.isInteger(v) ? v : '')) }),
      axis('frames (total)', { scale: 'frames', side: 1, grid: { show: false } }),
    ],
    {
      y: { range: (_u, _min, max) => [0, Math.max(2, Math.ceil((max ?? 0) + 1))] },
      frames: { range: (_u, _min, max) => [0, Math.max(10, 1.2 * (max ?? 0))] },
    },
  )
}

/** Tints the gain chart: above 0 the gradient explodes going back in time, below 0 it vanishes. */
function shadeGainRegions(u) {
  const { ctx } = u
  const { left, top, width, height } = u.bbox
  const y0 = Math.min(top + height, Math.max(top, u.valToPos(0, 'gain', true)))
  ctx.save()
  ctx.fillStyle = 'rgba(248, 81, 73, 0.07)'
  ctx.fillRect(left, top, width, y0 - top)
  ctx.fillStyle = 'rgba(78, 155, 255, 0.07)'
  ctx.fillRect(left, y0, width, top + height - y0)
  const px = devicePixelRatio || 1
  ctx.font = `${11 * px}px system-ui, sans-serif`
  ctx.textAlign = 'left'
  ctx.fillStyle = 'rgba(248, 81, 73, 0.8)'
  ctx.fillText('exploding ▲', left + 8 * px, top + 16 * px)
  ctx.fillStyle = 'rgba(78, 155, 255, 0.85)'
  ctx.fillText('vanishing ▼', left + 8 * px, top + height - 8 * px)
  ctx.restore()
}

// ---------------------------------------------------------------- drawing

function draw() {
  state.draws++
  if (state.keysDirty) renderKeyPicker()
  renderTiles()
  if (!state.model) return
  const k = state.selected === null ? undefined : state.keys.get(state.selected)
  for (const el of document.querySelectorAll('[data-key]')) el.textContent = k ? `key ${k.key}` : 'no key yet'
  drawPrediction(k)
  drawHorizon(k)
  drawUpdates(k)
  drawFlow(k)
  drawMetrics()
  drawHeatmap(k)
}

/** New data; while the pointer is elsewhere the legend reads the newest point (the flow chart: k = 0). */
function show(u, data, legendAt = 'newest') {
  u.setData(data)
  if (u.cursor.left != null && u.cursor.left >= 0) return
  const n = data[0].length
  if (n > 0) u.setLegend({ idx: legendAt === 'first' ? 0 : n - 1 })
}

function drawPrediction(k) {
  if (!k) return show(charts.prediction, [[], [], [], [], [], [], []])
  const p = k.predictions
  const o = k.outputs
  const out = Math.min(state.output, o - 1)
  show(charts.prediction, [
    p.column(0),
    p.column(P.target(o, out)),
    p.column(P.y(o, out)),
    p.column(P.lower(o, out)),
    p.column(P.upper(o, out)),
    p.column(P.anomaly(o, out)),
    p.column(P.drift(o)),
  ])
}

/** The latest `ahead` of the key as a fan: one point per tick ahead, with its interval. */
function drawHorizon(k) {
  const a = k?.ahead
  if (!a) return show(charts.horizon, [[], [], [], []])
  const out = Math.min(state.output, k.outputs - 1)
  const finite = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null)
  const pick = (rows) => a.ahead.map((_, h) => finite(rows?.[h]?.[out]))
  show(charts.horizon, [a.ahead.map((_, h) => h + 1), pick(a.ahead), pick(a.lower), pick(a.upper)])
}

/** A series drawn as points only (anomaly and drift marks). */
function marks(label, color, size) {
  return {
    label,
    stroke: color,
    fill: color,
    paths: noPoints,
    points: { show: true, size, stroke: color, fill: color },
    value: (_u, v) => (v == null ? '–' : label),
  }
}

function drawUpdates(k) {
  const m = state.metrics
  if (!k) {
    show(
      charts.grad,
      charts.grad.series.map(() => []),
    )
    show(
      charts.gain,
      charts.gain.series.map(() => []),
    )
    show(charts.loss, [m.column(M.t), m.column(M.t).map(() => null), m.column(M.loss, true)])
    return
  }
  const u = k.updates
  const t = u.column(U.t)
  show(
    charts.loss,
    uPlot.join([
      [t, u.column(U.loss, true)],
      [m.column(M.t), m.column(M.loss, true)],
    ]),
  )
  const clipNorm = typeof state.model.clipNorm === 'number' ? state.model.clipNorm : null
  show(charts.grad, [
    t,
    u.column(U.gradNorm, true),
    u.column(U.clippedGradNorm, true),
    u.column(U.clippedMark, true),
    t.map(() => clipNorm),
    u.column(U.clipRate),
  ])
  const gain = [t, u.column(U.gain)]
  for (let l = 0; l < k.layers; l++) gain.push(u.column(U.rho + l))
  gain.push(t.map(() => 1))
  show(charts.gain, gain)
}

function drawFlow(k) {
  const flows = k ? k.flows : []
  let steps = 0
  for (const f of flows) steps = Math.max(steps, f.norms.length)
  const xs = Array.from({ length: steps }, (_, i) => i)
  const data = [xs]
  const offset = FLOW_CURVES - flows.length
  for (let i = 0; i < FLOW_CURVES; i++) {
    const f = flows[i - offset]
    data.push(xs.map((x) => (f && f.norms[x] > 0 ? f.norms[x] : null)))
  }
  const latest = flows[flows.length - 1]
  data.push(latest ? fitLine(latest.norms, latest.gain, xs) : xs.map(() => null))
  show(charts.flow, data, 'first')
  const badge = $('gain-badge')
  const g = latest?.gain
  if (typeof g === 'number' && Number.isFinite(g)) {
    const kind = g < 0 ? 'vanishing' : 'exploding'
    badge.textContent = `latest ln-gain ${g >= 0 ? '+' : ''}${g.toFixed(3)} / step (×${Math.exp(g).toFixed(3)}) · ${kind}`
    badge.dataset.kind = kind
  } else {
    badge.textContent = 'gain –'
    delete badge.dataset.kind
  }
}

/** exp(a + g·k) with the server's slope g and the least-squares intercept a. */
function fitLine(norms, g, xs) {
  if (typeof g !== 'number' || !Number.isFinite(g)) return xs.map(() => null)
  let n = 0
  let sum = 0
  for (let k = 0; k < norms.length; k++) {
    if (!(norms[k] > 0)) continue
    n++
    sum += Math.log(norms[k]) - g * k
  }
  if (n === 0) return xs.map(() => null)
  const a = sum / n
  return xs.map((k) => Math.exp(a + g * k))
}

function drawMetrics() {
  const m = state.metrics
  const t = m.column(M.t)
  show(
    charts.error,
    state.classification
      ? [t, m.column(M.accuracy), m.column(M.logLoss)]
      : [t, m.column(M.rmse), m.column(M.persistenceRmse), m.column(M.mae), m.column(M.persistenceMae)],
  )
  show(charts.throughput, [t, m.column(M.rate), m.column(M.updateRate)])
  show(charts.connections, [
    t,
    m.column(M.producers),
    m.column(M.subscribers),
    m.column(M.dropped),
    m.column(M.rejected),
  ])
}

const heat = { columns: 0, offscreen: null, scale: 1 }

function drawHeatmap(k) {
  const canvas = $('heatmap')
  const px = devicePixelRatio || 1
  const width = Math.round(canvas.clientWidth * px)
  const height = Math.round(canvas.clientHeight * px)
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width
    canvas.height = height
  }
  const ctx = canvas.getContext('2d')
  ctx.fillStyle = '#0d1117'
  ctx.fillRect(0, 0, width, height)
  const cols = k ? k.hidden : []
  heat.columns = cols.length
  const margin = { left: 46 * px, right: 8 * px, top: 6 * px, bottom: 22 * px }
  const plotW = width - margin.left - margin.right
  const plotH = height - margin.top - margin.bottom
  ctx.font = `${11 * px}px system-ui, sans-serif`
  ctx.fillStyle = colors.muted
  if (cols.length === 0) {
    ctx.textAlign = 'center'
    ctx.fillText('waiting for hidden states (prediction frames carry h)…', width / 2, height / 2)
    return
  }
  const units = cols[0].length
  let maxAbs = 0
  for (const c of cols) for (let i = 0; i < c.length; i++) maxAbs = Math.max(maxAbs, Math.abs(c[i]))
  const scale = niceCeil(Math.max(maxAbs, 1e-3))
  heat.scale = scale
  if (!heat.offscreen || heat.offscreen.width !== HEATMAP_STEPS || heat.offscreen.height !== units) {
    heat.offscreen = document.createElement('canvas')
    heat.offscreen.width = HEATMAP_STEPS
    heat.offscreen.height = units
  }
  const off = heat.offscreen.getContext('2d')
  const image = off.createImageData(HEATMAP_STEPS, units)
  const pixels = image.data
  const first = HEATMAP_STEPS - cols.length
  for (let x = 0; x < HEATMAP_STEPS; x++) {
    const c = cols[x - first]
    for (let y = 0; y < units; y++) {
      const o = (y * HEATMAP_STEPS + x) * 4
      const [r, g, b] = c ? diverging(c[y] / scale) : [22, 27, 34]
      pixels[o] = r
      pixels[o + 1] = g
      pixels[o + 2] = b
      pixels[o + 3] = 255
    }
  }
  off.putImageData(image, 0, 0)
  ctx.imageSmoothingEnabled = false
  ctx.drawImage(heat.offscreen, margin.left, margin.top, plotW, plotH)
  // Axes: units down the left, steps along the bottom.
  ctx.fillStyle = colors.muted
  ctx.textAlign = 'right'
  ctx.textBaseline = 'top'
  ctx.fillText('unit 0', margin.left - 6 * px, margin.top)
  ctx.textBaseline = 'bottom'
  ctx.fillText(`${units - 1}`, margin.left - 6 * px, margin.top + plotH)
  ctx.textBaseline = 'top'
  ctx.textAlign = 'left'
  ctx.fillText(`← ${HEATMAP_STEPS} sampled steps (older)`, margin.left, margin.top + plotH + 6 * px)
  ctx.textAlign = 'right'
  ctx.fillText('newest →', margin.left + plotW, margin.top + plotH + 6 * px)
  $('hm-min').textContent = `−${format(scale)}`
  $('hm-max').textContent = `+${format(scale)}`
  $('hm-note').textContent = `${units} units · ${cols.length} steps shown`
}

/** Blue below 0, orange above, dark at 0; |t| ≤ 1. */
function diverging(t) {
  const a = Math.min(1, Math.abs(t)) ** 0.75
  const base = [13, 17, 23]
  const end = t < 0 ? [47, 129, 247] : [255, 138, 61]
  return [
    base[0] + a * (end[0] - base[0]),
    base[1] + a * (end[1] - base[1]),
    base[2] + a * (end[2] - base[2]),
  ]
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}

// ---------------------------------------------------------------- header

function describeModel(m) {
  const parts = [
    `${String(m.cell).toUpperCase()} ${m.inputSize} → ${m.hiddenSize}${m.numLayers > 1 ? ` × ${m.numLayers} layers` : ''} → ${m.outputSize}`,
    `${m.loss ?? m.task}`,
    `TBPTT(k1 ${m.k1}, k2 ${m.k2})`,
    `${m.optimizer} lr ${m.lr}`,
    `clip ${m.clipNorm ?? 'off'}`,
  ]
  return parts.join('  ·  ')
}

function renderKeyPicker() {
  state.keysDirty = false
  const select = $('key')
  const options = [...state.keys.keys()].map((key) => new Option(key, key, false, key === state.selected))
  if (state.untracked.size > 0) {
    const more = new Option(`+${state.untracked.size} more (not followed)`, '')
    more.disabled = true
    options.push(more)
  }
  if (options.length === 0) options.push(new Option('none yet', ''))
  select.replaceChildren(...options)
  select.disabled = state.keys.size === 0
}

function buildOutputPicker() {
  const outputs = state.classification ? 1 : Math.min(MAX_OUTPUTS, state.model.outputSize ?? 1)
  $('output-picker').hidden = outputs <= 1
  $('output').replaceChildren(...Array.from({ length: outputs }, (_, i) => new Option(`y[${i}]`, String(i))))
}

function renderTiles() {
  const m = state.lastMetrics
  const set = (id, v, alert = false) => {
    const el = $(id)
    el.textContent = v
    el.classList.toggle('alert', alert)
  }
  set('t-rate', m ? format(m.eventsPerSecond) : '–')
  set('t-events', m ? format(m.events) : '–')
  set('t-keys', m ? format(m.keys) : '–')
  set('t-updates', m?.updates == null ? '–' : format(m.updates))
  set('t-cliprate', m?.clipRate == null ? '–' : `${(100 * m.clipRate).toFixed(0)}%`)
  set('t-producers', m ? String(m.producers) : '–')
  set('t-subscribers', m ? String(m.subscribers) : '–')
  set('t-dropped', m ? format(m.dropped) : '–', (m?.dropped ?? 0) > 0)
  set('t-rejected', m ? format(m.rejected) : '–', (m?.rejected ?? 0) > 0)
  set('t-skipped', m ? format(m.skippedUpdates) : '–', (m?.skippedUpdates ?? 0) > 0)
  set(
    't-coverage',
    typeof m?.intervalCoverage === 'number' ? `${(100 * m.intervalCoverage).toFixed(1)}%` : '–',
  )
  set('t-anomalies', typeof m?.anomalies === 'number' ? format(m.anomalies) : '–')
  set('t-drifts', typeof m?.drifts === 'number' ? format(m.drifts) : '–', (m?.drifts ?? 0) > 0)
}

function format(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–'
  const a = Math.abs(v)
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)}M`
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`
  if (a >= 100 || Number.isInteger(v)) return v.toFixed(0)
  if (a >= 0.01) return v.toPrecision(3)
  if (a === 0) return '0'
  return v.toExponential(2)
}

function argmax(y) {
  if (!Array.isArray(y) || y.length === 0) return null
  let best = 0
  for (let i = 1; i < y.length; i++) if (y[i] > y[best]) best = i
  return best
}

function setStatus(status, text) {
  state.status = status
  const el = $('status')
  el.dataset.state = status
  $('status-text').textContent = text
}

// ---------------------------------------------------------------- connection

const needsToken = document.body.dataset.auth === 'token'
let token = null
let socket = null
let attempts = 0
let openedWithToken = false

function socketUrl() {
  const url = new URL('.', location.href)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  url.search = ''
  url.hash = ''
  if (token !== null) url.searchParams.set('token', token)
  return url.href
}

function connect() {
  setStatus(attempts === 0 ? 'connecting' : 'reconnecting', attempts === 0 ? 'connecting…' : 'reconnecting…')
  const ws = new WebSocket(socketUrl())
  socket = ws
  let opened = false
  ws.onopen = () => {
    opened = true
    openedWithToken = true
    attempts = 0
    ws.send(JSON.stringify({ type: 'hello', id: 1 }))
    ws.send(
      // maxRate: the server samples predictions and hidden states to what the page can draw,
      // updates and hidden states, so a 10,000 ticks/s feed costs the browser at most 400 frames/s of each.
      JSON.stringify({
        type: 'subscribe',
        channels: ['predictions', 'updates', 'metrics', 'hidden'],
        maxRate: 400,
        id: 2,
      }),
    )
  }
  ws.onmessage = (event) => {
    if (typeof event.data !== 'string') return
    let frame = null
    try {
      frame = JSON.parse(event.data)
    } catch {
      return
    }
    if (frame && typeof frame === 'object') onFrame(frame)
  }
  ws.onclose = () => {
    if (socket !== ws) return
    socket = null
    if (!opened && needsToken && !openedWithToken) return recheckToken()
    scheduleReconnect()
  }
}

function scheduleReconnect() {
  attempts++
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (attempts - 1)) * (0.8 + 0.4 * Math.random())
  setStatus('reconnecting', `disconnected · retrying in ${(delay / 1000).toFixed(1)} s`)
  setTimeout(connect, delay)
}

/** 'ok', 'refused', or 'unreachable'. The server answers 200 either way, so a wrong token logs no error. */
async function checkToken(candidate) {
  try {
    const response = await fetch('dashboard/auth', {
      headers: { authorization: `Bearer ${candidate}` },
      cache: 'no-store',
    })
    if (!response.ok) return 'unreachable'
    return (await response.json()).ok ? 'ok' : 'refused'
  } catch {
    return 'unreachable'
  }
}

async function recheckToken() {
  const verdict = await checkToken(token)
  if (verdict === 'refused') return askToken('The server refused that token.')
  scheduleReconnect()
}

function askToken(message) {
  setStatus('token', 'token needed')
  $('token-error').textContent = message
  const dialog = $('token-dialog')
  if (!dialog.open) dialog.showModal()
  $('token-input').focus()
}

$('token-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const candidate = $('token-input').value
  const verdict = await checkToken(candidate)
  if (verdict === 'refused') {
    $('token-error').textContent = 'The server refused that token.'
    return
  }
  token = candidate
  sessionStorage.setItem('rxrnn-token', candidate)
  $('token-dialog').close()
  connect()
})

$('key').addEventListener('change', (event) => {
  if (!event.target.value) return
  state.selected = event.target.value
  state.dirty = true
})

$('output').addEventListener('change', (event) => {
  state.output = Number(event.target.value) || 0
  state.dirty = true
})

async function start() {
  if (!needsToken) return connect()
  const fromUrl = new URLSearchParams(location.search).get('token')
  const saved = fromUrl ?? sessionStorage.getItem('rxrnn-token')
  if (saved === null) return askToken('')
  const verdict = await checkToken(saved)
  if (verdict === 'refused') return askToken('The server refused the saved token.')
  token = saved
  sessionStorage.setItem('rxrnn-token', saved)
  connect()
}

let lastDraw = 0
function loop(time) {
  requestAnimationFrame(loop)
  if (!state.dirty || time - lastDraw < DRAW_EVERY_MS) return
  lastDraw = time
  state.dirty = false
  const started = performance.now()
  draw()
  const ms = performance.now() - started
  state.drawMs.last = ms
  state.drawMs.max = Math.max(state.drawMs.max, ms)
}

/** For tests and the curious: what the page holds and draws. */
globalThis.__rxrnnDashboard = {
  status: () => state.status,
  keys: () => [...state.keys.keys()],
  selected: () => state.selected,
  select(key) {
    if (!state.keys.has(key)) return false
    state.selected = key
    state.keysDirty = true
    state.dirty = true
    return true
  },
  /** Redraws so far, frames received, and how long drawing took (ms, last and worst). */
  stats: () => ({ draws: state.draws, frames: state.frames, drawMs: { ...state.drawMs } }),
  /** Points each chart holds now (as drawn), per series x-values; heatmap: columns. */
  pointCount() {
    const count = (u) => (u ? u.data[0].length : 0)
    const nonNull = (u, i) => (u ? u.data[i].filter((v) => v != null).length : 0)
    return {
      prediction: nonNull(charts.prediction, 2),
      target: nonNull(charts.prediction, 1),
      loss: nonNull(charts.loss, 1),
      gradNorm: nonNull(charts.grad, 1),
      flow: count(charts.flow),
      gain: nonNull(charts.gain, 1),
      rho: nonNull(charts.gain, 2),
      error: nonNull(charts.error, 1),
      throughput: nonNull(charts.throughput, 1),
      connections: nonNull(charts.connections, 1),
      heatmap: heat.columns,
      interval: nonNull(charts.prediction, 3),
      anomalies: nonNull(charts.prediction, 5),
      drifts: nonNull(charts.prediction, 6),
      horizon: nonNull(charts.horizon, 1),
    }
  },
}

requestAnimationFrame(loop)
start()

export {}

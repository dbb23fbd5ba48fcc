/**
 * The uPlot charts: built once the model is known, redrawn from the histories by `draw`
 * (at most every DRAW_EVERY_MS, whatever the rate of frames).
 */

import { renderKeyPicker, renderTiles } from './header.js'
import { drawHeatmap } from './heatmap.js'
import { type Data, type Options, type Plot, uPlot } from './plot.js'
import { $, type Column, colors, FLOW_CURVES, format, type KeyHistory, M, P, state, U } from './state.js'

type ChartName =
  | 'prediction'
  | 'horizon'
  | 'loss'
  | 'error'
  | 'grad'
  | 'flow'
  | 'gain'
  | 'throughput'
  | 'connections'

/** The charts, built once the model is known (`buildCharts`). */
export const charts: Partial<Record<ChartName, Plot>> = {}

/** A built chart (every chart exists once the welcome frame arrived). */
const plot = (name: ChartName): Plot => charts[name]!

function axis(label: string, extra: Options = {}): Options {
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

function line(label: string, stroke: string | undefined, extra: Options = {}): Options {
  return { label, stroke, width: 1.5, spanGaps: true, points: { show: false }, value: legendValue, ...extra }
}

function legendValue(_u: Plot, v: number | null): string {
  return v == null ? '–' : format(v)
}

const timeSeries = {
  label: 'time',
  value: (_u: Plot, v: number | null) => (v == null ? '–' : clockLabels(null, [v], 0, 0, 0.1)[0]),
}
const timeAxis = () => axis('time (local clock)', { size: 40, values: clockLabels })
const logAxis = (label: string) => axis(label, { values: decadeLabels })

/** hh:mm:ss, with tenths when the ticks are less than a second apart. */
function clockLabels(
  _u: Plot | null,
  splits: number[],
  _axis: number,
  _space: number,
  increment: number,
): string[] {
  return splits.map((v) => {
    const d = new Date(v * 1000)
    const hms = [d.getHours(), d.getMinutes(), d.getSeconds()]
      .map((n) => String(n).padStart(2, '0'))
      .join(':')
    return increment < 1 ? `${hms}.${Math.floor((d.getMilliseconds() + 0.5) / 100)}` : hms
  })
}

/** A label on each power of ten only (uPlot also places ticks at 2…9 × 10^k). */
function decadeLabels(_u: Plot, splits: number[]): string[] {
  return splits.map((v) => {
    const e = Math.log10(v)
    if (!(v > 0) || Math.abs(e - Math.round(e)) > 1e-6) return ''
    const k = Math.round(e)
    return k >= -3 && k <= 4 ? String(10 ** k >= 1 ? 10 ** k : Number((10 ** k).toFixed(-k))) : `1e${k}`
  })
}
const noPoints = () => null

function chart(
  id: string,
  series: Options[],
  axes: Options[],
  scales: Options = {},
  height = 220,
  hooks: Options = {},
  more: Options = {},
): Plot {
  const el = $(id).querySelector<HTMLElement>('.chart')!
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

/** (Re)builds every chart for the model in `state.model`. */
export function buildCharts(): void {
  const model = state.model
  if (!model) return
  const logY = { y: { distr: 3, log: 10 } }
  const outputUnit = state.classification ? 'class' : 'value (target units)'

  charts.prediction = chart(
    'p-prediction',
    [
      { label: 'tick', value: (_u: Plot, v: number | null) => (v == null ? '–' : `#${v}`) },
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
      { label: 'ticks ahead', value: (_u: Plot, v: number | null) => (v == null ? '–' : `+${v}`) },
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
        value: (_u: Plot, v: number | null) => (v == null ? '–' : 'clipped'),
      },
      line(clipNorm === null ? 'no clipping threshold' : `threshold ${format(clipNorm)}`, colors.baseline, {
        dash: [5, 4],
        width: 1.25,
      }),
      line('clip rate', colors.green, {
        scale: 'pct',
        width: 1.25,
        value: (_u: Plot, v: number | null) => (v == null ? '–' : `${v.toFixed(0)}%`),
      }),
    ],
    [
      timeAxis(),
      logAxis('‖g‖ (log)'),
      axis('clip rate (%)', {
        scale: 'pct',
        side: 1,
        grid: { show: false },
        values: (_u: Plot, ticks: number[]) => ticks.map((v) => `${v}%`),
      }),
    ],
    { ...logY, pct: { range: [0, 100] } },
  )

  const flowColors = ['#1d3d6b', '#244d85', '#2c5fa3', '#3572c2', '#3f86e0', '#6cb0ff']
  const flowSeries: Options[] = [
    { label: 'k steps back', value: (_u: Plot, v: number | null) => (v == null ? '–' : `k = ${v}`) },
  ]
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
  const gainSeries: Options[] = [
    timeSeries,
    line('ln gain / step', colors.yellow, { scale: 'gain', width: 2 }),
  ]
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
        range: (_u: Plot, min: number | null, max: number | null) => {
          const m = 1.15 * Math.max(Math.abs(min ?? 0), Math.abs(max ?? 0), 0.05)
          return [-m, m]
        },
      },
      rho: {
        range: (_u: Plot, _min: number | null, max: number | null) => [0, Math.max(1.25, 1.1 * (max ?? 0))],
      },
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
      axis('connections', {
        values: (_u: Plot, ticks: number[]) => ticks.map((v) => (Number.isInteger(v) ? v : '')),
      }),
      axis('frames (total)', { scale: 'frames', side: 1, grid: { show: false } }),
    ],
    {
      y: {
        range: (_u: Plot, _min: number | null, max: number | null) => [
          0,
          Math.max(2, Math.ceil((max ?? 0) + 1)),
        ],
      },
      frames: {
        range: (_u: Plot, _min: number | null, max: number | null) => [0, Math.max(10, 1.2 * (max ?? 0))],
      },
    },
  )
}

/** Tints the gain chart: above 0 the gradient explodes going back in time, below 0 it vanishes. */
function shadeGainRegions(u: Plot): void {
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

/** Redraws the header and every chart from the histories. */
export function draw(): void {
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
function show(u: Plot, data: Data, legendAt: 'newest' | 'first' = 'newest'): void {
  u.setData(data)
  if (u.cursor.left != null && u.cursor.left >= 0) return
  const n = data[0]!.length
  if (n > 0) u.setLegend({ idx: legendAt === 'first' ? 0 : n - 1 })
}

function drawPrediction(k: KeyHistory | undefined): void {
  if (!k) {
    show(plot('prediction'), [[], [], [], [], [], [], []])
    return
  }
  const p = k.predictions
  const o = k.outputs
  const out = Math.min(state.output, o - 1)
  show(plot('prediction'), [
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
function drawHorizon(k: KeyHistory | undefined): void {
  const fan = k?.ahead
  if (!k || !fan) {
    show(plot('horizon'), [[], [], [], []])
    return
  }
  const out = Math.min(state.output, k.outputs - 1)
  const finite = (v: number | undefined): number | null =>
    typeof v === 'number' && Number.isFinite(v) ? v : null
  const pick = (rows: number[][] | undefined) => fan.ahead.map((_, h) => finite(rows?.[h]?.[out]))
  show(plot('horizon'), [fan.ahead.map((_, h) => h + 1), pick(fan.ahead), pick(fan.lower), pick(fan.upper)])
}

/** A series drawn as points only (anomaly and drift marks). */
function marks(label: string, color: string, size: number): Options {
  return {
    label,
    stroke: color,
    fill: color,
    paths: noPoints,
    points: { show: true, size, stroke: color, fill: color },
    value: (_u: Plot, v: number | null) => (v == null ? '–' : label),
  }
}

function drawUpdates(k: KeyHistory | undefined): void {
  const m = state.metrics
  if (!k) {
    show(
      plot('grad'),
      plot('grad').series.map(() => []),
    )
    show(
      plot('gain'),
      plot('gain').series.map(() => []),
    )
    show(plot('loss'), [m.column(M.t), m.column(M.t).map(() => null), m.column(M.loss, true)])
    return
  }
  const u = k.updates
  const t = u.column(U.t)
  show(
    plot('loss'),
    uPlot.join([
      [t, u.column(U.loss, true)],
      [m.column(M.t), m.column(M.loss, true)],
    ]),
  )
  const clipNorm = typeof state.model?.clipNorm === 'number' ? state.model.clipNorm : null
  show(plot('grad'), [
    t,
    u.column(U.gradNorm, true),
    u.column(U.clippedGradNorm, true),
    u.column(U.clippedMark, true),
    t.map(() => clipNorm),
    u.column(U.clipRate),
  ])
  const gain: Data = [t, u.column(U.gain)]
  for (let l = 0; l < k.layers; l++) gain.push(u.column(U.rho + l))
  gain.push(t.map(() => 1))
  show(plot('gain'), gain)
}

function drawFlow(k: KeyHistory | undefined): void {
  const flows = k ? k.flows : []
  let steps = 0
  for (const f of flows) steps = Math.max(steps, f.norms.length)
  const xs = Array.from({ length: steps }, (_, i) => i)
  const data: Data = [xs]
  const offset = FLOW_CURVES - flows.length
  for (let i = 0; i < FLOW_CURVES; i++) {
    const f = flows[i - offset]
    data.push(xs.map((x) => (f && f.norms[x]! > 0 ? f.norms[x]! : null)))
  }
  const latest = flows[flows.length - 1]
  data.push(latest ? fitLine(latest.norms, latest.gain, xs) : xs.map(() => null))
  show(plot('flow'), data, 'first')
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
function fitLine(norms: number[], g: number, xs: number[]): Column {
  if (typeof g !== 'number' || !Number.isFinite(g)) return xs.map(() => null)
  let n = 0
  let sum = 0
  for (let k = 0; k < norms.length; k++) {
    const v = norms[k]!
    if (!(v > 0)) continue
    n++
    sum += Math.log(v) - g * k
  }
  if (n === 0) return xs.map(() => null)
  const a = sum / n
  return xs.map((k) => Math.exp(a + g * k))
}

function drawMetrics(): void {
  const m = state.metrics
  const t = m.column(M.t)
  show(
    plot('error'),
    state.classification
      ? [t, m.column(M.accuracy), m.column(M.logLoss)]
      : [t, m.column(M.rmse), m.column(M.persistenceRmse), m.column(M.mae), m.column(M.persistenceMae)],
  )
  show(plot('throughput'), [t, m.column(M.rate), m.column(M.updateRate)])
  show(plot('connections'), [
    t,
    m.column(M.producers),
    m.column(M.subscribers),
    m.column(M.dropped),
    m.column(M.rejected),
  ])
}

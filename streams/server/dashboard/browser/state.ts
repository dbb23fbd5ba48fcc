/**
 * What the dashboard page holds: its limits, the bounded histories (a ring table per series,
 * one `KeyHistory` per followed key, the global metrics), and small helpers shared by the
 * other modules. Browser code: compiled for the page (see ../index.ts), never run in Node.
 */
import type { MetricsFrame, ModelSummary } from '../../../transport/protocol.js'

/** Points kept per series. */
export const HISTORY = 2000
/** Columns of the hidden-state heatmap. */
export const HEATMAP_STEPS = 240
/** Gradient-flow curves drawn (the latest updates). */
export const FLOW_CURVES = 6
/** Keys followed in detail; ticks of further keys are counted only. */
export const MAX_KEYS = 64
export const MAX_OUTPUTS = 8
export const DRAW_EVERY_MS = 100
/**
 * Predictions (and hidden states) kept per key and second, at most: past it every n-th tick is
 * kept, so the history spans ≥ 4 s however fast the key ticks. Counting ticks, not clock time,
 * keeps the sample even when frames arrive in bursts.
 */
const KEEP_PER_SECOND = 500

/** The element with this id (the page has them all). */
export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T
/** Seconds since the epoch, sub-millisecond: uPlot's time axis unit. */
export const now = (): number => (performance.timeOrigin + performance.now()) / 1000

export const colors = {
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

/** A column as uPlot reads it: null where a value is missing. */
export type Column = (number | null)[]

/** A ring of rows of numbers (NaN for missing), read out as uPlot columns (null for missing). */
export class Table {
  readonly data: Float64Array
  /** The row being filled; `commit` appends it. */
  readonly row: (number | null | undefined)[]
  private start = 0
  length = 0

  constructor(
    readonly width: number,
    readonly capacity = HISTORY,
  ) {
    this.data = new Float64Array(width * capacity)
    this.row = new Array<number | null>(width).fill(null)
  }

  /** Appends `this.row`. */
  commit(): void {
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
  column(c: number, positive = false): Column {
    const out: Column = new Array(this.length)
    for (let j = 0; j < this.length; j++) {
      const v = this.data[((this.start + j) % this.capacity) * this.width + c]!
      out[j] = Number.isNaN(v) || (positive && v <= 0) ? null : v
    }
    return out
  }

  last(c: number): number | null {
    if (this.length === 0) return null
    const v = this.data[((this.start + this.length - 1) % this.capacity) * this.width + c]!
    return Number.isNaN(v) ? null : v
  }

  clear(): void {
    this.start = 0
    this.length = 0
  }
}

/** Metrics columns. */
export const M = {
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
} as const
/** Update columns; spectral radii follow, one per layer. */
export const U = {
  t: 0,
  loss: 1,
  gradNorm: 2,
  clippedGradNorm: 3,
  clippedMark: 4,
  clipRate: 5,
  gain: 6,
  rho: 7,
} as const

/** Prediction columns of output d for a key with o outputs: y, target, interval, anomaly mark; then the drift mark. */
export const P = {
  y: (_o: number, d: number) => 1 + d,
  target: (o: number, d: number) => 1 + o + d,
  lower: (o: number, d: number) => 1 + 2 * o + d,
  upper: (o: number, d: number) => 1 + 3 * o + d,
  anomaly: (o: number, d: number) => 1 + 4 * o + d,
  drift: (o: number) => 1 + 5 * o,
} as const

/** The latest forecast of a key's next ticks: `ahead` and its intervals, rows of outputs. */
export interface Fan {
  ahead: number[][]
  lower: number[][] | undefined
  upper: number[][] | undefined
}

/** One update's gradient flow, as the flow chart draws it. */
export interface Flow {
  update: number
  norms: number[]
  gain: number
}

/** What the page keeps about one key. */
export class KeyHistory {
  /** t, then y, target, lower, upper and an anomaly mark per output, then a drift mark (see P). */
  readonly predictions: Table
  /** The latest `ahead` (with a horizon), for the horizon fan. */
  ahead: Fan | null = null
  readonly updates: Table
  /** The latest updates' gradient flow, oldest first. */
  readonly flows: Flow[] = []
  /** The latest hidden states (from the 'hidden' channel), oldest first. */
  readonly hidden: Float32Array[] = []
  /** Ticks seen since the page started following this key: the x of the prediction chart. */
  ticks = 0
  private stride = 1
  private windowStart = performance.now()
  private windowTicks = 0

  constructor(
    readonly key: string,
    readonly outputs: number,
    readonly layers: number,
  ) {
    this.predictions = new Table(2 + 5 * outputs)
    this.updates = new Table(U.rho + layers)
  }

  /** Counts a tick; true when it is one to keep. */
  sample(): boolean {
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

  pushHidden(h: readonly number[]): void {
    if (!Array.isArray(h) || h.length === 0) return
    this.hidden.push(Float32Array.from(h))
    if (this.hidden.length > HEATMAP_STEPS) this.hidden.shift()
  }
}

export type Status = 'connecting' | 'reconnecting' | 'live' | 'token'

export const state = {
  status: 'connecting' as Status,
  model: null as ModelSummary | null,
  signature: '',
  classification: false,
  keys: new Map<string, KeyHistory>(),
  untracked: new Set<string>(),
  selected: null as string | null,
  output: 0,
  metrics: new Table(14),
  lastMetrics: null as MetricsFrame | null,
  dirty: true,
  keysDirty: false,
  draws: 0,
  frames: 0,
  drawMs: { last: 0, max: 0 },
}

export function setStatus(status: Status, text: string): void {
  state.status = status
  $('status').dataset.state = status
  $('status-text').textContent = text
}

export function format(v: unknown): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–'
  const a = Math.abs(v)
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)}M`
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`
  if (a >= 100 || Number.isInteger(v)) return v.toFixed(0)
  if (a >= 0.01) return v.toPrecision(3)
  if (a === 0) return '0'
  return v.toExponential(2)
}

export function argmax(y: readonly number[]): number | null {
  if (!Array.isArray(y) || y.length === 0) return null
  let best = 0
  for (let i = 1; i < y.length; i++) if (y[i]! > y[best]!) best = i
  return best
}

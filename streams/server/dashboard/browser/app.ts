/**
 * The dashboard in the browser (served as /dashboard/app.js): one WebSocket back to the server
 * speaking the rxrnn protocol in JSON text frames (connection.ts), bounded histories per key and
 * for the global metrics (state.ts, fed by frames.ts), and uPlot charts and the hidden-state
 * heatmap (charts.ts, heatmap.ts) redrawn at most ten times a second however fast ticks come.
 */
import { charts, draw } from './charts.js'
import { start } from './connection.js'
import { heat } from './heatmap.js'
import type { Plot } from './plot.js'
import { $, DRAW_EVERY_MS, state } from './state.js'

$('key').addEventListener('change', (event) => {
  const value = (event.target as HTMLSelectElement).value
  if (!value) return
  state.selected = value
  state.dirty = true
})

$('output').addEventListener('change', (event) => {
  state.output = Number((event.target as HTMLSelectElement).value) || 0
  state.dirty = true
})

let lastDraw = 0
function loop(time: number): void {
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
;(globalThis as unknown as { __rxrnnDashboard: unknown }).__rxrnnDashboard = {
  status: () => state.status,
  keys: () => [...state.keys.keys()],
  selected: () => state.selected,
  select(key: string): boolean {
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
    const count = (u: Plot | undefined) => (u ? u.data[0]!.length : 0)
    const nonNull = (u: Plot | undefined, i: number) => (u ? u.data[i]!.filter((v) => v != null).length : 0)
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
      interval: nonNull(charts.prediction, 3),
      anomalies: nonNull(charts.prediction, 5),
      drifts: nonNull(charts.prediction, 6),
      horizon: nonNull(charts.horizon, 1),
      heatmap: heat.columns,
    }
  },
}

requestAnimationFrame(loop)
void start()

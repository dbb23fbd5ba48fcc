/**
 * What forecasting costs per tick and key, on this machine: the per-key bookkeeping alone
 * (ForecastTracker: intervals for every row and output, the anomaly score, Page-Hinkley or ADWIN),
 * and a trainer step with and without the direct multi-horizon head or a recursive roll-out.
 *
 *   node --expose-gc --import tsx bench/forecasting.ts
 *
 * Numbers are medians of 5 runs of `ticks` each, in microseconds per tick (one key).
 */
import { createModel, ForecastBook, ForecastTracker, OnlineTrainer, Rng } from '../src/index.js'

const ticks = 20_000

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

function time(run: () => void): number {
  const runs: number[] = []
  run() // warm the JIT
  for (let r = 0; r < 5; r++) {
    const started = performance.now()
    run()
    runs.push(((performance.now() - started) * 1000) / ticks)
  }
  return median(runs)
}

const rng = new Rng(1)
const series = Float64Array.from({ length: ticks + 8 }, (_, t) => Math.sin(t / 7) + 0.1 * rng.uniform())

const rows: [string, number][] = []
for (const [label, H, O, drift] of [
  ['tracker: intervals + anomaly, H 1, O 1', 1, 1, undefined],
  ['tracker: intervals + anomaly, H 6, O 2', 6, 2, undefined],
  ['tracker: + Page-Hinkley, H 6, O 2', 6, 2, 'page-hinkley'],
  ['tracker: + ADWIN, H 6, O 2', 6, 2, 'adwin'],
] as const) {
  const forecast = new Float64Array(H * O)
  const target = new Float64Array(O)
  rows.push([
    label,
    time(() => {
      const tracker = new ForecastTracker(O, H, {
        coverage: 0.9,
        ...(drift ? { drift: { detector: drift } } : {}),
      })
      for (let t = 0; t < ticks; t++) {
        forecast.fill(series[t]!)
        target.fill(series[t + 1]!)
        tracker.step(forecast, target)
      }
    }),
  ])
}

const trainerRun = (H: number, mode: 'plain' | 'direct' | 'rollout') => () => {
  const model = createModel({
    cell: 'gru',
    inputSize: 1,
    hiddenSize: 32,
    outputSize: mode === 'direct' ? H : 1,
    seed: 1,
  })
  const trainer = new OnlineTrainer(model, {
    k1: 8,
    k2: mode === 'direct' ? 8 + H - 1 : 16,
    loss: 'mse',
    optimizer: { type: 'adam', lr: 1e-3 },
    diagnosticsEvery: 0,
    ...(mode === 'direct' ? { horizon: H } : {}),
  })
  const book =
    mode === 'plain'
      ? null
      : new ForecastBook(trainer, { coverage: 0.9, ...(mode === 'rollout' ? { rollout: H } : {}) })
  const x = new Float64Array(1)
  const y = new Float64Array(1)
  for (let t = 0; t < ticks; t++) {
    x[0] = series[t]!
    y[0] = series[t + 1]!
    const { prediction } = trainer.observeSequence(trainer.sequence, x, y)
    book?.step('', trainer.sequence, prediction, y)
  }
}
rows.push(['GRU 32, TBPTT(8, 16), one step ahead', time(trainerRun(1, 'plain'))])
rows.push(['  + direct head H 6, k2 13, intervals', time(trainerRun(6, 'direct'))])
rows.push(['  + recursive roll-out H 6, intervals', time(trainerRun(6, 'rollout'))])

const width = Math.max(...rows.map(([l]) => l.length))
console.log(`µs per tick (median of 5 × ${ticks} ticks), node ${process.version}`)
for (const [label, us] of rows) console.log(`${label.padEnd(width)}  ${us.toFixed(2).padStart(8)}`)

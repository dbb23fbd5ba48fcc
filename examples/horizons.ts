/**
 * Six hours ahead, two ways: a direct multi-horizon head (one forward step, six outputs, trained
 * on delayed targets) against a recursive roll-out of a one-step model (its forecast fed back as
 * the next input), on Seattle's hourly temperatures, both learning online; persistence (the
 * current value) as the baseline.
 *
 *   npx tsx examples/horizons.ts
 *
 * What to expect: both beat persistence at every horizon past the first few hours; the direct
 * head's error grows more slowly with the horizon (its rows are trained on the targets they
 * forecast, so errors do not compound along a roll-out), while the roll-out needs no extra
 * outputs and its first row is as good as a one-step model's. The roll-out costs H − 1 extra
 * forward steps per tick; the direct head one step and H rows of the head (k2 must reach back
 * over the horizon: k2 >= k1 + H − 1).
 */
import { fileURLToPath } from 'node:url'
import { createModel, ForecastBook, OnlineTrainer } from 'rxrnn'
import { loadSeattleHourly } from '../streams/demo/datasets.js'

export interface HorizonsOptions {
  /** Hours replayed. Default: the whole year (8759). */
  hours?: number
  /** Hours learned from before scoring. Default 2000. */
  warmup?: number
  horizon?: number
  seed?: number
  log?: (line: string) => void
}

export interface HorizonRow {
  /** Mean absolute error per horizon h = 1..H, in °C. */
  mae: number[]
  /** Milliseconds per tick (learning and forecasting). */
  msPerTick: number
}

export interface HorizonsResult {
  direct: HorizonRow
  rollout: HorizonRow
  persistence: number[]
}

export async function main(options: HorizonsOptions = {}): Promise<HorizonsResult> {
  const { warmup = 2000, horizon: H = 6, seed = 3, log = console.log } = options
  const year = await loadSeattleHourly()
  const temps = year.slice(0, Math.min(options.hours ?? year.length, year.length)).map((h) => h.temperature)
  // Scaled with the warm-up's statistics (the past only, at any scored hour).
  const first = temps.slice(0, warmup)
  const mean = first.reduce((a, b) => a + b, 0) / first.length
  const std = Math.sqrt(first.reduce((a, b) => a + (b - mean) ** 2, 0) / first.length)
  const z = temps.map((t) => (t - mean) / std)

  const run = (direct: boolean): HorizonRow => {
    const model = createModel({
      cell: 'lstm',
      inputSize: 1,
      hiddenSize: 16,
      outputSize: direct ? H : 1,
      seed,
    })
    const trainer = new OnlineTrainer(model, {
      k1: 4,
      k2: direct ? 4 + H - 1 : 8,
      loss: 'mse',
      optimizer: { type: 'adam', lr: 5e-3 },
      clipNorm: 1,
      ...(direct ? { horizon: H } : {}),
    })
    const book = new ForecastBook(trainer, direct ? {} : { rollout: H })
    const errors = new Float64Array(H)
    let scored = 0
    const started = performance.now()
    for (let t = 0; t + H < z.length; t++) {
      const { prediction } = trainer.observe([z[t]!], [z[t + 1]!])
      const { ahead } = book.step('', trainer.sequence, prediction, z[t + 1]!)
      if (t < warmup) continue
      scored++
      // Row h − 1 forecasts the target of tick t + h − 1: the temperature of hour t + h.
      for (let h = 1; h <= H; h++) errors[h - 1]! += Math.abs(ahead![h - 1]![0]! - z[t + h]!) * std
    }
    const msPerTick = (performance.now() - started) / (z.length - H)
    return { mae: Array.from(errors, (e) => e / scored), msPerTick }
  }

  const persistence = new Array<number>(H).fill(0)
  let scored = 0
  for (let t = warmup; t + H < z.length; t++) {
    scored++
    for (let h = 1; h <= H; h++) persistence[h - 1]! += Math.abs(temps[t]! - temps[t + h]!)
  }
  const result: HorizonsResult = {
    direct: run(true),
    rollout: run(false),
    persistence: persistence.map((e) => e / scored),
  }
  const cells = (xs: number[]) => xs.map((x) => x.toFixed(3).padStart(7)).join('')
  log(`MAE in °C by hours ahead (Seattle hourly temperature, ${scored} scored hours)`)
  log(`               ${Array.from({ length: H }, (_, h) => `h=${h + 1}`.padStart(7)).join('')}   ms/tick`)
  log(`direct head   ${cells(result.direct.mae)}   ${result.direct.msPerTick.toFixed(3)}`)
  log(`roll-out      ${cells(result.rollout.mae)}   ${result.rollout.msPerTick.toFixed(3)}`)
  log(`persistence   ${cells(result.persistence)}`)
  return result
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()

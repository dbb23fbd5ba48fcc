/**
 * The demo's two feeds as a producer would prepare them: features scaled online (statistics of
 * the past only), a target for each step, and the baselines a forecast must beat.
 *
 * Timing. The protocol's `y` is the target of the tick it travels with, and the server predicts
 * a tick before it learns from that `y` (test-then-train). For next-step forecasting the target
 * of step t is the value at t + 1, so the producer sends tick t when it reads row t + 1: x_t
 * from rows ≤ t, y_t from row t + 1. The prediction that comes back was still made from x_t
 * alone; sending one row late delays nothing a replay cares about (a live producer that needs
 * the forecast at once sends x_t without y, and the target later; see `learnWithLabels`).
 */
import { OnlineScaler } from '../../src/index.js'
import type { SeattleHourlyRow, Sp500DailyRow } from './datasets.js'

/**
 * Past values needed before a target is scaled with their statistics: the std of two or three
 * values can be near 0, and a target divided by it would be huge.
 */
const MIN_HISTORY = 20

/** One tick of a feed, with everything needed to score its prediction in original units. */
export interface FeedStep {
  /** The row the inputs end at (its date), for logs. */
  date: string
  /** Scaled inputs, as sent. */
  x: number[]
  /**
   * Scaled target, as sent; absent while too few past values are known to scale it (the tick
   * is then predicted and not learned from).
   */
  y?: number[]
  /** The target in original units. */
  truth: number[]
  /** Maps the model's (scaled) output back to original units, with the statistics of this step. */
  toOriginal: (prediction: ArrayLike<number>) => number[]
  /** Each baseline's forecast of `truth`, in original units, in `FeedSpec.baselines` order. */
  baselines: number[][]
  /**
   * Maps the `ahead` rows of a multi-horizon forecast made at this step to the original-unit
   * forecast of the truth of step t + H − 1 (H = the rows), with this step's statistics only.
   * Persistence H steps ahead is `baselines[0]` against that same truth.
   */
  aheadToOriginal: (ahead: readonly (readonly number[])[]) => number[]
}

/** What is forecast, for the summary table. */
export interface TargetSpec {
  name: string
  unit: string
  /** Multiplies values before printing (100 shows a log return in %). */
  displayScale: number
  digits: number
}

export interface FeedSteps {
  inputs: string[]
  targets: TargetSpec[]
  baselines: string[]
  steps: FeedStep[]
}

/**
 * S&P 500 daily bars → next-day log return.
 *
 * Inputs at day t: today's log return ln(C_t / C_{t−1}), the day's log range ln(H_t / L_t) (a
 * volatility proxy) and the log change of volume ln(V_t / V_{t−1}), standardised with the
 * running mean and std of days ≤ t. Target: ln(C_{t+1} / C_t), scaled with the statistics of the
 * past returns (the first input's), so the model's output lives on the same scale.
 * Baselines: persistence (tomorrow's return is today's) and zero (no change), which is the
 * natural forecast of a near-random walk.
 */
export function sp500Steps(days: readonly Sp500DailyRow[]): FeedSteps {
  const scaler = new OnlineScaler(3)
  const steps: FeedStep[] = []
  for (let t = 1; t + 1 < days.length; t++) {
    const prev = days[t - 1]!
    const day = days[t]!
    const next = days[t + 1]!
    const ret = Math.log(day.close / prev.close)
    const raw = [ret, Math.log(day.high / day.low), Math.log(day.volume / prev.volume)]
    scaler.update(raw)
    const x = Array.from(scaler.transform(raw))
    const mean = scaler.mean[0]!
    const std = scaler.std(0) + scaler.epsilon
    const truth = Math.log(next.close / day.close)
    steps.push({
      date: day.date,
      x,
      ...(scaler.count < MIN_HISTORY ? {} : { y: [(truth - mean) / std] }),
      truth: [truth],
      toOriginal: (p) => [p[0]! * std + mean],
      baselines: [[ret], [0]],
      // The last row forecasts the return of the day H on.
      aheadToOriginal: (ahead) => [ahead.at(-1)![0]! * std + mean],
    })
  }
  return {
    inputs: ['log return', 'log(high/low)', 'log volume change'],
    targets: [{ name: 'next-day log return', unit: '%', displayScale: 100, digits: 3 }],
    baselines: ['persistence', 'zero'],
    steps,
  }
}

/**
 * Seattle hourly weather → next-hour temperature and pressure.
 *
 * Inputs at hour t: pressure, temperature and wind standardised with the running statistics of
 * hours ≤ t, and the hour of day as sin/cos (the daily cycle). The model forecasts the change
 * over the next hour (ΔT, ΔP), scaled with the running statistics of the changes seen so far;
 * the forecast is the current value plus that change. Predicting the change rather than the
 * level is the usual choice when persistence is strong: the net only has to learn what moves.
 * Baseline: persistence (next hour = this hour).
 *
 * The file holds NOAA's 1981–2010 hourly climate normals: 30-year averages, so smoother than
 * any single year's weather, and the daily cycle dominates the hour-to-hour change.
 */
export function seattleSteps(hours: readonly SeattleHourlyRow[]): FeedSteps {
  const levels = new OnlineScaler(3)
  const changes = new OnlineScaler(2)
  const steps: FeedStep[] = []
  for (let t = 0; t + 1 < hours.length; t++) {
    const hour = hours[t]!
    const next = hours[t + 1]!
    const raw = [hour.pressure, hour.temperature, hour.wind]
    levels.update(raw)
    if (t > 0) {
      const prev = hours[t - 1]!
      changes.update([hour.temperature - prev.temperature, hour.pressure - prev.pressure])
    }
    const z = levels.transform(raw)
    const angle = (2 * Math.PI * hourOfDay(hour.date)) / 24
    const mean = [changes.mean[0]!, changes.mean[1]!]
    const std = [changes.std(0) + changes.epsilon, changes.std(1) + changes.epsilon]
    const now = [hour.temperature, hour.pressure]
    const truth = [next.temperature, next.pressure]
    steps.push({
      date: hour.date,
      x: [z[0]!, z[1]!, z[2]!, Math.sin(angle), Math.cos(angle)],
      ...(changes.count < MIN_HISTORY
        ? {}
        : { y: [0, 1].map((i) => (truth[i]! - now[i]! - mean[i]!) / std[i]!) }),
      truth,
      toOriginal: (p) => [0, 1].map((i) => now[i]! + p[i]! * std[i]! + mean[i]!),
      baselines: [now],
      // Row h − 1 forecasts the change of hour t + h − 1 → t + h: the level H hours on is now plus their sum.
      aheadToOriginal: (ahead) =>
        [0, 1].map((i) => ahead.reduce((level, row) => level + row[i]! * std[i]! + mean[i]!, now[i]!)),
    })
  }
  return {
    inputs: ['pressure', 'temperature', 'wind', 'sin(hour)', 'cos(hour)'],
    targets: [
      { name: 'next-hour temperature', unit: '°C', displayScale: 1, digits: 3 },
      { name: 'next-hour pressure', unit: 'hPa', displayScale: 1, digits: 3 },
    ],
    baselines: ['persistence'],
    steps,
  }
}

/** The hour of an ISO local date-time `YYYY-MM-DDTHH:mm:ss`. */
export function hourOfDay(date: string): number {
  return Number(date.slice(11, 13))
}

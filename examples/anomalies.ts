/**
 * Anomalies and drift in a recorded sensor feed: a fault and a regime change, injected into the
 * temperature sensor of Seattle's hourly record, both caught online by one `learn` pipeline.
 *
 *   npx tsx examples/anomalies.ts
 *
 * The feed: a year of hourly temperatures (Seattle's hourly climate normals, vega-datasets). The
 * model, a small GRU learning online, forecasts each next hour; its inputs are the reading
 * (scaled with the first two weeks' statistics, the past only) and the hour of day.
 *
 * What is injected, in the sensor's readings (the truth is left alone):
 * - a fault at hour `faultAt`: three hours reading 6 °C too warm, a sensor glitch;
 * - a regime change from hour `changeAt`: the sensor is swapped for one with another calibration,
 *   reading 1.8 × T − 4 °C (a larger swing around a lower level) from then on.
 *
 * What catches them: with `coverage: 0.95` every forecast has a calibrated interval and every
 * reading an anomaly score (1 − conformal p-value); `anomalyThreshold: 0.99` marks the
 * unusual ones. `drift: 'page-hinkley'` watches the prequential loss and, with
 * `onDrift: 'reset'`, starts the sensor's hidden state afresh when it fires.
 */
import { fileURLToPath } from 'node:url'
import { from, lastValueFrom, toArray } from 'rxjs'
import { createModel } from 'rxrnn'
import { type LearnEvent, type LearnResult, learn } from 'rxrnn/streams'
import { loadSeattleHourly } from '../streams/demo/datasets.js'

export interface AnomaliesOptions {
  /** Hours replayed (default: the whole year, 8759). */
  hours?: number
  /** First faulty hour (3 hours long). Default 3000. */
  faultAt?: number
  /** First hour of the new calibration. Default 6000. */
  changeAt?: number
  seed?: number
  log?: (line: string) => void
}

export interface AnomaliesResult {
  /**
   * Hours marked anomalous (anomaly >= 0.99), and the fault's edges among them: its first hour
   * (the jump up) and the hour after it (the jump back). Inside the fault the model forecasts
   * from the faulty readings, so the middle hours look ordinary: the edges are what is unusual.
   */
  anomalyHours: number[]
  faultEdgesCaught: number[]
  /** The hours with the highest anomaly scores, highest first. */
  topHours: number[]
  /** Hours at which drift fired. */
  driftHours: number[]
  /** Realised coverage of the 95 % intervals over the run. */
  coverage: number
}

const FAULT_HOURS = 3

export async function main(options: AnomaliesOptions = {}): Promise<AnomaliesResult> {
  const { faultAt = 3000, changeAt = 6000, seed = 1, log = console.log } = options
  const year = await loadSeattleHourly()
  const hours = Math.min(options.hours ?? year.length, year.length)
  // The sensor's readings: the record, with the fault and the new calibration injected.
  const readings = year.slice(0, hours).map((row, h) => {
    let t = row.temperature
    if (h >= faultAt && h < faultAt + FAULT_HOURS) t += 6
    if (h >= changeAt) t = 1.8 * t - 4
    return t
  })
  // Scale with the first two weeks only (the past, at any later hour).
  const first = readings.slice(0, 336)
  const mean = first.reduce((a, b) => a + b, 0) / first.length
  const std = Math.sqrt(first.reduce((a, b) => a + (b - mean) ** 2, 0) / first.length)
  const z = readings.map((t) => (t - mean) / std)
  const events: LearnEvent[] = z.slice(0, -1).map((value, h) => {
    const angle = (2 * Math.PI * Number(year[h]!.date.slice(11, 13))) / 24
    return { x: [value, Math.sin(angle), Math.cos(angle)], target: z[h + 1]! }
  })

  const model = createModel({ cell: 'gru', inputSize: 3, hiddenSize: 16, outputSize: 1, seed })
  const results: LearnResult[] = await lastValueFrom(
    from(events).pipe(
      learn(
        model,
        { k1: 8, k2: 16, loss: 'mse', optimizer: { type: 'adam', lr: 3e-3 }, clipNorm: 1 },
        { coverage: 0.95, anomalyThreshold: 0.99, drift: 'page-hinkley', onDrift: 'reset' },
      ),
      toArray(),
    ),
  )

  // Result h scores event h's target: the reading of hour h + 1.
  const hourOf = (i: number) => i + 1
  const anomalyHours = results.flatMap((r, i) => (r.isAnomaly ? [hourOf(i)] : []))
  const fault = Array.from({ length: FAULT_HOURS }, (_, k) => faultAt + k)
  const faultEdgesCaught = [faultAt, faultAt + FAULT_HOURS].filter((h) => anomalyHours.includes(h))
  const topHours = results
    .map((r, i) => ({ hour: hourOf(i), anomaly: r.anomaly ?? 0 }))
    .sort((a, b) => b.anomaly - a.anomaly)
    .slice(0, 5)
    .map((s) => s.hour)
  const driftHours = results.flatMap((r, i) => (r.drift ? [hourOf(i)] : []))
  let covered = 0
  results.forEach((r, i) => {
    const y = z[i + 1]!
    if (y >= r.lower![0]! && y <= r.upper![0]!) covered++
  })
  const coverage = covered / results.length

  log(`${hours} hours; fault injected at hours ${fault.join(', ')}; new calibration from hour ${changeAt}`)
  log(
    `anomalies (score >= 0.99): ${anomalyHours.length} of ${results.length} hours; the fault's edges caught: ` +
      `${faultEdgesCaught.join(', ') || 'none'} (of ${faultAt}, ${faultAt + FAULT_HOURS})`,
  )
  log(`highest anomaly scores at hours ${topHours.join(', ')}`)
  log(
    `drift alarms at hours ${driftHours.join(', ') || 'none'} (${driftHours.length ? driftHours[0]! - changeAt : '–'} hours after the change)`,
  )
  log(`realised coverage of the 95 % intervals: ${(100 * coverage).toFixed(1)} %`)
  return { anomalyHours, faultEdgesCaught, topHours, driftHours, coverage }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()

/**
 * Several weather sensors, one model: next-hour temperature and pressure, learned online with
 * the `forecast` operator keyed by sensor (shared weights, one hidden state per sensor).
 *
 *   npx tsx examples/sensors.ts
 *
 * The data. The one weather file at hand (Seattle's hourly climate normals, a year of hours)
 * holds one station, so the three "sensors" are honest slices of it: the same station in three
 * disjoint seasons (January–April, May–August, September–December), replayed side by side as
 * if three stations reported at the same moments. No hour appears twice, so no sensor ever
 * sees data another has already taught the model. The seasons differ (temperature level, daily
 * swing, pressure), which is what a fleet of real sensors looks like to one shared model.
 *
 * Each sensor reports pressure, temperature and wind; the inputs are these, standardised online
 * with the fleet's running statistics (one physical quantity, one scale), plus the hour of day
 * as sin/cos. The model forecasts the change over the next hour, scaled by the running std of
 * past changes; the forecast is the current value plus that change. Baseline: persistence.
 */
import { fileURLToPath } from 'node:url'
import { filter, from, lastValueFrom, map, mergeMap, tap } from 'rxjs'
import { createModel, OnlineScaler } from 'rxrnn'
import { ErrorTotals, forecast } from 'rxrnn/streams'
import { loadSeattleHourly, type SeattleHourlyRow } from '../streams/demo/datasets.js'

export interface SensorsOptions {
  /** Hours replayed per sensor (default: each season whole, about 2900). */
  hoursPerSensor?: number
  /** Hours per sensor learned from before scoring starts. Default 200. */
  warmup?: number
  seed?: number
  log?: (line: string) => void
}

export interface Errors {
  rmse: number
  mae: number
}

export interface SensorResult {
  sensor: string
  scored: number
  temperature: { model: Errors; persistence: Errors }
  pressure: { model: Errors; persistence: Errors }
}

/** One sensor reading, with what the model needs. */
interface Reading {
  sensor: string
  row: SeattleHourlyRow
  /** Inputs: standardised pressure, temperature, wind, then sin/cos of the hour. */
  x: number[]
  /** Running mean and std of the hourly changes [ΔT, ΔP]: the scale of the targets. */
  mean: [number, number]
  std: [number, number]
}

const SENSORS = ['jan-apr', 'may-aug', 'sep-dec']

export async function main(options: SensorsOptions = {}): Promise<SensorResult[]> {
  const { warmup = 200, seed = 1, log = console.log } = options
  const year = await loadSeattleHourly()
  const season = Math.floor(year.length / SENSORS.length)
  const hours = Math.min(options.hoursPerSensor ?? season, season)
  const slices = SENSORS.map((_, s) => year.slice(s * season, s * season + hours))

  // Hour h of every sensor, then hour h + 1 of every sensor, …: the fleet reporting live.
  const reports = Array.from({ length: hours }, (_, h) =>
    SENSORS.map((sensor, s) => ({ sensor, row: slices[s]![h]! })),
  )

  const levels = new OnlineScaler(3)
  const changes = new OnlineScaler(2)
  const last = new Map<string, SeattleHourlyRow>()
  const toReading = ({ sensor, row }: { sensor: string; row: SeattleHourlyRow }): Reading => {
    const raw = [row.pressure, row.temperature, row.wind]
    levels.update(raw)
    const prev = last.get(sensor)
    if (prev) changes.update([row.temperature - prev.temperature, row.pressure - prev.pressure])
    last.set(sensor, row)
    const z = levels.transform(raw)
    const angle = (2 * Math.PI * Number(row.date.slice(11, 13))) / 24
    return {
      sensor,
      row,
      x: [z[0]!, z[1]!, z[2]!, Math.sin(angle), Math.cos(angle)],
      mean: [changes.mean[0]!, changes.mean[1]!],
      std: [changes.std(0), changes.std(1)],
    }
  }

  const model = createModel({ cell: 'gru', inputSize: 5, hiddenSize: 32, outputSize: 2, seed })
  const scores = new Map(
    SENSORS.map((s) => [s, { settled: 0, model: new ErrorTotals(2), persistence: new ErrorTotals(2) }]),
  )
  // The forecast made at each sensor's latest reading, waiting for the next one to settle it.
  const open = new Map<string, { reading: Reading; forecast: number[] }>()
  let seen = 0

  await lastValueFrom(
    from(reports).pipe(
      mergeMap((fleet) => fleet),
      map(toReading),
      // The first hours only feed the scalers: a std of a handful of changes would blow a target up.
      filter(() => ++seen > 20 * SENSORS.length),
      forecast<Reading>(
        model,
        { k1: 16, k2: 32, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 }, clipNorm: 1 },
        {
          key: (r) => r.sensor,
          input: (r) => r.x,
          target: (next, r) => [
            (next.row.temperature - r.row.temperature - r.mean[0]) / r.std[0],
            (next.row.pressure - r.row.pressure - r.mean[1]) / r.std[1],
          ],
        },
      ),
      tap(({ key, event: reading, prediction }) => {
        const score = scores.get(key)!
        const settled = open.get(key)
        if (settled && ++score.settled > warmup) {
          const truth = [reading.row.temperature, reading.row.pressure]
          score.model.add(settled.forecast, truth)
          score.persistence.add([settled.reading.row.temperature, settled.reading.row.pressure], truth)
        }
        const { row, mean, std } = reading
        open.set(key, {
          reading,
          forecast: [
            row.temperature + prediction[0]! * std[0] + mean[0],
            row.pressure + prediction[1]! * std[1] + mean[1],
          ],
        })
      }),
    ),
    { defaultValue: undefined },
  )

  const results = SENSORS.map((sensor): SensorResult => {
    const e = scores.get(sensor)!
    return {
      sensor,
      scored: e.model.n,
      temperature: { model: e.model.at(0), persistence: e.persistence.at(0) },
      pressure: { model: e.model.at(1), persistence: e.persistence.at(1) },
    }
  })
  const f = (e: Errors) => `${e.rmse.toFixed(3)} / ${e.mae.toFixed(3)}`
  log(
    `one GRU for ${SENSORS.length} sensors, ${hours} hours each; RMSE / MAE after ${warmup} hours of warm-up`,
  )
  log('sensor    scored   temperature °C: GRU   persistence    pressure hPa: GRU   persistence')
  for (const r of results) {
    log(
      `${r.sensor.padEnd(8)}  ${String(r.scored).padStart(6)}   ${f(r.temperature.model).padStart(19)}   ${f(r.temperature.persistence).padStart(11)}` +
        `   ${f(r.pressure.model).padStart(17)}   ${f(r.pressure.persistence).padStart(11)}`,
    )
  }
  return results
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()

/**
 * An RxJS app: a temperature sensor with faults, forecast online, and alerts when a reading is
 * far from what the model expected. The rxrnn operators sit among ordinary RxJS operators.
 *
 *   npx tsx examples/rxjs-app.ts
 *
 *   readings ─ map ─ standardize ─ forecast ─ pairwise ─ map (error) ─ scan (z-score) ─┬─ filter ─ scan ─ alerts
 *                                                                                       └─ bufferCount ─ weekly report
 *
 * The sensor is Seattle's hourly weather (a year of climate normals). Five faults are injected
 * at known hours: the temperature reading jumps by a few degrees for one hour, as a loose
 * connector or a sun-struck housing would do. The model learns to forecast the next hour's
 * temperature online (and learns from the faulty readings too, as a deployed one would); the
 * anomaly score of each reading is the z-score of its forecast error against the recent error
 * level, and an alert fires above `threshold`. Alerts within a few hours of each other are one
 * incident (a fault also spoils the next forecast, which starts from the faulty reading).
 */
import { fileURLToPath } from 'node:url'
import {
  bufferCount,
  connectable,
  filter,
  from,
  lastValueFrom,
  map,
  max,
  pairwise,
  scan,
  toArray,
} from 'rxjs'
import { createModel, OnlineScaler } from 'rxrnn'
import { forecast, standardize } from 'rxrnn/streams'
import { loadSeattleHourly } from '../streams/demo/datasets.js'

export interface RxjsAppOptions {
  /** Hours replayed (default: the whole year, 8759). */
  hours?: number
  /** Alert when |z| of a forecast error exceeds this. Default 6. */
  threshold?: number
  log?: (line: string) => void
}

/** Injected faults: hour → offset of the temperature reading, in °C. */
export const FAULTS: ReadonlyMap<number, number> = new Map([
  [1500, +5],
  [3100, -6],
  [4700, +4],
  [6300, -5],
  [7900, +6],
])

export interface Incident {
  /** First and last hour that alerted. */
  from: number
  to: number
  date: string
  /** The largest |z| in the incident, and that reading's forecast error in °C. */
  z: number
  errorC: number
}

export interface RxjsAppResult {
  incidents: Incident[]
  /** Faults within the replay, and those an incident started at (or one hour after). */
  faults: number[]
  detected: number[]
  falseAlarms: Incident[]
  /** The largest |z| of a reading away from every fault (after the burn-in): the alarm's margin. */
  quietMaxZ: number
  /** RMSE of the forecast error per week, °C. */
  weeklyRmse: number[]
}

/** No alerts before the model has had two weeks to learn. */
const BURN_IN = 14 * 24
/** Alerts closer than this (hours) belong to one incident. */
const INCIDENT_GAP = 3
/** Readings folded into the scaler before the first is forecast. */
const SCALER_WARMUP = 24

export async function main(options: RxjsAppOptions = {}): Promise<RxjsAppResult> {
  const { threshold = 6, log = console.log } = options
  const hours = (await loadSeattleHourly()).slice(0, options.hours)
  const readings = hours.map((h, hour) => ({
    ...h,
    hour,
    temperature: h.temperature + (FAULTS.get(hour) ?? 0),
  }))

  const model = createModel({ cell: 'gru', inputSize: 5, hiddenSize: 32, outputSize: 1, seed: 1 })
  const scaler = new OnlineScaler(5)

  // One pipeline, connected once, feeding two consumers (alerts and the weekly report).
  const scored$ = connectable(
    from(readings).pipe(
      map((r) => {
        const angle = (2 * Math.PI * Number(r.date.slice(11, 13))) / 24
        return [r.temperature, r.pressure, r.wind, Math.sin(angle), Math.cos(angle)]
      }),
      standardize(5, { warmup: SCALER_WARMUP, scaler }),
      // The model forecasts the change of the (standardised) temperature over the next hour.
      forecast<Float64Array>(
        model,
        { k1: 16, k2: 32, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 }, clipNorm: 1 },
        { input: (z) => z, target: (next, z) => [next[0]! - z[0]!] },
      ),
      // A forecast is settled by the next reading: its error, in °C.
      pairwise(),
      map(([before, after], i) => {
        const hour = SCALER_WARMUP + 1 + i
        const expected = before.event[0]! + before.prediction[0]!
        return { hour, date: readings[hour]!.date, error: (after.event[0]! - expected) * scaler.std(0) }
      }),
      // z-score against the running error level (exponentially weighted), measured before this
      // error joins it, so a fault cannot hide itself.
      scan(
        (s, e) => {
          const z = s.n > 0 ? (e.error - s.mean) / Math.sqrt(s.variance + 1e-12) : 0
          const alpha = s.n < 50 ? 1 / (s.n + 1) : 0.02
          const d = e.error - s.mean
          const mean = s.mean + alpha * d
          const variance = (1 - alpha) * (s.variance + alpha * d * d)
          return { ...e, z, n: s.n + 1, mean, variance }
        },
        { hour: 0, date: '', error: 0, z: 0, n: 0, mean: 0, variance: 0 },
      ),
    ),
  )

  const incidents = lastValueFrom(
    scored$.pipe(
      filter((s) => s.hour >= BURN_IN && Math.abs(s.z) > threshold),
      // Consecutive alerts grow one incident; a gap starts a new one.
      scan((list: Incident[], s) => {
        const open = list.at(-1)
        if (open && s.hour - open.to <= INCIDENT_GAP) {
          open.to = s.hour
          if (Math.abs(s.z) > Math.abs(open.z)) Object.assign(open, { z: s.z, errorC: s.error })
          return list
        }
        return [...list, { from: s.hour, to: s.hour, date: s.date, z: s.z, errorC: s.error }]
      }, []),
    ),
    { defaultValue: [] as Incident[] },
  )
  const weeklyRmse = lastValueFrom(
    scored$.pipe(
      bufferCount(7 * 24),
      map((week) => Math.sqrt(week.reduce((sum, s) => sum + s.error * s.error, 0) / week.length)),
      toArray(),
    ),
  )
  // The calmest the alarm could be: the largest |z| away from any fault.
  const quietMaxZ = lastValueFrom(
    scored$.pipe(
      filter(
        (s) =>
          s.hour >= BURN_IN && ![...FAULTS.keys()].some((h) => s.hour >= h && s.hour <= h + INCIDENT_GAP),
      ),
      map((s) => Math.abs(s.z)),
      max(),
    ),
    { defaultValue: 0 },
  )
  scored$.connect()

  const result = summarize(await incidents, await weeklyRmse, readings.length, await quietMaxZ)
  for (const inc of result.incidents) {
    const fault = FAULTS.get(inc.from) ?? FAULTS.get(inc.from - 1)
    const cause = fault === undefined ? 'false alarm' : `injected fault ${fault > 0 ? '+' : ''}${fault} °C`
    log(
      `ALERT ${inc.date}  hours ${inc.from}–${inc.to}  z ${inc.z.toFixed(1)}  error ${inc.errorC.toFixed(2)} °C  (${cause})`,
    )
  }
  const weeks = result.weeklyRmse
  log(
    `${result.detected.length}/${result.faults.length} faults detected, ${result.falseAlarms.length} false alarms ` +
      `(largest |z| away from faults: ${result.quietMaxZ.toFixed(1)}, threshold ${threshold}); ` +
      `forecast RMSE ${weeks[0]?.toFixed(2)} °C in week 1, ${weeks.at(-1)?.toFixed(2)} °C in week ${weeks.length}`,
  )
  return result
}

function summarize(
  incidents: Incident[],
  weeklyRmse: number[],
  hours: number,
  quietMaxZ: number,
): RxjsAppResult {
  const faults = [...FAULTS.keys()].filter((h) => h < hours)
  const startsAt = (inc: Incident, h: number) => inc.from === h || inc.from === h + 1
  return {
    incidents,
    faults,
    detected: faults.filter((h) => incidents.some((inc) => startsAt(inc, h))),
    falseAlarms: incidents.filter((inc) => !faults.some((h) => startsAt(inc, h))),
    quietMaxZ,
    weeklyRmse,
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()

/**
 * Next-day S&P 500 forecasts from daily OHLCV bars, learned online with the `forecast` operator.
 *
 *   npx tsx examples/stock.ts
 *
 * Every trading day 2000–2020 arrives once, in order. From today's bar the model forecasts
 * tomorrow's log return and tomorrow's log range ln(high/low), a volatility proxy. When
 * tomorrow's bar arrives, the forecast is scored (test-then-train, so every score is out of
 * sample) and then learned from with truncated BPTT. The forecasts are compared with the naive
 * ones a model must beat: persistence (tomorrow repeats today) and, for returns, zero.
 *
 * What to expect: returns are close to unpredictable, so the model at best ties the zero
 * forecast, and both beat persistence by a wide margin. Volatility clusters, so the range is
 * forecastable: the model beats persistence there, because a day's range is a noisy reading of
 * a slowly moving level.
 */
import { fileURLToPath } from 'node:url'
import { filter, from, lastValueFrom, map, pairwise, skip, tap } from 'rxjs'
import { createModel, OnlineScaler } from 'rxrnn'
import { ErrorTotals, forecast } from 'rxrnn/streams'
import { loadSp500Daily } from '../streams/demo/datasets.js'

export interface StockOptions {
  /** Trading days replayed, from 2000-01-03 (default: all 5105). */
  days?: number
  /** Days learned from before scoring starts. Default 250 (about a year). */
  warmup?: number
  hiddenSize?: number
  seed?: number
  log?: (line: string) => void
}

/** RMSE and MAE of one forecaster, in original units. */
export interface Errors {
  rmse: number
  mae: number
}

export interface StockResult {
  scored: number
  logReturn: { model: Errors; persistence: Errors; zero: Errors }
  logRange: { model: Errors; persistence: Errors }
}

/** One day, as the model sees it: raw values for scoring, scaled ones for the model. */
interface Day {
  date: string
  logReturn: number
  logRange: number
  /** [log return, log range, log volume change], standardised with the days up to this one. */
  x: Float64Array
  /** Running mean and std of [log return, log range]: the scale of the targets. */
  mean: [number, number]
  std: [number, number]
}

export async function main(options: StockOptions = {}): Promise<StockResult> {
  const { warmup = 250, hiddenSize = 32, seed = 1, log = console.log } = options
  const bars = (await loadSp500Daily()).slice(0, options.days)

  // Features are scaled online: the scaler sees each day once, when it happens (no look-ahead).
  const scaler = new OnlineScaler(3)
  const toDay = ([prev, bar]: [(typeof bars)[number], (typeof bars)[number]]): Day => {
    const raw = [
      Math.log(bar.close / prev.close),
      Math.log(bar.high / bar.low),
      Math.log(bar.volume / prev.volume),
    ]
    scaler.update(raw)
    return {
      date: bar.date,
      logReturn: raw[0]!,
      logRange: raw[1]!,
      x: scaler.transform(raw),
      mean: [scaler.mean[0]!, scaler.mean[1]!],
      std: [scaler.std(0), scaler.std(1)],
    }
  }

  const model = createModel({ cell: 'gru', inputSize: 3, hiddenSize, outputSize: 2, seed })
  const errors = {
    model: new ErrorTotals(2),
    persistence: new ErrorTotals(2),
    zero: new ErrorTotals(1),
  }

  await lastValueFrom(
    from(bars).pipe(
      pairwise(),
      map(toDay),
      // Let the scaler see a month of days before its std scales a target.
      skip(20),
      forecast<Day>(
        model,
        { k1: 16, k2: 32, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 }, clipNorm: 1 },
        {
          input: (day) => day.x,
          // Tomorrow's values, on today's scale: the model's outputs are standardised too.
          target: (next, day) => [
            (next.logReturn - day.mean[0]) / day.std[0],
            (next.logRange - day.mean[1]) / day.std[1],
          ],
        },
      ),
      // Each forecast is settled by the next day: score it then, in original units.
      pairwise(),
      filter((_, i) => i >= warmup),
      tap(([{ event: day, prediction }, { event: next }]) => {
        const truth = [next.logReturn, next.logRange]
        errors.model.add(
          [0, 1].map((k) => prediction[k]! * day.std[k]! + day.mean[k]!),
          truth,
        )
        errors.persistence.add([day.logReturn, day.logRange], truth)
        errors.zero.add([0], [next.logReturn])
        if (errors.model.n % 1000 === 0) log(`${next.date}  ${errors.model.n} days scored`)
      }),
    ),
    { defaultValue: undefined },
  )

  const result: StockResult = {
    scored: errors.model.n,
    logReturn: { model: errors.model.at(0), persistence: errors.persistence.at(0), zero: errors.zero.at(0) },
    logRange: { model: errors.model.at(1), persistence: errors.persistence.at(1) },
  }
  const pct = (e: Errors) => `RMSE ${(e.rmse * 100).toFixed(3)}%  MAE ${(e.mae * 100).toFixed(3)}%`
  log(`\n${result.scored} forecasts scored, after ${warmup} of warm-up`)
  log('next-day log return')
  log(`  GRU          ${pct(result.logReturn.model)}`)
  log(`  persistence  ${pct(result.logReturn.persistence)}`)
  log(`  zero         ${pct(result.logReturn.zero)}`)
  log('next-day log range ln(high/low)')
  log(`  GRU          ${pct(result.logRange.model)}`)
  log(`  persistence  ${pct(result.logRange.persistence)}`)
  const vs = (a: Errors, b: Errors) => `${(100 * (a.rmse / b.rmse - 1)).toFixed(1)}% RMSE`
  log(
    `returns: GRU ${vs(result.logReturn.model, result.logReturn.zero)} vs zero, ` +
      `${vs(result.logReturn.model, result.logReturn.persistence)} vs persistence; ` +
      `range: GRU ${vs(result.logRange.model, result.logRange.persistence)} vs persistence`,
  )
  return result
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()

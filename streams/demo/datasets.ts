import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { RxrnnError } from '../../src/errors.js'
import { readCsv, selectColumns } from '../server/feeds/csv.js'

/**
 * One trading day of the S&P 500 index (ticker ^GSPC, from Yahoo Finance), as shipped in
 * vega-datasets `data/sp500-2000.csv`.
 *
 * The file also has an `adjclose` column; it equals `close` on every row (an index has no
 * dividends or splits to adjust for), so it is left out.
 */
export interface Sp500DailyRow {
  /** Trading day, `YYYY-MM-DD` (New York exchange calendar: weekends and holidays are absent). */
  date: string
  /** Index level at the open, in index points. */
  open: number
  /** Highest index level of the day, in index points. */
  high: number
  /** Lowest index level of the day, in index points. */
  low: number
  /** Index level at the close, in index points. */
  close: number
  /** Volume as Yahoo Finance reports it for ^GSPC (shares of the constituents traded), in shares; up to about 1.1e10. */
  volume: number
}

/**
 * One hour of Seattle's NOAA 1981–2010 hourly climate normals (the 30-year average for that hour
 * of the year), in metric units, as shipped in vega-datasets
 * `data/seattle-weather-hourly-normals.csv`. The file holds one station (it has no station
 * column) and one normal year, which it labels 2010.
 */
export interface SeattleHourlyRow {
  /**
   * Hour of the normal year, `YYYY-MM-DDTHH:mm:ss` with no time zone (NOAA publishes hourly
   * normals in local standard time, so there is no daylight-saving shift). The year is always
   * 2010; the file starts at `2010-01-01T01:00:00`, so that year's first hour is absent.
   */
  date: string
  /** Mean sea-level pressure, in hectopascals (hPa = mbar); about 1015 to 1020. */
  pressure: number
  /** Mean air temperature, in degrees Celsius; about 3 to 25. */
  temperature: number
  /** Mean wind speed, in metres per second; about 2 to 5. */
  wind: number
}

/**
 * The absolute path of a file in the installed vega-datasets package's `data/` folder. It is
 * resolved through the package, so it works from the TypeScript sources and from `dist/`.
 *
 * @example
 * csvRows$(vegaDataPath('sp500-2000.csv'), { ratePerSecond: 50 }).subscribe(console.log)
 */
export function vegaDataPath(file: string): string {
  let entry: string
  try {
    // The package's "exports" hide package.json, so resolve its entry point and walk up to its root.
    entry = createRequire(import.meta.url).resolve('vega-datasets')
  } catch (e) {
    throw new RxrnnError(
      'bad_config',
      `Cannot find the vega-datasets package (${(e as Error).message}); install it with: npm install vega-datasets`,
    )
  }
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'data'))) return join(dir, 'data', file)
  }
  throw new RxrnnError(
    'bad_config',
    `Cannot find the data folder of vega-datasets above ${entry}; reinstall it with: npm install vega-datasets`,
  )
}

/**
 * Loads the S&P 500 daily bars, 2000-01-03 to 2020-04-17: 5105 trading days, sorted by date.
 * See {@link Sp500DailyRow} for each column and its unit.
 *
 * @example
 * const days = await loadSp500Daily()
 * const logReturns = days.slice(1).map((d, i) => Math.log(d.close / days[i]!.close))
 */
export async function loadSp500Daily(): Promise<Sp500DailyRow[]> {
  const numbers = ['open', 'high', 'low', 'close', 'volume'] as const
  const x = new Float64Array(numbers.length)
  return loadRows('sp500-2000.csv', numbers, x, (date) => ({
    date,
    open: x[0]!,
    high: x[1]!,
    low: x[2]!,
    close: x[3]!,
    volume: x[4]!,
  }))
}

/**
 * Loads Seattle's hourly climate normals: 8759 hours from 2010-01-01T01:00:00 to
 * 2010-12-31T23:00:00, sorted by date. See {@link SeattleHourlyRow} for each column and its unit.
 *
 * @example
 * const hours = await loadSeattleHourly()
 * const inputs = hours.map((h) => Float32Array.of(h.pressure, h.temperature, h.wind))
 */
export async function loadSeattleHourly(): Promise<SeattleHourlyRow[]> {
  const numbers = ['pressure', 'temperature', 'wind'] as const
  const x = new Float64Array(numbers.length)
  return loadRows('seattle-weather-hourly-normals.csv', numbers, x, (date) => ({
    date,
    pressure: x[0]!,
    temperature: x[1]!,
    wind: x[2]!,
  }))
}

async function loadRows<T>(
  file: string,
  numbers: readonly string[],
  x: Float64Array,
  build: (date: string) => T,
): Promise<T[]> {
  const path = vegaDataPath(file)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw new RxrnnError(
      'bad_config',
      `Cannot read ${path} (${(e as Error).message}); reinstall vega-datasets (npm install vega-datasets@^3.2.1)`,
    )
  }
  const { columns, rows } = readCsv(text)
  const missing = ['date', ...numbers].filter((name) => !columns.includes(name))
  if (missing.length > 0) {
    throw new RxrnnError(
      'bad_input',
      `${file} lacks the columns ${missing.join(', ')} (it has ${columns.join(', ')}); this vega-datasets version is not supported, use ^3.2.1`,
    )
  }
  return rows.map((row) => {
    selectColumns(row, numbers, x)
    return build(row.date!)
  })
}

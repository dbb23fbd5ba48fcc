/**
 * The forecasting flags `rxrnn serve` and `rxrnn worker` share (--horizon, --coverage,
 * --anomaly-threshold, --drift, --on-drift, --time-feature, --missing), and how they become the
 * `forecasting` option of `serve()` / `startWorker()`.
 */
import { type Command, InvalidArgumentError, Option } from 'commander'
import type { DriftDetectorName, DriftResponse, MissingPolicy } from '../../src/index.js'
import {
  DRIFT_DETECTORS,
  DRIFT_RESPONSES,
  ForecastTracker,
  MISSING_POLICIES,
  RxrnnError,
} from '../../src/index.js'
import type { ServeForecastingOptions } from '../server/forecasting.js'
import { integer } from './parse.js'

export interface ForecastingFlags {
  horizon?: number
  coverage?: number
  anomalyThreshold?: number
  drift?: DriftDetectorName | true
  onDrift?: DriftResponse
  timeFeature?: boolean
  missing?: MissingPolicy
}

/** The flags' names, for messages (`--anomaly-threshold`). */
export const FORECASTING_FLAGS: readonly (keyof ForecastingFlags)[] = [
  'horizon',
  'coverage',
  'anomalyThreshold',
  'drift',
  'onDrift',
  'timeFeature',
  'missing',
]

export function addForecastingFlags(command: Command): Command {
  return command
    .option(
      '--horizon <n>',
      'forecast n ticks ahead with a direct multi-horizon head: prediction frames carry `ahead` (n rows of --output-size); k2 defaults to k1 + n - 1',
      integer(1),
    )
    .option(
      '--coverage <c>',
      'calibrated intervals (adaptive conformal, per key): frames carry lower/upper holding the target with long-run probability c, and an anomaly score',
      fraction,
    )
    .option('--anomaly-threshold <a>', 'mark ticks whose anomaly score is >= a (default 0.99)', fraction)
    .addOption(
      new Option(
        '--drift [detector]',
        "detect drift on each key's prequential loss; alarms go to `updates` subscribers",
      ).choices(DRIFT_DETECTORS),
    )
    .addOption(
      new Option('--on-drift <response>', 'what a drift alarm does (default report)').choices(
        DRIFT_RESPONSES,
      ),
    )
    .option(
      '--time-feature',
      "also feed the model ln(1 + seconds since the key's last tick), from the ticks' t",
    )
    .addOption(
      new Option(
        '--missing <policy>',
        'accept null in x: impute (last value or zero) and add a mask input per feature',
      ).choices(MISSING_POLICIES),
    )
}

/**
 * The config file's forecasting settings with the flags over them, checked now (before anything
 * listens or connects); throws one RxrnnError('bad_config') naming each problem and its flag.
 */
export function resolveForecastingFlags(
  flags: ForecastingFlags,
  fromFile: ServeForecastingOptions | undefined,
  command: string,
): ServeForecastingOptions {
  const forecasting: ServeForecastingOptions = { ...fromFile }
  if (flags.coverage !== undefined) forecasting.coverage = flags.coverage
  if (flags.anomalyThreshold !== undefined) forecasting.anomalyThreshold = flags.anomalyThreshold
  if (flags.drift !== undefined || flags.onDrift !== undefined) {
    forecasting.drift = {
      ...forecasting.drift,
      ...(typeof flags.drift === 'string' ? { detector: flags.drift } : {}),
      ...(flags.onDrift ? { response: flags.onDrift } : {}),
    }
  }
  if (flags.timeFeature) forecasting.timeFeature = true
  if (flags.missing) forecasting.missing = flags.missing
  const problems = forecastingProblems(forecasting)
  if (problems.length > 0)
    throw new RxrnnError('bad_config', `Invalid forecasting settings for ${command}`, problems)
  return forecasting
}

/** What is wrong with the forecasting settings (flags or the file's `forecasting`), each naming where it is set. */
function forecastingProblems(f: ServeForecastingOptions): string[] {
  const problems: string[] = []
  try {
    // The same checks the server runs per key, now, before anything listens.
    new ForecastTracker(1, 1, {
      ...(f.coverage === undefined ? {} : { coverage: f.coverage }),
      ...(f.anomalyThreshold === undefined ? {} : { anomalyThreshold: f.anomalyThreshold }),
      ...(f.drift === undefined ? {} : { drift: f.drift }),
    })
  } catch (error) {
    if (!(error instanceof RxrnnError)) throw error
    problems.push(
      ...error.problems.map(
        (p) => `${p} (--coverage, --anomaly-threshold, --drift, --on-drift, or forecasting.*)`,
      ),
    )
  }
  if (f.missing !== undefined && !MISSING_POLICIES.includes(f.missing))
    problems.push(
      `missing is ${JSON.stringify(f.missing)}; use one of ${MISSING_POLICIES.join(', ')} (--missing, or forecasting.missing)`,
    )
  return problems
}

/** A number strictly between 0 and 1 (a coverage or a threshold). */
function fraction(value: string): number {
  const n = Number(value)
  if (!(n > 0 && n < 1))
    throw new InvalidArgumentError('Expected a number between 0 and 1 (exclusive), e.g. 0.9.')
  return n
}

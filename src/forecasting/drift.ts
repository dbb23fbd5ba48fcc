import { RxrnnError } from '../errors.js'
import { Adwin } from './adwin.js'
import { PageHinkley } from './page-hinkley.js'

/** The drift detectors on offer. */
export type DriftDetectorName = 'page-hinkley' | 'adwin'
export const DRIFT_DETECTORS: readonly DriftDetectorName[] = ['page-hinkley', 'adwin']

/** What to do when a key's loss drifts up: forget its state, learn faster for a while, or only report. */
export type DriftResponse = 'reset' | 'raise-lr' | 'report'
export const DRIFT_RESPONSES: readonly DriftResponse[] = ['reset', 'raise-lr', 'report']

/**
 * Drift detection on each key's prequential loss (the loss of each prediction once its target
 * arrives, before the model learns from it).
 *
 * @example
 * { detector: 'page-hinkley', warmup: 100, response: 'raise-lr' }
 */
export interface DriftOptions {
  /**
   * Default 'page-hinkley' (O(1) per tick, robust to single outliers). 'adwin' adapts its own
   * window and finds gradual rises, but assumes independent losses: on a strongly autocorrelated
   * loss (a daily cycle) it alarms on seasonal swings (7 alarms before the real change on the
   * Seattle feed of examples/anomalies.ts, against none for Page-Hinkley).
   */
  detector?: DriftDetectorName
  /** Losses seen before the detector may fire (the model is still learning). Default 100. */
  warmup?: number
  /** Page-Hinkley: allowed relative rise per tick δ (default 0.25) and alarm threshold λ (default 35). */
  delta?: number
  lambda?: number
  /** ADWIN: confidence δ of a cut (default 0.002). */
  confidence?: number
  /** Default 'report'. */
  response?: DriftResponse
  /** 'raise-lr': the factor and for how many updates (defaults 5 and 200). */
  raiseFactor?: number
  raiseUpdates?: number
}

export interface ResolvedDriftOptions {
  detector: DriftDetectorName
  warmup: number
  delta: number
  lambda: number
  confidence: number
  response: DriftResponse
  raiseFactor: number
  raiseUpdates: number
}

export function resolveDriftOptions(options: DriftOptions | true): ResolvedDriftOptions {
  const o = options === true ? {} : (options ?? {})
  const problems: string[] = []
  const pick = <T extends string>(name: string, v: unknown, all: readonly T[], def: T): T => {
    if (v === undefined) return def
    if (!all.includes(v as T)) problems.push(`${name} is ${JSON.stringify(v)}; use one of ${all.join(', ')}`)
    return v as T
  }
  const num = (name: string, v: unknown, def: number, ok: (n: number) => boolean, want: string): number => {
    if (v === undefined) return def
    if (typeof v !== 'number' || !ok(v)) problems.push(`${name} is ${JSON.stringify(v)}; it must be ${want}`)
    return v as number
  }
  const resolved: ResolvedDriftOptions = {
    detector: pick('drift detector', o.detector, DRIFT_DETECTORS, 'page-hinkley'),
    warmup: num('drift warmup', o.warmup, 100, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
    delta: num('drift delta', o.delta, 0.25, (n) => n >= 0 && Number.isFinite(n), 'a number >= 0'),
    lambda: num('drift lambda', o.lambda, 35, (n) => n > 0 && Number.isFinite(n), 'a number > 0'),
    confidence: num('drift confidence', o.confidence, 0.002, (n) => n > 0 && n < 1, 'in (0, 1)'),
    response: pick('drift response', o.response, DRIFT_RESPONSES, 'report'),
    raiseFactor: num('drift raiseFactor', o.raiseFactor, 5, (n) => n >= 1 && Number.isFinite(n), '>= 1'),
    raiseUpdates: num(
      'drift raiseUpdates',
      o.raiseUpdates,
      200,
      (n) => Number.isInteger(n) && n >= 1,
      'an integer >= 1',
    ),
  }
  if (problems.length > 0) throw new RxrnnError('bad_config', 'Invalid drift options', problems)
  return resolved
}

/** A detector of a rise in a stream of non-negative losses. */
export interface DriftDetector {
  /** Folds in one loss; true when a rise is detected (the detector then starts afresh). */
  update(loss: number): boolean
  /** Losses folded in since the last alarm or reset. */
  readonly seen: number
  reset(): void
  /** The detector's own account of the alarm, for drift reports. */
  describe(): Record<string, number>
  /** Everything needed to resume (copies), and its inverse (throws RxrnnError('bad_snapshot')). */
  exportState(): Record<string, unknown>
  importState(saved: Record<string, unknown>): void
}

/**
 * A detector as the options ask for.
 *
 * @example
 * const detector = createDriftDetector(resolveDriftOptions({ detector: 'adwin' }))
 * if (detector.update(loss)) console.log('drift')
 */
export function createDriftDetector(o: ResolvedDriftOptions): DriftDetector {
  return o.detector === 'adwin'
    ? new Adwin({ warmup: o.warmup, confidence: o.confidence })
    : new PageHinkley({ warmup: o.warmup, delta: o.delta, lambda: o.lambda })
}

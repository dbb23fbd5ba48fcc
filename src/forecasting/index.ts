export { Adwin } from './adwin.js'
export type { ConformalOptions, ResolvedConformalOptions } from './conformal.js'
export { AdaptiveConformal, resolveConformalOptions } from './conformal.js'
export type {
  DriftDetector,
  DriftDetectorName,
  DriftOptions,
  DriftResponse,
  ResolvedDriftOptions,
} from './drift.js'
export { createDriftDetector, DRIFT_DETECTORS, DRIFT_RESPONSES, resolveDriftOptions } from './drift.js'
export type { DriftEvent, ForecastFields, ForecastingExtras, ForecastingOptions } from './forecaster.js'
export { ForecastBook } from './forecaster.js'
export { HorizonTargets, horizonProblems } from './horizon.js'
export type { InputOptions, KeyInputs, MissingPolicy } from './inputs.js'
export { InputAugmenter, MISSING_POLICIES } from './inputs.js'
export type { LearningRateSchedule } from './lr-schedule.js'
export { LearningRateController, scheduleFactor } from './lr-schedule.js'
export { PageHinkley } from './page-hinkley.js'
export { RecursiveRollout } from './rollout.js'
export type { ForecastStep, ForecastTrackingOptions } from './tracker.js'
export { ForecastTracker } from './tracker.js'

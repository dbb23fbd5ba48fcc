/**
 * rxrnn core: recurrent cells, model, losses, optimizers, the online trainer (TBPTT, RTRL,
 * SnAp-1, UORO) and serialization. Pure computation on typed arrays: no RxJS, no I/O.
 */
export type { Cell } from './cells/cell.js'
export { clipByGlobalNorm, clipByValue, globalNorm } from './clip.js'
export type { CellKind, InitConfig, ModelConfig, ResolvedModelConfig, WeightInit } from './config.js'
export { CELL_KINDS, WEIGHT_INITS } from './config.js'
export type { DType, FloatArray } from './dtype.js'
export type { RxrnnErrorCode } from './errors.js'
export { RxrnnError } from './errors.js'
export * from './forecasting/index.js'
export type { AlgorithmName, RtrlCost } from './gradients/index.js'
export { ALGORITHM_NAMES, rtrlCost } from './gradients/index.js'
export type { Kernels } from './kernels.js'
export type { KeySlots, KeyStoreOptions } from './key-store.js'
export { KeyStore } from './key-store.js'
export type {
  KeyEntry,
  KeyedObservation,
  KeyedTrainerOptions,
  KeyedUpdate,
  PendingEvent,
} from './keyed-trainer.js'
export { KeyedTrainer } from './keyed-trainer.js'
export type { Loss, LossName } from './losses.js'
export { createLoss, LOSS_NAMES } from './losses.js'
export type { ModelOptions } from './model.js'
export { createModel, Model } from './model.js'
export type { Optimizer, OptimizerConfig } from './optimizers.js'
export { createOptimizer } from './optimizers.js'
export { Rng } from './rng.js'
export type { SafetensorsDtype, SafetensorsFile, SafetensorsTensor, TensorToWrite } from './safetensors.js'
export { readSafetensors, writeSafetensors } from './safetensors.js'
export { OnlineScaler } from './scaler.js'
export { crc32, SNAPSHOT_VERSION } from './snapshot.js'
export { RecurrentState } from './state.js'
export type { Observation, SequenceObservation, UpdateReport } from './trainer.js'
export { copyReport, OnlineTrainer } from './trainer.js'
export type { ResolvedTrainerOptions, TrainerOptions } from './trainer-options.js'
export { wasmSimdSupported } from './wasm/kernels.js'
export { SequenceWindow } from './window.js'

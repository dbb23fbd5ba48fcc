/**
 * Scaling out on NATS JetStream: partitions (`partitionOf`), workers (`startWorker`), per-partition
 * checkpoints, shared weights, and the gateway that puts the WebSocket protocol in front of them.
 */
export { fnv1a32, parsePartitionList, partitionOf } from '../../transport/partition.js'
export type { NatsClients } from './clients.js'
export { loadNatsClients, NATS_INSTALL } from './clients.js'
export type { PartitionCheckpoint, SharedWeightsState } from './partition-checkpoint.js'
export { partitionCheckpointPath, readPartitionCheckpoint } from './partition-checkpoint.js'
export type {
  PartitionCounters,
  PartitionErrorFrame,
  PartitionPredictionFrame,
} from './partition-processor.js'
export { PartitionProcessor } from './partition-processor.js'
export { DEFAULT_SUBJECT_PREFIX, NatsNames } from './subjects.js'
export type { PartitionMetrics, RxrnnWorker, WorkerMetricsFrame, WorkerOptions } from './worker.js'
export { partitionSeed, startWorker } from './worker.js'

/**
 * Scaling out on NATS JetStream: partitions (`partitionOf`), workers (`startWorker`), per-partition
 * checkpoints, shared weights, and the gateway that puts the WebSocket protocol in front of them.
 */
export { fnv1a32, parsePartitionList, partitionOf } from '../../transport/partition.js'
export type { GatewayOptions, RxrnnGateway } from './gateway.js'
export { serveGateway } from './gateway.js'
// The client loader stays internal: its types name the optional NATS packages, which users who do
// not scale out have not installed.
export { NATS_INSTALL } from './install-hint.js'
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

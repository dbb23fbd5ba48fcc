/**
 * rxrnn/streams: what runs in a browser as well as in Node. The RxJS operators over the core,
 * `Monitor` and the evaluators, the msgpack/JSON codec, the wire protocol's types, and the
 * WebSocket client (`webSocketSource`, `webSocketSink`: the platform's `WebSocket` in browsers,
 * `ws` in Node, chosen by the package's export conditions). Nothing here imports `node:*`.
 *
 * The server, checkpoints, dashboard routes and file feeds are Node-only: `rxrnn/server`.
 */

export type { ClassificationScores, RegressionScores } from './operators/evaluation.js'
export {
  ClassificationEvaluator,
  ErrorTotals,
  RegressionEvaluator,
  RollingMean,
} from './operators/evaluation.js'
export type { ForecastOptions, ForecastResult } from './operators/forecast.js'
export { forecast } from './operators/forecast.js'
export type { ForecastingOptions, ForecastResultFields } from './operators/forecasting.js'
export { modelInputSize } from './operators/forecasting.js'
export type { KeyedEvent, KeyedResult, LearnByKeyOptions } from './operators/keyed.js'
export { learnByKey } from './operators/keyed.js'
export type {
  LabelledPrediction,
  LateLabel,
  LearnWithLabelsOptions,
  UnlabelledEvent,
} from './operators/labels.js'
export { learnWithLabels } from './operators/labels.js'
export type { LearnEvent, LearnOptions, LearnResult } from './operators/learn.js'
export { learn } from './operators/learn.js'
export type { KeyedUpdate, MetricsSnapshot, RejectedEvent } from './operators/monitor.js'
export { Monitor } from './operators/monitor.js'
export type { RecurrentOptions } from './operators/recurrent.js'
export { recurrent } from './operators/recurrent.js'
export type { RecurrentByKeyOptions, RecurrentByKeyResult } from './operators/recurrent-by-key.js'
export { recurrentByKey } from './operators/recurrent-by-key.js'
export type { ModelOrTrainer } from './operators/shared.js'
export type { StandardizeOptions } from './operators/standardize.js'
export { standardize } from './operators/standardize.js'
export type { DecodeResult, FrameEncoding } from './transport/codec.js'
export { decodeClientFrame, decodeFrame, encodeFrame } from './transport/codec.js'
export { fnv1a32, parsePartitionList, partitionOf } from './transport/partition.js'
export * from './transport/protocol.js'
export type { SinkStats, WebSocketSinkOptions } from './transport/ws-sink.js'
export { webSocketSink } from './transport/ws-sink.js'
export type {
  ConnectionStats,
  ReconnectOptions,
  WebSocketConnection,
  WebSocketConnectionOptions,
  WebSocketSourceOptions,
  WebSocketStatus,
} from './transport/ws-source.js'
export { webSocketConnection, webSocketSource } from './transport/ws-source.js'

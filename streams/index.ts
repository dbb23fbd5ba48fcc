/**
 * rxrnn/streams: RxJS operators over the core, the WebSocket + msgpack transport, feed
 * readers and the server.
 */

export type { AudioFeaturesOptions } from './audio/features.js'
export { audioFeatures, createFeatureExtractor } from './audio/features.js'
export type { FrameSizes, PcmFramesOptions } from './audio/frames.js'
export { frameCount, frameSignal, frameSizes, hannWindow, pcmFrames } from './audio/frames.js'
export type { SpeechPcm, SpeechVoice, SynthesizeOptions } from './audio/speech.js'
export { espeakAvailable, parseWav, resamplePcm, SPEECH_VOICES, synthesize } from './audio/speech.js'
export type { DecodeResult, FrameEncoding } from './codec.js'
export { decodeClientFrame, decodeFrame, encodeFrame } from './codec.js'
export type { DashboardOptions } from './dashboard/index.js'
export { dashboardRoutes } from './dashboard/index.js'
export type { ClassificationScores, RegressionScores } from './evaluation.js'
export { ClassificationEvaluator, ErrorTotals, RegressionEvaluator, RollingMean } from './evaluation.js'
export type { CsvRowsOptions, CsvTable } from './feeds/csv.js'
export { csvRows$, readCsv, selectColumns } from './feeds/csv.js'
export type { SeattleHourlyRow, Sp500DailyRow } from './feeds/datasets.js'
export { loadSeattleHourly, loadSp500Daily, vegaDataPath } from './feeds/datasets.js'
export type { KeyedUpdate, MetricsSnapshot, RejectedEvent } from './monitor.js'
export { Monitor } from './monitor.js'
export type { ForecastOptions, ForecastResult } from './operators/forecast.js'
export { forecast } from './operators/forecast.js'
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
export type { RecurrentOptions } from './operators/recurrent.js'
export { recurrent } from './operators/recurrent.js'
export type { RecurrentByKeyOptions, RecurrentByKeyResult } from './operators/recurrent-by-key.js'
export { recurrentByKey } from './operators/recurrent-by-key.js'
export type { ModelOrTrainer } from './operators/shared.js'
export type { StandardizeOptions } from './operators/standardize.js'
export { standardize } from './operators/standardize.js'
export * from './protocol.js'
export type { RxrnnServer, ServeOptions } from './server.js'
export { serve } from './server.js'
export type { SinkStats, WebSocketSinkOptions } from './ws-sink.js'
export { webSocketSink } from './ws-sink.js'
export type {
  ConnectionStats,
  ReconnectOptions,
  WebSocketConnection,
  WebSocketConnectionOptions,
  WebSocketSourceOptions,
  WebSocketStatus,
} from './ws-source.js'
export { webSocketConnection, webSocketSource } from './ws-source.js'

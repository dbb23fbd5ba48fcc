/**
 * rxrnn/server: the Node-only half. `serve` (the WebSocket server with its dashboard), the
 * checkpoint writer, the dashboard's routes for your own HTTP server, the CSV feed readers
 * (streaming: files larger than memory), and the NATS JetStream workers and gateway.
 * The operators and the client are in `rxrnn/streams`, which runs in browsers too.
 */

export { parseDuration, readCheckpoint, writeFileAtomic } from './checkpoint.js'
export type { ExplicitSettings } from './checkpointer.js'
export type { DashboardOptions } from './dashboard/index.js'
export { dashboardRoutes } from './dashboard/index.js'
export type { EndpointOptions } from './endpoint-options.js'
export type { CsvFile, CsvRowsOptions, CsvTable } from './feeds/csv.js'
export { csvRows$, openCsv, readCsv, selectColumns } from './feeds/csv.js'
export type { ServeForecastingOptions } from './forecasting.js'
export { ServerForecasting } from './forecasting.js'
export type { ForecastingFigures } from './forecasting-metrics.js'
export { registerForecastingMetrics } from './forecasting-metrics.js'
export type { ServerKeyExtras } from './learner.js'
export * from './nats/index.js'
export type { RxrnnServer, ServeOptions } from './server.js'
export { serve } from './server.js'

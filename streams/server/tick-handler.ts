/**
 * What the connection side of a server needs from whatever learns: the seam between the units
 * that face clients (`FrontDoor`, `Hub`, `Connection`, `Dispatcher`, `Endpoint`) and the units
 * that answer ticks. `serve()` answers with a local `Learner` (`LearnerTicks`); the NATS gateway
 * publishes ticks into JetStream partitions and relays the workers' answers (`NatsRelay`). Both
 * get the same admission, limits, byte budgets, hostile-frame handling and `/metrics`.
 */
import type {
  Channel,
  ErrorFrame,
  FrameExpectations,
  MetricsFrame,
  ModelSummary,
  TickFrame,
} from '../transport/protocol.js'
import type { Connection } from './connection.js'
import type { MetricSources } from './prometheus.js'

/**
 * Answers the ticks a `Dispatcher` has decoded, checked and admitted (its new-key rate included).
 *
 * @example
 * const handler: TickHandler = new LearnerTicks(learner, hub)
 * const dispatcher = new Dispatcher({ handler, hub, budget, expect, ... })
 */
export interface TickHandler {
  /** What `welcome` reports about the model. */
  readonly summary: ModelSummary
  /**
   * The channels it feeds (`subscribe` gets the others left out, and its answer says so).
   * Undefined: every channel.
   */
  readonly channels?: ReadonlySet<Channel>
  /** Whether `key` is known: a connection's ticks for unknown keys count against its new-key rate. */
  has(key: string): boolean
  /**
   * Answers `tick` on `conn` (now, or later when the answer comes from elsewhere) and feeds the
   * subscribers. Throws `RxrnnError` for a tick it refuses (the dispatcher answers it with an
   * error frame); any other exception is a bug (that connection is closed with 1011).
   */
  tick(conn: Connection, tick: TickFrame): void
  /** Forgets a key's state. */
  reset(key: string): void
  /** Counts a frame the dispatcher refused (it sends the error frame itself). */
  reject(error: ErrorFrame, frame: unknown, key?: string): void
}

/** The learning side's figures for `GET /metrics` (the connection side's come from the endpoint). */
export type LearningFigures = Pick<
  MetricSources,
  | 'ticks'
  | 'updates'
  | 'skippedUpdates'
  | 'rolledBackUpdates'
  | 'loss'
  | 'gradNorm'
  | 'clipRate'
  | 'keys'
  | 'evictedKeys'
  | 'rejectedByCode'
>

/** The connection side's counters a metrics frame carries. */
export interface ConnectionCounters {
  producers: number
  subscribers: number
  dropped: number
  sampledOut: number
  slowClosed: number
  rateLimited: number
}

/** What an `Endpoint` serves: the tick handler, the checks every frame passes, and the figures. */
export interface EndpointModel {
  handler: TickHandler
  /** What a tick must look like (model shape); the endpoint adds the size and value caps. */
  expectations: FrameExpectations
  /** Values one tick may hold at most (x and y together), for the decoder's value cap. */
  maxTickValues: number
  /** The metrics frame subscribers get, from the connection side's counters. */
  metrics(counters: ConnectionCounters): MetricsFrame
  figures: LearningFigures
}

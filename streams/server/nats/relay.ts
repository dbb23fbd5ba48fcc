/**
 * The NATS gateway's tick handler: each tick a `Dispatcher` admits is published into its
 * partition's stream (batched per partition, acked by JetStream), and the prediction a worker
 * publishes for it is relayed to the connection that sent it, with that connection's id, and to
 * the subscribers of `predictions` (with the target, as `serve` does).
 *
 * Routing: each tick gets an id of this gateway's own (a random 21-bit tag times 2^32, plus a
 * counter; a safe integer) and (connection, the producer's id, the target) wait under it until the
 * answer comes: answers meant for another gateway are ignored, replays after a worker restart
 * answer only ticks still waiting, so each tick is answered once.
 */
import { randomInt } from 'node:crypto'
import { Counter, Gauge, type Registry } from 'prom-client'
import { RxrnnError } from '../../../src/index.js'
import { decodeFrame, encodeFrame } from '../../transport/codec.js'
import { partitionOf } from '../../transport/partition.js'
import type {
  Channel,
  DriftFrame,
  ErrorFrame,
  ModelSummary,
  NumericVector,
  PredictionFrame,
  TickFrame,
} from '../../transport/protocol.js'
import { errorFrame } from '../../transport/protocol.js'
import type { Connection } from '../connection.js'
import type { Hub } from '../hub.js'
import type { TickHandler } from '../tick-handler.js'
import type { NatsNames } from './subjects.js'

export interface RelayOptions {
  partitions: number
  names: NatsNames
  /** Publishes one message into JetStream; rejects when it is not stored. */
  publish(subject: string, data: Uint8Array): Promise<unknown>
  /** What `welcome` reports (the workers hold the model). */
  summary: ModelSummary
  /** Ticks per message at most; a batch also goes at the end of each event-loop turn. Default 64. */
  batchTicks?: number
  /** Ticks awaiting their answer at most; past it the oldest are forgotten (and counted). Default 1 000 000. */
  maxWaiting?: number
  /**
   * Ticks one connection may have awaiting their answer; more are refused (`rate_limited`), so
   * that one producer cannot push everyone else's ticks out of the waiting list. Default 65 536.
   */
  maxWaitingPerConnection?: number
  /** Keys remembered as known (least recently ticked forgotten first); others count as new keys. Default 100 000. */
  maxKnownKeys?: number
}

interface Waiting {
  conn: Connection
  id: number | undefined
  target: number | NumericVector | undefined
}

/** What a worker publishes on the predictions subjects, as far as the relay reads it. */
interface WorkerAnswer {
  type?: unknown
  id?: unknown
  key?: unknown
  y?: unknown
  code?: unknown
  message?: unknown
  ahead?: unknown
  lower?: unknown
  upper?: unknown
  aheadLower?: unknown
  aheadUpper?: unknown
  anomaly?: unknown
  isAnomaly?: unknown
  drift?: unknown
}

const TAG_SPAN = 2 ** 32
/**
 * The channels a gateway feeds: the workers publish no update reports or hidden states; `updates`
 * carries their drift alarms (with --drift).
 */
const FED: ReadonlySet<Channel> = new Set<Channel>(['predictions', 'updates', 'metrics'])

/**
 * @example
 * const relay = new NatsRelay({ partitions: 16, names, publish: (s, d) => js.publish(s, d), summary }, hub)
 * nc.subscribe(names.allPredictions, { callback: (_e, msg) => relay.answer(msg.data) })
 */
export class NatsRelay implements TickHandler {
  readonly channels = FED
  readonly summary: ModelSummary
  /** Error frames sent (the gateway's refusals and the workers' relayed), per code. */
  readonly rejectedByCode = new Map<string, number>()
  /** Ticks published to JetStream. */
  published = 0
  /** Ticks forgotten unanswered because more than maxWaiting were waiting. */
  forgotten = 0
  /** Publishes JetStream did not acknowledge (their ticks' senders got an error frame). */
  publishFailures = 0
  private readonly tag = randomInt(1, 2 ** 21)
  private counter = 0
  private readonly waiting = new Map<number, Waiting>()
  /** Ticks waiting per connection (connections with none are not in it). */
  private readonly waitingBy = new Map<Connection, number>()
  private readonly known = new Set<string>()
  private batches: unknown[][]
  private batchIds: number[][]
  private flushScheduled = false
  private readonly flushAllBound = () => this.flushAll()
  private readonly batchTicks: number
  private readonly maxWaiting: number
  private readonly maxWaitingPerConnection: number
  private readonly maxKnownKeys: number

  constructor(
    private readonly o: RelayOptions,
    private readonly hub: Hub,
  ) {
    this.summary = o.summary
    this.batchTicks = o.batchTicks ?? 64
    this.maxWaiting = o.maxWaiting ?? 1_000_000
    this.maxWaitingPerConnection = o.maxWaitingPerConnection ?? 65_536
    this.maxKnownKeys = o.maxKnownKeys ?? 100_000
    this.batches = Array.from({ length: o.partitions }, () => [])
    this.batchIds = Array.from({ length: o.partitions }, () => [])
  }

  /** Ticks published and not answered yet. */
  get waitingCount(): number {
    return this.waiting.size
  }

  has(key: string): boolean {
    return this.known.has(key)
  }

  tick(conn: Connection, tick: TickFrame): void {
    const { key } = tick
    const held = this.waitingBy.get(conn) ?? 0
    if (held >= this.maxWaitingPerConnection) {
      throw new RxrnnError(
        'rate_limited',
        `this connection has ${held} ticks waiting for their answers, the gateway's limit; wait for answers before sending more`,
      )
    }
    this.remember(key)
    const id = this.tag * TAG_SPAN + (this.counter = (this.counter + 1) % TAG_SPAN)
    this.waiting.set(id, { conn, id: tick.id, target: tick.y })
    this.waitingBy.set(conn, held + 1)
    if (this.waiting.size > this.maxWaiting) {
      // Insertion order: the first key is the oldest tick still waiting.
      const oldest = this.waiting.keys().next().value as number
      this.release(oldest, this.waiting.get(oldest)!)
      this.forgotten++
    }
    // The time goes into the log, so a worker's time input (--time-feature) replays exactly.
    const frame: Record<string, unknown> = { type: 'tick', key, x: tick.x, id, t: tick.t ?? Date.now() }
    if (tick.y !== undefined) frame.y = tick.y
    this.enqueue(partitionOf(key, this.o.partitions), frame, id)
  }

  reset(key: string): void {
    this.enqueue(partitionOf(key, this.o.partitions), { type: 'reset', key }, undefined)
  }

  reject(error: ErrorFrame): void {
    this.rejectedByCode.set(error.code, (this.rejectedByCode.get(error.code) ?? 0) + 1)
  }

  /**
   * A message on the predictions subjects: a worker's answer to a tick. Relayed when it answers
   * a tick of this gateway still waiting; anything else (another gateway's, a replay already
   * answered, a malformed message) is ignored.
   */
  answer(data: Uint8Array): void {
    if (data.length === 0) return
    const decoded = decodeFrame(data, data[0] !== 0x7b && data[0] !== 0x5b)
    if (!decoded.ok || typeof decoded.value !== 'object' || decoded.value === null) return
    const frame = decoded.value as WorkerAnswer
    if (typeof frame.id !== 'number') return
    const w = this.waiting.get(frame.id)
    if (w === undefined) return
    if (frame.type === 'prediction' && typeof frame.key === 'string' && isNumbers(frame.y)) {
      this.release(frame.id, w)
      const key = frame.key
      const y = frame.y
      const reply: PredictionFrame = { type: 'prediction', key, y }
      if (w.id !== undefined) reply.id = w.id
      copyForecast(frame, reply)
      w.conn.send(reply)
      const drift = frame.drift
      if (isDrift(drift, key)) this.hub.broadcast('updates', key, () => drift, undefined, true)
      if (this.hub.following.predictions > 0) {
        this.hub.broadcast('predictions', key, () => broadcastFrame(reply, w.target), w.conn)
      }
    } else if (frame.type === 'error' && typeof frame.code === 'string') {
      this.release(frame.id, w)
      const message = typeof frame.message === 'string' ? frame.message : 'a worker refused the tick'
      const error = errorFrame(frame.code as ErrorFrame['code'], message, w.id)
      this.reject(error)
      w.conn.send(error)
    }
  }

  /** Publishes every partition's pending batch now. */
  flushAll(): void {
    this.flushScheduled = false
    for (let p = 0; p < this.o.partitions; p++) this.flush(p)
  }

  /** The relay's own series on `GET /metrics`. */
  register(registry: Registry): void {
    const registers = [registry]
    const relay = this
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset()
          this.inc(read())
        },
      })
    counter(
      'rxrnn_gateway_published_ticks_total',
      'Ticks this gateway published to JetStream.',
      () => relay.published,
    )
    counter(
      'rxrnn_gateway_forgotten_ticks_total',
      'Ticks forgotten unanswered: more than the waiting limit were waiting.',
      () => relay.forgotten,
    )
    counter(
      'rxrnn_gateway_publish_failures_total',
      'Batches JetStream did not store (their senders got an error frame).',
      () => relay.publishFailures,
    )
    new Gauge({
      name: 'rxrnn_gateway_waiting',
      help: 'Ticks published and not answered yet.',
      registers,
      collect() {
        this.set(relay.waiting.size)
      },
    })
  }

  /** The tick `id` is no longer waiting (answered, refused or forgotten). */
  private release(id: number, w: Waiting): void {
    this.waiting.delete(id)
    const held = this.waitingBy.get(w.conn) ?? 1
    if (held <= 1) this.waitingBy.delete(w.conn)
    else this.waitingBy.set(w.conn, held - 1)
  }

  /** Keeps `key` among the known keys, most recent last; the least recent leave past the limit. */
  private remember(key: string): void {
    if (this.known.delete(key)) {
      this.known.add(key)
      return
    }
    if (this.known.size >= this.maxKnownKeys) this.known.delete(this.known.values().next().value as string)
    this.known.add(key)
  }

  private enqueue(p: number, frame: unknown, id: number | undefined): void {
    this.batches[p]!.push(frame)
    if (id !== undefined) this.batchIds[p]!.push(id)
    if (this.batches[p]!.length >= this.batchTicks) this.flush(p)
    else if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(this.flushAllBound)
    }
  }

  private flush(p: number): void {
    const frames = this.batches[p]!
    if (frames.length === 0) return
    const ids = this.batchIds[p]!
    this.batches[p] = []
    this.batchIds[p] = []
    this.published += ids.length
    this.o.publish(this.o.names.ticksSubject(p), encodeFrame(frames, 'msgpack')).catch((error: Error) => {
      this.publishFailures++
      // JetStream did not take them: their senders learn it now, instead of waiting forever.
      for (const id of ids) {
        const w = this.waiting.get(id)
        if (!w) continue
        this.release(id, w)
        const refusal = errorFrame(
          'internal',
          `the tick could not be stored in JetStream (${error.message}); send it again`,
          w.id,
        )
        this.reject(refusal)
        w.conn.send(refusal)
      }
    })
  }
}

function isNumbers(value: unknown): value is number[] {
  if (!Array.isArray(value)) return false
  for (const v of value) if (typeof v !== 'number') return false
  return true
}

/** Copies a worker's forecasting fields (horizon rows, intervals, anomaly score) that have the right types. */
function copyForecast(from: WorkerAnswer, to: PredictionFrame): void {
  if (isRows(from.ahead)) to.ahead = from.ahead
  if (isNumbers(from.lower)) to.lower = from.lower
  if (isNumbers(from.upper)) to.upper = from.upper
  if (isRows(from.aheadLower)) to.aheadLower = from.aheadLower
  if (isRows(from.aheadUpper)) to.aheadUpper = from.aheadUpper
  if (typeof from.anomaly === 'number') to.anomaly = from.anomaly
  if (typeof from.isAnomaly === 'boolean') to.isAnomaly = from.isAnomaly
}

function isRows(value: unknown): value is number[][] {
  return Array.isArray(value) && value.every(isNumbers)
}

/** A worker's drift alarm for `key`, as subscribers of `updates` get it. */
function isDrift(value: unknown, key: string): value is DriftFrame {
  const d = value as Partial<DriftFrame> | null | undefined
  return (
    typeof d === 'object' && d !== null && d.type === 'drift' && d.key === key && typeof d.step === 'number'
  )
}

/** What subscribers of `predictions` get: the answer, with the tick's target when it had one. */
function broadcastFrame(reply: PredictionFrame, target: number | NumericVector | undefined): PredictionFrame {
  if (target === undefined) return reply
  return { ...reply, target: typeof target === 'number' ? [target] : Array.from(target) }
}

/**
 * One partition's learning, apart from NATS: the ticks of each stream message, in stream order,
 * go through the partition's KeyedTrainer, and each gets its prediction frame. Nothing here reads
 * a clock or depends on how ticks were batched into messages, so a partition's predictions are a
 * function of its sequence of ticks alone: the property exact recovery rests on.
 */
import type { KeyedTrainer } from '../../../src/index.js'
import { RxrnnError } from '../../../src/index.js'
import { decodeFrame, encodeFrame, type FrameEncoding } from '../../transport/codec.js'
import { partitionOf } from '../../transport/partition.js'
import type { DriftFrame, ErrorFrame, FrameExpectations, PredictionFrame } from '../../transport/protocol.js'
import { errorFrame, validateClientFrame } from '../../transport/protocol.js'
import {
  type ServeForecastingOptions,
  ServerForecasting,
  tickExpectations,
  wantsServerForecasting,
} from '../forecasting.js'
import { predictionFrame } from '../frames.js'
import { resetServerKey, type ServerKeyExtras } from '../learner.js'

/** A worker's answer to one tick: the WebSocket prediction frame, with where the tick was in the log. */
export interface PartitionPredictionFrame extends PredictionFrame {
  /** The partition the tick was read from. */
  partition: number
  /** The tick's stream sequence in that partition (ticks batched into one message share it). */
  seq: number
  /** A drift alarm this tick raised (forecasting with drift detection): the gateway sends it to `updates`. */
  drift?: DriftFrame
}

/** A tick (or message) a worker refused, published on the predictions subject so its sender learns why. */
export interface PartitionErrorFrame extends ErrorFrame {
  key?: string
  partition: number
  seq: number
}

/** Running figures of one partition, for metrics. */
export interface PartitionCounters {
  /** Ticks learned from. */
  ticks: number
  /** Ticks and messages refused. */
  rejected: number
  /** Weight updates run. */
  updates: number
  /** Ticks that carried a target, and the sum of their squared prediction errors (regression). */
  scored: number
  squaredError: number
  /** Classification: ticks whose predicted class was right. */
  correct: number
}

/** Where a message's frames go: the encoded bytes (or JSON text) of each. */
export type FrameSink = (frame: Uint8Array | string) => void

/**
 * Applies one partition's stream messages to its KeyedTrainer. A message holds one client frame,
 * or an array of them (ticks batched per partition), as msgpack or JSON: a message whose first
 * byte is `{` or `[` is JSON, any other msgpack. Ticks are learned from with `observe` (each
 * update runs at once, in tick order), and their `now` is the stream sequence, never the clock.
 * `reset` frames reset their key. Anything else, a tick that does not fit the model, or a key
 * that belongs to another partition, is answered with an error frame and changes nothing.
 *
 * @example
 * const p = new PartitionProcessor(3, 16, keyed, 0)
 * p.apply(1, bytes, (frame) => nc.publish('rxrnn.predictions.3', frame))
 */
export class PartitionProcessor {
  readonly counters: PartitionCounters = {
    ticks: 0,
    rejected: 0,
    updates: 0,
    scored: 0,
    squaredError: 0,
    correct: 0,
  }
  private readonly expect: FrameExpectations
  private readonly classification: boolean
  /** Intervals, anomaly scores, drift, time and missing values per key (with forecasting settings or a horizon), else null. */
  readonly forecasting: ServerForecasting | null
  /** Called after every update this partition runs (shared weights count them). */
  onUpdate: (() => void) | undefined

  constructor(
    readonly partition: number,
    readonly partitions: number,
    readonly keyed: KeyedTrainer<ServerKeyExtras>,
    /** The last stream sequence applied (0: none). */
    public seq: number,
    /** As `serve`'s: the ticks' `t` must be in the log (a worker reads no clock), see `applyFrame`. */
    forecasting?: ServeForecastingOptions,
  ) {
    this.classification = keyed.trainer.loss.name === 'cross_entropy'
    this.forecasting = wantsServerForecasting(keyed, forecasting)
      ? new ServerForecasting(keyed, forecasting ?? {})
      : null
    this.expect = tickExpectations(keyed, this.forecasting)
  }

  /**
   * Resumes the forecasting state of this partition's checkpoint (`forecast`, from
   * `forecasting.snapshot()`), after the keyed trainer was restored from the same checkpoint. A
   * checkpoint written with other forecasting settings (or none) cannot resume exactly: throws
   * RxrnnError('bad_config' or 'bad_snapshot') saying what to do.
   */
  resumeForecasting(saved: Uint8Array | undefined, dir: string): void {
    const f = this.forecasting
    if (f && saved) {
      try {
        f.restore(saved)
      } catch (error) {
        if (!(error instanceof RxrnnError)) throw error
        throw new RxrnnError(
          'bad_config',
          `partition ${this.partition}'s checkpoint in ${dir} holds forecasting state this worker's settings cannot take ` +
            `(${error.message}): start it with the --horizon, --coverage, --drift, --time-feature and --missing ` +
            'the checkpoints were written with, or give a fresh --checkpoint-dir',
        )
      }
    } else if (f || saved)
      throw new RxrnnError(
        'bad_config',
        `partition ${this.partition}'s checkpoint in ${dir} was written ${saved ? 'with' : 'without'} forecasting ` +
          `(--horizon, --coverage, --drift, --time-feature, --missing), and this worker runs ${f ? 'with' : 'without'}: ` +
          'start it with the settings the checkpoints were written with, or give a fresh --checkpoint-dir',
      )
  }

  /**
   * Applies the message at stream sequence `seq` and sends a frame per tick to `sink`, in the
   * message's encoding. Returns the number of ticks learned from.
   */
  apply(seq: number, data: Uint8Array, sink: FrameSink): number {
    this.seq = seq
    const decoded = decodeFrame(data, !looksLikeJson(data))
    const encoding = decoded.encoding
    if (!decoded.ok) {
      this.reject(sink, encoding, decoded.error, seq)
      return 0
    }
    const frames = Array.isArray(decoded.value) ? decoded.value : [decoded.value]
    let learned = 0
    for (const value of frames) if (this.applyFrame(value, seq, encoding, sink)) learned++
    return learned
  }

  private applyFrame(value: unknown, seq: number, encoding: FrameEncoding, sink: FrameSink): boolean {
    const checked = validateClientFrame(value, this.expect)
    if (!checked.ok) {
      this.reject(sink, encoding, checked.error, seq)
      return false
    }
    const frame = checked.frame
    if (frame.type === 'reset') {
      resetServerKey(this.keyed, frame.key)
      return false
    }
    if (frame.type !== 'tick') {
      const message = `a ${frame.type} frame has no meaning on a tick stream; publish tick and reset frames only`
      this.reject(sink, encoding, errorFrame('unknown_type', message, frame.id), seq)
      return false
    }
    const owner = partitionOf(frame.key, this.partitions)
    if (owner !== this.partition) {
      const message =
        `key "${frame.key}" belongs to partition ${owner} of ${this.partitions}, not ${this.partition}: ` +
        'publish each tick to the subject of partitionOf(key, partitions)'
      this.reject(sink, encoding, errorFrame('bad_key', message, frame.id), seq, frame.key)
      return false
    }
    const f = this.forecasting
    let y: number[]
    let forecast: ReturnType<ServerForecasting['annotate']> | undefined
    try {
      if (f?.inputs?.timeFeature && frame.t === undefined) {
        throw new RxrnnError(
          'bad_input',
          "t is missing: with --time-feature a worker takes each tick's time from the log, never from its clock " +
            '(the gateway stamps ticks that have none); publish ticks with t, in ms since the epoch',
        )
      }
      const input = f ? f.prepare(frame.key, frame.x, frame.t) : frame.x
      const observed = this.keyed.observe(frame.key, input, frame.y ?? null, seq)
      const output = observed.prediction
      forecast = f ? f.annotate(frame.key, output, frame.y) : undefined
      // With a horizon, y is the first of the head's rows.
      const width = f?.width ?? output.length
      y = new Array<number>(width)
      for (let i = 0; i < width; i++) y[i] = output[i]!
      if (observed.updates.length > 0) {
        this.counters.updates += observed.updates.length
        for (let i = 0; i < observed.updates.length; i++) this.onUpdate?.()
      }
    } catch (error) {
      if (!(error instanceof RxrnnError)) throw error
      this.reject(sink, encoding, errorFrame(error.code, error.message, frame.id), seq, frame.key)
      return false
    }
    this.counters.ticks++
    if (frame.y !== undefined) this.score(y, frame.y)
    const prediction: PartitionPredictionFrame = {
      ...predictionFrame(frame.key, frame.id, { y, forecast }),
      partition: this.partition,
      seq,
    }
    if (forecast?.drift) prediction.drift = forecast.drift
    sink(encodeFrame(prediction, encoding))
    return true
  }

  private score(y: number[], target: number | ArrayLike<number>): void {
    this.counters.scored++
    if (this.classification) {
      let best = 0
      for (let i = 1; i < y.length; i++) if (y[i]! > y[best]!) best = i
      if (best === (typeof target === 'number' ? target : target[0])) this.counters.correct++
      return
    }
    let sum = 0
    for (let i = 0; i < y.length; i++) {
      const d = y[i]! - (typeof target === 'number' ? target : target[i]!)
      sum += d * d
    }
    this.counters.squaredError += sum / y.length
  }

  private reject(
    sink: FrameSink,
    encoding: FrameEncoding,
    error: ErrorFrame,
    seq: number,
    key?: string,
  ): void {
    this.counters.rejected++
    const frame: PartitionErrorFrame = { ...error, partition: this.partition, seq }
    if (key !== undefined) frame.key = key
    sink(encodeFrame(frame, encoding))
  }
}

/** JSON starts with `{` or `[` (after blanks); as msgpack those bytes would be a lone integer, never a frame. */
function looksLikeJson(data: Uint8Array): boolean {
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue
    return b === 0x7b || b === 0x5b
  }
  return false
}

import { RxrnnError } from '../../src/index.js'
import type { MetricsFrame, PredictionFrame, ServerFrame } from '../transport/protocol.js'
import type { WebSocketConnection } from '../transport/ws-source.js'
import { webSocketConnection } from '../transport/ws-source.js'
import type { FeedStep } from './feeds.js'
import { ErrorTally } from './score.js'

export interface ReplayOptions {
  /** The server, `ws://host:port`. */
  url: string
  /** The sequence the ticks belong to. */
  key: string
  steps: readonly FeedStep[]
  /** Baselines per step (the length of `FeedStep.baselines`). */
  baselines: number
  /** The first steps are the model's warm-up: answered but not scored. */
  warmup: number
  /** Ticks per second, as a live feed would send them; Infinity sends as fast as the server answers. */
  ratePerSecond: number
  /** Most ticks sent and not yet answered. Default 256. */
  maxInFlight?: number
  /** Every metrics frame the server pushes (about once a second). */
  onMetrics?: (metrics: MetricsFrame) => void
}

export interface ReplayProgress {
  sent: number
  answered: number
  total: number
}

export interface ReplayResult {
  /** Rows: the model, then each baseline; columns: the targets. */
  tally: ErrorTally
  /** Dates of the first and last scored steps. */
  scoredFrom: string
  scoredTo: string
  /** Ticks the server refused, with why (none expected). */
  rejected: { code: string; message: string }[]
  /**
   * With a multi-horizon server: the H-steps-ahead forecasts (row 0: the model, row 1:
   * persistence made at the same step) against the truth H − 1 steps later, in original units.
   */
  ahead?: { horizon: number; tally: ErrorTally }
  /** With intervals: scored steps whose target fell inside the interval (per target, scaled units), of `scored`. */
  intervals?: { covered: number; scored: number }
  elapsedMs: number
}

/**
 * A producer replaying a recorded feed into an rxrnn server, as a live one would: a WebSocket
 * client sending msgpack `tick` frames (x and the step's target y) at a steady rate, reading
 * the `prediction` frame that answers each tick (made before the server learned from that y),
 * and scoring it in original units next to the baselines.
 */
export class Replay {
  private readonly options: ReplayOptions
  private readonly maxInFlight: number
  private sent = 0
  private answered = 0
  private readonly tally: ErrorTally
  private readonly rejected: { code: string; message: string }[] = []
  private aheadTally: ErrorTally | undefined
  private horizon = 1
  private covered = 0
  private intervalScored = 0
  private connection: WebSocketConnection | undefined

  constructor(options: ReplayOptions) {
    this.options = options
    this.maxInFlight = options.maxInFlight ?? 256
    const targets = options.steps[0]?.truth.length ?? 1
    this.tally = new ErrorTally(1 + options.baselines, targets)
  }

  progress(): ReplayProgress {
    return { sent: this.sent, answered: this.answered, total: this.options.steps.length }
  }

  /** Connects, replays every step, and resolves once every tick is answered. */
  run(): Promise<ReplayResult> {
    const { url, key, steps, warmup, ratePerSecond, onMetrics } = this.options
    const total = steps.length
    const forecasts: ArrayLike<number>[] = new Array(1 + this.options.baselines)
    return new Promise<ReplayResult>((resolve, reject) => {
      // Reconnecting would lose the ticks in flight: on a loopback replay a dropped connection is an error.
      const connection = webSocketConnection(url, {
        reconnect: false,
        maxQueue: this.maxInFlight + 16,
        dropPolicy: 'drop-newest',
      })
      this.connection = connection
      const started = performance.now()
      let timer: ReturnType<typeof setInterval> | undefined
      let finished = false
      const finish = (error?: Error) => {
        if (finished) return
        finished = true
        clearInterval(timer)
        connection.close()
        if (error) {
          reject(error)
          return
        }
        const scored = steps.slice(warmup)
        resolve({
          ...(this.aheadTally ? { ahead: { horizon: this.horizon, tally: this.aheadTally } } : {}),
          ...(this.intervalScored > 0
            ? { intervals: { covered: this.covered, scored: this.intervalScored } }
            : {}),
          tally: this.tally,
          scoredFrom: scored[0]?.date ?? '',
          scoredTo: scored.at(-1)?.date ?? '',
          rejected: this.rejected,
          elapsedMs: performance.now() - started,
        })
      }
      const pump = () => {
        const due = Number.isFinite(ratePerSecond)
          ? Math.min(total, 1 + Math.floor(((performance.now() - started) * ratePerSecond) / 1000))
          : total
        while (this.sent < due && this.sent - this.answered < this.maxInFlight) {
          const step = steps[this.sent]!
          const tick = step.y
            ? { type: 'tick', key, id: this.sent, x: step.x, y: step.y }
            : { type: 'tick', key, id: this.sent, x: step.x }
          if (!connection.send(tick)) {
            finish(new RxrnnError('internal', `the send queue to ${url} overflowed; lower maxInFlight`))
            return
          }
          this.sent++
        }
        if (this.sent === total) clearInterval(timer)
      }
      const onPrediction = (id: number, y: ArrayLike<number>, frame: PredictionFrame) => {
        const step = steps[id]
        if (!step) return
        this.answered++
        if (id >= warmup) {
          forecasts[0] = step.toOriginal(y)
          for (let b = 0; b < step.baselines.length; b++) forecasts[b + 1] = step.baselines[b]!
          this.tally.add(forecasts, step.truth)
          this.scoreForecasting(step, steps[id + this.horizon - 1], frame)
        }
        if (this.answered === total) finish()
        else pump()
      }
      connection.messages$.subscribe({
        next: (message) => {
          const frame = message as ServerFrame
          switch (frame.type) {
            case 'welcome': {
              const { inputSize, outputSize } = frame.model
              const horizon = frame.model.horizon
              if (typeof horizon === 'number' && horizon > 1) {
                this.horizon = horizon
                this.aheadTally = new ErrorTally(2, outputSize)
              }
              const first = steps[0]
              if (first && (first.x.length !== inputSize || first.truth.length !== outputSize)) {
                finish(
                  new RxrnnError(
                    'bad_config',
                    `${url} serves a model of ${inputSize} inputs and ${outputSize} outputs; this feed has ${first.x.length} and ${first.truth.length}`,
                  ),
                )
                return
              }
              if (total === 0) {
                finish()
                return
              }
              connection.send({ type: 'subscribe', channels: ['metrics'] })
              pump()
              if (Number.isFinite(ratePerSecond)) timer = setInterval(pump, 10)
              return
            }
            case 'prediction':
              if (frame.id !== undefined) onPrediction(frame.id, frame.y, frame)
              return
            case 'metrics':
              onMetrics?.(frame)
              return
            case 'error':
              this.rejected.push({ code: frame.code, message: frame.message })
              // A refused tick is answered by its error: count it so the replay still ends.
              if (frame.id !== undefined && frame.id >= 0) {
                this.answered++
                if (this.answered === total) finish()
                else pump()
              }
              return
            default:
              return
          }
        },
        error: (error: unknown) => finish(error instanceof Error ? error : new Error(String(error))),
        complete: () =>
          finish(
            new RxrnnError(
              'internal',
              `${url} closed the connection after ${this.answered} of ${total} ticks were answered`,
            ),
          ),
      })
      connection.send({ type: 'hello' })
    })
  }

  /** Scores a prediction frame's `ahead` (against the truth `horizon` − 1 steps on) and its interval. */
  private scoreForecasting(step: FeedStep, later: FeedStep | undefined, frame: PredictionFrame): void {
    if (this.aheadTally && frame.ahead && later) {
      this.aheadTally.add([step.aheadToOriginal(frame.ahead), step.baselines[0]!], later.truth)
    }
    const { lower, upper } = frame
    if (lower && upper && step.y) {
      // In the scaled units the server sees; JSON would carry an uncalibrated bound as null.
      for (let i = 0; i < step.y.length; i++) {
        const lo = lower[i] ?? Number.NEGATIVE_INFINITY
        const hi = upper[i] ?? Number.POSITIVE_INFINITY
        this.intervalScored++
        if (step.y[i]! >= lo && step.y[i]! <= hi) this.covered++
      }
    }
  }

  /** Stops the replay (its promise rejects unless it has already ended). */
  close(): void {
    this.connection?.close()
  }
}

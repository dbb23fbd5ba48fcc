/**
 * `GET /metrics`: the server's figures in the Prometheus text format (prom-client), on a
 * registry of its own, so two servers in one process do not share or clash. Counters and gauges
 * are read from the learner and the server when scraped: the tick path only observes the
 * tick-duration histogram, which allocates nothing (prom-client's own `observe` makes a closure
 * and two objects per call).
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'

/** A histogram's values as prom-client's registry prints them. */
interface HistogramExport {
  name: string
  help: string
  type: 'histogram'
  aggregator: 'sum'
  values: { labels: Record<string, string | number>; value: number; metricName: string }[]
}

/**
 * A Prometheus histogram with fixed buckets, counted in place: `observe` is a loop over the
 * bounds and three additions. Registered on a prom-client registry as a metric of its own.
 *
 * @example
 * const h = new FastHistogram('rxrnn_tick_duration_seconds', 'Time per tick.', [1e-4, 1e-3, 1e-2])
 * registry.registerMetric(h as never)
 * h.observe(0.0004)
 */
export class FastHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly counts: Float64Array
  private sum = 0
  private count = 0

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length)
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return
    this.sum += value
    this.count++
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++
        return
      }
    }
  }

  /** What prom-client's registry reads: cumulative buckets, +Inf, sum and count. */
  async get(): Promise<HistogramExport> {
    const values: HistogramExport['values'] = []
    let cumulative = 0
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i]!
      values.push({
        labels: { le: this.bounds[i]! },
        value: cumulative,
        metricName: `${this.name}_bucket`,
      })
    }
    values.push({
      labels: { le: '+Inf' },
      value: this.count,
      metricName: `${this.name}_bucket`,
    })
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` })
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` })
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' }
  }

  reset(): void {
    this.counts.fill(0)
    this.sum = 0
    this.count = 0
  }
}

/** Where the figures come from (read at scrape time). */
export interface MetricSources {
  ticks(): number
  updates(): number
  skippedUpdates(): number
  rolledBackUpdates(): number
  /** Mean training loss (NaN before the first update). */
  loss(): number
  gradNorm(): number
  clipRate(): number
  keys(): number
  evictedKeys(): number
  connections(): number
  producers(): number
  subscribers(): number
  rejectedByCode(): Iterable<[string, number]>
  droppedFrames(): number
  sampledOutFrames(): number
  slowSubscribersClosed(): number
  rateLimited(): number
  refusedByReason(): Iterable<[string, number]>
  deadPeers(): number
  bufferedBytes(): number
}

/**
 * @example
 * const metrics = new ServerMetrics(sources)
 * res.writeHead(200, { 'content-type': metrics.contentType }).end(await metrics.text())
 */
export class ServerMetrics {
  readonly registry = new Registry()
  /** Seconds from a tick's arrival to its reply being queued. */
  readonly tickSeconds: FastHistogram

  constructor(s: MetricSources) {
    const registers = [this.registry]
    const counter = (name: string, help: string, read: () => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset()
          this.inc(read())
        },
      })
    }
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const v = read()
          if (Number.isFinite(v)) this.set(v)
          else this.reset()
        },
      })
    }
    const labelled = (name: string, help: string, label: string, read: () => Iterable<[string, number]>) => {
      new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset()
          for (const [value, n] of read()) this.inc({ [label]: value }, n)
        },
      })
    }
    counter('rxrnn_ticks_total', 'Ticks accepted (predicted and learned from).', s.ticks)
    counter('rxrnn_updates_total', 'Weight updates run (optimizer steps attempted).', s.updates)
    counter(
      'rxrnn_skipped_updates_total',
      'Updates skipped for a non-finite loss or gradient.',
      s.skippedUpdates,
    )
    counter(
      'rxrnn_rolled_back_updates_total',
      'Updates undone because the loss diverged.',
      s.rolledBackUpdates,
    )
    gauge('rxrnn_keys', 'Keys (sequences) with a live hidden state.', s.keys)
    counter('rxrnn_evicted_keys_total', 'Keys evicted (idle, or over --max-keys).', s.evictedKeys)
    gauge('rxrnn_connections', 'Open WebSocket connections.', s.connections)
    gauge('rxrnn_producers', 'Open connections that have sent a tick.', s.producers)
    gauge('rxrnn_subscribers', 'Open connections with a subscription.', s.subscribers)
    gauge('rxrnn_loss', 'Training loss, exponential moving average over updates.', s.loss)
    gauge('rxrnn_grad_norm', 'Global gradient norm of the last update, before clipping.', s.gradNorm)
    gauge('rxrnn_clip_rate', 'Fraction of recent updates whose gradient was clipped.', s.clipRate)
    labelled(
      'rxrnn_rejected_frames_total',
      'Frames answered with an error, by error code.',
      'code',
      s.rejectedByCode,
    )
    counter('rxrnn_dropped_frames_total', 'Frames dropped for slow readers (byte budgets).', s.droppedFrames)
    counter('rxrnn_sampled_out_frames_total', "Frames left out by subscribers' maxRate.", s.sampledOutFrames)
    counter(
      'rxrnn_slow_subscribers_closed_total',
      'Connections closed (1013) for staying over their byte budget.',
      s.slowSubscribersClosed,
    )
    counter(
      'rxrnn_rate_limited_total',
      'Ticks refused for creating keys too fast (rate_limited).',
      s.rateLimited,
    )
    labelled(
      'rxrnn_refused_requests_total',
      'HTTP requests and upgrades refused, by reason.',
      'reason',
      s.refusedByReason,
    )
    counter(
      'rxrnn_dead_peers_total',
      'Connections terminated for answering no ping within --idle-timeout.',
      s.deadPeers,
    )
    gauge('rxrnn_buffered_bytes', 'Bytes held for connections that have not read them yet.', s.bufferedBytes)
    this.tickSeconds = new FastHistogram(
      'rxrnn_tick_duration_seconds',
      'Time to handle one tick: predict, score, queue the reply (deferred updates excluded).',
      [1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2],
    )
    this.registry.registerMetric(this.tickSeconds as never)
    // Process metrics (CPU, memory, handles, GC, event-loop lag as nodejs_eventloop_lag_seconds).
    collectDefaultMetrics({ register: this.registry })
  }

  get contentType(): string {
    return this.registry.contentType
  }

  text(): Promise<string> {
    return this.registry.metrics()
  }
}

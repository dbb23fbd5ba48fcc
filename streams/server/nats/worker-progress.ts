/**
 * What the gateway knows of its workers: the latest metrics frame each publishes on
 * `<prefix>.metrics.<worker>`, summed for the metrics frame and the fixed Prometheus names
 * (`rxrnn_ticks_total`, `rxrnn_updates_total`, `rxrnn_keys`), and per worker and partition as
 * labelled series (`rxrnn_partition_*`) on the server's registry.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import type { ForecastingFigures } from '../forecasting-metrics.js'
import type { PartitionMetrics, WorkerMetricsFrame } from './worker.js'

/** Workers remembered at most (the oldest forgotten first): a flood of made-up ids cannot grow memory. */
const MAX_WORKERS = 4096
/** Partitions one worker's frame may list at most. */
const MAX_PARTITIONS = 100_000

/** The workers' figures summed. */
export interface WorkerTotals {
  workers: number
  partitionsOwned: number
  ticks: number
  updates: number
  rejected: number
  keys: number
  /** Mean squared error over the partitions' scored ticks, NaN when none is scored. */
  mse: number
  /** Forecasting, summed over the partitions that report it (null when none does). */
  forecast: { outcomes: number; covered: number; anomalies: number; drifts: number } | null
}

/**
 * @example
 * const progress = new WorkerProgress()
 * nc.subscribe(names.allMetrics, { callback: (_e, msg) => progress.receive(msg.data) })
 * progress.register(endpoint.prometheus.registry)
 */
export class WorkerProgress {
  private readonly latest = new Map<string, WorkerMetricsFrame>()

  /** The latest metrics frame of each worker, by worker id. */
  get workers(): ReadonlyMap<string, WorkerMetricsFrame> {
    return this.latest
  }

  /** Takes a message from the metrics subjects; one that is not a worker's metrics frame is ignored. */
  receive(data: Uint8Array): void {
    let frame: unknown
    try {
      frame = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'))
    } catch {
      return
    }
    if (!isWorkerMetrics(frame)) return
    if (!this.latest.delete(frame.worker) && this.latest.size >= MAX_WORKERS) {
      this.latest.delete(this.latest.keys().next().value as string)
    }
    this.latest.set(frame.worker, frame)
  }

  totals(): WorkerTotals {
    const t: WorkerTotals = {
      workers: this.latest.size,
      partitionsOwned: 0,
      ticks: 0,
      updates: 0,
      rejected: 0,
      keys: 0,
      mse: Number.NaN,
      forecast: null,
    }
    let scoredError = 0
    let scored = 0
    for (const w of this.latest.values()) {
      t.ticks += w.ticks
      t.updates += w.updates
      t.rejected += w.rejected
      for (const p of w.partitions) {
        t.keys += p.keys
        t.partitionsOwned++
        if (p.forecast) {
          const f = (t.forecast ??= { outcomes: 0, covered: 0, anomalies: 0, drifts: 0 })
          f.outcomes += p.forecast.outcomes
          f.covered += p.forecast.covered
          f.anomalies += p.forecast.anomalies
          f.drifts += p.forecast.drifts
        }
        if (p.mse !== null) {
          scoredError += p.mse * p.ticks
          scored += p.ticks
        }
      }
    }
    if (scored > 0) t.mse = scoredError / scored
    return t
  }

  /** The workers' forecasting figures summed, as a server reports its own; null when none forecasts. */
  forecastFigures(): ForecastingFigures | null {
    const f = this.totals().forecast
    if (!f) return null
    return {
      intervalCoverage: f.outcomes > 0 ? f.covered / f.outcomes : null,
      anomalies: f.anomalies,
      drifts: f.drifts,
    }
  }

  /** Registers `rxrnn_workers` and the per-partition series (labels worker and partition). */
  register(registry: Registry): void {
    const registers = [registry]
    const latest = this.latest
    new Gauge({
      name: 'rxrnn_workers',
      help: 'Workers whose metrics this gateway has received.',
      registers,
      collect() {
        this.set(latest.size)
      },
    })
    const series: [string, string, 'counter' | 'gauge', (p: PartitionMetrics) => number | null][] = [
      ['rxrnn_partition_ticks_total', 'Ticks a partition learned from.', 'counter', (p) => p.ticks],
      [
        'rxrnn_partition_updates_total',
        "Weight updates a partition's model ran.",
        'counter',
        (p) => p.updates,
      ],
      [
        'rxrnn_partition_rejected_total',
        'Ticks and messages a partition refused.',
        'counter',
        (p) => p.rejected,
      ],
      ['rxrnn_partition_sequence', 'Last stream sequence a partition applied.', 'gauge', (p) => p.seq],
      [
        'rxrnn_partition_checkpointed_sequence',
        'Last stream sequence a partition checkpointed (and acked).',
        'gauge',
        (p) => p.checkpointed,
      ],
      ['rxrnn_partition_keys', 'Keys a partition holds.', 'gauge', (p) => p.keys],
      ['rxrnn_partition_mse', "Mean squared error of a partition's predictions.", 'gauge', (p) => p.mse],
    ]
    for (const [name, help, type, value] of series) {
      const collect = function (this: Counter<'worker' | 'partition'> | Gauge<'worker' | 'partition'>) {
        this.reset()
        for (const w of latest.values()) {
          for (const p of w.partitions) {
            const v = value(p)
            if (v === null || !Number.isFinite(v)) continue
            const labels = { worker: w.worker, partition: String(p.partition) }
            if (this instanceof Counter) this.inc(labels, Math.max(0, v))
            else this.set(labels, v)
          }
        }
      }
      const config = { name, help, labelNames: ['worker', 'partition'] as const, registers, collect }
      if (type === 'counter') new Counter(config)
      else new Gauge(config)
    }
  }
}

function isWorkerMetrics(value: unknown): value is WorkerMetricsFrame {
  if (typeof value !== 'object' || value === null) return false
  const f = value as Record<string, unknown>
  if (f.type !== 'worker-metrics' || typeof f.worker !== 'string' || f.worker.length > 256) return false
  if (!finite(f.ticks) || !finite(f.updates) || !finite(f.rejected)) return false
  if (!Array.isArray(f.partitions) || f.partitions.length > MAX_PARTITIONS) return false
  for (const p of f.partitions as unknown[]) {
    if (typeof p !== 'object' || p === null) return false
    const m = p as Record<string, unknown>
    for (const field of ['partition', 'seq', 'checkpointed', 'ticks', 'rejected', 'updates', 'keys']) {
      if (!finite(m[field])) return false
    }
    if (m.mse !== null && !finite(m.mse)) return false
    if (m.forecast !== undefined) {
      const f = m.forecast as Record<string, unknown> | null
      if (typeof f !== 'object' || f === null) return false
      for (const field of ['outcomes', 'covered', 'anomalies', 'drifts']) if (!finite(f[field])) return false
    }
  }
  return true
}

function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v)
}

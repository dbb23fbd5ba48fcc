/**
 * WorkerProgress, the gateway's view of its workers, without NATS: what it sums, what it refuses
 * (anyone who can publish on the metrics subjects can send it anything), and its series in a
 * prom-client registry.
 */
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import type { PartitionMetrics, WorkerMetricsFrame } from '../../../../streams/server/nats/worker.js'
import { WorkerProgress } from '../../../../streams/server/nats/worker-progress.js'

function partition(p: number, ticks: number, mse: number | null): PartitionMetrics {
  return {
    partition: p,
    seq: ticks,
    checkpointed: 0,
    ticks,
    rejected: 1,
    updates: ticks / 2,
    keys: 3,
    mse,
    accuracy: null,
  }
}

function frame(worker: string, partitions: PartitionMetrics[]): WorkerMetricsFrame {
  const f: WorkerMetricsFrame = {
    type: 'worker-metrics',
    worker,
    partitions,
    ticks: 0,
    rejected: 0,
    updates: 0,
  }
  for (const p of partitions) {
    f.ticks += p.ticks
    f.rejected += p.rejected
    f.updates += p.updates
  }
  return f
}

const bytes = (value: unknown) =>
  new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value))

describe('WorkerProgress', () => {
  it('sums the latest frame of each worker; the loss is the ticks-weighted MSE of the scored partitions', () => {
    const progress = new WorkerProgress()
    progress.receive(bytes(frame('a', [partition(0, 10, 0.5)])))
    progress.receive(bytes(frame('a', [partition(0, 20, 0.2), partition(1, 40, null)])))
    progress.receive(bytes(frame('b', [partition(2, 60, 0.4)])))
    expect(progress.totals()).toEqual({
      workers: 2,
      partitionsOwned: 3,
      ticks: 120,
      updates: 60,
      rejected: 3,
      keys: 9,
      mse: (20 * 0.2 + 60 * 0.4) / 80,
      forecast: null,
    })
    // Forecasting figures add up over the partitions that report them.
    const forecast = (covered: number) => ({ outcomes: 100, covered, anomalies: 2, drifts: 1 })
    progress.receive(bytes(frame('b', [{ ...partition(2, 60, 0.4), forecast: forecast(90) }])))
    progress.receive(bytes(frame('c', [{ ...partition(3, 5, 0.4), forecast: forecast(80) }])))
    expect(progress.totals().forecast).toEqual({ outcomes: 200, covered: 170, anomalies: 4, drifts: 2 })
    // A malformed one is not a metrics frame at all.
    progress.receive(bytes(frame('d', [{ ...partition(4, 5, 0.4), forecast: { outcomes: 'x' } as never }])))
    expect(progress.totals().workers).toBe(3)
  })

  it('ignores what is not a worker metrics frame: not JSON, another type, missing or non-finite figures', () => {
    const progress = new WorkerProgress()
    const good = frame('a', [partition(0, 10, 0.5)])
    for (const bad of [
      'not json',
      '',
      'null',
      { ...good, type: 'metrics' },
      { ...good, worker: 7 },
      { ...good, worker: 'x'.repeat(257) },
      { ...good, ticks: 'many' },
      { ...good, partitions: 'all' },
      { ...good, partitions: [null] },
      { ...good, partitions: [{ ...partition(0, 1, null), keys: '3' }] },
      { ...good, partitions: [{ ...partition(0, 1, null), mse: 'NaN' }] },
    ]) {
      progress.receive(bytes(bad))
    }
    expect(progress.totals().workers).toBe(0)
    expect(progress.totals().mse).toBeNaN()
  })

  it('remembers at most 4096 workers: a flood of made-up ids forgets the oldest, not memory', () => {
    const progress = new WorkerProgress()
    for (let i = 0; i < 5000; i++) progress.receive(bytes(frame(`w${i}`, [])))
    expect(progress.workers.size).toBe(4096)
    expect(progress.workers.has('w0')).toBe(false)
    expect(progress.workers.has('w4999')).toBe(true)
  })

  it('shows each worker and partition as labelled series, escaping what a worker id holds', async () => {
    const progress = new WorkerProgress()
    const registry = new Registry()
    progress.register(registry)
    progress.receive(bytes(frame('host "1"\n', [partition(0, 10, 0.5), partition(5, 4, null)])))
    const text = await registry.metrics()
    expect(text).toMatch(/^rxrnn_workers 1$/m)
    expect(text).toContain('rxrnn_partition_ticks_total{worker="host \\"1\\"\\n",partition="0"} 10')
    expect(text).toContain('rxrnn_partition_ticks_total{worker="host \\"1\\"\\n",partition="5"} 4')
    expect(text).toContain('rxrnn_partition_mse{worker="host \\"1\\"\\n",partition="0"} 0.5')
    // No MSE yet for partition 5: no sample, rather than a made-up value.
    expect(text).not.toContain('rxrnn_partition_mse{worker="host \\"1\\"\\n",partition="5"}')
    expect(text).toMatch(/^# TYPE rxrnn_partition_sequence gauge$/m)
  })
})

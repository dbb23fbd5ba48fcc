/**
 * Forecasting in the NATS workers: a partition's ticks get horizon rows, calibrated intervals,
 * anomaly scores and drift alarms as under `serve`; the forecasting state rides in the partition
 * checkpoint, so a resumed partition answers exactly as an uninterrupted one; and end to end on a
 * real nats-server (skipped, saying so, without one) the gateway relays the fields, stamps `t` on
 * ticks without one, and sends drift alarms to `updates` subscribers.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TrainerOptions } from '../../../../src/index.js'
import { createModel, KeyedTrainer, OnlineTrainer } from '../../../../src/index.js'
import type { ServeForecastingOptions } from '../../../../streams/server/forecasting.js'
import { newServerKeyExtras } from '../../../../streams/server/learner.js'
import { type RxrnnGateway, serveGateway } from '../../../../streams/server/nats/gateway.js'
import {
  decodePartitionCheckpoint,
  encodePartitionCheckpoint,
} from '../../../../streams/server/nats/partition-checkpoint.js'
import { PartitionProcessor } from '../../../../streams/server/nats/partition-processor.js'
import { type RxrnnWorker, startWorker } from '../../../../streams/server/nats/worker.js'
import { decodeFrame, encodeFrame } from '../../../../streams/transport/codec.js'
import {
  type NatsServer,
  natsServerPath,
  natsSkipMessage,
  startNatsServer,
} from '../../../helpers/nats-server.js'
import { FrameClient, waitUntil } from '../../../helpers/wire-client.js'

const H = 2
const MODEL = { cell: 'gru' as const, inputSize: 2, hiddenSize: 6, outputSize: H, seed: 4 }
const TRAINER: TrainerOptions = {
  k1: 4,
  k2: 4 + H - 1,
  horizon: H,
  loss: 'mse',
  optimizer: { type: 'adam', lr: 0.01 },
}
const FORECASTING: ServeForecastingOptions = {
  coverage: 0.9,
  timeFeature: true,
  drift: { detector: 'page-hinkley', warmup: 30, response: 'raise-lr', raiseUpdates: 10_000 },
}

/** One key's sine; from `shift` on its level jumps (a regime change the drift detector should catch). */
function ticks(from: number, to: number, shift = Number.POSITIVE_INFINITY) {
  const out: Record<string, unknown>[] = []
  for (let i = from; i < to; i++) {
    const level = i >= shift ? 4 : 0
    out.push({
      type: 'tick',
      key: 'k',
      x: [Math.sin(i / 5) + level],
      y: [Math.sin((i + 1) / 5) + level],
      t: 1_700_000_000_000 + i * 1000,
      id: i,
    })
  }
  return out
}

const processor = (keyed?: KeyedTrainer<ReturnType<typeof newServerKeyExtras>>, seq = 0) =>
  new PartitionProcessor(
    0,
    1,
    keyed ??
      new KeyedTrainer(new OnlineTrainer(createModel({ ...MODEL, inputSize: 2 }), TRAINER), {
        extras: newServerKeyExtras,
      }),
    seq,
    FORECASTING,
  )

function run(p: PartitionProcessor, feed: Record<string, unknown>[], first: number) {
  const frames: Record<string, unknown>[] = []
  for (const [i, tick] of feed.entries()) {
    p.apply(first + i, encodeFrame(tick, 'msgpack'), (f) => {
      const d = decodeFrame(f as Uint8Array, true)
      if (d.ok) frames.push(d.value as Record<string, unknown>)
    })
  }
  return frames
}

describe('a partition that forecasts', () => {
  it('answers with y = ahead[0], H rows, intervals and anomaly scores; a tick without t is refused, changing nothing', () => {
    const p = processor()
    const frames = run(p, ticks(0, 60), 1)
    expect(frames).toHaveLength(60)
    for (const f of frames) {
      expect(f.type).toBe('prediction')
      expect(f.ahead).toHaveLength(H)
      expect((f.ahead as number[][])[0]).toEqual(f.y)
      expect(f.lower).toHaveLength(1)
      expect(f.upper).toHaveLength(1)
      expect(typeof f.anomaly).toBe('number')
    }
    const before = p.keyed.snapshot()
    const [refused] = run(p, [{ type: 'tick', key: 'k', x: [0.5], y: [0.4] }], 61)
    expect(refused).toMatchObject({ type: 'error', code: 'bad_input', key: 'k' })
    expect(refused!.message).toMatch(/t is missing/)
    expect(p.keyed.snapshot()).toEqual(before)
  })

  it('resumes from its checkpoint exactly: intervals, anomaly scores, drift state and the raised learning rate', () => {
    const feed = ticks(0, 400, 150)
    const whole = processor()
    const uninterrupted = run(whole, feed, 1)
    const drifts = uninterrupted.filter((f) => f.drift)
    expect(drifts.length).toBeGreaterThan(0)
    expect((drifts[0]!.drift as { step: number }).step).toBeGreaterThan(150)
    expect((drifts[0]!.drift as { step: number }).step).toBeLessThan(200)

    const first = processor()
    run(first, feed.slice(0, 250), 1)
    const bytes = encodePartitionCheckpoint({
      partition: 0,
      partitions: 1,
      seq: first.seq,
      weights: 'partition',
      keyed: first.keyed.snapshot(),
      forecast: first.forecasting!.snapshot(),
    })
    const saved = decodePartitionCheckpoint(bytes, 0, 1, 'test')
    const resumed = processor(
      KeyedTrainer.fromSnapshot(saved.keyed, { extras: newServerKeyExtras }),
      saved.seq,
    )
    resumed.resumeForecasting(saved.forecast, 'test')
    expect(run(resumed, feed.slice(250), 251)).toEqual(uninterrupted.slice(250))
    // A checkpoint without forecasting cannot resume a worker that forecasts, and the other way round.
    expect(() => processor().resumeForecasting(undefined, 'dir')).toThrow(/written without forecasting/)
    // Nor one written with other settings (here without intervals): the worker says what to do.
    const other = new PartitionProcessor(
      0,
      1,
      KeyedTrainer.fromSnapshot(saved.keyed, { extras: newServerKeyExtras }),
      saved.seq,
      { timeFeature: true },
    )
    expect(() => other.resumeForecasting(saved.forecast, 'dir')).toThrow(
      /settings cannot take .*written with, or give a fresh --checkpoint-dir/,
    )
  })
})

if (natsServerPath === null) console.warn(natsSkipMessage)

describe.skipIf(natsServerPath === null)('forecasting through the gateway and a worker', () => {
  let nats: NatsServer
  let dir: string
  let worker: RxrnnWorker
  let gateway: RxrnnGateway

  beforeAll(async () => {
    nats = await startNatsServer()
    dir = await mkdtemp(join(tmpdir(), 'rxrnn-nats-forecast-'))
    worker = await startWorker({
      servers: nats.url,
      partitions: 2,
      checkpointDir: dir,
      model: MODEL,
      trainer: TRAINER,
      forecasting: FORECASTING,
      metricsIntervalMs: 50,
    })
    gateway = await serveGateway({
      servers: nats.url,
      partitions: 2,
      expect: { inputSize: 1, outputSize: 1, task: 'regression' },
      metricsIntervalMs: 50,
    })
  })

  afterAll(async () => {
    await gateway?.close()
    await worker?.close()
    await nats?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('relays ahead, intervals and anomaly scores; ticks without t get the gateway’s time; drift goes to updates', async () => {
    const watcher = await FrameClient.open(gateway.url)
    watcher.send({ type: 'subscribe', channels: ['updates', 'metrics'], id: 1 })
    await watcher.waitFor((f) => f.type === 'subscribed')
    const producer = await FrameClient.open(gateway.url)
    // No t: the gateway stamps its clock, which the worker reads from the log.
    for (const { key, x, y, id } of ticks(0, 300, 150)) producer.send({ type: 'tick', key, x, y, id })
    await waitUntil(
      () => producer.frames.filter((f) => f.type === 'prediction').length === 300,
      '300 answers',
      20_000,
    )
    const answers = producer.frames.filter((f) => f.type === 'prediction')
    expect(producer.frames.filter((f) => f.type === 'error')).toEqual([])
    for (const a of answers) {
      expect(a.ahead).toHaveLength(H)
      expect((a.ahead as number[][])[0]).toEqual(a.y)
      expect(a.lower).toHaveLength(1)
      expect(typeof a.anomaly).toBe('number')
    }
    const i = await watcher.waitFor((f) => f.type === 'drift')
    expect(watcher.frames[i]).toMatchObject({
      type: 'drift',
      key: 'k',
      detector: 'page-hinkley',
      response: 'raise-lr',
    })
    const m = await watcher.waitFor((f) => f.type === 'metrics' && typeof f.intervalCoverage === 'number')
    expect(watcher.frames[m]!.drifts).toBeGreaterThan(0)
    // And on GET /metrics, as serve shows its own.
    const text = await (await fetch(`http${gateway.url.slice(2)}/metrics`)).text()
    expect(Number(/^rxrnn_drifts_total (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0)
    expect(Number(/^rxrnn_interval_coverage (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0.5)
    watcher.close()
    producer.close()
  })

  it('a restart with other model flags or without the forecasting settings is refused, naming what differs', async () => {
    await worker.close()
    const base = {
      servers: nats.url,
      partitions: 2,
      checkpointDir: dir,
      trainer: TRAINER,
      metricsIntervalMs: 0,
    }
    await expect(
      startWorker({ ...base, model: { ...MODEL, hiddenSize: 8 }, forecasting: FORECASTING }),
    ).rejects.toThrow(/--hidden-size is 8 but the checkpoint's hiddenSize is 6/)
    // (The horizon alone still forecasts: its state cannot take the intervals and drift saved.)
    await expect(startWorker({ ...base, model: MODEL })).rejects.toThrow(
      /forecasting state this worker's settings cannot take/,
    )
    const again = await startWorker({ ...base, model: MODEL, forecasting: FORECASTING })
    await again.close()
  })
})

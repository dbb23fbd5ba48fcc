/**
 * The gateway end to end on a real nats-server (skipped, saying so, without one): producers speak
 * the WebSocket protocol to `serveGateway`, a worker learns from the partition streams, and each
 * tick's prediction comes back to the connection that sent it, with its own id, once; the answers
 * equal, bit for bit, a replay of the streams' contents; metrics show the worker.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NatsConnection } from '@nats-io/transport-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createModel, KeyedTrainer, OnlineTrainer } from '../../../../src/index.js'
import { type RxrnnGateway, serveGateway } from '../../../../streams/server/nats/gateway.js'
import { PartitionProcessor } from '../../../../streams/server/nats/partition-processor.js'
import { partitionSeed, type RxrnnWorker, startWorker } from '../../../../streams/server/nats/worker.js'
import { decodeFrame } from '../../../../streams/transport/codec.js'
import { startServeProcess, stopProcess } from '../../../helpers/cli-process.js'
import {
  type NatsServer,
  natsServerPath,
  natsSkipMessage,
  startNatsServer,
} from '../../../helpers/nats-server.js'
import { type Frame, FrameClient, waitUntil } from '../../../helpers/wire-client.js'
import { tickFeed } from './nats-test-kit.js'

const PARTITIONS = 3
const model = { cell: 'gru' as const, inputSize: 2, hiddenSize: 6, outputSize: 1, seed: 4 }
const trainer = { k1: 4, loss: 'mse' as const, optimizer: { type: 'adam' as const, lr: 0.01 } }

if (natsServerPath === null) console.warn(natsSkipMessage)

describe.skipIf(natsServerPath === null)('the WebSocket gateway to NATS workers', () => {
  let nats: NatsServer
  let nc: NatsConnection
  let dir: string
  let worker: RxrnnWorker
  let gateway: RxrnnGateway

  beforeAll(async () => {
    nats = await startNatsServer()
    const { connect } = await import('@nats-io/transport-node')
    nc = await connect({ servers: nats.url })
    dir = await mkdtemp(join(tmpdir(), 'rxrnn-gateway-'))
    worker = await startWorker({
      servers: nats.url,
      partitions: PARTITIONS,
      checkpointDir: dir,
      model,
      trainer,
      metricsIntervalMs: 50,
      streamMaxAgeMs: 3_600_000,
    })
    gateway = await serveGateway({
      servers: nats.url,
      partitions: PARTITIONS,
      expect: { inputSize: 2, outputSize: 1, task: 'regression' },
      metricsIntervalMs: 50,
    })
  })

  afterAll(async () => {
    await gateway?.close()
    await worker?.close()
    await nc?.close()
    await nats?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('answers each tick to its sender, once, as a replay of the partition streams predicts', async () => {
    const producers = await Promise.all([FrameClient.open(gateway.url), FrameClient.open(gateway.url)])
    const watcher = await FrameClient.open(gateway.url)
    watcher.send({ type: 'subscribe', channels: ['metrics'] })
    // The same ids on both connections, different keys: answers must not cross.
    const feeds = [tickFeed(300, 6), tickFeed(300, 6).map((t) => ({ ...t, key: `other-${t.key}` }))]
    for (let i = 0; i < 300; i++) {
      producers[0]!.send(feeds[0]![i], 'msgpack')
      producers[1]!.send(feeds[1]![i], 'json')
    }
    producers[0]!.send({ type: 'tick', key: 'bad', x: [1], id: 9999 })
    for (const [c, p] of producers.entries()) {
      await waitUntil(() => p.frames.length >= 300 + (c === 0 ? 1 : 0), `producer ${c} answered`, 15_000)
    }
    const bad = producers[0]!.frames.find((f) => f.type === 'error')
    expect(bad).toMatchObject({ code: 'bad_input', id: 9999 })
    const answers = new Map<string, Frame>()
    for (const [c, p] of producers.entries()) {
      const predictions = p.frames.filter((f) => f.type === 'prediction')
      expect(predictions).toHaveLength(300)
      for (const f of predictions) {
        expect(f.key).toBe(feeds[c]![f.id as number]!.key)
        expect(f).not.toHaveProperty('partition')
        answers.set(`${f.key}/${f.id}`, f)
      }
    }
    expect(answers.size).toBe(600)

    // Replaying every partition stream into a fresh processor gives the very same answers.
    const { jetstreamManager } = await import('@nats-io/jetstream')
    const jsm = await jetstreamManager(nc)
    expect((await jsm.streams.info('rxrnn_ticks_0')).config.max_age).toBe(3_600_000 * 1_000_000)
    let replayed = 0
    for (let p = 0; p < PARTITIONS; p++) {
      const processor = new PartitionProcessor(
        p,
        PARTITIONS,
        new KeyedTrainer(new OnlineTrainer(createModel({ ...model, seed: partitionSeed(4, p) }), trainer), {
          staggerUpdates: true,
        }),
        0,
      )
      const last = (await jsm.streams.info(`rxrnn_ticks_${p}`)).state.last_seq
      for (let seq = 1; seq <= last; seq++) {
        const message = await jsm.streams.getMessage(`rxrnn_ticks_${p}`, { seq })
        const ticks = decodeFrame(message!.data, true)
        const sent = (ticks.ok ? (ticks.value as { key: string }[]) : []).map((t) => t.key)
        let i = 0
        processor.apply(seq, message!.data, (frame) => {
          const replay = decodeFrame(frame as Uint8Array, true)
          if (!replay.ok) throw new Error('the replay answered with an undecodable frame')
          const y = (replay.value as { y: number[] }).y
          const key = sent[i++]!
          const original = [...answers.values()].find(
            (a) => a.key === key && a.y !== undefined && Object.is((a.y as number[])[0], y[0]),
          )
          expect(original, `partition ${p} seq ${seq} key ${key}`).toBeDefined()
          replayed++
        })
      }
    }
    expect(replayed).toBe(600)

    // Metrics: the worker's figures, summed, on the WebSocket and on GET /metrics.
    await watcher.waitFor((f) => f.type === 'metrics' && f.events === 600 && f.workers === 1, 0, 10_000)
    const text = await (await fetch(`http://127.0.0.1:${gateway.port}/metrics`)).text()
    expect(text).toMatch(/^rxrnn_ticks_total 600$/m)
    expect(text).toMatch(/rxrnn_partition_ticks_total\{worker="[^"]+",partition="0"\} \d+/)
    const page = await fetch(`http://127.0.0.1:${gateway.port}/`)
    expect(page.headers.get('content-type')).toMatch(/text\/html/)
    await Promise.all([...producers, watcher].map((c) => c.close()))
  }, 30_000)

  it('runs as `rxrnn serve --nats <url> --partitions <P>`', async () => {
    const serve = await startServeProcess([
      '--nats',
      nats.url,
      '--partitions',
      String(PARTITIONS),
      '--port',
      '0',
    ])
    try {
      const client = await FrameClient.open(serve.url)
      client.send({ type: 'tick', key: 'cli-key', x: [0.5, -0.5], y: 0.25, id: 41 }, 'json')
      await client.waitFor((f) => f.type === 'prediction' && f.id === 41 && f.key === 'cli-key', 0, 10_000)
      await client.close()
      serve.child.kill('SIGTERM')
      expect((await serve.exited).code).toBe(0)
    } finally {
      await stopProcess(serve)
    }
  }, 30_000)
})

/**
 * `--weights shared` on a real nats-server (skipped, saying so, without one): two workers, each
 * owning half the partitions, learn one model by exchanging summed weight changes through a KV
 * entry, and predict a task about as well as one process that sees every tick.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NatsConnection } from '@nats-io/transport-node'
import { unpack } from 'msgpackr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ModelConfig, TrainerOptions } from '../../../../src/index.js'
import { createModel, KeyedTrainer, OnlineTrainer } from '../../../../src/index.js'
import { readPartitionCheckpoint } from '../../../../streams/server/nats/partition-checkpoint.js'
import { startWorker } from '../../../../streams/server/nats/worker.js'
import { startCliProcess, stopProcess } from '../../../helpers/cli-process.js'
import {
  type NatsServer,
  natsServerPath,
  natsSkipMessage,
  startNatsServer,
} from '../../../helpers/nats-server.js'
import { collectPredictions, publishTicks, tickFeed, waitFor } from './nats-test-kit.js'

const PARTITIONS = 4
const model: ModelConfig = { cell: 'gru', inputSize: 2, hiddenSize: 12, outputSize: 1, seed: 11 }
const trainer: TrainerOptions = { k1: 4, loss: 'mse', optimizer: { type: 'adam', lr: 0.01 }, clipNorm: 1 }

if (natsServerPath === null) console.warn(natsSkipMessage)

describe.skipIf(natsServerPath === null)('shared weights across workers', () => {
  let nats: NatsServer
  let nc: NatsConnection
  let dir: string

  beforeAll(async () => {
    nats = await startNatsServer()
    const { connect } = await import('@nats-io/transport-node')
    nc = await connect({ servers: nats.url })
    dir = await mkdtemp(join(tmpdir(), 'rxrnn-shared-'))
  })

  afterAll(async () => {
    await nc?.close()
    await nats?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('learns a task about as well as one process (prequential error)', async () => {
    const ticks = tickFeed(6000, 16)
    const secondHalf = (error: (i: number) => number): number => {
      let sum = 0
      for (let i = ticks.length / 2; i < ticks.length; i++) sum += error(i)
      return sum / (ticks.length / 2)
    }

    // One process: one model sees every tick in order.
    const single = new KeyedTrainer(new OnlineTrainer(createModel(model), trainer), { staggerUpdates: true })
    const singleErrors = ticks.map(
      (t, i) => (single.observe(t.key, t.x, t.y, i).prediction[0]! - t.y[0]!) ** 2,
    )
    const singleMse = secondHalf((i) => singleErrors[i]!)

    const options = {
      servers: nats.url,
      partitions: PARTITIONS,
      weights: 'shared' as const,
      syncEvery: 1,
      model,
      trainer,
      metricsIntervalMs: 0,
    }
    const workers = await Promise.all([
      startWorker({ ...options, own: [0, 1], checkpointDir: join(dir, 'a') }),
      startWorker({ ...options, own: [2, 3], checkpointDir: join(dir, 'b') }),
    ])
    const predictions = collectPredictions(nc, 'rxrnn')
    await publishTicks(nc, 'rxrnn', PARTITIONS, ticks, 8)
    await waitFor(
      () => predictions.answered === ticks.length,
      20_000,
      () => `every tick answered (${predictions.answered} of ${ticks.length})`,
    )
    const sharedMse = secondHalf((i) => (predictions.byId.get(i)![0]!.y[0]! - ticks[i]!.y[0]!) ** 2)
    const versions = workers.map((w) => w.metrics().weightsVersion!)
    await Promise.all(workers.map((w) => w.close()))

    console.info(
      `prequential MSE, second half: one process ${singleMse.toFixed(5)}, shared across 2 workers ${sharedMse.toFixed(5)}`,
    )
    // The exchange is asynchronous, so the figure varies from run to run (measured: 0.2 to 0.4 of one
    // process's); the test allows 1.5 times, the bench reports the comparison against its 10 % goal.
    expect(sharedMse).toBeLessThan(singleMse * 1.5)
    // Learned at all: far below the variance of the target (0.5 for a sine).
    expect(sharedMse).toBeLessThan(0.1)
    for (const v of versions) expect(v).toBeGreaterThan(10)
    const saved = await readPartitionCheckpoint(join(dir, 'b'), 2, PARTITIONS)
    expect(saved?.weights).toBe('shared')
    expect(saved?.shared?.version).toBeGreaterThan(0)
    expect(saved?.shared?.published).toBeGreaterThan(0)
  }, 40_000)

  it('after a SIGKILL, replaying the log past the checkpoint adds no weight change twice', async () => {
    const args = [
      'worker',
      ...['--nats', nats.url, '--partitions', '2', '--subject-prefix', 'replay', '--weights', 'shared'],
      ...['--checkpoint-dir', join(dir, 'replay'), '--checkpoint-every', '1s', '--metrics-interval', '0'],
      ...['--cell', 'gru', '--input-size', '2', '--output-size', '1', '--hidden-size', '6', '--k1', '4'],
    ]
    const ticks = tickFeed(1600, 8)
    const predictions = collectPredictions(nc, 'replay')
    const first = await startCliProcess(args, /ready/, 20_000)
    try {
      await publishTicks(nc, 'replay', 2, ticks.slice(0, 800), 4)
      await waitFor(
        () => existsSync(join(dir, 'replay', 'partition-0.ckpt')),
        15_000,
        () => 'a checkpoint',
      )
      await publishTicks(nc, 'replay', 2, ticks.slice(800, 1200), 4)
      await waitFor(
        () => predictions.answered === 1200,
        15_000,
        () => `1200 answers (${predictions.answered})`,
      )
    } finally {
      await stopProcess(first, 'SIGKILL')
    }
    await publishTicks(nc, 'replay', 2, ticks.slice(1200), 4)
    const second = await startCliProcess(args, /ready/, 20_000)
    try {
      expect(second.stderr()).toMatch(/resumed at sequence/)
      await waitFor(
        () => predictions.answered === ticks.length,
        15_000,
        () => `every answer (${predictions.answered})`,
      )
      const replayed = [...predictions.byId.values()].filter((answers) => answers.length > 1).length
      expect(replayed).toBeGreaterThan(0)
      second.child.kill('SIGTERM')
      expect((await second.exited).code).toBe(0)
    } finally {
      await stopProcess(second)
    }
    const { Kvm } = await import('@nats-io/kv')
    const kv = await new Kvm(nc).open('replay_weights')
    const value = unpack((await kv.get('weights'))!.value) as {
      added: number
      contributions: Record<string, number>
    }
    const contributed = Object.values(value.contributions).reduce((a, b) => a + b, 0)
    expect(contributed).toBeGreaterThan(10)
    // Each change was added once: as many additions as contributions, replays notwithstanding.
    expect(value.added).toBe(contributed)
  }, 60_000)
})

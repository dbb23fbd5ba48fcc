/**
 * Workers on a real nats-server (skipped, saying so, when it is not installed): two workers
 * owning half the partitions each, one killed with SIGKILL mid-stream and restarted; every tick is
 * answered, and every answer (replays included) equals bit for bit that of one worker that owns
 * every partition and is never killed, fed the same ticks batched differently.
 */
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NatsConnection } from '@nats-io/transport-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodePartitionCheckpoint } from '../../../../streams/server/nats/partition-checkpoint.js'
import { partitionOf } from '../../../../streams/transport/partition.js'
import { type CliProcess, startCliProcess, stopProcess } from '../../../helpers/cli-process.js'
import {
  type NatsServer,
  natsServerPath,
  natsSkipMessage,
  startNatsServer,
} from '../../../helpers/nats-server.js'
import { collectPredictions, publishTicks, tickFeed, waitFor } from './nats-test-kit.js'

const PARTITIONS = 4
const MODEL = ['--cell', 'gru', '--input-size', '2', '--output-size', '1', '--hidden-size', '8', '--k1', '4']
const TRAINER = ['--lr', '0.01', '--seed', '3']

if (natsServerPath === null) console.warn(natsSkipMessage)

describe.skipIf(natsServerPath === null)('rxrnn worker on a real nats-server', () => {
  let nats: NatsServer
  let nc: NatsConnection
  let dir: string
  const processes: CliProcess[] = []

  beforeAll(async () => {
    nats = await startNatsServer()
    const { connect } = await import('@nats-io/transport-node')
    nc = await connect({ servers: nats.url })
    dir = await mkdtemp(join(tmpdir(), 'rxrnn-workers-'))
  })

  afterAll(async () => {
    await Promise.all(processes.map((p) => stopProcess(p)))
    await nc?.close()
    await nats?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  const worker = async (
    prefix: string,
    own: string,
    checkpoints: string,
    every = '100ms',
  ): Promise<CliProcess> => {
    const p = await startCliProcess(
      [
        'worker',
        ...['--nats', nats.url, '--partitions', String(PARTITIONS), '--own', own],
        ...['--checkpoint-dir', join(dir, checkpoints), '--checkpoint-every', every],
        ...['--subject-prefix', prefix, '--metrics-interval', '0'],
        ...MODEL,
        ...TRAINER,
      ],
      /(ready.*)\n/,
      20_000,
    )
    processes.push(p)
    return p
  }

  it('recovers a SIGKILLed worker exactly: every tick answered, every answer equal to an uninterrupted worker', async () => {
    const ticks = tickFeed(3000, 24)
    const oracle = collectPredictions(nc, 'oracle')
    const live = collectPredictions(nc, 'live')
    const [, a, b] = await Promise.all([
      worker('oracle', '0-3', 'oracle'),
      worker('live', '0-1', 'a'),
      worker('live', '2,3', 'b', '1s'),
    ])
    expect(a.url).toContain('consumes partitions 0-1 of 4')
    expect(b.url).toContain('consumes partitions 2-3 of 4')
    // The oracle reads a tick per message; the live deployment batches of 5, then of 3 as JSON.
    await publishTicks(nc, 'oracle', PARTITIONS, ticks, 1)
    await publishTicks(nc, 'live', PARTITIONS, ticks.slice(0, 1200), 5)

    // Mid-stream: once B has checkpointed at least once, while its backlog is still flowing.
    const bCheckpoints = [2, 3].map((p) => join(dir, 'b', `partition-${p}.ckpt`))
    await waitFor(
      () => bCheckpoints.some(existsSync),
      15_000,
      () =>
        `worker B's first checkpoint (live answered ${live.answered}, oracle ${oracle.answered}; B: ${b.stderr()})`,
    )
    // Answers B gave past its last checkpoint must come again, from the restarted B, and only those.
    await publishTicks(nc, 'live', PARTITIONS, ticks.slice(1200, 1800), 5)
    const ofB = ticks.slice(0, 1800).filter((t) => partitionOf(t.key, PARTITIONS) >= 2)
    await waitFor(
      () => ofB.every((t) => live.byId.has(t.id)),
      15_000,
      () =>
        `B answering the ticks published so far (${ofB.filter((t) => live.byId.has(t.id)).length} of ${ofB.length}; ${b.stderr()})`,
    )
    await stopProcess(b, 'SIGKILL')
    const answeredBeforeKill = live.answered
    const checkpointed = new Map<number, number>()
    for (const p of [2, 3]) {
      const bytes = new Uint8Array(readFileSync(join(dir, 'b', `partition-${p}.ckpt`)))
      checkpointed.set(p, decodePartitionCheckpoint(bytes, p, PARTITIONS, 'b').seq)
    }
    const pastCheckpoint = [...live.byId.values()].filter(
      (answers) => answers[0]!.partition >= 2 && answers[0]!.seq > checkpointed.get(answers[0]!.partition)!,
    ).length
    await publishTicks(nc, 'live', PARTITIONS, ticks.slice(1800), 3, 'json')
    const b2 = await worker('live', '2-3', 'b', '1s')
    expect(b2.stderr()).toMatch(/partition [23]: resumed at sequence \d+/)

    await waitFor(
      () => live.answered === ticks.length && oracle.answered === ticks.length,
      20_000,
      () => `every tick answered (live ${live.answered}, oracle ${oracle.answered} of ${ticks.length})`,
    )
    expect(live.errors).toEqual([])
    expect(oracle.errors).toEqual([])
    let replays = 0
    for (const tick of ticks) {
      const expected = oracle.byId.get(tick.id)!
      expect(expected).toHaveLength(1)
      const answers = live.byId.get(tick.id)!
      replays += answers.length - 1
      for (const answer of answers) {
        expect(answer.key).toBe(tick.key)
        // Bit for bit: Object.is tells -0 from 0 as well.
        expect(answer.y.length).toBe(1)
        expect(
          Object.is(answer.y[0], expected[0]!.y[0]),
          `tick ${tick.id}: ${answer.y[0]} vs ${expected[0]!.y[0]}`,
        ).toBe(true)
        expect(answer.partition).toBe(expected[0]!.partition)
      }
    }
    expect(replays).toBe(pastCheckpoint)
    console.info(
      `recovery: ${answeredBeforeKill} ticks answered before the kill, ${replays} answered again after the restart`,
    )

    // A third worker asking for a partition that live worker A holds is refused (exit 2).
    const intruder = startCliProcess(
      [
        'worker',
        ...['--nats', nats.url, '--partitions', String(PARTITIONS), '--own', '1'],
        ...['--checkpoint-dir', join(dir, 'c'), '--subject-prefix', 'live', ...MODEL, ...TRAINER],
      ],
      /ready/,
      20_000,
    )
    await expect(intruder).rejects.toThrow(/exited \(2\)[\s\S]*partition 1 is owned by/)

    // SIGTERM: checkpoint, ack, exit 0.
    a.child.kill('SIGTERM')
    b2.child.kill('SIGTERM')
    expect((await a.exited).code).toBe(0)
    expect((await b2.exited).code).toBe(0)
    for (const p of [0, 1]) expect(existsSync(join(dir, 'a', `partition-${p}.ckpt`))).toBe(true)
    const { jetstreamManager } = await import('@nats-io/jetstream')
    const jsm = await jetstreamManager(nc)
    for (let p = 0; p < PARTITIONS; p++) {
      const info = await jsm.consumers.info(`live_ticks_${p}`, `live_worker_${p}`)
      const stream = await jsm.streams.info(`live_ticks_${p}`)
      // Acked up to the last message: the checkpoint on exit covers the whole stream.
      expect(info.ack_floor.stream_seq).toBe(stream.state.last_seq)
    }
  }, 60_000)
})

/**
 * A worker: consumes the JetStream partitions it owns, learns from each partition's ticks in
 * stream order, publishes a prediction per tick, and checkpoints each partition (then acks) so
 * that a restart resumes exactly where the checkpoint left off and replays the log after it.
 */
import { mkdir } from 'node:fs/promises'
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { ConsumerMessages, JetStreamManager, JsMsg } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { ModelConfig, TrainerOptions } from '../../../src/index.js'
import { createModel, KeyedTrainer, OnlineTrainer, RxrnnError } from '../../../src/index.js'
import { checkResumed, type ExplicitSettings } from '../checkpointer.js'
import type { ServeForecastingOptions, ServerForecasting } from '../forecasting.js'
import { newServerKeyExtras, type ServerKeyExtras } from '../learner.js'
import { connectNats, loadNatsClients } from './clients.js'
import { PartitionLeases } from './ownership.js'
import {
  partitionCheckpointPath,
  readPartitionCheckpoint,
  writePartitionCheckpoint,
} from './partition-checkpoint.js'
import { PartitionProcessor } from './partition-processor.js'
import { type SharedAttachment, SharedWeights } from './shared-weights.js'
import { NatsNames } from './subjects.js'

export interface WorkerOptions {
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222`. */
  servers: string | string[]
  /** Logical partitions of the deployment (the same for every worker and producer). Default 16. */
  partitions?: number
  /** The partitions this worker consumes. Default: all. */
  own?: readonly number[]
  /** Where partition checkpoints live (one file per partition; keep it on a durable disk). */
  checkpointDir: string
  /** How often each partition is checkpointed (then acked). Default 30 s. */
  checkpointEveryMs?: number
  /**
   * 'partition' (default): each partition has its own model, initialised from `model.seed` and the
   * partition number. 'shared': one model across all partitions and workers (see SharedWeights).
   */
  weights?: 'partition' | 'shared'
  /**
   * Shared weights: exchange weight changes every this many updates of a partition. Default 1: with
   * Adam, partitions that drift apart for many updates add up to oversized steps.
   */
  syncEvery?: number
  /** Default `rxrnn`. */
  subjectPrefix?: string
  /**
   * Ticks older than this are dropped from the partition streams this worker creates (streams
   * that exist are left as they are). Keep it above two checkpoint intervals plus the longest
   * outage to recover from. Default: kept until removed by hand.
   */
  streamMaxAgeMs?: number
  /** The model; its seed (default 0) makes every partition's initial weights reproducible. */
  model: ModelConfig
  trainer: TrainerOptions
  /** Keys kept per partition (least recently seen evicted first, by tick order). Default 100 000. */
  maxKeys?: number
  /**
   * Intervals, anomaly scores, drift, irregular time and missing values per key, as `serve`
   * takes them (the trainer's `horizon` sets the direct head). Their state is checkpointed with
   * each partition, so recovery is exact for them too. With `timeFeature` each tick must carry
   * `t` (the gateway stamps the ticks that have none): a worker reads no clock.
   */
  forecasting?: ServeForecastingOptions
  /** How often the worker publishes its metrics (0: never). Default 1 s. */
  metricsIntervalMs?: number
  /** Names this worker in metrics and leases. Default: host and absolute checkpoint dir. */
  workerId?: string
  log?: (line: string) => void
  /** Lease heartbeat; a contested claim waits 3 heartbeats. Default 1 s. */
  heartbeatMs?: number
}

/** One partition's progress, as workers publish it. */
export interface PartitionMetrics {
  partition: number
  /** Last stream sequence applied. */
  seq: number
  /** Last sequence checkpointed (and acked). */
  checkpointed: number
  ticks: number
  rejected: number
  updates: number
  keys: number
  /** Mean squared error of the predictions of ticks with a target (regression), else null. */
  mse: number | null
  /** Share of right classes (classification), else null. */
  accuracy: number | null
  /** With forecasting: interval outcomes scored and covered (row 0), anomalies marked, drift alarms. */
  forecast?: { outcomes: number; covered: number; anomalies: number; drifts: number }
}

/** What a worker publishes on `<prefix>.metrics.<worker>`. */
export interface WorkerMetricsFrame {
  type: 'worker-metrics'
  worker: string
  partitions: PartitionMetrics[]
  ticks: number
  rejected: number
  updates: number
  /** Shared weights' version the worker last exchanged with, when shared. */
  weightsVersion?: number
}

export interface RxrnnWorker {
  readonly id: string
  readonly partitions: readonly number[]
  metrics(): WorkerMetricsFrame
  /** Checkpoints every owned partition, then acks what each checkpoint covers. */
  checkpoint(): Promise<void>
  /** Stops consuming, checkpoints and acks, releases the leases, closes the connection. */
  close(): Promise<void>
  /** Settles when the worker stops on its own (connection closed, lease lost), with the reason. */
  readonly failed: Promise<Error>
}

const DEFAULT_PARTITIONS = 16

/** Partition p's initial seed in 'partition' mode: reproducible from the seed and p alone. */
export function partitionSeed(seed: number, partition: number): number {
  return (seed * 1_000_003 + partition) % 2_147_483_647
}

/**
 * Starts a worker and resolves once it consumes every partition it owns (the CLI prints `ready`
 * then). Nothing a partition predicts depends on the clock, on batching, or on which worker owns
 * it: idle eviction is off (keys leave only past `maxKeys`, by tick order), and updates run in
 * tick order.
 *
 * @example
 * const worker = await startWorker({
 *   servers: 'nats://127.0.0.1:4222', partitions: 16, own: [0, 1, 2, 3], checkpointDir: './ckpt',
 *   model: { cell: 'gru', inputSize: 3, hiddenSize: 32, outputSize: 1, seed: 1 }, trainer: { k1: 16 },
 * })
 * process.on('SIGTERM', () => void worker.close())
 */
export async function startWorker(options: WorkerOptions): Promise<RxrnnWorker> {
  const clients = await loadNatsClients()
  const { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } =
    clients.jetstream
  const log = options.log ?? (() => {})
  const partitions = options.partitions ?? DEFAULT_PARTITIONS
  const owned = [...(options.own ?? Array.from({ length: partitions }, (_, p) => p))]
  const problems: string[] = []
  if (!Number.isInteger(partitions) || partitions < 1) problems.push('partitions must be a whole number >= 1')
  if (owned.length === 0) problems.push('own must name at least one partition')
  for (const p of owned) {
    if (!Number.isInteger(p) || p < 0 || p >= partitions)
      problems.push(`partition ${p} is not in 0..${partitions - 1}`)
  }
  const checkpointEveryMs = options.checkpointEveryMs ?? 30_000
  if (!(checkpointEveryMs > 0)) problems.push('checkpointEveryMs must be > 0')
  if (options.streamMaxAgeMs !== undefined && !(options.streamMaxAgeMs >= 2 * checkpointEveryMs)) {
    problems.push(
      `streamMaxAgeMs (${options.streamMaxAgeMs} ms) must be at least two checkpoint intervals (${2 * checkpointEveryMs} ms): a restart replays the log from the last checkpoint`,
    )
  }
  if (problems.length > 0) {
    // RxrnnError lists several problems after its message; a single one goes into the message.
    const message =
      problems.length === 1 ? `Invalid worker options: ${problems[0]}` : 'Invalid worker options'
    throw new RxrnnError('bad_config', message, problems)
  }
  const names = new NatsNames(options.subjectPrefix)
  const dir = resolve(options.checkpointDir)
  const id = options.workerId ?? `${hostname()}:${dir}`
  const mode = options.weights ?? 'partition'
  await mkdir(dir, { recursive: true })
  const seed = options.model.seed ?? 0

  const nc = await connectNats(clients, options.servers, `rxrnn worker ${id}`)
  let reportFailure: (error: Error) => void = () => {}
  const failed = new Promise<Error>((resolve) => {
    reportFailure = resolve
  })
  let closing = false
  void nc.closed().then((error) => {
    if (!closing) reportFailure(error ?? new Error('the NATS connection closed'))
  })

  const runners: PartitionRunner[] = []
  let leases: PartitionLeases | undefined
  let shared: SharedWeights | undefined
  try {
    const js = jetstream(nc)
    const jsm = await jetstreamManager(nc)
    const kvm = new clients.kv.Kvm(js)
    leases = new PartitionLeases(await kvm.create(names.ownersBucket, { history: 1 }), {
      owner: id,
      ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
      onLost: (partition, reason) =>
        reportFailure(
          new Error(`lost the lease on partition ${partition} (${reason}): another worker took it over`),
        ),
    })
    await leases.claim(owned)
    if (mode === 'shared') {
      shared = await SharedWeights.open(await kvm.create(names.weightsBucket, { history: 1 }), {
        model: { ...options.model, seed },
        syncEvery: options.syncEvery ?? 1,
      })
    }
    for (const partition of owned) {
      await ensureStream(
        jsm,
        names,
        partition,
        RetentionPolicy.Limits,
        StorageType.File,
        options.streamMaxAgeMs,
      )
      const saved = await readPartitionCheckpoint(dir, partition, partitions)
      let keyed: KeyedTrainer<ServerKeyExtras>
      if (saved) {
        if (saved.weights !== mode) {
          throw new RxrnnError(
            'bad_config',
            `partition ${partition}'s checkpoint in ${dir} was written with --weights ${saved.weights}; start the worker with --weights ${saved.weights}, or give a fresh --checkpoint-dir`,
          )
        }
        keyed = KeyedTrainer.fromSnapshot<ServerKeyExtras>(saved.keyed, { extras: newServerKeyExtras })
        // A restart with other model or trainer flags would silently keep the checkpoint's: refuse it.
        checkResumed(keyed.trainer, partitionCheckpointPath(dir, partition), workerSettings(options))
      } else {
        const model = createModel({
          ...options.model,
          seed: mode === 'shared' ? seed : partitionSeed(seed, partition),
        })
        keyed = new KeyedTrainer(new OnlineTrainer(model, options.trainer), {
          ...(options.maxKeys === undefined ? {} : { maxKeys: options.maxKeys }),
          staggerUpdates: true,
          extras: newServerKeyExtras,
        })
      }
      const processor = new PartitionProcessor(
        partition,
        partitions,
        keyed,
        saved?.seq ?? 0,
        options.forecasting,
      )
      if (saved) processor.resumeForecasting(saved.forecast, dir)
      const runner = new PartitionRunner(processor, nc, names, dir, mode, log)
      if (shared) runner.sharedState = await shared.attach(processor, saved?.shared)
      runner.shared = shared
      runner.savedSeq = saved?.seq ?? 0
      // Recreated at checkpoint + 1: messages delivered to a dead worker would otherwise come back
      // only after the ack wait, behind newer ones.
      const consumer = names.consumer(partition)
      await jsm.consumers.delete(names.ticksStream(partition), consumer).catch(() => false)
      const start = runner.savedSeq + 1
      await jsm.consumers.add(names.ticksStream(partition), {
        durable_name: consumer,
        ack_policy: AckPolicy.All,
        ...(start > 1
          ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start }
          : { deliver_policy: DeliverPolicy.All }),
        max_ack_pending: -1,
        // Acks come with checkpoints: redelivery must wait longer than two of them.
        ack_wait: Math.max(2 * checkpointEveryMs + 30_000, 60_000) * 1_000_000,
      })
      const messages = await (await js.consumers.get(names.ticksStream(partition), consumer)).consume({
        max_messages: 1024,
      })
      runner.start(messages, (error) => reportFailure(error))
      runners.push(runner)
      if (saved) log(`partition ${partition}: resumed at sequence ${saved.seq + 1} (${keyed.size} keys)`)
    }
  } catch (error) {
    closing = true
    await Promise.all(runners.map((r) => r.stop()))
    await leases?.release()
    await nc.close()
    throw error
  }

  const metrics = (): WorkerMetricsFrame => {
    const frame: WorkerMetricsFrame = {
      type: 'worker-metrics',
      worker: id,
      partitions: runners.map((r) => r.metrics()),
      ticks: 0,
      rejected: 0,
      updates: 0,
    }
    for (const p of frame.partitions) {
      frame.ticks += p.ticks
      frame.rejected += p.rejected
      frame.updates += p.updates
    }
    if (shared) frame.weightsVersion = shared.version
    return frame
  }
  const checkpoint = async (): Promise<void> => {
    await Promise.all(runners.map((r) => r.checkpoint()))
  }
  const checkpointTimer = setInterval(() => {
    checkpoint().catch((error: Error) => reportFailure(new Error(`checkpoint failed: ${error.message}`)))
  }, checkpointEveryMs)
  checkpointTimer.unref()
  const metricsEvery = options.metricsIntervalMs ?? 1000
  const metricsTimer =
    metricsEvery > 0
      ? setInterval(() => {
          if (!nc.isClosed()) nc.publish(names.metricsSubject(safeToken(id)), JSON.stringify(metrics()))
        }, metricsEvery)
      : undefined
  metricsTimer?.unref()

  let closed: Promise<void> | undefined
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true
      clearInterval(checkpointTimer)
      clearInterval(metricsTimer)
      await Promise.all(runners.map((r) => r.stop()))
      if (!nc.isClosed()) {
        await checkpoint()
        await leases?.release()
        // Flushes the acks and the last predictions.
        await nc.drain().catch(() => {})
      }
    })()
    return closed
  }
  return { id, partitions: owned, metrics, checkpoint, close, failed }
}

function forecastFigures(f: ServerForecasting): NonNullable<PartitionMetrics['forecast']> {
  const { outcomes, covered, anomalies, drifts } = f.book
  return { outcomes, covered, anomalies, drifts }
}

/** The model and trainer settings a worker runs with, to compare with a checkpoint's. */
function workerSettings(options: WorkerOptions): ExplicitSettings {
  const { cell, inputSize, hiddenSize, numLayers, outputSize, dtype } = options.model
  const t = options.trainer
  return {
    model: { cell, inputSize, hiddenSize, numLayers, outputSize, dtype },
    trainer: {
      algorithm: t.algorithm,
      k1: t.k1,
      k2: t.k2,
      loss: t.loss,
      clipNorm: t.clipNorm ?? 0,
      optimizer: t.optimizer.type,
      lr: t.optimizer.lr,
    },
  }
}

/** A metrics subject token: no dots, spaces or wildcards. */
function safeToken(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]+/g, '_')
}

async function ensureStream(
  jsm: JetStreamManager,
  names: NatsNames,
  partition: number,
  retention: 'limits',
  storage: 'file',
  maxAgeMs: number | undefined,
): Promise<void> {
  const name = names.ticksStream(partition)
  const subject = names.ticksSubject(partition)
  try {
    const info = await jsm.streams.info(name)
    if (!info.config.subjects?.includes(subject)) {
      throw new RxrnnError(
        'bad_config',
        `JetStream stream ${name} exists but does not hold ${subject}; delete it or choose another --subject-prefix`,
      )
    }
  } catch (error) {
    if (error instanceof RxrnnError) throw error
    // Created by whichever worker gets there first; an identical add is accepted by the server.
    await jsm.streams.add({
      name,
      subjects: [subject],
      retention: retention as never,
      storage: storage as never,
      ...(maxAgeMs === undefined ? {} : { max_age: maxAgeMs * 1_000_000 }),
    })
  }
}

/** One owned partition: its consume loop, its checkpoints and acks. */
class PartitionRunner {
  shared: SharedWeights | undefined
  sharedState: SharedAttachment | undefined
  savedSeq = 0
  private lastApplied: JsMsg | null = null
  private messages: ConsumerMessages | undefined
  private loop: Promise<void> = Promise.resolve()
  private writing: Promise<void> = Promise.resolve()
  private readonly subject: string
  private readonly publish: (frame: Uint8Array | string) => void

  constructor(
    readonly processor: PartitionProcessor,
    private readonly nc: NatsConnection,
    names: NatsNames,
    private readonly dir: string,
    private readonly mode: 'partition' | 'shared',
    private readonly log: (line: string) => void,
  ) {
    this.subject = names.predictionsSubject(processor.partition)
    this.publish = (frame) => this.nc.publish(this.subject, frame)
  }

  start(messages: ConsumerMessages, fail: (error: Error) => void): void {
    this.messages = messages
    this.loop = this.consume(messages).catch((error: Error) =>
      fail(new Error(`partition ${this.processor.partition}: ${error.message}`)),
    )
  }

  private async consume(messages: ConsumerMessages): Promise<void> {
    const p = this.processor
    let count = 0
    for await (const m of messages) {
      // A redelivery (the ack wait ran out) of what was applied already.
      if (m.seq <= p.seq) continue
      if (m.seq > p.seq + 1) {
        this.log(
          `partition ${p.partition}: stream sequences ${p.seq + 1} to ${m.seq - 1} are gone (the stream's limits dropped them before this worker read them)`,
        )
      }
      p.apply(m.seq, m.data, this.publish)
      this.lastApplied = m
      if (this.shared && this.sharedState) await this.shared.maybeSync(this.sharedState)
      // Let timers (heartbeats, checkpoints, metrics) run during a long backlog.
      if (++count % 256 === 0) await yieldToEventLoop()
    }
  }

  /** Saves the checkpoint, then acks every message it covers. Calls queue up, one write at a time. */
  checkpoint(): Promise<void> {
    this.writing = this.writing.then(async () => {
      const message = this.lastApplied
      const p = this.processor
      if (message === null || p.seq === this.savedSeq) return
      // Taken synchronously, between two messages: one consistent state.
      const seq = p.seq
      const bytes = {
        partition: p.partition,
        partitions: p.partitions,
        seq,
        weights: this.mode,
        keyed: p.keyed.snapshot(),
        ...(p.forecasting ? { forecast: p.forecasting.snapshot() } : {}),
        ...(this.sharedState ? { shared: this.shared!.stateOf(this.sharedState) } : {}),
      }
      await writePartitionCheckpoint(this.dir, bytes)
      this.savedSeq = seq
      message.ack()
    })
    return this.writing
  }

  /** Stops consuming and waits for the message in hand to be applied. */
  async stop(): Promise<void> {
    this.messages?.stop()
    await this.loop
  }

  metrics(): PartitionMetrics {
    const p = this.processor
    const c = p.counters
    const classification = p.keyed.trainer.loss.name === 'cross_entropy'
    return {
      partition: p.partition,
      seq: p.seq,
      checkpointed: this.savedSeq,
      ticks: c.ticks,
      rejected: c.rejected,
      updates: c.updates,
      keys: p.keyed.size,
      mse: classification || c.scored === 0 ? null : c.squaredError / c.scored,
      accuracy: classification && c.scored > 0 ? c.correct / c.scored : null,
      ...(p.forecasting ? { forecast: forecastFigures(p.forecasting) } : {}),
    }
  }
}

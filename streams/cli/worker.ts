/**
 * `rxrnn worker`: consumes NATS JetStream partitions, learns online from their ticks, publishes a
 * prediction per tick, and checkpoints each partition so that a restart resumes exactly (see
 * streams/server/nats/worker.ts). SIGINT / SIGTERM: checkpoint, ack, exit 0.
 */
import { type Command, Option } from 'commander'

import { startWorker } from '../server/nats/worker.js'
import { parsePartitionList } from '../transport/partition.js'
import { addForecastingFlags, type ForecastingFlags, resolveForecastingFlags } from './forecasting-flags.js'
import { count } from './format.js'
import { aborted, type CliIo, StatusLine, UsageError } from './io.js'
import { addModelFlags, type ModelFlags, resolveModelFlags } from './model-flags.js'
import { integer, parseDuration } from './parse.js'

export interface WorkerFlags extends ModelFlags, ForecastingFlags {
  nats: string
  partitions: number
  own?: string
  checkpointDir: string
  checkpointEvery: number
  weights: 'partition' | 'shared'
  syncEvery: number
  subjectPrefix: string
  streamMaxAge?: number
  maxKeys: number
  metricsInterval: number
  progressInterval: number
  quiet?: boolean
}

export function registerWorker(program: Command, io: CliIo, done: (code: number) => void): void {
  const command = program
    .command('worker')
    .summary('learn from NATS JetStream partitions: scale out over processes and machines')
    .description(
      'Consume the JetStream partitions this worker owns (--own), learn online from their ticks in stream order, ' +
        'and publish a prediction per tick on <prefix>.predictions.<p>. Each partition is checkpointed to ' +
        '--checkpoint-dir, then acked; a worker restarted with the same flags resumes from its checkpoints and ' +
        'replays the log after them, predicting bit for bit what an uninterrupted worker would have. Prints a line ' +
        'containing "ready" once it consumes every partition it owns; SIGINT or SIGTERM checkpoints, acks and exits 0.',
    )
    .requiredOption('--nats <url>', 'NATS server URL(s), comma-separated, e.g. nats://127.0.0.1:4222')
    .option(
      '--partitions <n>',
      'partitions of the deployment (the same for every worker and producer)',
      integer(1, 100_000),
      16,
    )
    .option(
      '--own <list>',
      'partitions this worker consumes: ranges and lists such as 0-7 or 0,2,4-6 (default: all)',
    )
    .requiredOption(
      '--checkpoint-dir <dir>',
      'where each owned partition is checkpointed (partition-<p>.ckpt)',
    )
    .addOption(
      new Option(
        '--checkpoint-every <duration>',
        'how often each partition is checkpointed and acked, e.g. 30s',
      )
        .argParser(parseDuration)
        .default(30_000, '30s'),
    )
    .addOption(
      new Option('--weights <mode>', 'partition: a model per partition; shared: one model across all workers')
        .choices(['partition', 'shared'])
        .default('partition'),
    )
    .option(
      '--sync-every <updates>',
      'shared weights: exchange weight changes every this many updates of a partition (more: less traffic, larger combined steps)',
      integer(1),
      1,
    )
    .option('--subject-prefix <prefix>', 'prefix of every subject, stream and bucket', 'rxrnn')
    .addOption(
      new Option(
        '--stream-max-age <duration>',
        'drop ticks older than this from the partition streams this worker creates, e.g. 24h (>= 2 checkpoint intervals; default: keep)',
      ).argParser(parseDuration),
    )
    .option(
      '--max-keys <n>',
      'keys held per partition; the least recently seen (in tick order) go first',
      integer(1),
      100_000,
    )
    .addOption(
      new Option(
        '--metrics-interval <duration>',
        'how often to publish metrics on <prefix>.metrics.<worker> (0: never)',
      )
        .argParser(parseDuration)
        .default(1000, '1s'),
    )
    .addOption(
      new Option(
        '--progress-interval <duration>',
        'how often to print progress when something happened (0: never)',
      )
        .argParser(parseDuration)
        .default(5000, '5s'),
    )
    .option('--quiet', 'print only the ready line and errors')
  addForecastingFlags(command)
  addModelFlags(
    command,
    'seed of the initial weights; partition p starts from a seed made of it and p (default 0, so restarts reproduce)',
  )
  command.action(async (flags: WorkerFlags, cmd: Command) => {
    done(await runWorker(flags, (name) => cmd.getOptionValueSource(name), io))
  })
}

/** Writes `[0,1,2,3,5]` as `0-3,5`. */
export function formatPartitionList(partitions: readonly number[]): string {
  const parts: string[] = []
  for (let i = 0; i < partitions.length; ) {
    let j = i
    while (j + 1 < partitions.length && partitions[j + 1] === partitions[j]! + 1) j++
    parts.push(i === j ? `${partitions[i]}` : `${partitions[i]}-${partitions[j]}`)
    i = j + 1
  }
  return parts.join(',')
}

export async function runWorker(
  flags: WorkerFlags,
  sourceOf: (flag: keyof ModelFlags) => string | undefined,
  io: CliIo,
): Promise<number> {
  let own: number[] | undefined
  try {
    own = flags.own === undefined ? undefined : parsePartitionList(flags.own, flags.partitions)
  } catch (error) {
    throw new UsageError(`--own: ${(error as Error).message}`)
  }
  const forecasting = resolveForecastingFlags(flags, undefined, 'rxrnn worker')
  const { model, trainer } = resolveModelFlags(
    { ...flags, seed: flags.seed ?? 0 },
    sourceOf,
    {},
    'rxrnn worker',
    {
      horizon: flags.horizon,
      missing: forecasting.missing !== undefined,
      timeFeature: forecasting.timeFeature === true,
    },
  )
  const status = new StatusLine(io.stdout)
  const quiet = flags.quiet === true
  const log = (line: string): void => {
    if (!quiet) status.log(line, io.stderr)
  }
  const worker = await startWorker({
    servers: flags.nats.split(',').map((s) => s.trim()),
    partitions: flags.partitions,
    ...(own === undefined ? {} : { own }),
    checkpointDir: flags.checkpointDir,
    checkpointEveryMs: flags.checkpointEvery,
    weights: flags.weights,
    syncEvery: flags.syncEvery,
    subjectPrefix: flags.subjectPrefix,
    ...(flags.streamMaxAge === undefined ? {} : { streamMaxAgeMs: flags.streamMaxAge }),
    model,
    trainer,
    maxKeys: flags.maxKeys,
    ...(Object.keys(forecasting).length > 0 ? { forecasting } : {}),
    metricsIntervalMs: flags.metricsInterval,
    log,
  })
  io.stdout.write(
    `ready: worker ${worker.id} consumes partitions ${formatPartitionList(worker.partitions)} of ${flags.partitions} from ${flags.nats}\n`,
  )
  let last = { ticks: 0, time: performance.now() }
  const progress =
    quiet || flags.progressInterval <= 0
      ? undefined
      : setInterval(() => {
          const m = worker.metrics()
          const now = performance.now()
          if (m.ticks === last.ticks) return
          const rate = ((m.ticks - last.ticks) * 1000) / Math.max(1, now - last.time)
          last = { ticks: m.ticks, time: now }
          const lag = m.partitions.reduce((sum, p) => sum + (p.seq - p.checkpointed), 0)
          log(
            `ticks ${count(m.ticks)} (${count(Math.round(rate))}/s)  updates ${count(m.updates)}  rejected ${count(m.rejected)}  ` +
              `messages past the last checkpoints ${count(lag)}` +
              (m.weightsVersion === undefined ? '' : `  shared weights v${m.weightsVersion}`),
          )
        }, flags.progressInterval)
  progress?.unref()
  const failure = await Promise.race([aborted(io.signal).then(() => undefined), worker.failed])
  clearInterval(progress)
  if (failure !== undefined) {
    io.stderr.write(`error: ${failure.message}\n`)
    await worker.close().catch(() => {})
    return 1
  }
  await worker.close()
  const m = worker.metrics()
  log(`stopped after ${m.ticks} ticks; checkpoints saved in ${flags.checkpointDir}`)
  return 0
}

/**
 * Section 9: scaling out on NATS JetStream. (a) Aggregate ticks/s through NATS for 1 and 2
 * `rxrnn worker` processes (the bench model; 4 partitions; ticks published into the partition
 * streams 10 per message, as fast as JetStream acks them, then every prediction received), next to
 * one `rxrnn serve` fed over WebSocket with 256 ticks in flight; with the CPU each process used.
 * (b) Prequential error of `--weights shared` across 2 workers against one process on the same
 * feed (goal: within 10 %), with `--weights partition` for scale.
 *
 * Needs nats-server on PATH (or /usr/sbin); without it the section says so and reports nothing.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pack, unpack } from 'msgpackr'
import { WebSocket } from 'ws'
import { createModel, KeyedTrainer, OnlineTrainer } from '../../src/index.js'
import { partitionOf } from '../../streams/transport/partition.js'
import { natsServerPath, startNatsServer } from '../../test/helpers/nats-server.js'
import { count, header, note, printTable, type SummaryRow } from '../report.js'
import type { Context } from './common.js'

const cli = fileURLToPath(new URL('../../streams/cli/index.ts', import.meta.url))
const repo = fileURLToPath(new URL('../../', import.meta.url))
const PARTITIONS = 4
const BATCH = 10
const MODEL_FLAGS = [
  '--cell',
  'lstm',
  '--input-size',
  '8',
  '--hidden-size',
  '64',
  '--output-size',
  '1',
  '--k1',
  '16',
  '--seed',
  '1',
]
const CLOCK_TICKS = 100

interface Proc {
  child: ChildProcess
  out: string
  err: string
  exited: Promise<void>
}

function startCli(args: string[], ready: RegExp): Promise<Proc> {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const p: Proc = { child, out: '', err: '', exited: new Promise((r) => child.once('exit', () => r())) }
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    p.err += c
  })
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      p.out += c
      if (ready.test(p.out)) resolve(p)
    })
    void p.exited.then(() => reject(new Error(`rxrnn ${args[0]} exited: ${p.err}`)))
  })
}

async function stop(p: Proc): Promise<void> {
  p.child.kill('SIGTERM')
  await p.exited
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return Number.NaN
  }
}

function selfCpu(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

interface Tick {
  type: 'tick'
  key: string
  x: number[]
  y: number[]
  id: number
}

function benchTicks(n: number, keys: number): Tick[] {
  let s = 12345
  const rand = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    return s / 2 ** 32 - 0.5
  }
  return Array.from({ length: n }, (_, i) => ({
    type: 'tick' as const,
    key: `k${i % keys}`,
    x: Array.from({ length: 8 }, rand),
    y: [rand()],
    id: i,
  }))
}

export interface NatsRow {
  readonly setup: string
  readonly ticks: number
  readonly seconds: number
  readonly ticksPerSecond: number
  /** CPU seconds per process over the run. */
  readonly cpu: Record<string, number>
}

export async function runNats(
  ctx: Context,
): Promise<{ rows: NatsRow[]; prequential: Record<string, number>; summary: SummaryRow[] }> {
  header(
    9,
    'Scaling out on NATS JetStream: LSTM 8→64→1 float32, TBPTT(16, 16), Adam, 1,000 keys, 4 partitions',
  )
  if (natsServerPath === null) {
    note('nats-server is not installed (apt-get install nats-server): section skipped')
    return { rows: [], prequential: {}, summary: [] }
  }
  const n = ctx.quick ? 8_000 : 40_000
  const ticks = benchTicks(n, 1_000)
  const nats = await startNatsServer()
  const natsPid = nats.pid
  const dir = await mkdtemp(join(tmpdir(), 'rxrnn-bench-nats-'))
  const rows: NatsRow[] = []
  try {
    const { connect } = await import('@nats-io/transport-node')
    const { jetstream } = await import('@nats-io/jetstream')
    const nc = await connect({ servers: nats.url })
    const js = jetstream(nc)

    // (a) one rxrnn serve, over WebSocket.
    {
      const serve = await startCli(
        ['serve', '--port', '0', '--quiet', '--no-dashboard', ...MODEL_FLAGS],
        /listening on (ws:\S+)/,
      )
      const url = /listening on (ws:\S+)/.exec(serve.out)![1]!
      const ws = new WebSocket(url)
      await new Promise((r) => ws.once('open', r))
      let answered = 0
      let sent = 0
      const c0 = cpuSeconds(serve.child.pid)
      const s0 = selfCpu()
      const t0 = performance.now()
      await new Promise<void>((resolve) => {
        const pump = () => {
          while (sent < n && sent - answered < 256) ws.send(pack(ticks[sent++]))
        }
        ws.on('message', () => {
          if (++answered === n) resolve()
          else pump()
        })
        pump()
      })
      const seconds = (performance.now() - t0) / 1000
      rows.push({
        setup: '1 serve (WebSocket)',
        ticks: n,
        seconds,
        ticksPerSecond: n / seconds,
        cpu: { serve: cpuSeconds(serve.child.pid) - c0, client: selfCpu() - s0 },
      })
      ws.close()
      await stop(serve)
    }

    // (a) 1 and 2 workers through NATS.
    for (const workers of [1, 2]) {
      const prefix = `bench${workers}`
      const owns = workers === 1 ? ['0-3'] : ['0-1', '2-3']
      const procs = await Promise.all(
        owns.map((own, i) =>
          startCli(
            [
              'worker',
              '--nats',
              nats.url,
              '--partitions',
              String(PARTITIONS),
              '--own',
              own,
              '--checkpoint-dir',
              join(dir, `${prefix}-${i}`),
              '--checkpoint-every',
              '5s',
              '--subject-prefix',
              prefix,
              '--metrics-interval',
              '0',
              '--quiet',
              ...MODEL_FLAGS,
            ],
            /ready/,
          ),
        ),
      )
      let answered = 0
      let done: () => void = () => {}
      const finished = new Promise<void>((r) => {
        done = r
      })
      const sub = nc.subscribe(`${prefix}.predictions.*`, {
        callback: () => {
          if (++answered === n) done()
        },
      })
      const c0 = procs.map((p) => cpuSeconds(p.child.pid))
      const nats0 = cpuSeconds(natsPid)
      const s0 = selfCpu()
      const t0 = performance.now()
      const batches: Tick[][] = Array.from({ length: PARTITIONS }, () => [])
      let acks: Promise<unknown>[] = []
      for (const tick of ticks) {
        const p = partitionOf(tick.key, PARTITIONS)
        batches[p]!.push(tick)
        if (batches[p]!.length === BATCH) {
          acks.push(js.publish(`${prefix}.ticks.${p}`, pack(batches[p])))
          batches[p] = []
        }
        // Bounded in flight: at most 256 unacked messages.
        if (acks.length >= 256) {
          await Promise.all(acks)
          acks = []
        }
      }
      for (let p = 0; p < PARTITIONS; p++)
        if (batches[p]!.length > 0) acks.push(js.publish(`${prefix}.ticks.${p}`, pack(batches[p])))
      await Promise.all(acks)
      await finished
      const seconds = (performance.now() - t0) / 1000
      const cpu: Record<string, number> = {
        'nats-server': cpuSeconds(natsPid) - nats0,
        publisher: selfCpu() - s0,
      }
      procs.forEach((p, i) => {
        cpu[`worker ${i + 1}`] = cpuSeconds(p.child.pid) - c0[i]!
      })
      rows.push({
        setup: `${workers} worker${workers === 1 ? '' : 's'} (NATS, ${BATCH} ticks/message)`,
        ticks: n,
        seconds,
        ticksPerSecond: n / seconds,
        cpu,
      })
      sub.unsubscribe()
      await Promise.all(procs.map(stop))
    }
    printTable(
      ['setup', 'ticks', 'seconds', 'ticks/s', 'CPU seconds per process'],
      rows.map((r) => [
        r.setup,
        count(r.ticks),
        r.seconds.toFixed(2),
        count(Math.round(r.ticksPerSecond)),
        Object.entries(r.cpu)
          .map(([who, s]) => `${who} ${s.toFixed(2)}`)
          .join(', '),
      ]),
      [0, 4],
    )
    note(
      'every process shares the same cores here: the broker, the publisher and the workers compete for them,',
    )
    note('so the 2-worker row shows the cost of the path, not how it scales on machines with cores to spare')

    // (b) prequential error: shared weights across 2 workers vs one process.
    const prequential = await prequentialComparison(nats.url, dir, ctx.quick)
    await nc.close()
    const ratio = prequential.shared / prequential.single
    printTable(
      ['learner', 'prequential MSE (second half)', 'vs one process'],
      [
        ['one process (KeyedTrainer, every tick)', prequential.single.toFixed(5), '1.00'],
        ['2 workers, --weights shared --sync-every 1', prequential.shared.toFixed(5), ratio.toFixed(2)],
        [
          '2 workers, --weights partition',
          prequential.partition.toFixed(5),
          (prequential.partition / prequential.single).toFixed(2),
        ],
      ],
      [0],
    )
    const single = rows[0]!
    const two = rows[2]!
    return {
      rows,
      prequential,
      summary: [
        {
          measure: 'NATS: ticks/s, 2 workers (all processes on this machine)',
          rxrnn: count(Math.round(two.ticksPerSecond)),
          versus: `1 serve ${count(Math.round(single.ticksPerSecond))}`,
          ratio: `${(two.ticksPerSecond / single.ticksPerSecond).toFixed(2)}×`,
          target: '',
        },
        {
          measure: 'NATS: prequential MSE, shared weights across 2 workers',
          rxrnn: prequential.shared.toFixed(5),
          versus: `one process ${prequential.single.toFixed(5)}`,
          ratio: `${ratio.toFixed(2)}×`,
          target: ratio <= 1.1 ? 'PASS (≤ 1.10×)' : 'MISS (≤ 1.10×)',
        },
      ],
    }
  } finally {
    await nats.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

/** A sine per key (16 keys, 6,000 ticks), target the next value: MSE over the second half. */
async function prequentialComparison(url: string, dir: string, quick: boolean) {
  const total = quick ? 3_000 : 6_000
  const keys = 16
  const ticks = Array.from({ length: total }, (_, i) => {
    const k = i % keys
    const t = Math.floor(i / keys)
    const phase = k * 0.7
    return {
      type: 'tick' as const,
      key: `sensor-${k}`,
      x: [Math.sin(t * 0.3 + phase), Math.cos(t * 0.11 + phase)],
      y: [Math.sin((t + 1) * 0.3 + phase)],
      id: i,
    }
  })
  const flags = [
    '--cell',
    'gru',
    '--input-size',
    '2',
    '--hidden-size',
    '12',
    '--output-size',
    '1',
    '--k1',
    '4',
    '--lr',
    '0.01',
    '--seed',
    '11',
  ]
  const half = (errors: number[]) => errors.slice(total / 2).reduce((a, b) => a + b, 0) / (total / 2)
  const single = new KeyedTrainer(
    new OnlineTrainer(createModel({ cell: 'gru', inputSize: 2, hiddenSize: 12, outputSize: 1, seed: 11 }), {
      k1: 4,
      loss: 'mse',
      optimizer: { type: 'adam', lr: 0.01 },
      clipNorm: 1,
    }),
    { staggerUpdates: true },
  )
  const singleErrors = ticks.map((t, i) => (single.observe(t.key, t.x, t.y, i).prediction[0]! - t.y[0]!) ** 2)
  const result: Record<string, number> = { single: half(singleErrors) }
  const { connect } = await import('@nats-io/transport-node')
  const { jetstream } = await import('@nats-io/jetstream')
  const nc = await connect({ servers: url })
  const js = jetstream(nc)
  for (const mode of ['shared', 'partition'] as const) {
    const prefix = `preq-${mode}`
    const procs = await Promise.all(
      ['0-1', '2-3'].map((own, i) =>
        startCli(
          [
            'worker',
            '--nats',
            url,
            '--partitions',
            String(PARTITIONS),
            '--own',
            own,
            '--checkpoint-dir',
            join(dir, `${prefix}-${i}`),
            '--subject-prefix',
            prefix,
            '--weights',
            mode,
            '--sync-every',
            '1',
            '--metrics-interval',
            '0',
            '--quiet',
            ...flags,
          ],
          /ready/,
        ),
      ),
    )
    const errors = new Array<number>(total).fill(Number.NaN)
    let answered = 0
    let done: () => void = () => {}
    const finished = new Promise<void>((r) => {
      done = r
    })
    const sub = nc.subscribe(`${prefix}.predictions.*`, {
      callback: (_e, msg) => {
        const f = unpack(msg.data) as { id: number; y: number[] }
        if (Number.isNaN(errors[f.id]!)) {
          errors[f.id] = (f.y[0]! - ticks[f.id]!.y[0]!) ** 2
          if (++answered === total) done()
        }
      },
    })
    const batches: (typeof ticks)[] = Array.from({ length: PARTITIONS }, () => [])
    for (const tick of ticks) {
      const p = partitionOf(tick.key, PARTITIONS)
      batches[p]!.push(tick)
      if (batches[p]!.length === BATCH) {
        await js.publish(`${prefix}.ticks.${p}`, pack(batches[p]))
        batches[p] = []
      }
    }
    for (let p = 0; p < PARTITIONS; p++)
      if (batches[p]!.length > 0) await js.publish(`${prefix}.ticks.${p}`, pack(batches[p]))
    await finished
    result[mode] = half(errors)
    sub.unsubscribe()
    await Promise.all(procs.map(stop))
  }
  await nc.close()
  return result as { single: number; shared: number; partition: number }
}

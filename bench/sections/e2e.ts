/**
 * Section 4: end to end over WebSocket on 127.0.0.1. The server (streams/server.ts `serve`) runs
 * in a child process; this process is the client: one connection, binary msgpack ticks (encoded
 * with streams/codec.ts), predictions matched to ticks by id.
 *   (a) throughput: a window of at most 256 ticks in flight, a new tick sent for every
 *       prediction received: ticks per second; once with ticks that carry a target (the server
 *       learns on each) and once without (it only predicts), to tell the model's cost from the wire's;
 *   (b) latency: ticks paced at a fixed offered rate (10,000/s) with the high-resolution clock;
 *       latency runs from each tick's scheduled send time to its prediction (so a stalled
 *       sender counts against the result instead of hiding it), percentiles and achieved rate.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { decodeFrame, encodeFrame } from '../../streams/codec.js'
import { count, header, ms, note, printTable, type SummaryRow, TARGETS, verdictText } from '../report.js'
import {
  type Context,
  DESCRIBE_MODEL,
  DESCRIBE_TRAINER,
  TARGETS as EVENT_TARGETS,
  INPUTS,
  STREAM_LENGTH,
  turn,
} from './common.js'
import { message } from './inference.js'

const WINDOW = 256
const RATE = 10_000
const KEYS = Array.from({ length: 100 }, (_, i) => `sensor-${i}`)

export interface Throughput {
  ticksPerSecond: number
  ticks: number
  seconds: number
  window: number
}

export interface E2eResult {
  readonly status: 'ok' | 'unavailable'
  readonly reason?: string
  readonly setup?: string
  readonly serverBackend?: string
  readonly throughput?: Throughput
  /** The same with ticks that carry no target: the server predicts but does not learn. */
  readonly predictOnly?: Throughput
  readonly latency?: {
    offeredPerSecond: number
    achievedPerSecond: number
    sent: number
    received: number
    p50Ms: number
    p99Ms: number
    p999Ms: number
    maxMs: number
    /** The same percentiles measured from the actual send time. */
    p50FromSendMs: number
    p99FromSendMs: number
  }
  readonly errors: number
  readonly firstError?: string
  readonly summary: SummaryRow[]
}

const serverScript = join(dirname(fileURLToPath(import.meta.url)), 'e2e-server.ts')
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

interface Started {
  child: ChildProcess
  port: number
  backend: string
  fallback?: string
}

async function startServer(backend: string): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', serverScript, backend], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines = createInterface({ input: child.stdout! })
  const first = new Promise<string>((resolve, reject) => {
    lines.once('line', resolve)
    child.once('exit', (code) => reject(new Error(`the server process exited (${code}) before listening`)))
    child.once('error', reject)
    setTimeout(() => reject(new Error('the server process did not start within 30 s')), 30_000).unref()
  })
  try {
    const info = JSON.parse(await first) as { port: number; backend: string; fallback?: string }
    return { child, ...info }
  } catch (error) {
    child.kill('SIGTERM')
    throw error
  }
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

export async function runE2e(ctx: Context): Promise<E2eResult> {
  header(4, 'End to end over WebSocket on 127.0.0.1')
  const setup =
    `server: serve() in a child process (node --import tsx), ${DESCRIBE_MODEL}, ${DESCRIBE_TRAINER}, ` +
    `diagnosticsEvery 0; client: this process, one connection, msgpack ticks with a target ` +
    `(the server predicts and learns on every tick), ${KEYS.length} keys round robin`
  note(setup)
  let server: Started
  try {
    server = await startServer(ctx.backends.headline)
  } catch (error) {
    const reason = message(error)
    note(`unavailable: ${reason}`)
    return { status: 'unavailable', reason, errors: 0, summary: [] }
  }
  if (server.fallback) note(`the server fell back to js: ${server.fallback}`)
  const socket = new WebSocket(`ws://127.0.0.1:${server.port}`, { perMessageDeflate: false })
  let errors = 0
  let firstError: string | undefined
  try {
    await once(socket, 'open')
    let onPrediction: (id: number) => void = () => {}
    socket.on('message', (data, isBinary) => {
      const decoded = decodeFrame(data as Buffer, isBinary)
      const frame = decoded.ok ? (decoded.value as { type?: string; id?: number; message?: string }) : null
      if (frame?.type === 'prediction' && typeof frame.id === 'number') onPrediction(frame.id)
      else {
        errors++
        firstError ??= frame ? `${frame.type}: ${frame.message ?? ''}` : 'undecodable frame'
        // An error frame answers a tick too: count it so the window does not shrink.
        if (frame && typeof frame.id === 'number') onPrediction(frame.id)
      }
    })
    // A tick with a target makes the server learn; without one it only predicts (and stores the step).
    let withTargets = true
    const send = (id: number): void => {
      const e = id % STREAM_LENGTH
      const key = KEYS[id % KEYS.length]!
      const tick = withTargets
        ? { type: 'tick', key, x: INPUTS[e]!, y: EVENT_TARGETS[e]![0]!, id }
        : { type: 'tick', key, x: INPUTS[e]!, id }
      socket.send(encodeFrame(tick, 'msgpack'))
    }
    const waitUntil = async (done: () => boolean, limitMs: number) => {
      const deadline = performance.now() + limitMs
      while (!done() && performance.now() < deadline) await turn(5)
    }

    // (a) Throughput with a bounded window: a new tick for every answer.
    const warmMs = ctx.quick ? 300 : 1000
    const runMs = ctx.quick ? 700 : 3000
    let next = 0
    let received = 0
    let sending = false
    onPrediction = () => {
      received++
      if (sending) send(next++)
    }
    const throughputRun = async (targets: boolean) => {
      withTargets = targets
      sending = true
      for (let k = 0; k < WINDOW; k++) send(next++)
      await turn(warmMs)
      const r0 = received
      const t0 = performance.now()
      await turn(runMs)
      const r1 = received
      const t1 = performance.now()
      sending = false
      await waitUntil(() => received >= next, 20_000)
      const seconds = (t1 - t0) / 1000
      return { ticksPerSecond: (r1 - r0) / seconds, ticks: r1 - r0, seconds, window: WINDOW }
    }
    const throughput = await throughputRun(true)
    const predictOnly = await throughputRun(false)
    withTargets = true

    // (b) Latency at a fixed offered rate, paced on the high-resolution clock.
    const latencySeconds = ctx.quick ? 1 : 3
    const total = RATE * latencySeconds
    const base = next
    const scheduled = new Float64Array(total)
    const sentAt = new Float64Array(total)
    // Unanswered ticks stay infinite: they count as slower than any answered one.
    const fromScheduled = new Float64Array(total).fill(Number.POSITIVE_INFINITY)
    const fromSend = new Float64Array(total).fill(Number.POSITIVE_INFINITY)
    let got = 0
    onPrediction = (id) => {
      const i = id - base
      if (i < 0 || i >= total) return
      const now = performance.now()
      fromScheduled[i] = now - scheduled[i]!
      fromSend[i] = now - sentAt[i]!
      got++
    }
    let sent = 0
    const start = performance.now() + 5
    const interval = 1000 / RATE
    let lastSend = start
    await new Promise<void>((resolve) => {
      const pump = () => {
        const now = performance.now()
        const due = Math.min(total, Math.floor((now - start) / interval) + 1)
        while (sent < due) {
          scheduled[sent] = start + sent * interval
          sentAt[sent] = performance.now()
          send(base + sent)
          sent++
        }
        lastSend = now
        if (sent < total) setImmediate(pump)
        else resolve()
      }
      setImmediate(pump)
    })
    // A server slower than the offered rate has a backlog to clear: wait for it, within reason.
    const drainMs = Math.min(15_000, Math.max(5_000, (1500 * total) / Math.max(1, throughput.ticksPerSecond)))
    await waitUntil(() => got >= total, drainMs)
    const s1 = fromScheduled.slice().sort()
    const s2 = fromSend.slice().sort()
    const latency = {
      offeredPerSecond: RATE,
      achievedPerSecond: (total - 1) / ((lastSend - start) / 1000),
      sent: total,
      received: got,
      p50Ms: percentile(s1, 0.5),
      p99Ms: percentile(s1, 0.99),
      p999Ms: percentile(s1, 0.999),
      maxMs: s1[s1.length - 1]!,
      p50FromSendMs: percentile(s2, 0.5),
      p99FromSendMs: percentile(s2, 0.99),
    }
    const saturated = throughput.ticksPerSecond < RATE
    const lat = (v: number) => (Number.isFinite(v) ? `${ms(v)}` : `> ${ms(drainMs)} (unanswered)`)

    printTable(
      ['measure', 'value', 'detail', 'target'],
      [
        [
          '(a) throughput, learning',
          `${count(throughput.ticksPerSecond)} ticks/s`,
          `window ${WINDOW}, ${count(throughput.ticks)} predictions in ${throughput.seconds.toFixed(1)} s`,
          verdictText(TARGETS.throughput, throughput.ticksPerSecond),
        ],
        [
          '    predict only',
          `${count(predictOnly.ticksPerSecond)} ticks/s`,
          'ticks without a target: no weight updates (what transport and forward cost)',
          '',
        ],
        [
          '(b) latency p50 / p99',
          `${lat(latency.p50Ms)} / ${lat(latency.p99Ms)} ms`,
          `p99.9 ${lat(latency.p999Ms)} ms, max ${lat(latency.maxMs)} ms (from scheduled send)`,
          verdictText(TARGETS.latency, latency.p99Ms),
        ],
        [
          '    from actual send',
          `${lat(latency.p50FromSendMs)} / ${lat(latency.p99FromSendMs)} ms`,
          'the same ticks, timed from when send() ran',
          '',
        ],
        [
          '    rate',
          `${count(latency.achievedPerSecond)} ticks/s`,
          `offered ${count(RATE)}/s for ${latencySeconds} s; ${count(got)} of ${count(total)} answered`,
          '',
        ],
      ],
      [0, 2, 3],
    )
    if (server.backend !== ctx.backends.headline || server.fallback)
      note(`server backend: rxrnn (${server.backend})`)
    if (saturated)
      note(
        `the server answers ${count(throughput.ticksPerSecond)} learning ticks/s at most, below the offered ` +
          `${count(RATE)}/s: (b) measures a growing queue, not the steady-state latency`,
      )
    if (errors > 0) note(`FLAG ${errors} frames were not predictions; first: ${firstError}`)
    const summary: SummaryRow[] = [
      {
        measure: `end-to-end throughput (server rxrnn ${server.backend})`,
        rxrnn: `${count(throughput.ticksPerSecond)} ticks/s`,
        versus: '',
        ratio: '',
        target: verdictText(TARGETS.throughput, throughput.ticksPerSecond),
      },
      {
        measure: 'end-to-end throughput, predict only (no target)',
        rxrnn: `${count(predictOnly.ticksPerSecond)} ticks/s`,
        versus: '',
        ratio: '',
        target: '',
      },
      {
        measure: `end-to-end p99 at ${count(RATE)} ticks/s offered`,
        rxrnn: `p50 ${lat(latency.p50Ms)} ms, p99 ${lat(latency.p99Ms)} ms (achieved ${count(latency.achievedPerSecond)}/s${saturated ? ', server saturated' : ''})`,
        versus: '',
        ratio: '',
        target: verdictText(TARGETS.latency, latency.p99Ms),
      },
    ]
    return {
      status: 'ok',
      setup,
      serverBackend: server.backend,
      throughput,
      predictOnly,
      latency,
      errors,
      ...(firstError ? { firstError } : {}),
      summary,
    }
  } catch (error) {
    const reason = message(error)
    note(`failed: ${reason}`)
    return { status: 'unavailable', reason, errors, summary: [] }
  } finally {
    socket.terminate()
    await stopServer(server.child)
  }
}

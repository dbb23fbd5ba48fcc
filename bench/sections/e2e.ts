/**
 * Section 4: end to end over WebSocket on 127.0.0.1. The server (streams/server.ts `serve`) runs
 * in a child process; this process is the client: one connection, binary msgpack ticks (encoded
 * with streams/codec.ts), predictions matched to ticks by id.
 *   (a) throughput: a window of at most 256 ticks in flight, a new tick sent for every
 *       prediction received: ticks per second, the median of five 1-second parts of the run;
 *       once with ticks that carry a target (the server learns on each) and once without (it
 *       only predicts), to tell the model's cost from the wire's;
 *   (b) latency: ticks paced at a fixed offered rate (10,000/s) with the high-resolution clock;
 *       latency runs from each tick's scheduled send time to its prediction (so a stalled
 *       sender counts against the result instead of hiding it), percentiles and achieved rate.
 *       The frames are encoded before the run; the pacing loop takes four event-loop turns per
 *       tick interval (replies come in then) and spins in between, so it makes little garbage
 *       and a reply waits at most a quarter interval (25 µs) in the client.
 *       Run twice: first as the round robin leaves the keys (every key's TBPTT window closes in
 *       the same 100 ticks: 100 updates back to back), then with key k's window shifted by
 *       k mod 16 ticks (updates spread evenly).
 *       The server is started with RXRNN_BENCH_SERVER_TIMING=1 (see e2e-server.ts): it records
 *       when its 'message' handler and its model call ran on each tick, the deferred weight
 *       updates after it, which TCP chunk the tick came in, its GCs and its scheduler statistics,
 *       so every round trip splits into the client's send lag, the wait before the server reached
 *       the tick, the handler, the time its reply was held while the rest of its chunk was handled
 *       (the per-connection cork), and the way back; the section prints that split for the
 *       slowest 1 % and what it implies. Replies are kept undecoded, with their arrival time,
 *       and read after the run.
 *   (c) the transport floor: the same client, window and pacing against e2e-echo.ts, a bare
 *       ws + msgpack server with no model, so rxrnn's numbers read against what this machine's
 *       WebSocket path costs by itself.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { PerformanceObserver, performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { decodeFrame, encodeFrame } from '../../streams/transport/codec.js'
import { count, header, ms, note, printTable, type SummaryRow, TARGETS, verdictText } from '../report.js'
import {
  CHUNK,
  type Context,
  DESCRIBE_MODEL,
  DESCRIBE_TRAINER,
  TARGETS as EVENT_TARGETS,
  INPUTS,
  machineBusySeconds,
  processCpuSeconds,
  STREAM_LENGTH,
  schedstat,
  turn,
} from './common.js'
import type { ServerTiming } from './e2e-server.js'
import { message } from './inference.js'

const WINDOW = 256
const RATE = 10_000
/** Event-loop turns the client's pacing loop takes per tick interval (see latencyRun). */
const TURNS_PER_TICK = 4
const KEYS = Array.from({ length: 100 }, (_, i) => `sensor-${i}`)

export interface Throughput {
  /** The median of the rates of the run's three equal parts (robust to one noisy second). */
  ticksPerSecond: number
  /** The rate of each part, and over the whole run. */
  partsPerSecond: number[]
  overallPerSecond: number
  ticks: number
  seconds: number
  window: number
}

/** Parts a throughput run is split into; the median part's rate is the result. */
const THROUGHPUT_PARTS = 5

/** Where the time of a set of ticks went, in ms (means over those ticks). */
export interface Breakdown {
  /** The client sent it this late (its pacing loop). */
  sendLagMs: number
  /** From send() to the server's 'message' handler starting on it: the wire, and waiting behind earlier ticks. */
  waitMs: number
  /** The server's handler on it: decode, the forward pass, monitor, encode, send (updates run after). */
  handlerMs: number
  /** Of which keyed.observe (forward, and the weight update when it triggered one). */
  modelMs: number
  /** From its handler's end to the end of its TCP chunk's handlers: its reply is corked until then. */
  heldMs: number
  /** From there to the client's 'message' handler: uncork, the wire, the client's event loop. */
  backMs: number
}

export interface ServerSide {
  ticks: number
  updates: number
  /** Per tick, the whole handler: percentiles over all ticks; and the median of ticks that ran an update. */
  handlerP50Ms: number
  handlerP99Ms: number
  handlerMaxMs: number
  /** The longest handler of a tick that ran no update: far above the p99, the process was descheduled or paused. */
  plainHandlerMaxMs: number
  updateP50Ms: number
  /** The most updates in any 100 consecutive ticks (100 keys round robin: 100 means every key at once). */
  maxUpdatesPer100Ticks: number
  /** The longest stretch the server handled ticks back to back (gaps < 50 µs), its ticks and updates. */
  longestBusyMs: number
  longestBusyTicks: number
  longestBusyUpdates: number
  /** Share of the run's wall time spent in the handlers. */
  busyShare: number
  minorGcs: number
  majorGcs: number
  minorGcPauseMaxMs: number
  majorGcPauseMaxMs: number
  loopDelayP99Ms: number
  cpuShare: number
  involuntaryContextSwitches: number
  /** Linux only: the server's main thread runnable but not running (another process had the CPU), ms. */
  runQueueWaitMs: number | null
  /** Means over all ticks and over the slowest 1 % (from scheduled send). */
  all: Breakdown
  slowest: Breakdown
  /** Of the slowest 1 %, the share that waited through a server GC (between send and handler start). */
  slowestDuringGc: number
  /** The server's clock minus the client's, and how well it is known (ms): its times are corrected by it. */
  clockOffsetMs: number
  clockUncertaintyMs: number
}

export interface Latency {
  /** How the keys' TBPTT windows lined up: 'aligned' (all keys update within the same 100 ticks) or 'staggered'. */
  keys: 'aligned' | 'staggered'
  targets: boolean
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
  /** How late the client's pacing loop sent ticks. */
  sendLagP99Ms: number
  sendLagMaxMs: number
  clientGcs: number
  clientGcPauseMaxMs: number
  /** Linux only: the client's main thread, runnable but not running, over the run (ms). */
  clientRunQueueWaitMs: number | null
  /**
   * Linux: CPU time the rest of the machine (not this client, not the server) took during the
   * run, as a share of one core (kernel workers, other processes); null when unknown.
   */
  otherCpuShare: number | null
  loadAverageBefore: number
  loadAverageAfter: number
  server?: ServerSide
}

export interface E2eResult {
  readonly status: 'ok' | 'unavailable'
  readonly reason?: string
  readonly setup?: string
  readonly serverBackend?: string
  readonly throughput?: Throughput
  /** The same with ticks that carry no target: the server predicts but does not learn. */
  readonly predictOnly?: Throughput
  readonly latency?: Latency
  /** The same run with the keys' windows staggered (key k shifted by k mod 16 ticks). */
  readonly latencyStaggered?: Latency
  /** The same client against e2e-echo.ts (no model): the transport floor, or why it did not run. */
  readonly floor?: Floor | { reason: string }
  readonly errors: number
  readonly firstError?: string
  readonly summary: SummaryRow[]
}

/** Throughput and latency of the bare echo server: what the WebSocket path alone costs here. */
export interface Floor {
  throughput: Throughput
  latency: Latency
}

/** Runs the same client against e2e-echo.ts, with the same windows and pacing as against rxrnn. */
async function measureFloor(
  ctx: Context,
  timing: { warmMs: number; runMs: number; seconds: number; drainMs: number },
): Promise<Floor | { reason: string }> {
  let echo: Started
  try {
    echo = await startServer('echo', ['--import', 'tsx', echoScript])
  } catch (error) {
    return { reason: message(error) }
  }
  let client: Client | undefined
  try {
    client = await Client.connect(echo.port)
    const next = { id: 0 }
    const throughput = await throughputRun(client, next, true, timing.warmMs, timing.runMs)
    const latency = await latencyRun(
      client,
      echo,
      next,
      { seconds: timing.seconds, targets: true, keys: 'aligned', drainMs: timing.drainMs },
      ctx.gc,
    )
    return { throughput, latency }
  } catch (error) {
    return { reason: message(error) }
  } finally {
    client?.close()
    await stopServer(echo.child)
  }
}

const serverScript = join(dirname(fileURLToPath(import.meta.url)), 'e2e-server.ts')
const echoScript = join(dirname(fileURLToPath(import.meta.url)), 'e2e-echo.ts')
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

type ServerAnswer = ServerTiming | 'reset' | { clock: number }

/**
 * The server's clock minus ours (absolute ms): of a few round trips over its stdin and stdout,
 * the one that took least, its answer taken to be from the middle of it. Good to a fraction of
 * that round trip (~0.1 ms); without it the two processes' performance.timeOrigin can be a
 * millisecond or more apart.
 */
async function clockOffset(server: Started): Promise<{ offsetMs: number; uncertaintyMs: number }> {
  let best = { offsetMs: 0, uncertaintyMs: Number.POSITIVE_INFINITY }
  for (let k = 0; k < 7; k++) {
    const t0 = performance.timeOrigin + performance.now()
    const answer = (await server.command('clock')) as { clock: number }
    const t1 = performance.timeOrigin + performance.now()
    if ((t1 - t0) / 2 < best.uncertaintyMs)
      best = { offsetMs: answer.clock - (t0 + t1) / 2, uncertaintyMs: (t1 - t0) / 2 }
  }
  return best
}

export interface Started {
  child: ChildProcess
  port: number
  backend: string
  fallback?: string
  /** Whether the server records per-tick timing (RXRNN_BENCH_SERVER_TIMING). */
  timing: boolean
  /** Sends a command line to the server's stdin and resolves with its answer. */
  command(line: 'reset' | 'report' | 'clock'): Promise<ServerAnswer>
}

/**
 * Starts the server process. `argv` replaces `--import tsx <e2e-server.ts>` (an experiment: the
 * same server bundled to plain JavaScript).
 */
export async function startServer(backend: string, argv?: string[]): Promise<Started> {
  const child = spawn(process.execPath, [...(argv ?? ['--import', 'tsx', serverScript]), backend], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, RXRNN_BENCH_SERVER_TIMING: '1' },
  })
  const lines = createInterface({ input: child.stdout! })
  const answers: ((value: ServerAnswer) => void)[] = []
  // The server's stdout: JSON lines (the first says where it listens, later ones answer
  // commands); anything else (a --trace-gc line, say) is not for us.
  const first = new Promise<string>((resolve, reject) => {
    let listening = false
    lines.on('line', (line) => {
      if (!line.startsWith('{')) return
      if (!listening) {
        listening = true
        resolve(line)
        return
      }
      const parsed = JSON.parse(line) as { timing?: ServerAnswer }
      if (parsed.timing !== undefined) answers.shift()?.(parsed.timing)
    })
    child.once('exit', (code) => reject(new Error(`the server process exited (${code}) before listening`)))
    child.once('error', reject)
    setTimeout(() => reject(new Error('the server process did not start within 30 s')), 30_000).unref()
  })
  try {
    const info = JSON.parse(await first) as {
      port: number
      backend: string
      fallback?: string
      timing?: boolean
    }
    return {
      child,
      port: info.port,
      backend: info.backend,
      ...(info.fallback ? { fallback: info.fallback } : {}),
      timing: info.timing === true,
      command: (line) =>
        new Promise((resolve, reject) => {
          answers.push(resolve)
          child.stdin!.write(`${line}\n`)
          setTimeout(
            () => reject(new Error(`the server did not answer '${line}' within 10 s`)),
            10_000,
          ).unref()
        }),
    }
  } catch (error) {
    child.kill('SIGTERM')
    throw error
  }
}

export async function stopServer(child: ChildProcess): Promise<void> {
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

const sortedCopy = (a: Float64Array) => a.slice().sort()

/** One client connection: sends ticks by id, calls `onAnswer(id)` for every prediction (or error) that names one. */
export class Client {
  onAnswer: (id: number) => void = () => {}
  /**
   * When set, replies are handed over undecoded with the time they came in (the latency run
   * decodes them after the run, so that decoding and its garbage do not delay the pacing loop).
   */
  capture: ((data: Buffer, at: number) => void) | undefined
  errors = 0
  firstError: string | undefined
  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      if (this.capture && isBinary) {
        this.capture(data as Buffer, performance.now())
        return
      }
      this.answer(data as Buffer, isBinary)
    })
  }

  /** Reads one reply: a prediction (or an error frame naming a tick) answers its tick's id. */
  answer(data: Buffer, isBinary: boolean): void {
    const decoded = decodeFrame(data, isBinary)
    const frame = decoded.ok ? (decoded.value as { type?: string; id?: number; message?: string }) : null
    if (frame?.type === 'prediction' && typeof frame.id === 'number') this.onAnswer(frame.id)
    else {
      this.errors++
      this.firstError ??= frame ? `${frame.type}: ${frame.message ?? ''}` : 'undecodable frame'
      // An error frame answers a tick too: count it so the window does not shrink.
      if (frame && typeof frame.id === 'number') this.onAnswer(frame.id)
    }
  }

  static async connect(port: number): Promise<Client> {
    const socket = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false })
    await once(socket, 'open')
    return new Client(socket)
  }

  /** Tick `id`: key id mod 100, the stream's event id mod 4096, with its target unless `targets` is false. */
  encode(id: number, targets: boolean, key = KEYS[id % KEYS.length]!): Uint8Array {
    const e = id % STREAM_LENGTH
    const tick = targets
      ? { type: 'tick', key, x: INPUTS[e]!, y: EVENT_TARGETS[e]![0]!, id }
      : { type: 'tick', key, x: INPUTS[e]!, id }
    return encodeFrame(tick, 'msgpack')
  }

  send(id: number, targets: boolean, key?: string): void {
    this.socket.send(this.encode(id, targets, key))
  }

  close(): void {
    this.socket.terminate()
  }
}

async function waitUntil(done: () => boolean, limitMs: number): Promise<void> {
  const deadline = performance.now() + limitMs
  while (!done() && performance.now() < deadline) await turn(5)
}

/** Throughput with a bounded window: a new tick for every answer. Ids continue from `next.id`. */
export async function throughputRun(
  client: Client,
  next: { id: number },
  targets: boolean,
  warmMs: number,
  runMs: number,
): Promise<Throughput> {
  let received = 0
  let sending = true
  client.onAnswer = () => {
    received++
    if (sending) client.send(next.id++, targets)
  }
  const first = next.id
  for (let k = 0; k < WINDOW; k++) client.send(next.id++, targets)
  await turn(warmMs)
  const r0 = received
  const t0 = performance.now()
  const partsPerSecond: number[] = []
  let rPart = r0
  let tPart = t0
  for (let part = 0; part < THROUGHPUT_PARTS; part++) {
    await turn(runMs / THROUGHPUT_PARTS)
    const r = received
    const t = performance.now()
    partsPerSecond.push(((r - rPart) * 1000) / (t - tPart))
    rPart = r
    tPart = t
  }
  sending = false
  await waitUntil(() => received >= next.id - first, 20_000)
  const seconds = (tPart - t0) / 1000
  const median = [...partsPerSecond].sort((a, b) => a - b)[Math.floor(THROUGHPUT_PARTS / 2)]!
  return {
    ticksPerSecond: median,
    partsPerSecond,
    overallPerSecond: (rPart - r0) / seconds,
    ticks: rPart - r0,
    seconds,
    window: WINDOW,
  }
}

/**
 * Shifts the keys' TBPTT windows apart: key k gets k mod 16 more ticks (with targets), so that
 * in the round robin that follows each key's update falls in a different round.
 */
export async function staggerKeys(client: Client, next: { id: number }): Promise<void> {
  let got = 0
  client.onAnswer = () => {
    got++
  }
  let sent = 0
  for (let k = 0; k < KEYS.length; k++)
    for (let j = 0; j < k % CHUNK; j++) {
      client.send(next.id++, true, KEYS[k]!)
      sent++
    }
  await waitUntil(() => got >= sent, 10_000)
}

/**
 * Ticks paced at `rate` per second for `seconds`, timed from each tick's scheduled send time; with
 * the server's per-tick timing when it records it. Ids continue from `next.id`; `drainMs` bounds
 * the wait for the last answers.
 */
export async function latencyRun(
  client: Client,
  server: Started,
  next: { id: number },
  options: { seconds: number; targets: boolean; keys: 'aligned' | 'staggered'; drainMs: number },
  gc: () => void,
): Promise<Latency> {
  const total = Math.round(RATE * options.seconds)
  const base = next.id
  next.id += total
  const scheduled = new Float64Array(total)
  const sentAt = new Float64Array(total)
  // Unanswered ticks stay infinite: they count as slower than any answered one.
  const answeredAt = new Float64Array(total).fill(Number.POSITIVE_INFINITY)
  // Encoded before the run, so that the pacing loop only sends; collected into the old
  // generation now, so that the client's collections during the run stay short.
  const frames = Array.from({ length: total }, (_, i) => client.encode(base + i, options.targets))
  gc()
  let got = 0
  // Replies are kept as they come, with their arrival time, and read after the run.
  const replies: Buffer[] = []
  const replyTimes = new Float64Array(total + 1024)
  client.capture = (data, at) => {
    if (replies.length < replyTimes.length) replyTimes[replies.length] = at
    replies.push(data)
    got++
  }
  if (server.timing) await server.command('reset')
  let clientGcs = 0
  let clientGcPauseMaxMs = 0
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      clientGcs++
      clientGcPauseMaxMs = Math.max(clientGcPauseMaxMs, entry.duration)
    }
  })
  gcObserver.observe({ entryTypes: ['gc'] })
  const loadAverageBefore = loadavg()[0]!
  const schedBefore = schedstat()
  const busyBefore = machineBusySeconds()
  const serverCpuBefore = processCpuSeconds(server.child.pid)
  const clientCpuBefore = process.cpuUsage()
  const runStart = performance.now()
  let sent = 0
  const start = performance.now() + 5
  const interval = 1000 / RATE
  const lastSend = new Float64Array(1)
  // Written between clock reads while spinning (2,048 writes, ~2 µs), so that the spin does not
  // read the clock flat out: performance.now() leaves a little garbage each time.
  const spinCell = new Int32Array(1)
  await new Promise<void>((resolve) => {
    // TURNS_PER_TICK event-loop turns per tick, evenly spaced: each takes the replies in, and in
    // between the pump spins; the last one before a tick is due sends it. (A turn makes a little
    // garbage: a turn per spin would make the client collect hundreds of times a second.) A
    // reply waits at most interval / TURNS_PER_TICK in the client.
    let turnInTick = 1
    const pump = () => {
      const at = start + sent * interval - ((TURNS_PER_TICK - turnInTick) * interval) / TURNS_PER_TICK
      while (performance.now() < at) for (let k = 0; k < 2048; k++) spinCell[0] = spinCell[0]! + 1
      if (turnInTick < TURNS_PER_TICK) {
        turnInTick++
        setImmediate(pump)
        return
      }
      turnInTick = 1
      const now = performance.now()
      const due = Math.min(total, Math.floor((now - start) / interval) + 1)
      while (sent < due) {
        scheduled[sent] = start + sent * interval
        sentAt[sent] = performance.now()
        client.socket.send(frames[sent]!)
        sent++
      }
      lastSend[0] = now
      if (sent < total) setImmediate(pump)
      else resolve()
    }
    setImmediate(pump)
  })
  await waitUntil(() => got >= total, options.drainMs)
  await turn(10)
  client.capture = undefined
  let answeredAtNow = 0
  client.onAnswer = (id) => {
    const i = id - base
    if (i >= 0 && i < total) answeredAt[i] = answeredAtNow
  }
  for (let r = 0; r < replies.length && r < replyTimes.length; r++) {
    answeredAtNow = replyTimes[r]!
    client.answer(replies[r]!, true)
  }
  got = 0
  for (let i = 0; i < total; i++) if (Number.isFinite(answeredAt[i]!)) got++
  gcObserver.disconnect()
  const loadAverageAfter = loadavg()[0]!
  const busyAfter = machineBusySeconds()
  const serverCpuAfter = processCpuSeconds(server.child.pid)
  const clientCpu = process.cpuUsage(clientCpuBefore)
  const runSeconds = (performance.now() - runStart) / 1000
  const schedAfter = schedstat()
  const fromScheduled = new Float64Array(total)
  const fromSend = new Float64Array(total)
  const sendLag = new Float64Array(total)
  for (let i = 0; i < total; i++) {
    fromScheduled[i] = answeredAt[i]! - scheduled[i]!
    fromSend[i] = answeredAt[i]! - sentAt[i]!
    sendLag[i] = sentAt[i]! - scheduled[i]!
  }
  const s1 = sortedCopy(fromScheduled)
  const s2 = sortedCopy(fromSend)
  const s3 = sortedCopy(sendLag)
  const result: Latency = {
    keys: options.keys,
    targets: options.targets,
    offeredPerSecond: RATE,
    achievedPerSecond: (total - 1) / ((lastSend[0]! - start) / 1000),
    sent: total,
    received: got,
    p50Ms: percentile(s1, 0.5),
    p99Ms: percentile(s1, 0.99),
    p999Ms: percentile(s1, 0.999),
    maxMs: s1[s1.length - 1]!,
    p50FromSendMs: percentile(s2, 0.5),
    p99FromSendMs: percentile(s2, 0.99),
    sendLagP99Ms: percentile(s3, 0.99),
    sendLagMaxMs: s3[s3.length - 1]!,
    clientGcs,
    clientGcPauseMaxMs,
    clientRunQueueWaitMs: schedBefore && schedAfter ? (schedAfter[1] - schedBefore[1]) / 1e6 : null,
    otherCpuShare:
      busyBefore === null || busyAfter === null || serverCpuBefore === null || serverCpuAfter === null
        ? null
        : Math.max(
            0,
            busyAfter -
              busyBefore -
              (serverCpuAfter - serverCpuBefore) -
              (clientCpu.user + clientCpu.system) / 1e6,
          ) / runSeconds,
    loadAverageBefore,
    loadAverageAfter,
  }
  if (!server.timing) return result
  const timing = (await server.command('report')) as ServerTiming
  const clock = await clockOffset(server)
  // The server numbers ticks in arrival order; on one connection that is send order.
  if (timing.ticks !== total || got !== total) return result
  const origin = performance.timeOrigin
  // The server's times, moved onto this process's clock.
  const decode = (b64: string) => new Float64Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer)
  const onOurClock = (times: Float64Array) => {
    for (let i = 0; i < times.length; i++) times[i] = times[i]! - clock.offsetMs
    return times
  }
  for (let g = 0; g < timing.gcTimes.length; g += 2) timing.gcTimes[g] = timing.gcTimes[g]! - clock.offsetMs
  const hStart = onOurClock(decode(timing.handlerStart))
  const hEnd = onOurClock(decode(timing.handlerEnd))
  const mStart = decode(timing.modelStart)
  const mEnd = decode(timing.modelEnd)
  const sUpdate = decode(timing.update)
  const sFlush = decode(timing.flush)
  const sChunk = decode(timing.chunk)
  const chunkEnd = new Float64Array(total)
  for (let i = total - 1; i >= 0; i--)
    chunkEnd[i] = i + 1 < total && sChunk[i + 1] === sChunk[i] ? chunkEnd[i + 1]! : hEnd[i]!
  const handler = new Float64Array(total)
  const updateTimes: number[] = []
  let busy = 0
  let plainMax = 0
  let longest = { ms: 0, ticks: 0, updates: 0 }
  let run = { from: 0, ticks: 0, updates: 0 }
  let updates = 0
  let maxUpdatesPer100 = 0
  let window100 = 0
  for (let i = 0; i < total; i++) {
    handler[i] = hEnd[i]! - hStart[i]!
    busy += handler[i]!
    const u = sUpdate[i]! > 0 ? 1 : 0
    updates += u
    // An update's time: its share of the flush after the tick (deferred), else the tick's handler.
    if (u) updateTimes.push(sFlush[i]! > 0 ? sFlush[i]! / sUpdate[i]! : handler[i]!)
    else plainMax = Math.max(plainMax, handler[i]!)
    window100 += u - (i >= 100 && sUpdate[i - 100]! > 0 ? 1 : 0)
    maxUpdatesPer100 = Math.max(maxUpdatesPer100, window100)
    if (i === 0 || hStart[i]! - hEnd[i - 1]! > 0.05) run = { from: i, ticks: 0, updates: 0 }
    run.ticks++
    run.updates += u
    const length = hEnd[i]! - hStart[run.from]!
    if (length > longest.ms) longest = { ms: length, ticks: run.ticks, updates: run.updates }
  }
  const breakdown = (indices: ArrayLike<number>): Breakdown => {
    const b: Breakdown = { sendLagMs: 0, waitMs: 0, handlerMs: 0, modelMs: 0, heldMs: 0, backMs: 0 }
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!
      b.sendLagMs += sendLag[i]!
      b.waitMs += hStart[i]! - (origin + sentAt[i]!)
      b.handlerMs += handler[i]!
      b.modelMs += mEnd[i]! - mStart[i]!
      b.heldMs += chunkEnd[i]! - hEnd[i]!
      b.backMs += origin + answeredAt[i]! - chunkEnd[i]!
    }
    for (const key of Object.keys(b) as (keyof Breakdown)[]) b[key] /= Math.max(1, indices.length)
    return b
  }
  const duringGc = (i: number) => {
    const from = origin + sentAt[i]!
    for (let g = 0; g < timing.gcTimes.length; g += 2)
      if (timing.gcTimes[g]! < hStart[i]! && timing.gcTimes[g]! + timing.gcTimes[g + 1]! > from) return true
    return false
  }
  const order = Array.from({ length: total }, (_, i) => i).sort(
    (a, b) => fromScheduled[b]! - fromScheduled[a]!,
  )
  const slowest = order.slice(0, Math.max(1, Math.floor(total / 100)))
  const sortedHandler = sortedCopy(handler)
  const sortedUpdates = Float64Array.from(updateTimes).sort()
  result.server = {
    ticks: timing.ticks,
    updates,
    handlerP50Ms: percentile(sortedHandler, 0.5),
    handlerP99Ms: percentile(sortedHandler, 0.99),
    handlerMaxMs: sortedHandler[total - 1]!,
    plainHandlerMaxMs: plainMax,
    updateP50Ms: sortedUpdates.length > 0 ? percentile(sortedUpdates, 0.5) : Number.NaN,
    maxUpdatesPer100Ticks: maxUpdatesPer100,
    longestBusyMs: longest.ms,
    longestBusyTicks: longest.ticks,
    longestBusyUpdates: longest.updates,
    busyShare: busy / (timing.seconds * 1000),
    minorGcs: timing.minorGcs,
    majorGcs: timing.majorGcs,
    minorGcPauseMaxMs: timing.minorGcPauseMaxMs,
    majorGcPauseMaxMs: timing.majorGcPauseMaxMs,
    loopDelayP99Ms: timing.loopDelayP99Ms,
    cpuShare: timing.cpuSeconds / timing.seconds,
    involuntaryContextSwitches: timing.involuntaryContextSwitches,
    runQueueWaitMs: timing.runQueueWaitMs,
    all: breakdown(order),
    slowest: breakdown(slowest),
    slowestDuringGc: slowest.filter(duringGc).length / slowest.length,
    clockOffsetMs: clock.offsetMs,
    clockUncertaintyMs: clock.uncertaintyMs,
  }
  return result
}

/**
 * Where the tail came from, in sentences, from what was measured: bunched updates, the cork,
 * server stalls (a tick without an update that took far longer than any update: the process was
 * not running), collections, and the client.
 */
/** The table rows of the transport floor (or why it did not run). */
function floorRows(floor: Floor | { reason: string }, lat: (v: number) => string): string[][] {
  if (!('latency' in floor))
    return [['(c) transport floor', 'n/a', `the echo server did not run: ${floor.reason}`, '']]
  const l = floor.latency
  const other =
    l.otherCpuShare === null
      ? ''
      : `; other work on the machine took ${(100 * l.otherCpuShare).toFixed(0)} % of a core`
  return [
    [
      '(c) transport floor',
      `${count(floor.throughput.ticksPerSecond)} ticks/s`,
      'the same client against a bare ws + msgpack server that answers each tick with a constant (bench/sections/e2e-echo.ts): no validation, no model',
      '',
    ],
    [
      '    floor p50 / p99',
      `${lat(l.p50Ms)} / ${lat(l.p99Ms)} ms`,
      `p99.9 ${lat(l.p999Ms)} ms, max ${lat(l.maxMs)} ms at ${count(RATE)} ticks/s offered${other}`,
      `for reference: ${verdictText(TARGETS.latency, l.p99Ms)}`,
    ],
  ]
}

/** What the floor says about rxrnn's tail. */
function floorDiagnosis(floor: Floor, aligned: Latency, staggered: Latency): string {
  const f = floor.latency
  const added = (l: Latency) => ms(Math.max(0, l.p99Ms - f.p99Ms))
  const other =
    f.otherCpuShare === null || aligned.otherCpuShare === null
      ? ''
      : `; other processes and kernel work took ${(100 * f.otherCpuShare).toFixed(0)} % and ` +
        `${(100 * aligned.otherCpuShare).toFixed(0)} % of a core during the floor and rxrnn runs`
  const verdictOfFloor =
    f.p99Ms >= TARGETS.latency.limit
      ? `the WebSocket path alone has p99 ${ms(f.p99Ms)} ms here, at or above the ${ms(TARGETS.latency.limit)} ms target before any model runs: ` +
        `on this machine the tail starts with waking and scheduling the processes${other}`
      : `the WebSocket path alone has p99 ${ms(f.p99Ms)} ms here${other}`
  return `transport floor: ${verdictOfFloor}; rxrnn adds ${added(aligned)} ms at p99 with the keys' windows in step and ${added(staggered)} ms staggered`
}

function diagnose(aligned: Latency, staggered: Latency): string[] {
  const lines: string[] = []
  const a = aligned.server
  const s = staggered.server
  if (!a || !s) return ['no server-side timing: the tail cannot be split']
  const slow = a.slowest
  const queued = slow.waitMs + slow.heldMs
  lines.push(
    `p99 (aligned keys): the slowest 1 % of ticks spent ${ms(slow.waitMs)} ms waiting for the server and ` +
      `${ms(slow.heldMs)} ms held in the cork while later ticks of their TCP chunk were handled, against ` +
      `${ms(slow.handlerMs)} ms in their own handler and ${ms(slow.sendLagMs + slow.backMs)} ms in the client and the wire` +
      (queued > 0.5 * aligned.p99Ms ? ': queueing at the server' : '') +
      `; ${(100 * a.slowestDuringGc).toFixed(0)} % of them waited through a server GC`,
  )
  if (a.maxUpdatesPer100Ticks >= 50)
    lines.push(
      `the round robin keeps all ${KEYS.length} keys' TBPTT windows in step: up to ${a.maxUpdatesPer100Ticks} ` +
        `updates in 100 ticks, ${ms(a.updateP50Ms)} ms each, so ≈ ${ms(a.maxUpdatesPer100Ticks * a.updateP50Ms)} ms of ` +
        `back-to-back work every ${count(KEYS.length * CHUNK)} ticks, while ticks keep arriving every ${ms(1000 / RATE)} ms; ` +
        `with the windows staggered (at most ${s.maxUpdatesPer100Ticks} in 100 ticks) p99 is ${ms(staggered.p99Ms)} ms`,
    )
  const stall = Math.max(a.plainHandlerMaxMs, s.plainHandlerMaxMs)
  const gcMax = Math.max(a.minorGcPauseMaxMs, a.majorGcPauseMaxMs, s.minorGcPauseMaxMs, s.majorGcPauseMaxMs)
  if (stall > Math.max(5, 2 * gcMax, 4 * a.updateP50Ms))
    lines.push(
      `a tick without an update took ${ms(stall)} ms in the server (its p99 is ${ms(s.handlerP99Ms)} ms, the longest GC ` +
        `${ms(gcMax)} ms): the server process was not running (descheduled: the machine is busy); these runs are noisy`,
    )
  const ss = s.slowest
  lines.push(
    `p99 (staggered keys): the slowest 1 % spent ${ms(ss.waitMs)} ms waiting for the server, ${ms(ss.heldMs)} ms in the cork, ` +
      `${ms(ss.handlerMs)} ms in their handler, ${ms(ss.sendLagMs)} ms late from the client and ${ms(ss.backMs)} ms on the way back; ` +
      `${(100 * s.slowestDuringGc).toFixed(0)} % of them waited through a server GC ` +
      `(${s.minorGcs + s.majorGcs} in ${staggered.sent / RATE} s, the longest ${ms(Math.max(s.minorGcPauseMaxMs, s.majorGcPauseMaxMs))} ms; ` +
      `the client's longest ${ms(staggered.clientGcPauseMaxMs)} ms)` +
      (s.runQueueWaitMs === null
        ? ''
        : `; the server's thread spent ${ms(s.runQueueWaitMs)} ms of the ${staggered.sent / RATE} s runnable but not running ` +
          `(${count(s.involuntaryContextSwitches)} involuntary switches: the CPUs were busy with other work, ` +
          `the client's pacing loop among it on this ${cpus().length}-core machine)`),
  )
  return lines
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
  let client: Client | undefined
  try {
    client = await Client.connect(server.port)
    const next = { id: 0 }
    const warmMs = ctx.quick ? 300 : 1000
    const runMs = ctx.quick ? 700 : 5000
    const throughput = await throughputRun(client, next, true, warmMs, runMs)
    const predictOnly = await throughputRun(client, next, false, warmMs, runMs)
    // A server slower than the offered rate has a backlog to clear: wait for it, within reason.
    const latencySeconds = ctx.quick ? 1 : 3
    const drainMs = Math.min(
      15_000,
      Math.max(5_000, (1500 * RATE * latencySeconds) / Math.max(1, throughput.ticksPerSecond)),
    )
    // The round robin above leaves every key's window at the same phase.
    const latency = await latencyRun(
      client,
      server,
      next,
      {
        seconds: latencySeconds,
        targets: true,
        keys: 'aligned',
        drainMs,
      },
      ctx.gc,
    )
    await staggerKeys(client, next)
    const staggered = await latencyRun(
      client,
      server,
      next,
      {
        seconds: latencySeconds,
        targets: true,
        keys: 'staggered',
        drainMs,
      },
      ctx.gc,
    )
    // The transport floor: the server process and its client go away first, so the echo server
    // runs on an otherwise idle machine, as rxrnn's did.
    const { errors, firstError } = client
    client.close()
    client = undefined
    await stopServer(server.child)
    const floor = await measureFloor(ctx, { warmMs, runMs, seconds: latencySeconds, drainMs })
    const saturated = throughput.ticksPerSecond < RATE
    const lat = (v: number) => (Number.isFinite(v) ? `${ms(v)}` : `> ${ms(drainMs)} (unanswered)`)

    const serverText = (l: Latency) =>
      l.server
        ? `server: ${ms(l.server.handlerP50Ms)} / ${ms(l.server.handlerP99Ms)} ms per tick (max ${ms(l.server.handlerMaxMs)})`
        : 'no server-side timing'
    const slowestText = (l: Latency) =>
      l.server
        ? `send lag ${ms(l.server.slowest.sendLagMs)}, wait for the server ${ms(l.server.slowest.waitMs)}, ` +
          `handler ${ms(l.server.slowest.handlerMs)}, held in the cork ${ms(l.server.slowest.heldMs)}, way back ${ms(l.server.slowest.backMs)}`
        : ''
    printTable(
      ['measure', 'value', 'detail', 'target'],
      [
        [
          '(a) throughput, learning',
          `${count(throughput.ticksPerSecond)} ticks/s`,
          `median of ${THROUGHPUT_PARTS} parts (${throughput.partsPerSecond.map(count).join(', ')}; ${count(throughput.overallPerSecond)} over all ${throughput.seconds.toFixed(1)} s), window ${WINDOW}`,
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
          `offered ${count(RATE)}/s for ${latencySeconds} s; ${count(latency.received)} of ${count(latency.sent)} answered`,
          '',
        ],
        [
          '    server side p50 / p99',
          latency.server
            ? `${ms(latency.server.handlerP50Ms)} / ${ms(latency.server.handlerP99Ms)} ms`
            : 'n/a',
          latency.server
            ? `its handler per tick (decode, forward pass, monitor, encode, send), max ${ms(latency.server.handlerMaxMs)} ms; ` +
              `${count(latency.server.updates)} updates, ${ms(latency.server.updateP50Ms)} ms each (p50), up to ${latency.server.maxUpdatesPer100Ticks} in 100 ticks`
            : 'the server did not report its timing',
          '',
        ],
        [
          '    slowest 1 %, mean ms',
          latency.server
            ? `${ms(latency.server.slowest.waitMs + latency.server.slowest.heldMs)} ms queued`
            : '',
          slowestText(latency),
          '',
        ],
        [
          '    keys staggered',
          `${lat(staggered.p50Ms)} / ${lat(staggered.p99Ms)} ms`,
          `p50 / p99 after shifting key k's window by k mod ${CHUNK} ticks (updates spread out); ${serverText(staggered)}`,
          verdictText(TARGETS.latency, staggered.p99Ms),
        ],
        ...floorRows(floor, lat),
      ],
      [0, 2, 3],
    )
    for (const [name, l] of [
      ['aligned keys', latency],
      ['staggered keys', staggered],
    ] as const) {
      const s = l.server
      note(
        `${name}: client send lag p99 ${ms(l.sendLagP99Ms)} ms, ${l.clientGcs} client GCs (longest ${ms(l.clientGcPauseMaxMs)} ms); ` +
          (l.clientRunQueueWaitMs === null
            ? ''
            : `${ms(l.clientRunQueueWaitMs)} ms runnable but not running; `) +
          `load average ${l.loadAverageBefore.toFixed(2)} → ${l.loadAverageAfter.toFixed(2)} on ${cpus().length} cores` +
          (s
            ? `; server: ${s.minorGcs} minor / ${s.majorGcs} major GCs (longest ${ms(Math.max(s.minorGcPauseMaxMs, s.majorGcPauseMaxMs))} ms), ` +
              `CPU ${(100 * s.cpuShare).toFixed(0)} %, ${count(s.involuntaryContextSwitches)} involuntary context switches` +
              (s.runQueueWaitMs === null ? ', ' : `, ${ms(s.runQueueWaitMs)} ms runnable but not running, `) +
              `longest busy stretch ${ms(s.longestBusyMs)} ms (${count(s.longestBusyTicks)} ticks, ${s.longestBusyUpdates} updates), ` +
              `longest tick without an update ${ms(s.plainHandlerMaxMs)} ms; ` +
              `server clock ${s.clockOffsetMs >= 0 ? '+' : ''}${ms(s.clockOffsetMs)} ms from ours (± ${ms(s.clockUncertaintyMs)}), corrected`
            : ''),
      )
    }
    for (const line of diagnose(latency, staggered)) note(line)
    if ('latency' in floor) note(floorDiagnosis(floor, latency, staggered))
    if (server.backend !== ctx.backends.headline || server.fallback)
      note(`server backend: rxrnn (${server.backend})`)
    if (saturated)
      note(
        `the server answers ${count(throughput.ticksPerSecond)} learning ticks/s at most, below the offered ` +
          `${count(RATE)}/s: (b) measures a growing queue, not the steady-state latency`,
      )
    if (errors > 0) note(`FLAG ${errors} frames were not predictions; first: ${firstError}`)
    const serverP99 = (l: Latency) => (l.server ? `, server ${ms(l.server.handlerP99Ms)} ms per tick` : '')
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
        rxrnn: `p50 ${lat(latency.p50Ms)} ms, p99 ${lat(latency.p99Ms)} ms (achieved ${count(latency.achievedPerSecond)}/s${saturated ? ', server saturated' : ''}${serverP99(latency)})`,
        versus: '',
        ratio: '',
        target: verdictText(TARGETS.latency, latency.p99Ms),
      },
      {
        measure: `end-to-end p99, keys' windows staggered`,
        rxrnn: `p50 ${lat(staggered.p50Ms)} ms, p99 ${lat(staggered.p99Ms)} ms (achieved ${count(staggered.achievedPerSecond)}/s${serverP99(staggered)})`,
        versus: 'latency' in floor ? `echo, no model: p99 ${lat(floor.latency.p99Ms)} ms` : '',
        ratio: 'latency' in floor ? `${(staggered.p99Ms / floor.latency.p99Ms).toFixed(2)}× the floor` : '',
        target: verdictText(TARGETS.latency, staggered.p99Ms),
      },
    ]
    if ('throughput' in floor)
      summary.push({
        measure: 'end-to-end throughput of the transport floor (echo, no model)',
        rxrnn: `${count(floor.throughput.ticksPerSecond)} ticks/s`,
        versus: '',
        ratio: `rxrnn learning: ${(100 * (throughput.ticksPerSecond / floor.throughput.ticksPerSecond)).toFixed(0)} % of it`,
        target: '',
      })
    return {
      status: 'ok',
      setup,
      serverBackend: server.backend,
      throughput,
      predictOnly,
      latency,
      latencyStaggered: staggered,
      floor,
      errors,
      ...(firstError ? { firstError } : {}),
      summary,
    }
  } catch (error) {
    const reason = message(error)
    note(`failed: ${reason}`)
    return { status: 'unavailable', reason, errors: client?.errors ?? 0, summary: [] }
  } finally {
    client?.close()
    await stopServer(server.child)
  }
}

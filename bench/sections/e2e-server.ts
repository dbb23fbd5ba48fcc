/**
 * The server side of section 4, run in its own process (`node --import tsx`) so that the client
 * and the server do not share an event loop. Builds the benchmark model on the backend named in
 * argv[2] (falling back to js when that one cannot be built), serves it on 127.0.0.1 on a free
 * port, prints one JSON line `{ port, backend, fallback? }` on stdout, and closes on SIGTERM or
 * when stdin ends (the harness died).
 *
 * With RXRNN_BENCH_SERVER_TIMING=1 in its environment it also times the server's side of every
 * tick, without touching the library: ws's WebSocket.prototype.emit is wrapped to time each
 * 'message' handler of streams/server.ts (decode, forward pass, monitor, encode, send), and this
 * server's `keyed.observeDeferred` (or `observe`) to time the model's part, in absolute time
 * (performance.timeOrigin + performance.now()); it records the weight updates that ran after the
 * tick (serve() answers first and learns after: `keyed.runDueUpdates`, timed too) and which event-loop
 * callback (one incoming TCP chunk: the replies to it leave together, see the cork in
 * streams/server.ts `send`) it came in. It counts the server's GCs (when, how long), its CPU time,
 * context switches and time runnable but not running (Linux schedstat), and the event loop's
 * delay. Off (the default) it adds nothing. stdin then takes commands, one a line:
 *   reset  — forget what was recorded and start recording (answers {"timing":"reset"} once done);
 *   report — stop recording; answers {"timing":{…}} with the summary and the per-tick arrays
 *            (base64 Float64Array). The timers are in place only in between, so the throughput
 *            runs, which come before any reset, run the server untimed;
 *   clock  — answers {"timing":{"clock":ms}}, this process's absolute time, so that the client can
 *            measure the offset between the two processes' clocks (timeOrigin is only as good as
 *            the wall clock at start: a millisecond or two apart).
 */
import { constants, monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { WebSocket } from 'ws'
import type { KeyedTrainer } from '../../src/index.js'
import { serve } from '../../streams/server/server.js'
import { type Backend, createRxrnnModel, schedstat, trainerOptions } from './common.js'

const wanted = (process.argv[2] ?? 'js') as Backend
let backend: Backend = wanted
let model = createRxrnnModel(wanted)
let fallback: string | undefined
if ('available' in model) {
  fallback = model.reason
  backend = 'js'
  model = createRxrnnModel('js')
}
if ('available' in model) throw new Error(model.reason)

const server = await serve({ model, trainer: trainerOptions(0), host: '127.0.0.1', port: 0 })
const timing = process.env.RXRNN_BENCH_SERVER_TIMING === '1' ? installTiming(server.keyed) : undefined
process.stdout.write(
  `${JSON.stringify({ port: server.port, backend, ...(fallback ? { fallback } : {}), timing: timing !== undefined })}\n`,
)

let closing = false
const stop = () => {
  if (closing) return
  closing = true
  void server.close().then(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
if (timing) {
  createInterface({ input: process.stdin }).on('line', (line) => {
    const command = line.trim()
    if (command === 'reset') {
      timing.reset()
      process.stdout.write(`${JSON.stringify({ timing: 'reset' })}\n`)
    } else if (command === 'report') process.stdout.write(`${JSON.stringify({ timing: timing.report() })}\n`)
    else if (command === 'clock')
      process.stdout.write(
        `${JSON.stringify({ timing: { clock: performance.timeOrigin + performance.now() } })}\n`,
      )
  })
}
process.stdin.resume()

/** What the server reports about the ticks it saw since the last reset. */
export interface ServerTiming {
  ticks: number
  /** Ticks that ran a weight update (every k1-th tick of a key, when it carries a target). */
  updates: number
  seconds: number
  /** The server's CPU time over `seconds` (user + system), and its context switches. */
  cpuSeconds: number
  voluntaryContextSwitches: number
  involuntaryContextSwitches: number
  /** Scavenges and the other (mark-compact) collections, with their longest pauses. */
  minorGcs: number
  majorGcs: number
  gcPauseTotalMs: number
  minorGcPauseMaxMs: number
  majorGcPauseMaxMs: number
  /**
   * Linux only (/proc/thread-self/schedstat, else null): the main thread's time on a CPU and its
   * time runnable but waiting for one (descheduled by other work on the machine), in ms.
   */
  onCpuMs: number | null
  runQueueWaitMs: number | null
  /** Each collection: start (absolute ms) and duration, as a flat list [start, duration, …]. */
  gcTimes: number[]
  /** Event-loop delay (timer lateness, 1 ms resolution). */
  loopDelayP99Ms: number
  loopDelayMaxMs: number
  /**
   * Per tick, in arrival order, base64 Float64Arrays: the 'message' handler's start and end and
   * keyed.observe's start and end (absolute ms), the updates it ran, and its chunk id.
   */
  handlerStart: string
  handlerEnd: string
  modelStart: string
  modelEnd: string
  update: string
  /** Per tick: ms of weight updates run after it (deferred updates: a flush after the replies). */
  flush: string
  chunk: string
}

function installTiming(keyed: KeyedTrainer) {
  const CAPACITY = 1 << 18
  const handlerStart = new Float64Array(CAPACITY)
  const handlerEnd = new Float64Array(CAPACITY)
  const modelStart = new Float64Array(CAPACITY)
  const modelEnd = new Float64Array(CAPACITY)
  const update = new Float64Array(CAPACITY)
  const flush = new Float64Array(CAPACITY)
  const chunk = new Float64Array(CAPACITY)
  let n = 0
  let chunkId = 0
  let inChunk = false
  const origin = performance.timeOrigin
  let minorGcs = 0
  let majorGcs = 0
  let gcPauseTotal = 0
  let minorGcPauseMax = 0
  let majorGcPauseMax = 0
  let gcTimes: number[] = []
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind
      gcPauseTotal += entry.duration
      gcTimes.push(origin + entry.startTime, entry.duration)
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        minorGcs++
        minorGcPauseMax = Math.max(minorGcPauseMax, entry.duration)
      } else {
        majorGcs++
        majorGcPauseMax = Math.max(majorGcPauseMax, entry.duration)
      }
    }
  })
  gcObserver.observe({ entryTypes: ['gc'] })
  const loop = monitorEventLoopDelay({ resolution: 1 })
  loop.enable()
  let since = performance.now()
  let usage = process.resourceUsage()
  let sched = schedstat()
  // Frames handled in one JS callback (one TCP chunk's frames, which ws emits synchronously)
  // share a chunk id: a microtask runs only once that callback has returned, so marks its end.
  const endChunk = () => {
    inChunk = false
  }
  // The whole 'message' handler of streams/server.ts (decode, observe, monitor, encode, send):
  // wrapped where ws emits it, so the library is untouched.
  const emit = WebSocket.prototype.emit
  const timedEmit = function (this: WebSocket, event: string | symbol, ...args: unknown[]) {
    if (event !== 'message' || n >= CAPACITY) return emit.call(this, event, ...args)
    if (!inChunk) {
      inChunk = true
      chunkId++
      queueMicrotask(endChunk)
    }
    const i = n++
    handlerStart[i] = origin + performance.now()
    update[i] = 0
    flush[i] = 0
    chunk[i] = chunkId
    const handled = emit.call(this, event, ...args)
    handlerEnd[i] = origin + performance.now()
    return handled
  }
  /** Times the model's part of the tick being handled (its forward pass, and its update when inline). */
  const timeModel = <T>(call: () => T): T => {
    const t0 = performance.now()
    const result = call()
    const i = n - 1
    if (i >= 0 && i < CAPACITY) {
      modelStart[i] = origin + t0
      modelEnd[i] = origin + performance.now()
    }
    return result
  }
  const observe = keyed.observe.bind(keyed)
  const timedObserve: KeyedTrainer['observe'] = (key, x, target, now) => {
    const result = timeModel(() => observe(key, x, target, now))
    if (n - 1 >= 0 && n - 1 < CAPACITY) update[n - 1] = result.updates.length
    return result
  }
  // serve()'s default: the tick's forward pass in the handler, its weight update in a flush after
  // the replies (keyed.runDueUpdates), whose updates and time go to the last tick before it.
  const observeDeferred = keyed.observeDeferred.bind(keyed)
  const timedObserveDeferred: KeyedTrainer['observeDeferred'] = (key, x, target, now) =>
    timeModel(() => observeDeferred(key, x, target, now))
  const runDueUpdates = keyed.runDueUpdates.bind(keyed)
  const timedRunDueUpdates: KeyedTrainer['runDueUpdates'] = () => {
    const t0 = performance.now()
    const reports = runDueUpdates()
    const i = n - 1
    if (i >= 0 && i < CAPACITY) {
      update[i] = update[i]! + reports.length
      flush[i] = flush[i]! + (performance.now() - t0)
    }
    return reports
  }
  // Installed from 'reset' to 'report' only (the latency runs): the throughput runs before them
  // measure the server as it ships, not with a timer around every call.
  const install = () => {
    WebSocket.prototype.emit = timedEmit
    keyed.observe = timedObserve
    keyed.observeDeferred = timedObserveDeferred
    keyed.runDueUpdates = timedRunDueUpdates
  }
  const uninstall = () => {
    WebSocket.prototype.emit = emit
    // The own properties go: the prototype's methods show through again.
    for (const name of ['observe', 'observeDeferred', 'runDueUpdates'] as const)
      Reflect.deleteProperty(keyed, name)
  }
  const b64 = (a: Float64Array) => Buffer.from(a.buffer, 0, n * 8).toString('base64')
  return {
    reset() {
      install()
      n = 0
      minorGcs = 0
      majorGcs = 0
      gcPauseTotal = 0
      minorGcPauseMax = 0
      majorGcPauseMax = 0
      gcTimes = []
      loop.reset()
      since = performance.now()
      usage = process.resourceUsage()
      sched = schedstat()
    },
    report(): ServerTiming {
      uninstall()
      const u = process.resourceUsage()
      const nowSched = schedstat()
      let updates = 0
      for (let i = 0; i < n; i++) updates += update[i]! > 0 ? 1 : 0
      return {
        ticks: n,
        updates,
        seconds: (performance.now() - since) / 1000,
        cpuSeconds: (u.userCPUTime - usage.userCPUTime + u.systemCPUTime - usage.systemCPUTime) / 1e6,
        voluntaryContextSwitches: u.voluntaryContextSwitches - usage.voluntaryContextSwitches,
        involuntaryContextSwitches: u.involuntaryContextSwitches - usage.involuntaryContextSwitches,
        minorGcs,
        majorGcs,
        gcPauseTotalMs: gcPauseTotal,
        minorGcPauseMaxMs: minorGcPauseMax,
        majorGcPauseMaxMs: majorGcPauseMax,
        onCpuMs: sched && nowSched ? (nowSched[0] - sched[0]) / 1e6 : null,
        runQueueWaitMs: sched && nowSched ? (nowSched[1] - sched[1]) / 1e6 : null,
        gcTimes,
        loopDelayP99Ms: loop.percentile(99) / 1e6,
        loopDelayMaxMs: loop.max / 1e6,
        handlerStart: b64(handlerStart),
        handlerEnd: b64(handlerEnd),
        modelStart: b64(modelStart),
        modelEnd: b64(modelEnd),
        update: b64(update),
        flush: b64(flush),
        chunk: b64(chunk),
      }
    },
  }
}

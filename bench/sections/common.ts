/**
 * What every section shares: the one model shape and the one set of weights, rxrnn models built on
 * either backend with those weights, the event stream, and timing and heap helpers.
 */
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Bench } from 'tinybench'
import type { Model, TrainerOptions } from '../../src/index.js'
import { createModel } from '../../src/index.js'
import { type Unavailable, unavailable } from '../peers/peer.js'
import { type LstmWeights, randomLstmWeights, seededRandom } from '../peers/weights.js'

/** LSTM 8 → 64 → 1, float32: the model every section measures. */
export const SHAPE = { inputSize: 8, hiddenSize: 64, outputSize: 1 } as const
export const WEIGHTS: LstmWeights = randomLstmWeights(SHAPE.inputSize, SHAPE.hiddenSize, SHAPE.outputSize, 42)
export const DESCRIBE_MODEL = `LSTM ${SHAPE.inputSize}→${SHAPE.hiddenSize}→${SHAPE.outputSize} float32`

/** TBPTT(16, 16), MSE, Adam lr 1e-3 (PyTorch's betas and epsilon), global-norm clip 1. */
export const CHUNK = 16
export function trainerOptions(diagnosticsEvery?: number): TrainerOptions {
  return {
    k1: CHUNK,
    k2: CHUNK,
    loss: 'mse',
    optimizer: { type: 'adam', lr: 1e-3 },
    clipNorm: 1,
    ...(diagnosticsEvery === undefined ? {} : { diagnosticsEvery }),
  }
}
export const DESCRIBE_TRAINER = 'TBPTT(16, 16), MSE, Adam lr 1e-3, clipNorm 1'

export type Backend = 'wasm' | 'js'
export const BACKENDS: readonly Backend[] = ['wasm', 'js']

/** Whether each rxrnn backend builds here, and which one the headline numbers use. */
export interface Backends {
  /** true, or why the backend cannot be used. */
  readonly status: Record<Backend, true | string>
  /** wasm when it builds, else js. */
  readonly headline: Backend
}

export function probeBackends(): Backends {
  const status = {} as Record<Backend, true | string>
  for (const b of BACKENDS) {
    const m = createRxrnnModel(b)
    status[b] = 'available' in m ? m.reason : true
  }
  return { status, headline: status.wasm === true ? 'wasm' : 'js' }
}

/** Copies PyTorch-layout weights into an rxrnn LSTM model by parameter name. */
export function loadWeights(model: Model, w: LstmWeights): void {
  model.getParameter('rnn.weight_ih_l0').set(w.wIh)
  model.getParameter('rnn.weight_hh_l0').set(w.wHh)
  model.getParameter('rnn.bias_ih_l0').set(w.bIh)
  model.getParameter('rnn.bias_hh_l0').set(w.bHh)
  model.getParameter('head.weight').set(w.headW)
  model.getParameter('head.bias').set(w.headB)
}

/** An rxrnn model of {@link SHAPE} on `backend` holding {@link WEIGHTS}, or why it cannot be built. */
export function createRxrnnModel(backend: Backend): Model | Unavailable {
  try {
    const model = createModel({ cell: 'lstm', ...SHAPE, seed: 1 }, { backend })
    loadWeights(model, WEIGHTS)
    return model
  } catch (error) {
    return unavailable(`createModel(…, { backend: '${backend}' }) threw`, error)
  }
}

/** The event stream every section replays: inputs uniform in [-1, 1), cycled. */
export const STREAM_LENGTH = 4096
export const INPUTS: readonly Float32Array[] = (() => {
  const random = seededRandom(7)
  return Array.from({ length: STREAM_LENGTH }, () =>
    Float32Array.from({ length: SHAPE.inputSize }, () => random() * 2 - 1),
  )
})()
/** A learnable target for each input: a smooth function of the current inputs. */
export const TARGETS: readonly Float32Array[] = INPUTS.map((x) =>
  Float32Array.of(Math.sin(3 * x[0]!) * 0.5 + 0.3 * x[1]! * x[2]!),
)

/** What a section is told about the run. */
export interface Context {
  readonly quick: boolean
  /** --long: no time caps; the long runs go to their full event counts however long that takes. */
  readonly long: boolean
  readonly backends: Backends
  /** A full collection (exposed with --expose-gc, or enabled at run time). */
  readonly gc: () => void
  readonly gcExposed: boolean
}

/** `gc()` from --expose-gc, or turned on at run time (works on Node 20, but say so). */
export function findGc(): { gc: () => void; exposed: boolean } {
  const g = (globalThis as { gc?: () => void }).gc
  if (typeof g === 'function') return { gc: g, exposed: true }
  setFlagsFromString('--expose_gc')
  return { gc: runInNewContext('gc') as () => void, exposed: false }
}

/** Two full collections (the second picks up what finalizers of the first freed). */
export function fullGc(ctx: Context): void {
  ctx.gc()
  ctx.gc()
}

/** JS heap plus ArrayBuffer backing stores (typed arrays over 64 bytes live outside the JS heap). */
export function memoryNow(): { heapUsed: number; arrayBuffers: number; total: number } {
  const m = process.memoryUsage()
  return { heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, total: m.heapUsed + m.arrayBuffers }
}

/** µs per event from tinybench: per-call latency statistics divided by the events one call handles. */
export interface Timing {
  medianUs: number
  meanUs: number
  p99Us: number
  minUs: number
  samples: number
}

export type TimingResult = ({ ok: true } & Timing) | { ok: false; error: string }

/**
 * Times `fn` with tinybench (time-based, with warmup), one sample per call. `async: true` awaits
 * each call (and so pays one microtask); a synchronous peer is called without.
 */
export async function timeWithTinybench(
  name: string,
  fn: () => unknown,
  options: { timeMs: number; warmupMs: number; async: boolean; eventsPerCall?: number },
): Promise<TimingResult> {
  const bench = new Bench({
    time: options.timeMs,
    warmupTime: options.warmupMs,
    iterations: 10,
    warmupIterations: 10,
    timestampProvider: 'hrtimeNow',
    throws: false,
  })
  bench.add(name, fn, { async: options.async })
  const [task] = await bench.run()
  const result = task?.result
  if (!result) return { ok: false, error: 'tinybench ran no task' }
  if (result.state === 'errored') return { ok: false, error: result.error.message.split('\n')[0] ?? '' }
  if (result.state !== 'completed' && result.state !== 'aborted-with-statistics')
    return { ok: false, error: `tinybench ended in state ${result.state}` }
  const n = options.eventsPerCall ?? 1
  const l = result.latency
  // tinybench reports milliseconds per call.
  return {
    ok: true,
    medianUs: (l.p50 * 1000) / n,
    meanUs: (l.mean * 1000) / n,
    p99Us: (l.p99 * 1000) / n,
    minUs: (l.min * 1000) / n,
    samples: l.samplesCount,
  }
}

/**
 * Calls `step(i)` for i = 0, 1, … until `events` calls or `maxMs` milliseconds, whichever comes
 * first (the clock is read every 256 calls); returns the calls made and the seconds they took.
 */
export function runFor(
  events: number,
  maxMs: number,
  step: (i: number) => void,
  startAt = 0,
): { events: number; seconds: number } {
  const start = performance.now()
  let i = 0
  while (i < events) {
    const end = Math.min(events, i + 256)
    for (; i < end; i++) step(startAt + i)
    if (performance.now() - start > maxMs) break
  }
  return { events: i, seconds: (performance.now() - start) / 1000 }
}

/** Lets pending timers, I/O and PerformanceObserver callbacks run. */
export function turn(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Linux's scheduler statistics for the calling thread (/proc/thread-self/schedstat): ns on a CPU,
 * ns runnable but waiting for one (other work had the CPUs), timeslices; null elsewhere.
 */
export function schedstat(): [number, number, number] | null {
  try {
    const [run, wait, slices] = readFileSync('/proc/thread-self/schedstat', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number)
    return run === undefined || wait === undefined || slices === undefined ? null : [run, wait, slices]
  } catch {
    return null
  }
}

/**
 * Linux only (/proc/stat, else null): CPU seconds the whole machine has spent busy (user, nice,
 * system, irq, softirq, steal) since boot, summed over its cores. Two readings around a run, less
 * the CPU time of the processes under test, give what everything else on the machine took.
 */
export function machineBusySeconds(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number)
    const ticks = [user, nice, system, irq, softirq, steal].reduce<number>((sum, v) => sum + (v ?? 0), 0)
    // USER_HZ is 100 on every Linux Node runs on.
    return ticks / 100
  } catch {
    return null
  }
}

/** Linux only (/proc/<pid>/stat, else null): the CPU seconds (user + system) process `pid` has used. */
export function processCpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return null
  }
}

/**
 * Section 6: allocation in steady state, per event and per update. The harness runs this section
 * in its own process with the young generation pinned at 1 MiB semi-spaces
 * (--max-semi-space-size=1, see bench/index.ts), so that a scavenge comes every ~1 MiB
 * allocated: the GC count over ≥ 200,000 events is then a sensitive allocation signal.
 *
 * For each hot path, after a warmup that ends on a TBPTT window boundary:
 *   1. primary: the GCs (PerformanceObserver 'gc' entries, minor and major) over ≥ 200,000
 *      events, a whole number of windows, with nothing else in the loop;
 *   2. secondary: heap deltas over whole windows. The JS heap is read just before and just after
 *      every event that runs a weight update (every k1-th event of a sequence) and every 1,024
 *      events in between, so the bytes split into those of the events between updates and those
 *      of the update events. The events run in pieces of ≤ 4,096 that each start on an empty
 *      young generation (a forced scavenge) and must see no collection (a piece that does is run
 *      again), so every delta is allocation, nothing freed. Reported: bytes per event over whole
 *      windows, per event between updates, and what one update allocates beyond an ordinary event
 *      (medians over the pieces).
 * "No allocation per event" holds when the events between updates allocate under 4 bytes each.
 */
import { constants, PerformanceObserver, performance } from 'node:perf_hooks'
import { getHeapSpaceStatistics } from 'node:v8'
import { KeyedTrainer, OnlineTrainer } from '../../src/index.js'
import { bytes, count, header, note, printTable, type SummaryRow } from '../report.js'
import {
  CHUNK,
  type Context,
  createRxrnnModel,
  fullGc,
  INPUTS,
  STREAM_LENGTH,
  TARGETS,
  trainerOptions,
  turn,
} from './common.js'

/** Events between heap readings when no update comes sooner. */
const READ_EVERY = 1024
/** Events per measuring run: few enough that a run's garbage fits the young generation. */
const REP_EVENTS = 4096
/**
 * Below this many bytes per event (between updates) a path counts as allocation-free: one object
 * per event is at least 16 bytes, while heap-reading noise is a fraction of a byte per event.
 */
const ALLOCATION_FREE_BELOW = 4
/** Below this an update counts as allocating nothing (reading noise spread over one event). */
const UPDATE_FREE_BELOW = 16
const KEYS = 1000

export interface AllocationRow {
  readonly path: string
  /** Events per window: updates repeat with this period (1: no updates). */
  readonly period: number
  readonly updatesPerPeriod: number
  /** The GC-count run: events, seconds, and the collections seen. */
  readonly events: number
  readonly seconds: number
  readonly minorGcs: number
  readonly majorGcs: number
  readonly stoppedEarly: boolean
  /** Young-generation bytes free after a full GC: with no GC, fewer than this were allocated. */
  readonly youngBudgetBytes: number
  /** Heap deltas: events measured (whole windows). */
  readonly heapEvents: number
  readonly bytesPerEvent: number
  readonly bytesPerEventBetweenUpdates: number
  /** What an update event allocates beyond an ordinary event (NaN without updates). */
  readonly bytesPerUpdate: number
  /** Measuring runs done again because a collection ran inside them. */
  readonly retriedRuns: number
  readonly allocationFree: boolean
}

export interface AllocationResult {
  readonly backend: string
  readonly semiSpaceBytes: number
  readonly rows: AllocationRow[]
  readonly summary: SummaryRow[]
}

let minorGcs = 0
let majorGcs = 0
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as { detail?: { kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) minorGcs++
    else majorGcs++
  }
})

const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')

interface Path {
  readonly path: string
  /** Runs event i; returns whether it ran a weight update. */
  readonly step: (i: number) => boolean
  /** Events after which every sequence is at a window boundary again. */
  readonly period: number
}

/**
 * The JS heap in use. Called warm (optimized: the object memoryUsage() builds never exists, and
 * the result is a small integer), a reading allocates nothing, wherever it is called from.
 */
function heapUsed(): number {
  return process.memoryUsage().heapUsed
}
for (let k = 0; k < 20_000; k++) heapUsed()

interface Split {
  between: number
  betweenEvents: number
  update: number
  updateEvents: number
  mismatches: number
}

/**
 * Runs events startAt … startAt + events − 1, reading the heap just before and just after every
 * event that `pattern` marks as an update (pattern[i mod period]) and every READ_EVERY events
 * otherwise. Meant to run with no collection in it (the caller checks): every span is then what
 * its events allocated.
 */
function split(step: (i: number) => boolean, pattern: Uint8Array, events: number, startAt: number): Split {
  const s: Split = { between: 0, betweenEvents: 0, update: 0, updateEvents: 0, mismatches: 0 }
  let pending = 0
  let previous = heapUsed()
  for (let i = startAt; i < startAt + events; i++) {
    if (pattern[i % pattern.length] === 1) {
      const before = heapUsed()
      s.between += before - previous
      s.betweenEvents += pending
      pending = 0
      if (!step(i)) s.mismatches++
      previous = heapUsed()
      s.update += previous - before
      s.updateEvents++
    } else {
      if (step(i)) s.mismatches++
      if (++pending === READ_EVERY) {
        const now = heapUsed()
        s.between += now - previous
        s.betweenEvents += pending
        pending = 0
        previous = now
      }
    }
  }
  const now = heapUsed()
  s.between += now - previous
  s.betweenEvents += pending
  return s
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** A scavenge now, so that the young generation starts empty; falls back to a full GC. */
function minorGc(ctx: Context): void {
  const gc = (globalThis as { gc?: (options?: { type: 'minor' }) => void }).gc
  if (gc) gc({ type: 'minor' })
  else ctx.gc()
}

export async function runAllocation(ctx: Context): Promise<AllocationResult> {
  const backend = ctx.backends.headline
  header(6, `Allocation in steady state, rxrnn (${backend})`)
  const gcEvents = ctx.quick ? 32_000 : 208_000
  const heapEvents = ctx.quick ? 16_000 : 64_000
  const warmup = ctx.quick ? 8_000 : 32_000
  const capMs = ctx.long ? Number.POSITIVE_INFINITY : ctx.quick ? 4_000 : 15_000
  const build = () => {
    const m = createRxrnnModel(backend)
    if ('available' in m) throw new Error(m.reason)
    return m
  }
  const model = build()
  const state = model.initialState()
  const trainer0 = new OnlineTrainer(build(), trainerOptions(0))
  const trainerDefault = new OnlineTrainer(build(), trainerOptions())
  const keyed = new KeyedTrainer(new OnlineTrainer(build(), trainerOptions(0)))
  const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`)

  const paths: Path[] = [
    {
      path: 'model.step (inference)',
      period: 1,
      step: (i) => {
        model.step(INPUTS[i % STREAM_LENGTH]!, state)
        return false
      },
    },
    {
      path: 'observeSequence, diagnosticsEvery: 0',
      period: CHUNK,
      step: (i) => {
        const e = i % STREAM_LENGTH
        return trainer0.observeSequence(trainer0.sequence, INPUTS[e]!, TARGETS[e]!).update !== undefined
      },
    },
    {
      path: 'observeSequence, default diagnostics',
      period: CHUNK,
      step: (i) => {
        const e = i % STREAM_LENGTH
        return (
          trainerDefault.observeSequence(trainerDefault.sequence, INPUTS[e]!, TARGETS[e]!).update !==
          undefined
        )
      },
    },
    {
      path: `KeyedTrainer.observe, ${count(KEYS)} keys, diagnosticsEvery: 0`,
      // Round robin over fresh keys: every key's window closes in the same round.
      period: CHUNK * KEYS,
      step: (i) => {
        const e = i % STREAM_LENGTH
        return keyed.observe(keys[i % KEYS]!, INPUTS[e]!, TARGETS[e]!).updates.length > 0
      },
    },
  ]
  const semiSpace = (newSpace()?.space_size ?? 0) / 2
  note(
    `per path: GCs over ${count(gcEvents)} events (whole windows, ${Number.isFinite(capMs) ? `time cap ${capMs / 1000} s; --long lifts it` : 'no time cap'}) ` +
      `after ${count(warmup)} warmup events; then heap deltas over ${count(heapEvents)} more, read just before and after ` +
      `every update event and every ${count(READ_EVERY)} events between`,
  )
  const pinned = process.execArgv.some((a) => a.startsWith('--max-semi-space-size'))
  note(
    `young generation: semi-spaces of ${bytes(semiSpace)}` +
      (pinned
        ? ' (this process runs with --max-semi-space-size=1): a scavenge every ~1 MiB allocated, so 200,000 events at 5 B each already show as a GC'
        : ' (not pinned: run through bench/index.ts for the sensitive GC count)'),
  )
  observer.observe({ entryTypes: ['gc'] })
  const rows: AllocationRow[] = []
  for (const p of paths) {
    // Warm up to a window boundary (a capped warmup finishes its window), then record which
    // events of one window run an update.
    let i = 0
    const warmEnd = Math.ceil(warmup / p.period) * p.period
    const warmStart = performance.now()
    while (i < warmEnd) {
      p.step(i++)
      if ((i & 255) === 0 && performance.now() - warmStart > capMs / 4) break
    }
    while (i % p.period !== 0) p.step(i++)
    const pattern = new Uint8Array(p.period)
    for (let k = 0; k < p.period; k++) pattern[k] = p.step(i++) ? 1 : 0
    const updatesPerPeriod = pattern.reduce((a, b) => a + b, 0)

    // 1. GCs over ≥ 200,000 events, nothing else in the loop.
    fullGc(ctx)
    await turn(10)
    const youngBudgetBytes = newSpace()?.space_available_size ?? 0
    minorGcs = 0
    majorGcs = 0
    const runEvents = Math.ceil(gcEvents / p.period) * p.period
    const t0 = performance.now()
    let done = 0
    while (done < runEvents) {
      const end = Math.min(runEvents, done + p.period * Math.max(1, Math.floor(4096 / p.period)))
      for (; done < end; done++) p.step(i + done)
      if (performance.now() - t0 > capMs) break
    }
    const seconds = (performance.now() - t0) / 1000
    // Whole windows: a cut-short run finishes its window (cheap) before counting stops.
    while (done % p.period !== 0) p.step(i + done++)
    i += done
    await turn(10)
    const gcRun = { events: done, seconds, minorGcs, majorGcs, stoppedEarly: done < runEvents }

    // 2. Heap deltas over whole windows, split at the updates, in runs of at most 4,096 events
    // that each start on an empty young generation and must see no collection (else it is run
    // again on the next events, at most 3 times in a row).
    const heapRun = Math.ceil(heapEvents / p.period) * p.period
    // A multiple of the window, or a part of it (16,000 keyed events: runs of 4,000).
    const runLength =
      p.period <= REP_EVENTS
        ? Math.floor(REP_EVENTS / p.period) * p.period
        : p.period / Math.ceil(p.period / REP_EVENTS)
    const total: Split = { between: 0, betweenEvents: 0, update: 0, updateEvents: 0, mismatches: 0 }
    // Per run: bytes per event between updates, and per update event. Medians over the runs keep
    // a lump (the loop being compiled again, a Map's table grown) in one run from moving them.
    const betweenRates: number[] = []
    const updateRates: number[] = []
    let retried = 0
    // Two runs first, not counted: the measuring loop's own compilation allocates.
    for (let w = 0; w < 2; w++) {
      split(p.step, pattern, runLength, i)
      i += runLength
    }
    // Whole windows from here: the measured runs cover heapRun events from a window boundary.
    while (i % p.period !== 0) p.step(i++)
    let measured = 0
    let misses = 0
    while (measured < heapRun) {
      const length = Math.min(runLength, heapRun - measured)
      minorGc(ctx)
      await turn(1)
      minorGcs = 0
      majorGcs = 0
      const r = split(p.step, pattern, length, i)
      await turn(1)
      if (minorGcs + majorGcs > 0 && misses < 3) {
        // A collection ran inside: these events go again from here (the stream moves on).
        misses++
        retried++
        i += length
        while (i % p.period !== measured % p.period) p.step(i++)
        continue
      }
      misses = 0
      if (r.betweenEvents > 0) betweenRates.push(r.between / r.betweenEvents)
      if (r.updateEvents > 0) updateRates.push(r.update / r.updateEvents)
      total.betweenEvents += r.betweenEvents
      total.updateEvents += r.updateEvents
      total.mismatches += r.mismatches
      measured += length
      i += length
    }
    const mismatches = total.mismatches
    if (mismatches > 0)
      note(
        `${p.path}: ${mismatches} events did not update where the recorded window said (or did where it did not)`,
      )
    const betweenBytes = median(betweenRates)
    const updateEventBytes = median(updateRates)
    rows.push({
      path: p.path,
      period: p.period,
      updatesPerPeriod,
      ...gcRun,
      youngBudgetBytes,
      heapEvents: measured,
      bytesPerEvent: Math.max(
        0,
        (betweenBytes * total.betweenEvents +
          (total.updateEvents > 0 ? updateEventBytes * total.updateEvents : 0)) /
          Math.max(1, measured),
      ),
      bytesPerEventBetweenUpdates: Math.max(0, betweenBytes),
      bytesPerUpdate: updatesPerPeriod > 0 ? Math.max(0, updateEventBytes - betweenBytes) : Number.NaN,
      retriedRuns: retried,
      allocationFree: betweenBytes < ALLOCATION_FREE_BELOW,
    })
  }
  observer.disconnect()

  const perUpdateText = (r: AllocationRow) =>
    Number.isNaN(r.bytesPerUpdate)
      ? '(no updates)'
      : r.bytesPerUpdate < UPDATE_FREE_BELOW
        ? `≈ 0 B`
        : `≈ ${count(r.bytesPerUpdate)} B`
  const gcText = (r: AllocationRow) => `${r.minorGcs} / ${r.majorGcs}`
  printTable(
    [
      'path',
      'events',
      'GCs (minor/major)',
      'B/event, whole windows',
      'B/event between updates',
      'per update',
      'verdict',
    ],
    rows.map((r) => [
      r.path,
      `${count(r.events)}${r.stoppedEarly ? ' (capped)' : ''}`,
      gcText(r),
      `≈ ${r.bytesPerEvent.toFixed(1)}`,
      `≈ ${r.bytesPerEventBetweenUpdates.toFixed(1)}`,
      perUpdateText(r),
      r.allocationFree ? 'no allocation per event' : 'ALLOCATES per event',
    ]),
  )
  for (const r of rows) {
    const gcs = r.minorGcs + r.majorGcs
    const why =
      gcs === 0
        ? `no GC in ${count(r.events)} events: under ${(r.youngBudgetBytes / r.events).toFixed(1)} B/event allocated`
        : `${gcs} GCs in ${count(r.events)} events: ≈ ${bytes((gcs * r.youngBudgetBytes) / r.events)}/event by the GC count`
    const update =
      r.updatesPerPeriod === 0 || Number.isNaN(r.bytesPerUpdate)
        ? ''
        : r.bytesPerUpdate < UPDATE_FREE_BELOW
          ? `; an update (${r.updatesPerPeriod === 1 ? `every ${r.period} events` : `${count(r.updatesPerPeriod)} every ${count(r.period)} events`}) allocates nothing measurable`
          : `; an update (${r.updatesPerPeriod === 1 ? `every ${r.period} events` : `${count(r.updatesPerPeriod)} every ${count(r.period)} events`}) allocates ≈ ${count(r.bytesPerUpdate)} B` +
            (r.allocationFree ? '' : ' (rough: the difference of two allocating parts)')
    note(`${r.path}: ${why}${update}`)
  }
  note(
    'what an update allocates is number boxing, 16 B a number: mostly the f64 results of the wasm ' +
      'sumSquares kernel (the gradient norm, one per parameter tensor, once more when it clips), then a few ' +
      "numbers stored into the reused report (paramGradNorms' out-of-object properties) and the loss; default " +
      'diagnostics add the gradient-flow norms, kept as boxed numbers in a plain array. Per event, the keyed ' +
      "path's default `now` is Date.now(), whose double Node 20 boxes (16 B); a caller that passes a " +
      'small-integer clock of its own (always) avoids it.',
  )
  const retried = rows.reduce((a, r) => a + r.retriedRuns, 0)
  note(
    `heap deltas: runs of ≤ ${count(REP_EVENTS)} events, each from an empty young generation and without a collection in it` +
      (retried > 0 ? ` (${retried} runs saw one and were done again)` : '') +
      '; the heap is read by a warmed-up function that allocates nothing',
  )
  const main = rows.find((r) => r.path.startsWith('observeSequence, diagnosticsEvery: 0'))
  const summary: SummaryRow[] = rows.map((r) => ({
    measure: `allocation: ${r.path}`,
    rxrnn:
      `${gcText(r)} GCs in ${count(r.events)}; ≈ ${r.bytesPerEventBetweenUpdates.toFixed(1)} B/event between updates` +
      (Number.isNaN(r.bytesPerUpdate) ? '' : `, ${perUpdateText(r)} per update`),
    versus: '',
    ratio: '',
    target:
      r === main
        ? `${r.allocationFree ? 'PASS' : 'MISS'} (no allocation per event in steady state)`
        : r.allocationFree
          ? 'no allocation per event'
          : 'allocates per event',
  }))
  return { backend, semiSpaceBytes: semiSpace, rows, summary }
}

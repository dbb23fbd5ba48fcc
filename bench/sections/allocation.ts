/**
 * Section 6: allocation in steady state. After a warmup, runs the hot paths for 100,000 events
 * while counting garbage collections (PerformanceObserver 'gc' entries) and the bytes allocated:
 * the JS heap is read every 1,000 events and its rises are summed (a collection in between
 * shows as a fall, not counted), less what the reading itself allocates, measured on an empty
 * loop. "No allocation per event" holds when that comes to under 4 bytes per event.
 */
import { constants, PerformanceObserver, performance } from 'node:perf_hooks'
import { KeyedTrainer, OnlineTrainer } from '../../src/index.js'
import { bytes, count, header, note, printTable, type SummaryRow } from '../report.js'
import {
  type Context,
  createRxrnnModel,
  fullGc,
  INPUTS,
  runFor,
  STREAM_LENGTH,
  TARGETS,
  trainerOptions,
  turn,
} from './common.js'

const SAMPLE_EVERY = 1000
/**
 * Below this many bytes per event a path counts as allocation-free: one object per event is at
 * least 16 bytes, and one report of ~1 KB per 16-event update is ~64, so both stay visible, while
 * JIT and heap-reading noise (a few KB over a run) does not.
 */
const ALLOCATION_FREE_BELOW = 4

export interface AllocationRow {
  readonly path: string
  readonly events: number
  readonly heapGrowthBytes: number
  readonly allocatedBytesPerEvent: number
  readonly minorGcs: number
  readonly majorGcs: number
  readonly allocationFree: boolean
}

export interface AllocationResult {
  readonly backend: string
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

/** Runs `step` for `events` events (or until `capMs`), reading the heap every SAMPLE_EVERY. */
function measure(events: number, capMs: number, step: (i: number) => void, startAt: number) {
  let rises = 0
  let previous = process.memoryUsage().heapUsed
  const first = previous
  const start = performance.now()
  let i = 0
  while (i < events) {
    const end = Math.min(events, i + SAMPLE_EVERY)
    for (; i < end; i++) step(startAt + i)
    const now = process.memoryUsage().heapUsed
    if (now > previous) rises += now - previous
    previous = now
    if (performance.now() - start > capMs) break
  }
  return { events: i, rises, growth: previous - first, samples: Math.ceil(i / SAMPLE_EVERY) }
}

export async function runAllocation(ctx: Context): Promise<AllocationResult> {
  const backend = ctx.backends.headline
  header(6, `Allocation in steady state, rxrnn (${backend})`)
  const events = ctx.quick ? 10_000 : 100_000
  const warmup = ctx.quick ? 5_000 : 20_000
  const capMs = ctx.long ? Number.POSITIVE_INFINITY : ctx.quick ? 4_000 : 12_000
  const model = (() => {
    const m = createRxrnnModel(backend)
    if ('available' in m) throw new Error(m.reason)
    return m
  })()
  const state = model.initialState()
  const trainer0 = new OnlineTrainer(model, trainerOptions(0))
  const modelD = createRxrnnModel(backend)
  if ('available' in modelD) throw new Error(modelD.reason)
  const trainerDefault = new OnlineTrainer(modelD, trainerOptions())
  const modelK = createRxrnnModel(backend)
  if ('available' in modelK) throw new Error(modelK.reason)
  const keyed = new KeyedTrainer(new OnlineTrainer(modelK, trainerOptions(0)))
  const keys = Array.from({ length: 1000 }, (_, i) => `key-${i}`)

  const paths: { path: string; step: (i: number) => void }[] = [
    { path: 'model.step (inference)', step: (i) => model.step(INPUTS[i % STREAM_LENGTH]!, state) },
    {
      path: 'observeSequence, diagnosticsEvery: 0',
      step: (i) => {
        const e = i % STREAM_LENGTH
        trainer0.observeSequence(trainer0.sequence, INPUTS[e]!, TARGETS[e]!)
      },
    },
    {
      path: 'observeSequence, default diagnostics',
      step: (i) => {
        const e = i % STREAM_LENGTH
        trainerDefault.observeSequence(trainerDefault.sequence, INPUTS[e]!, TARGETS[e]!)
      },
    },
    {
      path: 'KeyedTrainer.observe, 1,000 keys, diagnosticsEvery: 0',
      step: (i) => {
        const e = i % STREAM_LENGTH
        keyed.observe(keys[i % 1000]!, INPUTS[e]!, TARGETS[e]!)
      },
    },
  ]
  note(
    `${count(events)} events per path after ${count(warmup)} warmup events` +
      (Number.isFinite(capMs) ? ` (time cap ${capMs / 1000} s a path; --long lifts it); ` : '; ') +
      `heap read every ${count(SAMPLE_EVERY)} events`,
  )

  observer.observe({ entryTypes: ['gc'] })
  // What reading the heap allocates by itself, per reading: subtracted below.
  fullGc(ctx)
  const empty = measure(200 * SAMPLE_EVERY, 10_000, () => {}, 0)
  const perSample = empty.rises / empty.samples

  const rows: AllocationRow[] = []
  for (const p of paths) {
    const warmed = runFor(warmup, capMs / 4, p.step)
    fullGc(ctx)
    await turn(10)
    minorGcs = 0
    majorGcs = 0
    const m = measure(events, capMs, p.step, warmed.events)
    await turn(10)
    const allocated = Math.max(0, m.rises - perSample * m.samples)
    const perEvent = allocated / m.events
    rows.push({
      path: p.path,
      events: m.events,
      heapGrowthBytes: m.growth,
      allocatedBytesPerEvent: perEvent,
      minorGcs,
      majorGcs,
      allocationFree: perEvent < ALLOCATION_FREE_BELOW,
    })
  }
  observer.disconnect()

  printTable(
    ['path', 'events', 'heap growth', 'allocated/event', 'GCs (minor/major)', 'verdict'],
    rows.map((r) => [
      r.path,
      count(r.events),
      bytes(r.heapGrowthBytes),
      `≈ ${r.allocatedBytesPerEvent.toFixed(1)} B`,
      `${r.minorGcs} / ${r.majorGcs}`,
      r.allocationFree ? 'no allocation per event' : 'ALLOCATES',
    ]),
  )
  note(`heap reading overhead measured on an empty loop: ${bytes(perSample)} per reading (subtracted)`)
  const main = rows.find((r) => r.path.startsWith('observeSequence, diagnosticsEvery: 0'))
  const summary: SummaryRow[] = rows.map((r) => ({
    measure: `allocation: ${r.path}`,
    rxrnn: `≈ ${r.allocatedBytesPerEvent.toFixed(1)} B/event, ${r.minorGcs}/${r.majorGcs} GCs in ${count(r.events)}`,
    versus: '',
    ratio: '',
    target:
      r === main
        ? `${r.allocationFree ? 'PASS' : 'MISS'} (no allocation per event in steady state)`
        : r.allocationFree
          ? 'no allocation per event'
          : 'allocates',
  }))
  return { backend, rows, summary }
}

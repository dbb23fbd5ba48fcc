/**
 * Section 5: memory. What one key costs (KeyedTrainer.bytesPerKey() against the measured heap
 * delta of 10,000 new keys), and whether the heap stays flat as events keep coming through the
 * keyed trainer (after 100,000 events vs after 1,000,000).
 */
import { performance } from 'node:perf_hooks'
import { KeyedTrainer, OnlineTrainer } from '../../src/index.js'
import { bytes, count, header, note, printTable, type SummaryRow } from '../report.js'
import {
  type Context,
  createRxrnnModel,
  DESCRIBE_TRAINER,
  fullGc,
  INPUTS,
  memoryNow,
  runFor,
  STREAM_LENGTH,
  TARGETS,
  trainerOptions,
} from './common.js'

const NEW_KEYS = 10_000
const FLAT_KEYS = 1_000
/** Growth below this (or 2 % of the heap) counts as flat: allocator and JIT noise. */
const FLAT_SLACK = 1 << 20

export interface MemoryResult {
  readonly bytesPerKeyReported: number
  readonly perKeyMeasured: { heapUsed: number; arrayBuffers: number; total: number; keys: number }
  readonly flatness: {
    keys: number
    checkpoints: { events: number; heapUsed: number; arrayBuffers: number; total: number }[]
    firstEvents: number
    lastEvents: number
    growthBytes: number
    flat: boolean
    stoppedEarly: boolean
    seconds: number
  }
  readonly summary: SummaryRow[]
}

/** bytesPerKey(), and the memory 10,000 new keys take (their key strings made in the measured region, as a server receives them). */
function measurePerKey(
  ctx: Context,
  newTrainer: () => KeyedTrainer,
): Pick<MemoryResult, 'perKeyMeasured'> & { reported: number } {
  const keyed = newTrainer()
  const reported = keyed.bytesPerKey()
  keyed.observe('warm', INPUTS[0]!, TARGETS[0]!)
  fullGc(ctx)
  const before = memoryNow()
  for (let k = 0; k < NEW_KEYS; k++)
    keyed.observe(`sensor-${k}`, INPUTS[k % STREAM_LENGTH]!, TARGETS[k % STREAM_LENGTH]!)
  fullGc(ctx)
  const after = memoryNow()
  return {
    reported,
    perKeyMeasured: {
      heapUsed: (after.heapUsed - before.heapUsed) / NEW_KEYS,
      arrayBuffers: (after.arrayBuffers - before.arrayBuffers) / NEW_KEYS,
      total: (after.total - before.total) / NEW_KEYS,
      keys: keyed.size - 1,
    },
  }
}

export async function runMemory(ctx: Context): Promise<MemoryResult> {
  header(5, 'Memory: bytes per key, and the heap over a long keyed run')
  if (!ctx.gcExposed) note('gc() was not exposed by --expose-gc; it was enabled at run time instead')
  const backend = ctx.backends.headline
  const newTrainer = () => {
    const model = createRxrnnModel(backend)
    if ('available' in model) throw new Error(model.reason)
    return new KeyedTrainer(new OnlineTrainer(model, trainerOptions(0)), { maxKeys: 2 * NEW_KEYS })
  }

  // In a function of its own, so that its 10,000 keys are garbage before the long run.
  const { reported, perKeyMeasured } = measurePerKey(ctx, newTrainer)
  printTable(
    ['per key', 'bytes', 'note'],
    [
      ['KeyedTrainer.bytesPerKey()', bytes(reported), 'typed-array memory of one key (window, state)'],
      [
        `measured, ${count(NEW_KEYS)} new keys`,
        bytes(perKeyMeasured.total),
        `JS heap ${bytes(perKeyMeasured.heapUsed)} + ArrayBuffers ${bytes(perKeyMeasured.arrayBuffers)}, after full GC`,
      ],
    ],
    [0, 2],
  )

  // Heap over a long run: many events through one keyed trainer, sampled after a full GC.
  // Compared from after every key's first update (16 rounds of the keys): before it, the update
  // path's code and the optimizer's first use are still being compiled and allocated.
  const first = ctx.quick ? 30_000 : 100_000
  const last = ctx.quick ? 100_000 : 1_000_000
  const step = ctx.quick ? 10_000 : 100_000
  const capMs = ctx.long ? Number.POSITIVE_INFINITY : ctx.quick ? 15_000 : 60_000
  const long = newTrainer()
  const keys = Array.from({ length: FLAT_KEYS }, (_, i) => `key-${i}`)
  const checkpoints: MemoryResult['flatness']['checkpoints'] = []
  let events = 0
  let stoppedEarly = false
  const started = performance.now()
  note(
    `long run: ${count(FLAT_KEYS)} keys round robin, KeyedTrainer.observe (${DESCRIBE_TRAINER}, diagnosticsEvery 0), ` +
      `heap after full GC every ${count(step)} events up to ${count(last)}` +
      (Number.isFinite(capMs) ? ` (time cap ${capMs / 1000} s; --long lifts it)` : ''),
  )
  while (events < last) {
    const left = capMs - (performance.now() - started)
    if (left <= 0) {
      stoppedEarly = true
      break
    }
    const ran = runFor(
      step,
      left,
      (i) => {
        const e = i % STREAM_LENGTH
        long.observe(keys[i % FLAT_KEYS]!, INPUTS[e]!, TARGETS[e]!)
      },
      events,
    )
    events += ran.events
    if (ran.events > 0) {
      fullGc(ctx)
      checkpoints.push({ events, ...memoryNow() })
    }
    if (ran.events < step) {
      stoppedEarly = true
      break
    }
  }
  const seconds = (performance.now() - started) / 1000
  const atFirst = checkpoints.find((c) => c.events >= first)
  const atLast = checkpoints[checkpoints.length - 1]
  const growthBytes = atFirst && atLast ? atLast.total - atFirst.total : Number.NaN
  const flat =
    Number.isFinite(growthBytes) && growthBytes < Math.max(FLAT_SLACK, 0.02 * (atFirst?.total ?? 0))
  printTable(
    ['events', 'JS heap', 'ArrayBuffers', 'total'],
    checkpoints
      .filter((c, i) => c.events === atFirst?.events || i === checkpoints.length - 1 || i % 3 === 2)
      .map((c) => [count(c.events), bytes(c.heapUsed), bytes(c.arrayBuffers), bytes(c.total)]),
  )
  const verdictLine =
    atFirst && atLast && atLast !== atFirst
      ? `${flat ? 'flat' : 'NOT FLAT'}: ${bytes(growthBytes)} from ${count(atFirst.events)} to ${count(atLast.events)} events ` +
        `(${((events / seconds) | 0).toLocaleString('en-US')} events/s)`
      : 'not enough events to compare'
  note(verdictLine)
  if (stoppedEarly)
    note(
      `the time cap stopped the run at ${count(events)} events, short of ${count(last)}: compare the rows above`,
    )
  const summary: SummaryRow[] = [
    {
      measure: 'bytes per key',
      rxrnn: `${bytes(reported)} reported, ${bytes(perKeyMeasured.total)} measured`,
      versus: '',
      ratio: '',
      target: '',
    },
    {
      measure: `heap, ${count(atFirst?.events)} → ${count(atLast?.events)} keyed events`,
      rxrnn: `${flat ? 'flat' : 'NOT FLAT'} (${bytes(growthBytes)})`,
      versus: '',
      ratio: '',
      target: '',
    },
  ]
  return {
    bytesPerKeyReported: reported,
    perKeyMeasured,
    flatness: {
      keys: FLAT_KEYS,
      checkpoints,
      firstEvents: atFirst?.events ?? 0,
      lastEvents: atLast?.events ?? 0,
      growthBytes,
      flat,
      stoppedEarly,
      seconds,
    },
    summary,
  }
}

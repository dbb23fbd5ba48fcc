/**
 * Section 3: many keys sharing one model. Inference keeps a Map of per-key RecurrentState and
 * calls model.step; training goes through KeyedTrainer.observe. Keys are visited round robin, so
 * every event touches a different key's state (the cache-unfriendly case).
 */
import type { RecurrentState } from '../../src/index.js'
import { KeyedTrainer, OnlineTrainer } from '../../src/index.js'
import { count, header, note, printTable, type SummaryRow, us } from '../report.js'
import {
  CHUNK,
  type Context,
  createRxrnnModel,
  DESCRIBE_MODEL,
  DESCRIBE_TRAINER,
  INPUTS,
  runFor,
  STREAM_LENGTH,
  TARGETS,
  trainerOptions,
} from './common.js'

export interface KeysRow {
  readonly keys: number
  readonly mode: 'inference' | 'training'
  readonly events: number
  readonly seconds: number
  readonly eventsPerSecond: number
  readonly usPerEvent: number
}

export interface KeysResult {
  readonly model: string
  readonly backend: string
  readonly trainer: string
  readonly rows: KeysRow[]
  readonly summary: SummaryRow[]
}

export const KEY_COUNTS = [1_000, 10_000] as const

export async function runKeys(ctx: Context): Promise<KeysResult> {
  const backend = ctx.backends.headline
  header(3, `Many keys, one shared model: ${DESCRIBE_MODEL}, rxrnn (${backend}), round-robin keys`)
  const trainerText = `${DESCRIBE_TRAINER}, diagnosticsEvery 0`
  const ms = ctx.quick ? 300 : 2000
  note(`inference: Map<key, RecurrentState> + model.step; training: KeyedTrainer.observe (${trainerText})`)
  note(
    `each run lasts ${ms} ms after a warmup; training keys are staggered first (key k gets k mod 16 events), ` +
      'so updates are spread evenly over the timed run, one per 16 events on average',
  )
  const rows: KeysRow[] = []
  for (const n of KEY_COUNTS) {
    const keys = Array.from({ length: n }, (_, i) => `sensor-${i}`)

    const model = createRxrnnModel(backend)
    if ('available' in model) throw new Error(model.reason)
    const states = new Map<string, RecurrentState>()
    for (const k of keys) states.set(k, model.initialState())
    const infer = (i: number) => {
      model.step(INPUTS[i % STREAM_LENGTH]!, states.get(keys[i % n]!)!)
    }
    runFor(Math.max(n, 20_000), ms / 4, infer)
    const inf = runFor(Number.POSITIVE_INFINITY, ms, infer)
    rows.push(row(n, 'inference', inf))

    const trainModel = createRxrnnModel(backend)
    if ('available' in trainModel) throw new Error(trainModel.reason)
    const keyed = new KeyedTrainer(new OnlineTrainer(trainModel, trainerOptions(0)), { maxKeys: n })
    let t = 0
    for (let k = 0; k < n; k++)
      for (let j = 0; j < k % CHUNK; j++, t++)
        keyed.observe(keys[k]!, INPUTS[t % STREAM_LENGTH]!, TARGETS[t % STREAM_LENGTH]!)
    const train = (i: number) => {
      const e = (t + i) % STREAM_LENGTH
      keyed.observe(keys[i % n]!, INPUTS[e]!, TARGETS[e]!)
    }
    const warm = runFor(Number.POSITIVE_INFINITY, ms / 4, train)
    const tr = runFor(Number.POSITIVE_INFINITY, ms, train, warm.events)
    rows.push(row(n, 'training', tr))
    if (keyed.evicted > 0) note(`FLAG ${keyed.evicted} keys were evicted during the ${n}-key run`)
  }

  printTable(
    ['keys', 'mode', 'events/s', 'µs/event', 'events timed'],
    rows.map((r) => [count(r.keys), r.mode, count(r.eventsPerSecond), us(r.usPerEvent), count(r.events)]),
    [1],
  )
  const summary: SummaryRow[] = KEY_COUNTS.map((n) => {
    const i = rows.find((r) => r.keys === n && r.mode === 'inference')
    const t = rows.find((r) => r.keys === n && r.mode === 'training')
    return {
      measure: `${count(n)} keys, events/s (rxrnn ${backend})`,
      rxrnn: `inference ${count(i?.eventsPerSecond)}, training ${count(t?.eventsPerSecond)}`,
      versus: '',
      ratio: '',
      target: '',
    }
  })
  return { model: DESCRIBE_MODEL, backend, trainer: trainerText, rows, summary }
}

function row(keys: number, mode: KeysRow['mode'], r: { events: number; seconds: number }): KeysRow {
  return {
    keys,
    mode,
    events: r.events,
    seconds: r.seconds,
    eventsPerSecond: r.events / r.seconds,
    usPerEvent: (r.seconds * 1e6) / r.events,
  }
}

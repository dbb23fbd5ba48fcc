/**
 * Benchmark (not a test) of batched inference: a float32 LSTM 8 → 64 → 1 serving 1,000 keys in
 * round robin, each key with its own state. Per-key `model.step` (one gemv per weight matrix per
 * event) against `model.stepBatch` over B consecutive events (B distinct keys: one matrix–matrix
 * product per weight matrix per B events), in events per second, on the WebAssembly kernels and,
 * for reference, on the JS ones.
 *
 *   npx tsx scripts/bench-batch.ts [events]
 *
 * Each figure is the best of several runs of `events` events, the variants interleaved so that
 * a load that comes and goes on a shared machine disturbs them all alike. The batched loop
 * includes what a caller does per event: copying x into its row of the batch and collecting the
 * states.
 */
import { from } from 'rxjs'
import type { Model, RecurrentState } from '../src/index.js'
import { createModel } from '../src/index.js'
import type { KeyedEvent } from '../streams/index.js'
import { recurrentByKey } from '../streams/index.js'

const KEYS = 1000
const I = 8
const H = 64
const BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
const events = Number(process.argv[2] ?? 20_000)

const inputs = Array.from({ length: 64 }, (_, t) =>
  Float32Array.from({ length: I }, (_, i) => Math.sin(0.1 * t + i)),
)

function lstm(backend: 'wasm' | 'js'): Model {
  return createModel(
    { cell: 'lstm', inputSize: I, hiddenSize: H, outputSize: 1, seed: 1, dtype: 'float32' },
    { backend },
  )
}

/**
 * Events per second of each runner (`run(n)` handles n events): the best of `rounds` runs each,
 * interleaved (every round runs every runner once) so that a load that comes and goes on a shared
 * machine disturbs them all alike. Warmed up first (and V8 tiered up to TurboFan).
 */
function rates(runners: ((n: number) => void)[], n: number, rounds: number): number[] {
  for (const run of runners) run(Math.min(n, 20_000))
  const best = runners.map(() => Number.POSITIVE_INFINITY)
  for (let r = 0; r < rounds; r++) {
    runners.forEach((run, i) => {
      const start = performance.now()
      run(n)
      best[i] = Math.min(best[i]!, performance.now() - start)
    })
  }
  return best.map((ms) => (n / ms) * 1000)
}

function perKey(model: Model): (n: number) => void {
  const states = Array.from({ length: KEYS }, () => model.initialState())
  let e = 0
  return (n) => {
    for (const end = e + n; e < end; e++) model.step(inputs[e & 63]!, states[e % KEYS]!)
  }
}

function batched(model: Model, B: number): (n: number) => void {
  const states = Array.from({ length: KEYS }, () => model.initialState())
  const xs = new Float32Array(B * I)
  const out = new Float32Array(B)
  const batch: RecurrentState[] = []
  let e = 0
  return (n) => {
    for (const end = e + n; e < end; ) {
      const size = Math.min(B, end - e)
      batch.length = 0
      for (let k = 0; k < size; k++, e++) {
        xs.set(inputs[e & 63]!, k * I)
        batch.push(states[e % KEYS]!)
      }
      model.stepBatch(xs, batch, out, size)
    }
  }
}

/** max |y_batch − y_step| over two rounds of all keys, batches of 64. */
function agreement(model: Model): number {
  const a = Array.from({ length: KEYS }, () => model.initialState())
  const b = Array.from({ length: KEYS }, () => model.initialState())
  const xs = new Float32Array(64 * I)
  const out = new Float32Array(64)
  let worst = 0
  for (let e0 = 0; e0 < 2 * KEYS; e0 += 64) {
    const size = Math.min(64, 2 * KEYS - e0)
    const batch: RecurrentState[] = []
    for (let k = 0; k < size; k++) {
      xs.set(inputs[(e0 + k) & 63]!, k * I)
      batch.push(b[(e0 + k) % KEYS]!)
    }
    model.stepBatch(xs, batch, out, size)
    for (let k = 0; k < size; k++) {
      const y = model.step(inputs[(e0 + k) & 63]!, a[(e0 + k) % KEYS]!)[0]!
      worst = Math.max(worst, Math.abs(y - out[k]!))
    }
  }
  return worst
}

function report(backend: 'wasm' | 'js', n: number, rounds: number): void {
  const model = lstm(backend)
  console.log(
    `\nLSTM ${I}→${H}→1 float32, backend '${backend}', ${KEYS} keys round robin; ` +
      `max |y_batch − y_step| ${agreement(model).toExponential(2)}`,
  )
  const [base, ...batchedRates] = rates([perKey(model), ...BATCHES.map((B) => batched(model, B))], n, rounds)
  const line = (label: string, r: number) =>
    `${label.padEnd(24)} ${Math.round(r).toLocaleString('en').padStart(10)} events/s ${(1e6 / r).toFixed(2).padStart(7)} µs/event`
  console.log(line('model.step per event', base!))
  BATCHES.forEach((B, i) => {
    const r = batchedRates[i]!
    console.log(`${line(`stepBatch B = ${B}`, r)}  ${(r / base!).toFixed(2)}×`)
  })
}

/** The operator end to end over a synchronous source: events `{ key, x }` in, `{ key, y }` out. */
function operator(model: Model, n: number, batch?: { maxSize: number }): (count: number) => void {
  const all: KeyedEvent[] = Array.from({ length: n }, (_, e) => ({ key: `k${e % KEYS}`, x: inputs[e & 63]! }))
  return (count) => {
    from(count === n ? all : all.slice(0, count))
      .pipe(recurrentByKey(model, batch ? { batch } : {}))
      .subscribe()
  }
}

function reportOperator(n: number, rounds: number): void {
  const model = lstm('wasm')
  console.log(`\nrecurrentByKey, backend 'wasm', ${KEYS} keys round robin (a fresh subscription per run)`)
  const sizes = [8, 32, 64]
  const [base, ...r] = rates(
    [operator(model, n), ...sizes.map((maxSize) => operator(model, n, { maxSize }))],
    n,
    rounds,
  )
  console.log(`${'no batch'.padEnd(24)} ${Math.round(base!).toLocaleString('en').padStart(10)} events/s`)
  sizes.forEach((maxSize, i) => {
    console.log(
      `${`batch maxSize ${maxSize}`.padEnd(24)} ${Math.round(r[i]!).toLocaleString('en').padStart(10)} events/s  ${(r[i]! / base!).toFixed(2)}×`,
    )
  })
}

report('wasm', events, 15)
reportOperator(events, 9)
report('js', Math.max(1000, Math.floor(events / 10)), 5)

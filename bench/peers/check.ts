/**
 * Loads every peer, checks that it computes what the plain-JS reference computes on the same
 * weights, and times it. Run from the repository root after `cd bench && npm install`:
 *
 *   npx tsx bench/peers/check.ts [--input 8] [--hidden 64] [--output 4] [--steps 2000]
 *
 * A peer that cannot load prints "unavailable: <reason>"; a peer that disagrees with the reference
 * makes the script exit 1.
 */
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { createOnnxLstm } from './onnx.js'
import type { StepModel, Unavailable } from './peer.js'
import { createReferenceLstm } from './reference.js'
import { createTfjsLstm, createTfjsTrainer, type TfjsBackend, type TfjsTrainer } from './tfjs.js'
import { randomLstmWeights, referenceLstmStep, seededRandom, toPlainLstm, zeroPlainState } from './weights.js'

const { values: args } = parseArgs({
  options: {
    input: { type: 'string', default: '8' },
    hidden: { type: 'string', default: '64' },
    output: { type: 'string', default: '4' },
    steps: { type: 'string', default: '2000' },
  },
})
const I = Number(args.input)
const H = Number(args.hidden)
const O = Number(args.output)
const STEPS = Number(args.steps)
const AGREEMENT_STEPS = 20
const WARMUP_STEPS = 200
const CHUNK = 16

const weights = randomLstmWeights(I, H, O, 42)
const random = seededRandom(7)
const inputs = Array.from({ length: Math.max(AGREEMENT_STEPS, WARMUP_STEPS, STEPS) }, () =>
  Float32Array.from({ length: I }, () => random() * 2 - 1),
)

const plain = toPlainLstm(weights)
const plainState = zeroPlainState(H)
const expected = inputs.slice(0, AGREEMENT_STEPS).map((x) => referenceLstmStep(plain, plainState, x))

/**
 * Times `count` calls split in `batches` batches and formats µs per event (`eventsPerCall` events a
 * call): the median batch, robust to other work on a shared machine, and the fastest. A call that
 * returns a promise is awaited; a synchronous one is not, so it pays no microtask.
 */
async function timeCalls(
  count: number,
  batches: number,
  eventsPerCall: number,
  call: (k: number) => unknown,
): Promise<string> {
  const perBatch = Math.max(1, Math.floor(count / batches))
  const usPerEvent: number[] = []
  for (let b = 0; b < batches; b++) {
    const start = performance.now()
    for (let k = b * perBatch; k < (b + 1) * perBatch; k++) {
      const result = call(k)
      if (result instanceof Promise) await result
    }
    usPerEvent.push(((performance.now() - start) * 1000) / (perBatch * eventsPerCall))
  }
  usPerEvent.sort((a, b) => a - b)
  const median = usPerEvent[Math.floor(batches / 2)]!
  return `${median.toFixed(1).padStart(8)} µs/event (min ${usPerEvent[0]!.toFixed(1)})`
}

let failures = 0
const pad = (s: string) => s.padEnd(52)

type StepPeer = { label: string; tolerance: number; create: () => Promise<StepModel | Unavailable> }
const stepPeers: StepPeer[] = [
  { label: 'plain JS loop', tolerance: 0, create: async () => createReferenceLstm(weights) },
  { label: 'tfjs (cpu)', tolerance: 1e-4, create: () => createTfjsLstm(weights, 'cpu') },
  { label: 'tfjs (wasm)', tolerance: 1e-4, create: () => createTfjsLstm(weights, 'wasm') },
  { label: 'onnxruntime-node', tolerance: 1e-5, create: () => createOnnxLstm(weights) },
  { label: 'onnxruntime-node sync', tolerance: 1e-5, create: () => createOnnxLstm(weights, { sync: true }) },
]

console.log(`LSTM I=${I} H=${H} O=${O}; agreement over ${AGREEMENT_STEPS} steps, timing ${STEPS} steps`)
console.log('\nInference, one event per step:')
for (const peer of stepPeers) {
  let first: StepModel | Unavailable
  try {
    first = await peer.create()
  } catch (error) {
    // Loading is the peer's business (it reports "unavailable"); failing past that is a bug here.
    failures++
    console.log(`${pad(peer.label)} FAILED to build: ${error instanceof Error ? error.message : error}`)
    continue
  }
  if (!first.available) {
    console.log(`${pad(peer.label)} unavailable: ${first.reason}`)
    continue
  }
  let maxDiff = 0
  for (let t = 0; t < AGREEMENT_STEPS; t++) {
    const y = await first.step(inputs[t]!)
    for (let k = 0; k < O; k++) maxDiff = Math.max(maxDiff, Math.abs(y[k]! - expected[t]![k]!))
  }
  first.dispose()
  const agrees = maxDiff < peer.tolerance || peer.tolerance === 0
  if (!agrees) failures++

  const timed = await peer.create()
  if (!timed.available) throw new Error(`${peer.label} became unavailable`)
  for (let t = 0; t < WARMUP_STEPS; t++) await timed.step(inputs[t]!)
  const us = await timeCalls(STEPS, 10, 1, (t) => timed.step(inputs[t]!))
  timed.dispose()
  const verdict =
    peer.tolerance === 0 ? 'reference' : `${agrees ? 'ok' : 'DISAGREES'} max|Δ|=${maxDiff.toExponential(1)}`
  console.log(`${pad(first.name)} ${us}   ${verdict}`)
}

/** MSE of the reference forward pass over one chunk from a zero state: the trainer's first loss. */
function referenceChunkLoss(xs: Float32Array[], ys: Float32Array[]): number {
  const state = zeroPlainState(H)
  let sum = 0
  xs.forEach((x, t) => {
    const y = referenceLstmStep(plain, state, x)
    for (let k = 0; k < O; k++) sum += (y[k]! - ys[t]![k]!) ** 2
  })
  return sum / (xs.length * O)
}

const flat = (rows: Float32Array[]): Float32Array => {
  const out = new Float32Array(rows.length * (rows[0]?.length ?? 0))
  rows.forEach((r, i) => {
    out.set(r, i * r.length)
  })
  return out
}
const chunkX = inputs.slice(0, CHUNK)
const chunkY = chunkX.map((x) => Float32Array.from({ length: O }, (_, k) => Math.sin(3 * x[k % I]!)))
const xs = flat(chunkX)
const ys = flat(chunkY)
const firstLoss = referenceChunkLoss(chunkX, chunkY)
const CHUNKS = Math.max(1, Math.round(STEPS / CHUNK))

console.log(`\nTraining, Adam lr 1e-3 on ${CHUNK}-step chunks (${CHUNKS} chunks timed):`)
const trainers: { backend: TfjsBackend; clipNorm: number | null }[] = [
  { backend: 'cpu', clipNorm: 1 },
  { backend: 'cpu', clipNorm: null },
  { backend: 'wasm', clipNorm: 1 },
  { backend: 'wasm', clipNorm: null },
]
for (const { backend, clipNorm } of trainers) {
  const label = `tfjs (${backend}) ${clipNorm === null ? 'trainOnBatch' : 'Adam + clip'}`
  const trainer: TfjsTrainer | Unavailable = await createTfjsTrainer(weights, backend, {
    chunk: CHUNK,
    clipNorm,
  })
  if (!trainer.available) {
    console.log(`${pad(label)} unavailable: ${trainer.reason}`)
    continue
  }
  // The first loss is the forward pass before any update: it must match the reference.
  const loss0 = await trainer.trainChunk(xs, ys)
  for (let k = 0; k < 20; k++) await trainer.trainChunk(xs, ys)
  const tensorsBefore = trainer.numTensors()
  const us = await timeCalls(CHUNKS, 5, CHUNK, () => trainer.trainChunk(xs, ys))
  const loss = await trainer.trainChunk(xs, ys)
  const leak = (trainer.numTensors() - tensorsBefore) / CHUNKS
  trainer.dispose()
  const agrees = Math.abs(loss0 - firstLoss) < 1e-4 * Math.max(1, firstLoss)
  const learns = loss < loss0
  if (!agrees || !learns) failures++
  console.log(
    `${pad(trainer.name)} ${us}   ` +
      `${agrees ? 'ok' : 'DISAGREES'} first loss ${loss0.toFixed(6)} (ref ${firstLoss.toFixed(6)}), ` +
      `${learns ? 'learns' : 'DOES NOT LEARN'} to ${loss.toFixed(6)}, ${leak.toFixed(1)} tensors kept/chunk`,
  )
}

if (failures > 0) {
  console.log(`\n${failures} peer check(s) failed`)
  process.exitCode = 1
}

/**
 * Micro-benchmark (not a test) of the WebAssembly SIMD kernels on a float32 LSTM 8 → 64 → 1:
 * - inference: one step made of the kernels (gemv_bias ×2 + lstm_fwd + the head's gemv_bias)
 *   against the JS model.step (and the model on the wasm backend, once it has one);
 * - training: the per-step backward kernels of truncated BPTT and the Adam update, against the JS
 *   loops of src/linalg.ts, src/cells and src/optimizers.ts on the same Float32Arrays.
 *
 *   npx tsx scripts/bench-kernels.ts [steps]
 *
 * Each figure is the best of 500 short runs: on a shared machine the minimum is the least disturbed.
 */
import { lstmCell } from '../src/cells/lstm.js'
import { createModel } from '../src/index.js'
import { gemvTransAdd, gerAdd } from '../src/linalg.js'
import { createOptimizer } from '../src/optimizers.js'
import { WasmKernels } from '../src/wasm/kernels.js'

const I = 8
const H = 64
const O = 1
const G = 4 * H
const steps = Number(process.argv[2] ?? 200_000)
const config = {
  cell: 'lstm',
  inputSize: I,
  hiddenSize: H,
  outputSize: O,
  seed: 1,
  dtype: 'float32',
} as const

const model = createModel(config, { backend: 'js' })
const jsState = model.initialState()

// The parameters in one flat buffer at the offsets a ParameterSet uses (4-byte, not 16-byte
// aligned in general), the scratch 16-byte aligned, as a model built on these kernels lays them out.
const names = [
  'rnn.weight_ih_l0',
  'rnn.weight_hh_l0',
  'rnn.bias_ih_l0',
  'rnn.bias_hh_l0',
  'head.weight',
  'head.bias',
]
const sizes = names.map((n) => model.getParameter(n).length)
const total = sizes.reduce((a, b) => a + b, 0)
const k = new WasmKernels(
  WasmKernels.bytesFor([total, total, total, total, G, G, G, 2 * H, 2 * H, 2 * H, 5 * H, I, O, O, H]),
)
const flat = k.alloc(total)
const grads = k.alloc(total)
const views: Float32Array[] = []
const gradViews: Float32Array[] = []
for (let i = 0, off = 0; i < names.length; off += sizes[i]!, i++) {
  const v = flat.subarray(off, off + sizes[i]!)
  v.set(model.getParameter(names[i]!))
  views.push(v)
  gradViews.push(grads.subarray(off, off + sizes[i]!))
}
const [wIh, wHh, bIh, bHh, wHead, bHead] = views as [
  Float32Array,
  Float32Array,
  Float32Array,
  Float32Array,
  Float32Array,
  Float32Array,
]
const [dWih, dWhh, , , dWhead] = gradViews as [
  Float32Array,
  Float32Array,
  Float32Array,
  Float32Array,
  Float32Array,
]
const gIh = k.alloc(G)
const gHh = k.alloc(G)
const state = k.alloc(2 * H)
const cache = k.alloc(5 * H)
const x = k.alloc(I)
const y = k.alloc(O)

function wasmStep(): void {
  k.gemvBias(gIh, wIh, x, bIh, G, I)
  k.gemvBias(gHh, wHh, state, bHh, G, H)
  k.lstmForward(state, cache, gIh, gHh, state, H)
  k.gemvBias(y, wHead, state, bHead, O, H)
}

// The same step on raw byte offsets: what the wrapper's checks cost.
const raw = k.raw
const ptrs = [wIh, wHh, bIh, bHh, wHead, bHead, gIh, gHh, state, cache, x, y].map((v) => k.ptr(v))
const [pwIh, pwHh, pbIh, pbHh, pwHead, pbHead, pgIh, pgHh, pState, pCache, pX, pY] = ptrs as [
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
]
function rawStep(): void {
  raw.gemv_bias(pgIh, pwIh, pX, pbIh, G, I)
  raw.gemv_bias(pgHh, pwHh, pState, pbHh, G, H)
  raw.lstm_fwd(pState, pCache, pgIh, pgHh, pState, H)
  raw.gemv_bias(pY, pwHead, pState, pbHead, O, H)
}

const inputs = Array.from({ length: 64 }, (_, t) =>
  Float32Array.from({ length: I }, (_, i) => Math.sin(0.1 * t + i)),
)

function time(name: string, body: (t: number) => void): number {
  for (let t = 0; t < 20_000; t++) body(t) // warm up (and let V8 tier up to TurboFan)
  let best = Number.POSITIVE_INFINITY
  const chunk = Math.max(1, Math.floor(steps / 500))
  for (let rep = 0; rep < 500; rep++) {
    const start = performance.now()
    for (let t = 0; t < chunk; t++) body(t)
    best = Math.min(best, ((performance.now() - start) * 1000) / chunk)
  }
  console.log(`${name.padEnd(44)} ${best.toFixed(3)} µs`)
  return best
}

// Agreement first: both from a zero state on the same 200 inputs.
jsState.reset()
let maxDiff = 0
for (let t = 0; t < 200; t++) {
  const xt = inputs[t % inputs.length]!
  const yJs = model.step(xt, jsState)[0]!
  x.set(xt)
  wasmStep()
  maxDiff = Math.max(maxDiff, Math.abs(yJs - y[0]!))
}
console.log(`LSTM ${I}→${H}→${O} float32; max |y_wasm − y_js| over 200 steps: ${maxDiff.toExponential(2)}\n`)

console.log('inference, per step')
const js = time('JS model.step', (t) => model.step(inputs[t & 63]!, jsState))
let wasmModel: ReturnType<typeof createModel> | null = null
try {
  wasmModel = createModel(config, { backend: 'wasm' })
} catch {}
if (wasmModel) {
  const s = wasmModel.initialState()
  time("model.step, backend 'wasm'", (t) => wasmModel!.step(inputs[t & 63]!, s))
}
const w = time('wasm kernels (typed wrapper)', (t) => {
  x.set(inputs[t & 63]!)
  wasmStep()
})
time('wasm kernels (raw byte offsets)', (t) => {
  x.set(inputs[t & 63]!)
  rawStep()
})
const gemvHh = time('  gemv_bias W_hh [256×64]', () => raw.gemv_bias(pgHh, pwHh, pState, pbHh, G, H))
time('  gemv_bias W_ih [256×8]', () => raw.gemv_bias(pgIh, pwIh, pX, pbIh, G, I))
time('  lstm_fwd H=64', () => raw.lstm_fwd(pState, pCache, pgIh, pgHh, pState, H))
time('  gemv_bias head [1×64]', () => raw.gemv_bias(pY, pwHead, pState, pbHead, O, H))
console.log(`speed-up ${(js / w).toFixed(1)}×; W_hh gemv at ${((G * H) / gemvHh / 1000).toFixed(2)} GMAC/s\n`)

// Training: what one step of truncated BPTT runs backward, and the optimizer update.
console.log('training, backward per step (lstm_bwd + W_hhᵀ·dG + dW_ih, dW_hh outer products + head)')
const dG = k.alloc(G)
const dState = k.alloc(2 * H)
const dCand = k.alloc(2 * H)
const dH = k.alloc(H)
const dY = k.alloc(O)
const hPrev = k.alloc(2 * H)
for (let i = 0; i < 2 * H; i++) {
  dCand[i] = Math.sin(i) * 0.1
  hPrev[i] = Math.cos(i) * 0.5
}
dY[0] = 0.3
function wasmBackward(): void {
  k.gerAcc(dWhead, dY, state, O, H)
  k.gemvTransAcc(dCand, wHead, dY, O, H)
  k.lstmBackward(dG, dState, dCand, cache, hPrev, H)
  k.gemvTransAcc(dState, wHh, dG, G, H)
  k.gerAcc(dWih, dG, x, G, I)
  k.gerAcc(dWhh, dG, hPrev, G, H)
}
// The JS loops on plain Float32Arrays of the same sizes.
const j = {
  wIh: Float32Array.from(wIh),
  wHh: Float32Array.from(wHh),
  wHead: Float32Array.from(wHead),
  dWih: new Float32Array(wIh.length),
  dWhh: new Float32Array(wHh.length),
  dWhead: new Float32Array(wHead.length),
  dG: new Float32Array(G),
  dState: new Float32Array(2 * H),
  dCand: Float32Array.from(dCand),
  cache: Float32Array.from(cache),
  hPrev: Float32Array.from(hPrev),
  state: Float32Array.from(state),
  x: Float32Array.from(x),
  dY: Float32Array.from(dY),
}
const cell = lstmCell(H)
function jsBackward(): void {
  gerAdd(j.dWhead, j.dY, j.state, O, H)
  gemvTransAdd(j.dCand, j.wHead, j.dY, O, H)
  cell.backward(j.dG, j.dG, j.dState, j.dCand, j.cache, j.hPrev)
  gemvTransAdd(j.dState, j.wHh, j.dG, G, H)
  gerAdd(j.dWih, j.dG, j.x, G, I)
  gerAdd(j.dWhh, j.dG, j.hPrev, G, H)
}
const jb = time('JS loops', jsBackward)
const wb = time('wasm kernels', wasmBackward)
time('  gemv_t_acc W_hh [256×64]', () => k.gemvTransAcc(dState, wHh, dG, G, H))
time('  ger_acc dW_hh [256×64]', () => k.gerAcc(dWhh, dG, hPrev, G, H))
time('  lstm_bwd H=64', () => k.lstmBackward(dG, dState, dCand, cache, hPrev, H))
console.log(`speed-up ${(jb / wb).toFixed(1)}×\n`)
void dH

console.log(`training, Adam update of all ${total} parameters`)
const m = k.alloc(total)
const v = k.alloc(total)
for (let i = 0; i < total; i++) grads[i] = Math.sin(i) * 1e-2
const jsParams = Float32Array.from(flat)
const jsGrads = Float32Array.from(grads)
const opt = createOptimizer({ type: 'adam', lr: 1e-3 }, jsParams)
const ja = time('JS optimizer.step', () => opt.step(jsParams, jsGrads))
let t = 0
const wa = time('wasm adam', () => {
  t = (t % 1000) + 1
  k.adam(flat, grads, m, v, 1e-3 / (1 - 0.9 ** t), 0.9, 0.999, 1e-8, Math.sqrt(1 - 0.999 ** t), 1, 0)
})
time('wasm sum_squares (global norm)', () => k.sumSquares(grads))
console.log(`speed-up ${(ja / wa).toFixed(1)}×`)

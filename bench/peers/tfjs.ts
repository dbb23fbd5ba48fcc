import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { importPeer, type StepModel, type Unavailable, unavailable } from './peer.js'
import type { LstmWeights } from './weights.js'

/** tfjs backends that run in plain Node with no download: pure JS kernels, or XNNPACK in WebAssembly. */
export type TfjsBackend = 'cpu' | 'wasm'

/** A tfjs model training on 16-step chunks (truncated BPTT), the training-cost peer. */
export type TfjsTrainer = {
  readonly available: true
  readonly name: string
  /**
   * One optimizer step on a chunk: xs [chunk, I], ys [chunk, O] row-major. Gives the MSE before the
   * step; a promise on the `trainOnBatch` path, which tfjs makes async.
   */
  trainChunk(xs: Float32Array, ys: Float32Array): number | Promise<number>
  /** Live tensors in the tfjs engine, to watch for leaks. */
  numTensors(): number
  dispose(): void
}

/** How a {@link TfjsTrainer} updates the weights. */
export type TfjsTrainerOptions = {
  /** Steps per chunk (BPTT truncation). Default 16. */
  chunk?: number
  /**
   * Global gradient-norm clip, as PyTorch's `clip_grad_norm_`. Default 1. tfjs optimizers have no
   * `clipnorm`, so a clip needs a hand-written step (`variableGrads`, clip, `applyGradients`); `null`
   * uses plain `model.trainOnBatch` instead, with no clip.
   */
  clipNorm?: number | null
}

// The slice of the tfjs API used here, declared locally (see importPeer).
type Tensor = {
  readonly shape: number[]
  dataSync(): Float32Array
  dispose(): void
}
type LayerVariable = { read(): Tensor }
type Layer = { readonly __layer?: never }
type Sequential = {
  add(layer: Layer): void
  predict(x: Tensor): Tensor
  apply(x: Tensor, kwargs: { training: boolean }): Tensor
  compile(args: { optimizer: Optimizer; loss: string }): void
  trainOnBatch(x: Tensor, y: Tensor): Promise<number | number[]>
  setWeights(weights: Tensor[]): void
  resetStates(): void
  readonly trainableWeights: LayerVariable[]
  dispose(): void
}
type Optimizer = {
  applyGradients(grads: Record<string, Tensor>): void
  dispose(): void
}
type RecurrentArgs = {
  units: number
  kernelInitializer: string
  recurrentInitializer: string
  activation: string
  recurrentActivation: string
  stateful: boolean
  returnSequences: boolean
  batchInputShape: number[]
}
type Tf = {
  readonly version: Record<string, string>
  setBackend(name: string): Promise<boolean>
  getBackend(): string
  ready(): Promise<void>
  enableProdMode(): void
  memory(): { numTensors: number }
  sequential(): Sequential
  layers: {
    lstm(args: RecurrentArgs): Layer
    dense(args: { units: number; inputShape?: number[] }): Layer
    timeDistributed(args: { layer: Layer }): Layer
  }
  train: { adam(learningRate: number, beta1: number, beta2: number, epsilon: number): Optimizer }
  losses: { meanSquaredError(labels: Tensor, predictions: Tensor): Tensor }
  tensor(values: Float32Array, shape: number[]): Tensor
  tidy<T>(fn: () => T): T
  variableGrads(f: () => Tensor, varList: Tensor[]): { value: Tensor; grads: Record<string, Tensor> }
  addN(tensors: Tensor[]): Tensor
  sum(x: Tensor): Tensor
  square(x: Tensor): Tensor
  mul(a: Tensor, b: Tensor | number): Tensor
  dispose(t: Tensor | Tensor[] | Record<string, Tensor>): void
}
type TfWasm = { setWasmPaths(prefix: string): void }

const loaded = new Map<TfjsBackend, Promise<Tf | Unavailable>>()

/** Imports tfjs once and makes `backend` current (the wasm binaries come from the installed package). */
function loadTfjs(backend: TfjsBackend): Promise<Tf | Unavailable> {
  let pending = loaded.get(backend)
  if (!pending) {
    pending = (async () => {
      let tf: Tf
      try {
        tf = (await importPeer('@tensorflow/tfjs')) as Tf
      } catch (error) {
        return unavailable('cannot import @tensorflow/tfjs', error)
      }
      try {
        if (backend === 'wasm') {
          const wasm = (await importPeer('@tensorflow/tfjs-backend-wasm')) as TfWasm
          // Node reads the .wasm files from disk: point the loader at the package's dist/ folder.
          const main = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')
          wasm.setWasmPaths(`${dirname(main)}/`)
        }
        if (!(await tf.setBackend(backend)))
          throw new Error(`tf.setBackend('${backend}') returned false (tfjs printed why, above)`)
        await tf.ready()
      } catch (error) {
        return unavailable(`tfjs ${backend} backend failed to start`, error)
      }
      tf.enableProdMode()
      return tf
    })()
    loaded.set(backend, pending)
  }
  return pending
}

/** tfjs runs every model on its one global backend; make `backend` current before using the model. */
async function useBackend(tf: Tf, backend: TfjsBackend): Promise<void> {
  if (tf.getBackend() !== backend) await tf.setBackend(backend)
}

function assertBackend(tf: Tf, backend: TfjsBackend): void {
  if (tf.getBackend() !== backend) {
    throw new Error(
      `tfjs's global backend is now '${tf.getBackend()}', but this peer was built on '${backend}': ` +
        'create, run and dispose one tfjs peer at a time',
    )
  }
}

function transpose(a: Float32Array, rowCount: number, columnCount: number): Float32Array {
  const t = new Float32Array(a.length)
  for (let r = 0; r < rowCount; r++)
    for (let c = 0; c < columnCount; c++) t[c * rowCount + r] = a[r * columnCount + c]!
  return t
}

/**
 * The PyTorch weights in Keras order: LSTM kernel [I, 4H] = wIhᵀ, recurrent kernel [H, 4H] = wHhᵀ, one
 * bias bIh + bHh; dense kernel [H, O] = headWᵀ, bias [O]. Keras's gate order i, f, c, o is PyTorch's
 * i, f, g, o, so the 4H columns keep their order.
 */
function kerasWeights(tf: Tf, w: LstmWeights): Tensor[] {
  const { inputSize: I, hiddenSize: H, outputSize: O } = w
  const bias = new Float32Array(4 * H)
  for (let k = 0; k < 4 * H; k++) bias[k] = w.bIh[k]! + w.bHh[k]!
  return [
    tf.tensor(transpose(w.wIh, 4 * H, I), [I, 4 * H]),
    tf.tensor(transpose(w.wHh, 4 * H, H), [H, 4 * H]),
    tf.tensor(bias, [4 * H]),
    tf.tensor(transpose(w.headW, O, H), [H, O]),
    tf.tensor(w.headB, [O]),
  ]
}

function lstmLayer(tf: Tf, w: LstmWeights, steps: number, returnSequences: boolean): Layer {
  return tf.layers.lstm({
    units: w.hiddenSize,
    // setWeights overwrites them; the default orthogonal init is slow for large H, and warns.
    kernelInitializer: 'zeros',
    recurrentInitializer: 'zeros',
    activation: 'tanh',
    // tfjs defaults to hardSigmoid here (old Keras); PyTorch's gates are the logistic sigmoid.
    recurrentActivation: 'sigmoid',
    stateful: true,
    returnSequences,
    batchInputShape: [1, steps, w.inputSize],
  })
}

function loadWeights(tf: Tf, model: Sequential, w: LstmWeights): void {
  const tensors = kerasWeights(tf, w)
  model.setWeights(tensors)
  tf.dispose(tensors)
}

/**
 * A stateful tfjs LSTM + dense head, one `model.predict` per event.
 *
 * @example
 * const peer = await createTfjsLstm(randomLstmWeights(8, 64, 4, 42), 'wasm')
 * if (peer.available) console.log(peer.step(new Float32Array(8)))
 */
export async function createTfjsLstm(
  weights: LstmWeights,
  backend: TfjsBackend,
): Promise<StepModel<Float32Array> | Unavailable> {
  const tf = await loadTfjs(backend)
  if ('available' in tf) return tf
  await useBackend(tf, backend)
  const { inputSize: I, outputSize: O } = weights
  const model = tf.sequential()
  model.add(lstmLayer(tf, weights, 1, false))
  model.add(tf.layers.dense({ units: O }))
  loadWeights(tf, model, weights)
  const y = new Float32Array(O)
  return {
    available: true,
    name: `tfjs ${tf.version.tfjs} (${backend})`,
    step: (x) => {
      assertBackend(tf, backend)
      const input = tf.tensor(x, [1, 1, I])
      const output = model.predict(input)
      y.set(output.dataSync())
      tf.dispose([input, output])
      return y
    },
    dispose: () => model.dispose(),
  }
}

/**
 * A stateful tfjs LSTM (returnSequences) + time-distributed dense head trained by Adam (lr 1e-3,
 * PyTorch's betas and epsilon) on MSE, one optimizer step per chunk. The LSTM state carries across
 * chunks; gradients stop at chunk boundaries (truncated BPTT), as in rxrnn's trainer.
 *
 * @example
 * const trainer = await createTfjsTrainer(randomLstmWeights(8, 64, 4, 42), 'cpu')
 * if (trainer.available) trainer.trainChunk(new Float32Array(16 * 8), new Float32Array(16 * 4))
 */
export async function createTfjsTrainer(
  weights: LstmWeights,
  backend: TfjsBackend,
  options: TfjsTrainerOptions = {},
): Promise<TfjsTrainer | Unavailable> {
  const tf = await loadTfjs(backend)
  if ('available' in tf) return tf
  await useBackend(tf, backend)
  const chunk = options.chunk ?? 16
  const clipNorm = options.clipNorm === undefined ? 1 : options.clipNorm
  const { inputSize: I, outputSize: O } = weights
  const model = tf.sequential()
  model.add(lstmLayer(tf, weights, chunk, true))
  model.add(tf.layers.timeDistributed({ layer: tf.layers.dense({ units: O }) }))
  const optimizer = tf.train.adam(1e-3, 0.9, 0.999, 1e-8)
  model.compile({ optimizer, loss: 'meanSquaredError' })
  loadWeights(tf, model, weights)
  const variables = model.trainableWeights.map((v) => v.read())

  const clippedStep = (x: Tensor, y: Tensor, maxNorm: number): number => {
    const { value, grads } = tf.variableGrads(
      () => tf.losses.meanSquaredError(y, model.apply(x, { training: true })),
      variables,
    )
    const clipped = tf.tidy(() => {
      const names = Object.keys(grads)
      const norm = Math.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n]!)))).dataSync()[0]!)
      const scale = Math.min(1, maxNorm / (norm + 1e-6))
      const out: Record<string, Tensor> = {}
      for (const n of names) out[n] = tf.mul(grads[n]!, scale)
      return out
    })
    optimizer.applyGradients(clipped)
    const loss = value.dataSync()[0]!
    tf.dispose([value])
    tf.dispose(grads)
    tf.dispose(clipped)
    return loss
  }

  return {
    available: true,
    name: `tfjs ${tf.version.tfjs} (${backend}) ${clipNorm === null ? 'trainOnBatch' : 'Adam + clip'}`,
    trainChunk: (xs, ys) => {
      assertBackend(tf, backend)
      const x = tf.tensor(xs, [1, chunk, I])
      const y = tf.tensor(ys, [1, chunk, O])
      if (clipNorm !== null) {
        try {
          return clippedStep(x, y, clipNorm)
        } finally {
          tf.dispose([x, y])
        }
      }
      return model.trainOnBatch(x, y).then(
        (loss) => {
          tf.dispose([x, y])
          return Array.isArray(loss) ? loss[0]! : loss
        },
        (error: unknown) => {
          tf.dispose([x, y])
          throw error
        },
      )
    },
    numTensors: () => tf.memory().numTensors,
    dispose: () => {
      model.dispose()
      optimizer.dispose()
    },
  }
}

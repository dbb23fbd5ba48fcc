import { buildOnnxLstmStepModel, onnxStepNames as names } from './onnx-model.js'
import { importPeer, type StepModel, type Unavailable, unavailable } from './peer.js'
import type { LstmWeights } from './weights.js'

// The slice of the onnxruntime-node API used here, declared locally (see importPeer).
type OrtTensor = { readonly data: unknown; readonly dims: readonly number[] }
type OrtFeeds = Record<string, OrtTensor>
type SessionOptions = {
  intraOpNumThreads: number
  interOpNumThreads: number
  executionMode: 'sequential'
  graphOptimizationLevel: 'all'
}
type OrtSession = { run(feeds: OrtFeeds): Promise<OrtFeeds>; release(): Promise<void> }
type Ort = {
  readonly env: { readonly versions: { readonly node?: string } }
  readonly Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor
  readonly InferenceSession: { create(model: Uint8Array, options: SessionOptions): Promise<OrtSession> }
}
/** onnxruntime-node's native session, which its public `session.run` wraps in a setImmediate. */
type NativeSession = {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: SessionOptions): void
  run(feeds: OrtFeeds, fetches: Record<string, null>, options: object): OrtFeeds
  dispose(): void
}
type OrtBinding = { binding: { InferenceSession: new () => NativeSession }; initOrt(): void }

/** How {@link createOnnxLstm} runs the model. */
export type OnnxLstmOptions = {
  /**
   * `false` (default): the public API, `await session.run(...)`, which onnxruntime-node defers to the
   * next event-loop turn. `true`: call the package's internal native binding directly; it runs the
   * same kernels synchronously, but is not public API and may vanish in any release.
   */
  sync?: boolean
}

const sessionOptions: SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
}

let ortLoad: Promise<Ort | Unavailable> | undefined
function loadOrt(): Promise<Ort | Unavailable> {
  ortLoad ??= (importPeer('onnxruntime-node') as Promise<Ort>).catch((error: unknown) =>
    unavailable('cannot load onnxruntime-node', error),
  )
  return ortLoad
}

function floatData(t: OrtTensor | undefined, name: string): Float32Array {
  if (!t || !(t.data instanceof Float32Array)) throw new Error(`onnxruntime returned no float32 '${name}'`)
  return t.data
}

/**
 * ONNX Runtime (CPU, one thread) running a one-step LSTM + head model built in-process by
 * {@link buildOnnxLstmStepModel}; the peer carries h and c from one call to the next.
 *
 * @example
 * const peer = await createOnnxLstm(randomLstmWeights(8, 64, 4, 42))
 * if (peer.available) console.log(await peer.step(new Float32Array(8)))
 */
export async function createOnnxLstm(
  weights: LstmWeights,
  options: OnnxLstmOptions & { sync: true },
): Promise<StepModel<Float32Array> | Unavailable>
export async function createOnnxLstm(
  weights: LstmWeights,
  options?: OnnxLstmOptions,
): Promise<StepModel<Promise<Float32Array>> | Unavailable>
export async function createOnnxLstm(
  weights: LstmWeights,
  options: OnnxLstmOptions = {},
): Promise<StepModel | Unavailable> {
  const ort = await loadOrt()
  if ('available' in ort) return ort
  const { inputSize: I, hiddenSize: H } = weights
  const model = buildOnnxLstmStepModel(weights)
  const zeros = new Float32Array(H)
  let h: OrtTensor = new ort.Tensor('float32', zeros, [1, 1, H])
  let c: OrtTensor = new ort.Tensor('float32', zeros, [1, 1, H])
  const version = ort.env.versions.node ?? '?'
  const feeds = (x: Float32Array): OrtFeeds => ({
    [names.x]: new ort.Tensor('float32', x, [1, 1, I]),
    [names.h0]: h,
    [names.c0]: c,
  })
  const carry = (out: OrtFeeds): Float32Array => {
    const y = floatData(out[names.y], names.y)
    h = out[names.h1]!
    c = out[names.c1]!
    return y
  }

  if (options.sync) {
    let native: NativeSession
    try {
      const { binding, initOrt } = (await importPeer('onnxruntime-node/dist/binding.js')) as OrtBinding
      initOrt()
      native = new binding.InferenceSession()
    } catch (error) {
      return unavailable('no synchronous onnxruntime-node path (internal binding not found)', error)
    }
    native.loadModel(model.buffer, model.byteOffset, model.byteLength, sessionOptions)
    const fetches = { [names.y]: null, [names.h1]: null, [names.c1]: null }
    const runOptions = {}
    return {
      available: true,
      name: `onnxruntime-node ${version} (internal sync binding)`,
      step: (x) => carry(native.run(feeds(x), fetches, runOptions)),
      dispose: () => native.dispose(),
    }
  }

  const session = await ort.InferenceSession.create(model, sessionOptions)
  return {
    available: true,
    name: `onnxruntime-node ${version}`,
    step: async (x) => carry(await session.run(feeds(x))),
    dispose: () => void session.release(),
  }
}

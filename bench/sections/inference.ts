/**
 * Section 1: inference latency per event, one step at a time with carried state, rxrnn against
 * every peer on the same weights. Each peer first proves it computes what rxrnn computes.
 */
import type { RecurrentState } from '../../src/index.js'
import { createOnnxLstm } from '../peers/onnx.js'
import type { StepModel, Unavailable } from '../peers/peer.js'
import { createReferenceLstm } from '../peers/reference.js'
import { createTfjsLstm } from '../peers/tfjs.js'
import {
  claim,
  exp,
  header,
  note,
  printTable,
  type SummaryRow,
  speedup,
  TARGETS,
  us,
  verdict,
  verdictText,
} from '../report.js'
import {
  type Backend,
  type Context,
  createRxrnnModel,
  DESCRIBE_MODEL,
  INPUTS,
  SHAPE,
  STREAM_LENGTH,
  timeWithTinybench,
  WEIGHTS,
} from './common.js'

const AGREEMENT_STEPS = 20
const TOLERANCE = 1e-4

export interface InferenceRow {
  readonly peer: string
  readonly name: string
  readonly status: 'ok' | 'unavailable' | 'disagrees' | 'error'
  readonly reason?: string
  readonly maxAbsDiff?: number
  readonly medianUs?: number
  readonly p99Us?: number
  readonly meanUs?: number
  readonly samples?: number
  /** Median µs/event of this row over rxrnn's headline backend's. */
  readonly costVsRxrnn?: number
  readonly note?: string
}

export interface InferenceResult {
  readonly model: string
  readonly agreementSteps: number
  readonly tolerance: number
  readonly baseline: string
  readonly rows: InferenceRow[]
  readonly summary: SummaryRow[]
}

interface PeerSpec {
  readonly peer: string
  readonly async: boolean
  readonly note?: string
  create(): Promise<StepModel | Unavailable>
}

function rxrnnPeer(backend: Backend): PeerSpec {
  return {
    peer: `rxrnn (${backend})`,
    async: false,
    create: async () => {
      const model = createRxrnnModel(backend)
      if ('available' in model) return model
      const state: RecurrentState = model.initialState()
      return {
        available: true,
        name: `rxrnn (${backend}) model.step`,
        step: (x: Float32Array) => model.step(x, state) as Float32Array,
        dispose: () => {},
      }
    },
  }
}

const peers = (): PeerSpec[] => [
  rxrnnPeer('wasm'),
  rxrnnPeer('js'),
  { peer: 'tfjs (cpu)', async: false, create: () => createTfjsLstm(WEIGHTS, 'cpu') },
  { peer: 'tfjs (wasm)', async: false, create: () => createTfjsLstm(WEIGHTS, 'wasm') },
  { peer: 'ONNX Runtime', async: true, create: () => createOnnxLstm(WEIGHTS) },
  {
    peer: 'ONNX Runtime sync',
    async: false,
    note: 'internal native binding, not public API: a note, not the headline',
    create: () => createOnnxLstm(WEIGHTS, { sync: true }),
  },
  { peer: 'plain JS loop', async: false, create: async () => createReferenceLstm(WEIGHTS) },
]

/** rxrnn's outputs over the first steps from a zero state, on the headline backend: what every peer must match. */
function referenceOutputs(backend: Backend): Float32Array[] {
  const model = createRxrnnModel(backend)
  if ('available' in model) throw new Error(`rxrnn (${backend}) was available a moment ago: ${model.reason}`)
  const state = model.initialState()
  return INPUTS.slice(0, AGREEMENT_STEPS).map((x) => Float32Array.from(model.step(x, state)))
}

export async function runInference(ctx: Context): Promise<InferenceResult> {
  header(1, `Inference latency per event: ${DESCRIBE_MODEL}, carried state, batch 1`)
  const baseline = `rxrnn (${ctx.backends.headline})`
  const timeMs = ctx.quick ? 250 : 1500
  const warmupMs = ctx.quick ? 50 : 300
  note(
    `tinybench per peer: ${timeMs} ms timed after ${warmupMs} ms warmup, one sample per event; ` +
      `agreement with ${baseline} over ${AGREEMENT_STEPS} steps from a zero state (max |Δ| < ${TOLERANCE})`,
  )
  if (ctx.backends.headline !== 'wasm')
    note(`rxrnn (wasm) is unavailable, so ratios are against rxrnn (js): ${ctx.backends.status.wasm}`)

  const expected = referenceOutputs(ctx.backends.headline)
  // Measured in this order, printed in the list's: rxrnn and the plain JS loop before tfjs and
  // ONNX Runtime are loaded, so that no peer's threads or heap are around when they are timed.
  const display = peers()
  const firstParty = (spec: PeerSpec) => spec.peer.startsWith('rxrnn') || spec.peer === 'plain JS loop'
  const order = [...display.filter(firstParty), ...display.filter((spec) => !firstParty(spec))]
  const measured: InferenceRow[] = []
  for (const spec of order) {
    let peer: StepModel | Unavailable
    try {
      peer = await spec.create()
    } catch (error) {
      measured.push({ peer: spec.peer, name: spec.peer, status: 'error', reason: message(error) })
      continue
    }
    if (!peer.available) {
      measured.push({ peer: spec.peer, name: spec.peer, status: 'unavailable', reason: peer.reason })
      continue
    }
    try {
      let maxAbsDiff = 0
      for (let t = 0; t < AGREEMENT_STEPS; t++) {
        const y = await peer.step(INPUTS[t]!)
        for (let k = 0; k < SHAPE.outputSize; k++)
          maxAbsDiff = Math.max(maxAbsDiff, Math.abs(y[k]! - expected[t]![k]!))
      }
      // NaN compares false: a peer that returns NaN disagrees.
      const agrees = maxAbsDiff < TOLERANCE
      // The state carries on from the agreement steps: the timed steps continue the same stream.
      let t = AGREEMENT_STEPS
      const model = peer
      const step = () => model.step(INPUTS[t++ % STREAM_LENGTH]!)
      const timing = await timeWithTinybench(spec.peer, step, { timeMs, warmupMs, async: spec.async })
      const base = {
        peer: spec.peer,
        name: peer.name,
        maxAbsDiff,
        ...(spec.note ? { note: spec.note } : {}),
      }
      if (!timing.ok) measured.push({ ...base, status: 'error', reason: timing.error })
      else
        measured.push({
          ...base,
          status: agrees ? 'ok' : 'disagrees',
          medianUs: timing.medianUs,
          p99Us: timing.p99Us,
          meanUs: timing.meanUs,
          samples: timing.samples,
        })
    } catch (error) {
      measured.push({ peer: spec.peer, name: peer.name, status: 'error', reason: message(error) })
    } finally {
      peer.dispose()
    }
  }
  const rows = display.map((spec) => measured.find((r) => r.peer === spec.peer)!)

  const baseRow = rows.find((r) => r.peer === baseline)
  const baseUs = baseRow?.medianUs
  const withRatios = rows.map((r) =>
    r.medianUs !== undefined && baseUs ? { ...r, costVsRxrnn: r.medianUs / baseUs } : r,
  )

  printTable(
    ['peer', 'agreement', 'median µs/event', 'p99 µs', 'samples', `${baseline} is`, 'target'],
    withRatios.map((r) => [
      r.name,
      agreementText(r),
      r.status === 'unavailable' || r.status === 'error' ? r.status : us(r.medianUs),
      us(r.p99Us),
      r.samples === undefined ? '' : String(r.samples),
      r.peer === baseline ? 'baseline' : r.medianUs === undefined ? '' : speedup(baseUs, r.medianUs),
      r.peer.startsWith('rxrnn') && r.medianUs !== undefined
        ? verdictText(TARGETS.inference, r.medianUs)
        : '',
    ]),
    [0, 1],
  )
  for (const r of withRatios) {
    if (r.reason) note(`${r.peer}: ${r.status}: ${r.reason}`)
    if (r.status === 'disagrees')
      note(`FLAG ${r.peer} disagrees with ${baseline}: max |Δ| ${exp(r.maxAbsDiff)} ≥ ${TOLERANCE}`)
    if (r.note) note(`${r.peer}: ${r.note}`)
  }
  const onnx = withRatios.find((r) => r.peer === 'ONNX Runtime')
  const summary: SummaryRow[] = []
  for (const r of withRatios.filter((r) => r.peer.startsWith('rxrnn'))) {
    summary.push({
      measure: `inference µs/event, ${r.peer}`,
      rxrnn: r.medianUs === undefined ? r.status : `${us(r.medianUs)} µs (p99 ${us(r.p99Us)})`,
      versus: onnx?.medianUs === undefined ? 'ONNX Runtime: n/a' : `ONNX Runtime ${us(onnx.medianUs)} µs`,
      ratio: speedup(r.medianUs, onnx?.medianUs),
      target:
        r.medianUs === undefined
          ? ''
          : `${verdict(TARGETS.inference, r.medianUs)} (${TARGETS.inference.label})`,
      ...optionalClaim(
        claim(r.peer, speedup(r.medianUs, onnx?.medianUs), 'ONNX Runtime', 'at inference per event'),
      ),
    })
  }
  for (const peer of ['tfjs (cpu)', 'tfjs (wasm)', 'plain JS loop']) {
    const r = withRatios.find((row) => row.peer === peer)
    summary.push({
      measure: `inference vs ${peer}`,
      rxrnn: baseUs === undefined ? 'n/a' : `${baseline} ${us(baseUs)} µs`,
      versus: r?.medianUs === undefined ? `${peer}: ${r?.status ?? 'n/a'}` : `${peer} ${us(r.medianUs)} µs`,
      ratio: speedup(baseUs, r?.medianUs),
      target: '',
      ...optionalClaim(claim(baseline, speedup(baseUs, r?.medianUs), peer, 'at inference per event')),
    })
  }
  return {
    model: DESCRIBE_MODEL,
    agreementSteps: AGREEMENT_STEPS,
    tolerance: TOLERANCE,
    baseline,
    rows: withRatios,
    summary,
  }
}

function agreementText(r: InferenceRow): string {
  if (r.maxAbsDiff === undefined) return ''
  return `${r.status === 'disagrees' ? 'DISAGREES' : 'ok'} ${exp(r.maxAbsDiff)}`
}

export function optionalClaim(text: string | undefined): { claim?: string } {
  return text ? { claim: text } : {}
}

export function message(error: unknown): string {
  return error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error)
}

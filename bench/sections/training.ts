/**
 * Section 2: online training cost per event, TBPTT(16, 16) with Adam and clipping. rxrnn's
 * OnlineTrainer.observeSequence is timed one 16-event chunk (one update) per sample, with its
 * default diagnostics and with diagnosticsEvery 0; tfjs's trainer takes one chunk per call. Both
 * are reported per event (chunk cost / 16).
 */
import { OnlineTrainer } from '../../src/index.js'
import { createTfjsTrainer, type TfjsBackend } from '../peers/tfjs.js'
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
  BACKENDS,
  type Backend,
  CHUNK,
  type Context,
  createRxrnnModel,
  DESCRIBE_MODEL,
  DESCRIBE_TRAINER,
  TARGETS as EVENT_TARGETS,
  INPUTS,
  SHAPE,
  STREAM_LENGTH,
  timeWithTinybench,
  trainerOptions,
  WEIGHTS,
} from './common.js'
import { message, optionalClaim } from './inference.js'

/** Chunks whose losses are compared between rxrnn and tfjs before timing. */
const AGREEMENT_CHUNKS = 3
const CHUNKS = STREAM_LENGTH / CHUNK

export interface TrainingRow {
  readonly peer: string
  readonly variant: string
  readonly status: 'ok' | 'unavailable' | 'error' | 'disagrees'
  readonly reason?: string
  /** Median chunk time / 16. */
  readonly medianUs?: number
  /** Mean chunk time / 16 (includes the occasional GC). */
  readonly meanUs?: number
  readonly p99ChunkUs?: number
  readonly samples?: number
  /** MSE of the first chunks, before each one's update. */
  readonly losses?: number[]
  readonly maxRelLossDiff?: number
  /** tfjs only: against rxrnn's own two-bias (PyTorch) run, for the record. */
  readonly maxRelLossDiffVsTwoBiases?: number
}

export interface TrainingResult {
  readonly model: string
  readonly trainer: string
  readonly rows: TrainingRow[]
  readonly summary: SummaryRow[]
}

/** The events of chunk c, flat, as tfjs's trainer takes them. */
const FLAT = Array.from({ length: CHUNKS }, (_, c) => {
  const xs = new Float32Array(CHUNK * SHAPE.inputSize)
  const ys = new Float32Array(CHUNK * SHAPE.outputSize)
  for (let k = 0; k < CHUNK; k++) {
    xs.set(INPUTS[c * CHUNK + k]!, k * SHAPE.inputSize)
    ys.set(EVENT_TARGETS[c * CHUNK + k]!, k * SHAPE.outputSize)
  }
  return { xs, ys }
})

function rxrnnTrainer(backend: Backend, diagnosticsEvery: number | undefined): OnlineTrainer | string {
  const model = createRxrnnModel(backend)
  if ('available' in model) return model.reason
  return new OnlineTrainer(model, trainerOptions(diagnosticsEvery))
}

/**
 * Feeds chunk c event by event; returns the update's loss (the chunk's MSE before the step). With
 * `frozenBiasHh`, rnn.bias_hh_l0 is put back after every update, so that b_ih + b_hh trains as one
 * bias, as Keras's LSTM (and so tfjs) has it; PyTorch's two biases each take an Adam step, which
 * moves their sum twice as far.
 */
function rxrnnChunk(trainer: OnlineTrainer, c: number, frozenBiasHh?: Float32Array): number {
  const seq = trainer.sequence
  const base = (c % CHUNKS) * CHUNK
  let loss = Number.NaN
  for (let k = 0; k < CHUNK; k++) {
    const { update } = trainer.observeSequence(seq, INPUTS[base + k]!, EVENT_TARGETS[base + k]!)
    if (update) loss = update.loss
  }
  if (frozenBiasHh) trainer.model.getParameter('rnn.bias_hh_l0').set(frozenBiasHh)
  return loss
}

const fmtLosses = (losses: readonly number[]) => losses.map((l) => l.toFixed(6)).join(', ')

export async function runTraining(ctx: Context): Promise<TrainingResult> {
  header(2, `Online training cost per event: ${DESCRIBE_MODEL}, ${DESCRIBE_TRAINER}`)
  const rxTime = ctx.quick ? 250 : 1500
  const tfTime = ctx.quick ? 400 : 2500
  note(
    `rxrnn: OnlineTrainer.observeSequence (documented as allocation-free; section 6 checks), one sample = 16 events = one update; ` +
      `tfjs: one trainChunk (forward 16 steps, variableGrads, clip, Adam) per sample; both / 16`,
  )
  note(
    `agreement: the MSE of the first ${AGREEMENT_CHUNKS} chunks, each before its update (so forward, backward, ` +
      'clip and Adam all show); tfjs is held to rxrnn with b_hh fixed, which trains b_ih + b_hh as ' +
      "Keras's one LSTM bias",
  )
  const headline = ctx.backends.headline
  const reference = rxrnnTrainer(headline, 0)
  if (typeof reference === 'string') throw new Error(`rxrnn (${headline}) is unavailable: ${reference}`)
  const referenceLosses = Array.from({ length: AGREEMENT_CHUNKS }, (_, c) => rxrnnChunk(reference, c))

  const singleBias = rxrnnTrainer(headline, 0)
  if (typeof singleBias === 'string') throw new Error(`rxrnn (${headline}) is unavailable: ${singleBias}`)
  const initialBiasHh = Float32Array.from(WEIGHTS.bHh)
  const singleBiasLosses = Array.from({ length: AGREEMENT_CHUNKS }, (_, c) =>
    rxrnnChunk(singleBias, c, initialBiasHh),
  )
  const agreement = (losses: readonly number[], expected: readonly number[]) =>
    Math.max(...losses.map((l, i) => Math.abs(l - expected[i]!) / Math.max(1e-8, expected[i]!)))

  const rows: TrainingRow[] = []
  for (const backend of BACKENDS) {
    for (const diagnosticsEvery of [undefined, 0]) {
      const variant = diagnosticsEvery === undefined ? 'default diagnostics' : 'diagnosticsEvery 0'
      const peer = `rxrnn (${backend})`
      const trainer = rxrnnTrainer(backend, diagnosticsEvery)
      if (typeof trainer === 'string') {
        // One row says why; the second variant would repeat it.
        if (diagnosticsEvery === undefined)
          rows.push({ peer, variant: '', status: 'unavailable', reason: trainer })
        continue
      }
      try {
        const losses = Array.from({ length: AGREEMENT_CHUNKS }, (_, c) => rxrnnChunk(trainer, c))
        const maxRelLossDiff = agreement(losses, referenceLosses)
        let c = AGREEMENT_CHUNKS
        const timing = await timeWithTinybench(`${peer} ${variant}`, () => rxrnnChunk(trainer, c++), {
          timeMs: rxTime,
          warmupMs: ctx.quick ? 50 : 300,
          async: false,
          eventsPerCall: CHUNK,
        })
        if (!timing.ok) rows.push({ peer, variant, status: 'error', reason: timing.error })
        else
          rows.push({
            peer,
            variant,
            status: maxRelLossDiff < 1e-4 ? 'ok' : 'disagrees',
            medianUs: timing.medianUs,
            meanUs: timing.meanUs,
            p99ChunkUs: timing.p99Us * CHUNK,
            samples: timing.samples,
            losses,
            maxRelLossDiff,
          })
      } catch (error) {
        rows.push({ peer, variant, status: 'error', reason: message(error) })
      }
    }
  }

  // tfjs is imported here, after every rxrnn row above is measured: its threads and heap are
  // not around while rxrnn is timed (and the harness gives this section a fresh process).
  for (const backend of ['cpu', 'wasm'] as TfjsBackend[]) {
    const peer = `tfjs (${backend})`
    const variant = 'Adam + clip (variableGrads)'
    const trainer = await createTfjsTrainer(WEIGHTS, backend, { chunk: CHUNK, clipNorm: 1 })
    if (!trainer.available) {
      rows.push({ peer, variant, status: 'unavailable', reason: trainer.reason })
      continue
    }
    try {
      const losses: number[] = []
      for (let c = 0; c < AGREEMENT_CHUNKS; c++)
        losses.push(await trainer.trainChunk(FLAT[c]!.xs, FLAT[c]!.ys))
      const maxRelLossDiff = agreement(losses, singleBiasLosses)
      const maxRelLossDiffVsTwoBiases = agreement(losses, referenceLosses)
      let c = AGREEMENT_CHUNKS
      const timing = await timeWithTinybench(
        peer,
        () => {
          const chunk = FLAT[c++ % CHUNKS]!
          return trainer.trainChunk(chunk.xs, chunk.ys)
        },
        { timeMs: tfTime, warmupMs: ctx.quick ? 100 : 500, async: false, eventsPerCall: CHUNK },
      )
      if (!timing.ok) rows.push({ peer, variant, status: 'error', reason: timing.error })
      else
        rows.push({
          peer,
          variant,
          status: maxRelLossDiff < 1e-4 ? 'ok' : 'disagrees',
          medianUs: timing.medianUs,
          meanUs: timing.meanUs,
          p99ChunkUs: timing.p99Us * CHUNK,
          samples: timing.samples,
          losses,
          maxRelLossDiff,
          maxRelLossDiffVsTwoBiases,
        })
    } catch (error) {
      rows.push({ peer, variant, status: 'error', reason: message(error) })
    } finally {
      trainer.dispose()
    }
  }

  const best = (peer: string) =>
    rows
      .filter((r) => r.peer === peer && r.medianUs !== undefined)
      .sort((a, b) => a.medianUs! - b.medianUs!)[0]
  const headlineRows = rows.filter((r) => r.peer === `rxrnn (${headline})`)
  const tfjsBest = [best('tfjs (cpu)'), best('tfjs (wasm)')]
    .filter((r) => r !== undefined)
    .sort((a, b) => a.medianUs! - b.medianUs!)[0]
  printTable(
    [
      'peer',
      'variant',
      'loss agreement',
      'median µs/event',
      'mean µs/event',
      'p99 µs/chunk',
      'samples',
      `vs ${tfjsBest?.peer ?? 'tfjs'}`,
      'target',
    ],
    rows.map((r) => [
      r.peer,
      r.variant,
      r.maxRelLossDiff === undefined
        ? ''
        : `${r.status === 'disagrees' ? 'DISAGREES' : 'ok'} rel ${exp(r.maxRelLossDiff)}`,
      r.medianUs === undefined ? r.status : us(r.medianUs),
      us(r.meanUs),
      us(r.p99ChunkUs),
      r.samples === undefined ? '' : String(r.samples),
      r.peer.startsWith('rxrnn') && r.medianUs !== undefined ? speedup(r.medianUs, tfjsBest?.medianUs) : '',
      r.peer.startsWith('rxrnn') && r.medianUs !== undefined ? verdictText(TARGETS.training, r.medianUs) : '',
    ]),
    [0, 1, 2],
  )
  note(`chunk MSEs, rxrnn: ${fmtLosses(referenceLosses)}; with one LSTM bias: ${fmtLosses(singleBiasLosses)}`)
  for (const r of rows) {
    if (r.reason) note(`${r.peer}: ${r.status}: ${r.reason}`)
    if (r.maxRelLossDiffVsTwoBiases !== undefined && r.losses)
      note(
        `${r.peer}: ${fmtLosses(r.losses)}; rel ${exp(r.maxRelLossDiffVsTwoBiases)} from rxrnn's two-bias run, ` +
          'expected after an update (the same network with one bias parameter fewer)',
      )
    if (r.status === 'disagrees')
      note(
        `FLAG ${r.peer} ${r.variant}: chunk losses ${fmtLosses(r.losses ?? [])} disagree (rel ${exp(r.maxRelLossDiff)})`,
      )
  }

  const summary: SummaryRow[] = headlineRows
    .filter((r) => r.medianUs !== undefined)
    .map((r) => ({
      measure: `training µs/event, ${r.peer} ${r.variant}`,
      rxrnn: `${us(r.medianUs)} µs (mean ${us(r.meanUs)})`,
      versus: tfjsBest ? `${tfjsBest.peer} ${us(tfjsBest.medianUs)} µs` : 'tfjs: n/a',
      ratio: speedup(r.medianUs, tfjsBest?.medianUs),
      target: `${verdict(TARGETS.training, r.medianUs)} (${TARGETS.training.label})`,
      ...optionalClaim(
        claim(
          `${r.peer} with ${r.variant}`,
          speedup(r.medianUs, tfjsBest?.medianUs),
          tfjsBest?.peer ?? 'tfjs',
          'at training per event',
        ),
      ),
    }))
  return { model: DESCRIBE_MODEL, trainer: DESCRIBE_TRAINER, rows, summary }
}

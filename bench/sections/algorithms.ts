/**
 * Section 7: learning without truncation. Cost per event of each gradient algorithm (TBPTT(16, 16),
 * RTRL, SnAp-1, UORO, all with one update per 16 events, MSE, Adam, clipNorm 1) at hidden sizes 4,
 * 16 and 64, for a tanh RNN and an LSTM (1 input, 1 output, float32, the headline backend), and
 * the memory one key of a KeyedTrainer holds with each (bytesPerKey). RTRL past its default
 * budget is reported as refused, with its figures.
 */
import type { AlgorithmName, CellKind, TrainerOptions } from '../../src/index.js'
import { createModel, KeyedTrainer, OnlineTrainer, RxrnnError, rtrlCost } from '../../src/index.js'
import { bytes, header, note, printTable, type SummaryRow, us } from '../report.js'
import { type Context, INPUTS, runFor, STREAM_LENGTH, TARGETS } from './common.js'

export const ALGORITHM_HIDDEN_SIZES = [4, 16, 64] as const
const CELLS: readonly CellKind[] = ['rnn_tanh', 'lstm']
const ALGORITHMS: readonly AlgorithmName[] = ['tbptt', 'rtrl', 'snap1', 'uoro']
const K1 = 16

export interface AlgorithmRow {
  readonly cell: CellKind
  readonly hiddenSize: number
  readonly algorithm: AlgorithmName
  readonly parameters: number
  readonly status: 'ok' | 'refused'
  readonly reason?: string
  /** Mean µs per event (forward step, sensitivities and the update every 16 events). */
  readonly usPerEvent?: number
  readonly events?: number
  /** KeyedTrainer.bytesPerKey(): the window, plus the algorithm's sensitivities. */
  readonly bytesPerKey?: number
  /** RTRL only: sensitivities per sequence and multiply-adds per step. */
  readonly rtrlFloats?: number
  readonly rtrlMultiplyAdds?: number
}

export interface AlgorithmsResult {
  readonly rows: AlgorithmRow[]
  readonly summary: SummaryRow[]
}

function options(algorithm: AlgorithmName): TrainerOptions {
  return {
    algorithm,
    k1: K1,
    loss: 'mse',
    optimizer: { type: 'adam', lr: 1e-3 },
    clipNorm: 1,
    diagnosticsEvery: 0,
  }
}

export async function runAlgorithms(ctx: Context): Promise<AlgorithmsResult> {
  const backend = ctx.backends.headline
  header(7, `Learning without truncation: cost per event and memory per key, rxrnn (${backend}), float32`)
  const ms = ctx.quick ? 150 : 1500
  note(
    `1 input → H → 1 output; TBPTT(${K1}, ${K1}) against RTRL, SnAp-1 and UORO summing ${K1} steps per update; ` +
      `MSE, Adam 1e-3, clipNorm 1, diagnosticsEvery 0; each run ${ms} ms after a warmup`,
  )
  const xs = INPUTS.map((x) => x.subarray(0, 1))
  const rows: AlgorithmRow[] = []
  for (const cell of CELLS) {
    for (const hiddenSize of ALGORITHM_HIDDEN_SIZES) {
      const config = { cell, inputSize: 1, hiddenSize, outputSize: 1, seed: 1 } as const
      for (const algorithm of ALGORITHMS) {
        const model = createModel(config, { backend })
        const cost = algorithm === 'rtrl' ? rtrlCost(model) : undefined
        const figures = cost ? { rtrlFloats: cost.floats, rtrlMultiplyAdds: cost.multiplyAddsPerStep } : {}
        let trainer: OnlineTrainer
        try {
          trainer = new OnlineTrainer(model, options(algorithm))
        } catch (error) {
          if (!(error instanceof RxrnnError)) throw error
          const reason = `over the default budget: ${cost!.multiplyAddsPerStep.toExponential(2)} multiply-adds per step`
          rows.push({
            cell,
            hiddenSize,
            algorithm,
            parameters: model.params.size,
            status: 'refused',
            reason,
            ...figures,
          })
          continue
        }
        const step = (i: number) => {
          const t = i % STREAM_LENGTH
          trainer.observeSequence(trainer.sequence, xs[t]!, TARGETS[t]!)
        }
        // Warm up (JIT) as long as the timed run, or 2,000 events.
        const warm = runFor(2_000, ms, step)
        const run = runFor(1_000_000, ms, step, warm.events)
        const keyed = new KeyedTrainer(
          new OnlineTrainer(createModel(config, { backend }), options(algorithm)),
        )
        rows.push({
          cell,
          hiddenSize,
          algorithm,
          parameters: model.params.size,
          status: 'ok',
          usPerEvent: (run.seconds * 1e6) / run.events,
          events: run.events,
          bytesPerKey: keyed.bytesPerKey(),
          ...figures,
        })
      }
    }
  }
  printTable(
    ['cell', 'H', 'P', 'algorithm', 'µs/event', '× TBPTT', 'bytes per key', 'events timed'],
    rows.map((r) => {
      const tbptt = rows.find(
        (t) => t.cell === r.cell && t.hiddenSize === r.hiddenSize && t.algorithm === 'tbptt',
      )
      return [
        r.cell,
        String(r.hiddenSize),
        String(r.parameters),
        r.algorithm,
        r.status === 'ok' ? us(r.usPerEvent) : 'refused',
        r.status === 'ok' && tbptt?.usPerEvent ? `${(r.usPerEvent! / tbptt.usPerEvent).toFixed(1)}×` : '',
        r.status === 'ok' ? bytes(r.bytesPerKey) : '',
        r.status === 'ok' ? String(r.events) : '',
      ]
    }),
    [0, 3],
  )
  for (const r of rows)
    if (r.status === 'refused') note(`refused: ${r.algorithm} for ${r.cell} H ${r.hiddenSize}, ${r.reason}`)
  note('RTRL costs O(S²·P) per step and holds S·P floats per key (S: state size, P: parameters); SnAp-1 and')
  note("UORO O(P). TBPTT's cost and memory grow with its window (k2), not with the span it can learn.")
  const at16 = (a: AlgorithmName) =>
    rows.find((r) => r.cell === 'rnn_tanh' && r.hiddenSize === 16 && r.algorithm === a)
  const summary: SummaryRow[] = (['rtrl', 'snap1', 'uoro'] as const).map((a) => {
    const row = at16(a)
    const tbptt = at16('tbptt')
    return {
      measure: `training µs/event, ${a} (tanh RNN, H 16)`,
      rxrnn: row?.usPerEvent ? us(row.usPerEvent) : 'n/a',
      versus: tbptt?.usPerEvent ? `TBPTT(16, 16) ${us(tbptt.usPerEvent)}` : '',
      ratio:
        row?.usPerEvent && tbptt?.usPerEvent
          ? `${(row.usPerEvent / tbptt.usPerEvent).toFixed(1)}× the cost`
          : '',
      target: '',
    }
  })
  return { rows, summary }
}

/**
 * PyTorch interop: load weights PyTorch saved, learn online from a live stream, save them back
 * in PyTorch's format, and check the round trip.
 *
 *   npx tsx examples/pytorch-interop.ts [weights.safetensors] [learned.safetensors]
 *
 * The weights are the `state_dict` of `{ rnn: nn.LSTM | nn.GRU | nn.RNN, head: nn.Linear }` as
 * `safetensors.torch.save_file` writes it (the Python side is printed at the end). Without an
 * argument the example uses the PyTorch reference file `test/fixtures/pytorch/fwd_lstm.safetensors`
 * (an LSTM 3 → 5 × 2 layers → 2) that the repository ships, and checks the model's outputs against
 * those PyTorch computed.
 *
 * The stream: Seattle's hourly weather, inputs pressure, temperature and wind (standardised
 * online), targets the next hour's changes of temperature and pressure (scaled by their running
 * std). The file's model must therefore take 3 inputs and give 2 outputs.
 */
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { from, lastValueFrom, map, skip, toArray } from 'rxjs'
import type { CellKind, ModelConfig } from 'rxrnn'
import { createModel, OnlineScaler, RxrnnError, readSafetensors } from 'rxrnn'
import { learn } from 'rxrnn/streams'
import { loadSeattleHourly } from '../streams/demo/datasets.js'

export interface InteropOptions {
  /** The PyTorch weights to start from (default: the reference LSTM, or a file written here). */
  input?: string
  /** Where the learned weights go (default: a new temporary folder). */
  output?: string
  /** Hours of weather streamed. Default 4000. */
  hours?: number
  log?: (line: string) => void
}

export interface InteropResult {
  input: string
  output: string
  config: ModelConfig
  /** Largest |ours − PyTorch's| on the reference input, when the reference outputs are there. */
  referenceError?: number
  /** Mean training loss of the first and last 10 % of updates. */
  lossFirst: number
  lossLast: number
  /** Largest change of any weight through learning. */
  weightChange: number
  /** Every tensor of the saved file equals the model's weights, bit for bit. */
  savedExactly: boolean
  /** A fresh model loaded from the saved file predicts exactly as the learned one. */
  reloadedExactly: boolean
  /** Tensor names and shapes of the saved file are those of the input file. */
  sameLayout: boolean
}

/** The PyTorch reference vectors the repository ships with its tests. */
const REFERENCE = new URL('../test/fixtures/pytorch/', import.meta.url)

export async function main(options: InteropOptions = {}): Promise<InteropResult> {
  const log = options.log ?? console.log
  let folder: string | undefined
  const temporary = async (file: string) =>
    join((folder ??= await mkdtemp(join(tmpdir(), 'rxrnn-interop-'))), file)
  const input = options.input ?? defaultWeights()
  const output = options.output ?? (await temporary('learned.safetensors'))

  // 1. Load: the architecture is read off the tensor shapes, the weights go in unchanged.
  const original = new Uint8Array(await readFile(input))
  const config = configFromStateDict(original)
  const model = createModel(config)
  model.loadSafetensors(original)
  log(`loaded ${input}: ${model.describe()}`)
  if (config.inputSize !== 3 || config.outputSize !== 2) {
    throw new RxrnnError(
      'bad_config',
      `This example streams 3 inputs to 2 outputs; ${input} holds a model of ${config.inputSize} → ${config.outputSize}`,
    )
  }
  const referenceError = checkAgainstPytorch(model, input)
  if (referenceError !== undefined) {
    log(
      `outputs match PyTorch's on the reference input: largest difference ${referenceError.toExponential(2)}`,
    )
  }
  const before = model.params.values.slice()

  // 2. Learn online from the stream, test-then-train.
  const hours = (await loadSeattleHourly()).slice(0, options.hours ?? 4000)
  const levels = new OnlineScaler(3)
  const changes = new OnlineScaler(2)
  const events = hours.slice(0, -1).map((h, t) => {
    const next = hours[t + 1]!
    const raw = [h.pressure, h.temperature, h.wind]
    levels.update(raw)
    if (t > 0)
      changes.update([h.temperature - hours[t - 1]!.temperature, h.pressure - hours[t - 1]!.pressure])
    const x = levels.transform(raw)
    const target = [
      (next.temperature - h.temperature - changes.mean[0]!) / changes.std(0),
      (next.pressure - h.pressure - changes.mean[1]!) / changes.std(1),
    ]
    return { x, target }
  })
  const losses = await lastValueFrom(
    from(events).pipe(
      skip(24), // a day for the scalers first
      learn(model, { k1: 16, k2: 32, loss: 'mse', optimizer: { type: 'adam', lr: 3e-3 }, clipNorm: 1 }),
      map((r) => r.update?.loss),
      toArray(),
    ),
  )
  const updates = losses.filter((l): l is number => l !== undefined)
  const tenth = Math.max(1, Math.floor(updates.length / 10))
  const lossFirst = mean(updates.slice(0, tenth))
  const lossLast = mean(updates.slice(-tenth))
  let weightChange = 0
  for (let i = 0; i < before.length; i++)
    weightChange = Math.max(weightChange, Math.abs(model.params.values[i]! - before[i]!))
  log(
    `learned from ${events.length - 24} hours: ${updates.length} updates, loss ${lossFirst.toFixed(3)} → ${lossLast.toFixed(3)}, ` +
      `largest weight change ${weightChange.toFixed(3)}`,
  )

  // 3. Save in PyTorch's layout, read it back, and check.
  await writeFile(
    output,
    model.toSafetensors({ source: 'rxrnn examples/pytorch-interop.ts', learnedFrom: input }),
  )
  const saved = readSafetensors(new Uint8Array(await readFile(output)))
  const originalTensors = readSafetensors(original).tensors
  // The same tensors by name and shape (their order in a file carries no meaning).
  const sameLayout =
    saved.tensors.size === originalTensors.size &&
    [...saved.tensors].every(([name, t]) => t.shape.join() === originalTensors.get(name)?.shape.join())
  const savedExactly = [...saved.tensors].every(([name, t]) => {
    const weights = model.getParameter(name)
    return t.dtype === 'F32' && t.data.length === weights.length && t.data.every((v, i) => v === weights[i])
  })
  const reloaded = createModel(config)
  reloaded.loadSafetensors(new Uint8Array(await readFile(output)))
  const reloadedExactly = samePredictions(model, reloaded, events.slice(0, 200))
  log(`saved ${output}`)
  log(
    `round trip: layout ${sameLayout ? 'same' : 'DIFFERENT'}, weights ${savedExactly ? 'bit-exact' : 'DIFFER'}, ` +
      `reloaded model ${reloadedExactly ? 'predicts identically' : 'predicts DIFFERENTLY'}`,
  )
  log(`\nLoad it in PyTorch:\n\n${pythonSnippet(config, output)}`)
  return {
    input,
    output,
    config,
    ...(referenceError === undefined ? {} : { referenceError }),
    lossFirst,
    lossLast,
    weightChange,
    savedExactly,
    reloadedExactly,
    sameLayout,
  }
}

/** The reference LSTM PyTorch saved (test/fixtures/pytorch/fwd_lstm.safetensors). */
function defaultWeights(): string {
  const path = fileURLToPath(new URL('fwd_lstm.safetensors', REFERENCE))
  if (!existsSync(path)) {
    throw new RxrnnError(
      'bad_config',
      `${path} is missing: pass a weights file, or run the example from a clone of rxrnn`,
    )
  }
  return path
}

/**
 * The model config a PyTorch state_dict describes: `rnn.weight_ih_l0` is [gates × H, inputSize],
 * `rnn.weight_hh_l0` [gates × H, H], one set per layer, `head.weight` [outputSize, H]; 4 gates
 * make an LSTM, 3 a GRU, 1 a plain RNN (taken as tanh: the file does not say which).
 */
export function configFromStateDict(bytes: Uint8Array): ModelConfig {
  const { tensors } = readSafetensors(bytes)
  const shape = (name: string) => {
    const t = tensors.get(name)
    if (!t) throw new RxrnnError('bad_safetensors', `No tensor ${name}: not the state_dict of { rnn, head }`)
    return t.shape
  }
  const [rows, inputSize] = shape('rnn.weight_ih_l0') as [number, number]
  const hiddenSize = shape('rnn.weight_hh_l0')[1]!
  const cells: Record<number, CellKind> = { 1: 'rnn_tanh', 3: 'gru', 4: 'lstm' }
  const cell = cells[rows / hiddenSize]
  if (!cell)
    throw new RxrnnError('bad_safetensors', `rnn.weight_ih_l0 has ${rows} rows for ${hiddenSize} units`)
  let numLayers = 1
  while (tensors.has(`rnn.weight_ih_l${numLayers}`)) numLayers++
  const outputSize = shape('head.weight')[0]!
  return { cell, inputSize, hiddenSize, numLayers, outputSize }
}

/** Largest |ours − PyTorch's| over the reference case for these weights, when its cases.json is there. */
function checkAgainstPytorch(model: ReturnType<typeof createModel>, weightsPath: string): number | undefined {
  const cases = join(weightsPath, '..', 'cases.json')
  if (!existsSync(cases)) return undefined
  const file = weightsPath.split(/[\\/]/).at(-1)
  const { cases: all } = JSON.parse(readFileSync(cases, 'utf8')) as {
    cases: { kind: string; weights: string; x: number[][]; y: number[][] }[]
  }
  const reference = all.find((c) => c.kind === 'forward' && c.weights === file)
  if (!reference) return undefined
  const state = model.initialState()
  let worst = 0
  reference.x.forEach((x, t) => {
    const y = model.step(x, state)
    reference.y[t]!.forEach((v, k) => {
      worst = Math.max(worst, Math.abs(y[k]! - v))
    })
  })
  return worst
}

function samePredictions(
  a: ReturnType<typeof createModel>,
  b: ReturnType<typeof createModel>,
  events: { x: ArrayLike<number> }[],
): boolean {
  const sa = a.initialState()
  const sb = b.initialState()
  return events.every(({ x }) => {
    const ya = a.step(x, sa).slice()
    const yb = b.step(x, sb)
    return ya.every((v, k) => v === yb[k])
  })
}

function pythonSnippet(c: ModelConfig, path: string): string {
  const args = `${c.inputSize}, ${c.hiddenSize}, ${c.numLayers ?? 1}`
  const module =
    c.cell === 'lstm'
      ? `torch.nn.LSTM(${args}, batch_first=True)`
      : c.cell === 'gru'
        ? `torch.nn.GRU(${args}, batch_first=True)`
        : `torch.nn.RNN(${args}, nonlinearity='${c.cell === 'rnn_relu' ? 'relu' : 'tanh'}', batch_first=True)`
  return [
    'import torch',
    'from safetensors.torch import load_file',
    '',
    'class Net(torch.nn.Module):',
    '    def __init__(self):',
    '        super().__init__()',
    `        self.rnn = ${module}`,
    `        self.head = torch.nn.Linear(${c.hiddenSize}, ${c.outputSize})`,
    '',
    '    def forward(self, x, state=None):  # x: [batch, time, inputs]',
    '        out, state = self.rnn(x, state)',
    '        return self.head(out), state',
    '',
    'net = Net()',
    `net.load_state_dict(load_file(${JSON.stringify(path)}))`,
  ].join('\n')
}

function mean(values: number[]): number {
  return values.reduce((s, v) => s + v, 0) / values.length
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main({
    ...(process.argv[2] ? { input: process.argv[2] } : {}),
    ...(process.argv[3] ? { output: process.argv[3] } : {}),
  })
}

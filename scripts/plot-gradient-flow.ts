/**
 * Draws docs/gradient-flow.svg: how much of the gradient survives k steps back through time,
 * ‖∂L_t/∂h_(t−k)‖ / ‖∂L_t/∂h_t‖, for a tanh RNN with PyTorch's default init and an IRNN (ReLU,
 * W_hh = I), both trained online on the adding problem (T = 30), averaged over the last 500 of
 * 3,000 sequences, as rxrnn's update reports measure it (`gradientFlow.norms`).
 *
 *   npx tsx scripts/plot-gradient-flow.ts
 */
import { writeFileSync } from 'node:fs'
import type { ModelConfig } from '../src/index.js'
import { createModel, OnlineTrainer, Rng } from '../src/index.js'

const T = 30
const SEQUENCES = 3000
const MEASURED = 500

function flowOf(config: ModelConfig, lr: number): number[] {
  const model = createModel(config)
  const trainer = new OnlineTrainer(model, {
    k1: T,
    loss: 'mse',
    optimizer: { type: 'adam', lr },
    clipNorm: 1,
  })
  const rng = new Rng(3)
  const sums = new Float64Array(T)
  let counted = 0
  for (let s = 0; s < SEQUENCES; s++) {
    const first = Math.floor(rng.uniform() * (T / 2))
    const second = T / 2 + Math.floor(rng.uniform() * (T / 2))
    let target = 0
    for (let t = 0; t < T; t++) {
      const value = rng.uniform()
      const marker = t === first || t === second ? 1 : 0
      target += marker * value
      const { update } = trainer.observe([value, marker], t === T - 1 ? [target] : undefined)
      const norms = update?.gradientFlow?.norms
      if (s >= SEQUENCES - MEASURED && norms && norms[0]! > 0 && norms.every(Number.isFinite)) {
        // Average log-ratios (a geometric mean): the ratios span many orders of magnitude.
        for (let k = 0; k < T; k++) sums[k] = sums[k]! + Math.log(Math.max(norms[k]! / norms[0]!, 1e-30))
        counted++
      }
    }
    trainer.reset()
  }
  return Array.from(sums, (v) => Math.exp(v / counted))
}

const series = [
  {
    name: 'tanh RNN, PyTorch init',
    color: '#d9534f',
    flow: flowOf({ cell: 'rnn_tanh', inputSize: 2, hiddenSize: 32, outputSize: 1, seed: 1 }, 0.005),
  },
  {
    name: 'IRNN: ReLU, W_hh = I',
    color: '#f0ad4e',
    flow: flowOf(
      {
        cell: 'rnn_relu',
        inputSize: 2,
        hiddenSize: 32,
        outputSize: 1,
        seed: 1,
        init: { recurrent: 'identity', bias: 'zeros', input: 'xavier_uniform' },
      },
      0.005,
    ),
  },
]

// A log-scale line chart, by hand: no plotting dependency for one picture.
const width = 640
const height = 360
const left = 70
const right = 20
const top = 40
const bottom = 50
const minExp = -8
const x = (k: number) => left + (k / (T - 1)) * (width - left - right)
const y = (v: number) =>
  top + ((0 - Math.log10(Math.max(v, 10 ** minExp))) / -minExp) * (height - top - bottom)
const parts: string[] = []
parts.push(
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
)
parts.push(`<title>Gradient surviving k steps back through time: tanh RNN vs IRNN</title>`)
parts.push(`<rect width="${width}" height="${height}" fill="white"/>`)
parts.push(
  `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14">How much gradient survives k steps back (adding problem, T = ${T}, after 3,000 sequences)</text>`,
)
for (let e = 0; e >= minExp; e -= 2) {
  parts.push(`<line x1="${left}" x2="${width - right}" y1="${y(10 ** e)}" y2="${y(10 ** e)}" stroke="#ddd"/>`)
  parts.push(`<text x="${left - 8}" y="${y(10 ** e) + 4}" text-anchor="end">1e${e}</text>`)
}
for (let k = 0; k < T; k += 5)
  parts.push(`<text x="${x(k)}" y="${height - bottom + 18}" text-anchor="middle">${k}</text>`)
parts.push(
  `<text x="${(left + width - right) / 2}" y="${height - 12}" text-anchor="middle">k: steps back through the TBPTT window</text>`,
)
parts.push(
  `<text transform="translate(18 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">‖∂L/∂h(t−k)‖ / ‖∂L/∂h(t)‖</text>`,
)
series.forEach((s, i) => {
  const points = s.flow.map((v, k) => `${x(k).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
  parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2.5" points="${points}"/>`)
  parts.push(
    `<rect x="${left + 16}" y="${height - bottom - 44 + i * 18}" width="14" height="4" fill="${s.color}"/>`,
  )
  parts.push(
    `<text x="${left + 36}" y="${height - bottom - 38 + i * 18}">${s.name}: ${s.flow[T - 1]!.toExponential(1)} at k = ${T - 1}</text>`,
  )
})
parts.push('</svg>')
writeFileSync(new URL('../docs/gradient-flow.svg', import.meta.url), `${parts.join('\n')}\n`)
for (const s of series) console.log(`${s.name}: ratio at k = ${T - 1}: ${s.flow[T - 1]!.toExponential(2)}`)

/**
 * Draws docs/lag-task.svg: learning y_t = x_(t−6) over random signs online, from one endless
 * stream, with each gradient algorithm: TBPTT(4, 4) (its window is shorter than the lag),
 * TBPTT(8, 8) (long enough), RTRL, SnAp-1 and UORO (one update per step). A tanh RNN 1 → 16 → 1,
 * float64, Adam 1e-3, clipNorm 1; the mean squared error of the predictions (made before each
 * step's update) over each block of 1,000 steps, averaged over three seeds. Predicting 0 scores 1.
 *
 *   npx tsx scripts/plot-lag-task.ts
 */
import { writeFileSync } from 'node:fs'
import type { TrainerOptions } from '../src/index.js'
import { createModel, OnlineTrainer } from '../src/index.js'
import { lagTaskErrors } from '../test/helpers/tasks.js'

const LAG = 6
const STEPS = 40_000
const BLOCK = 1000
const SEEDS = [1, 2, 3]

function curve(options: Omit<TrainerOptions, 'loss' | 'optimizer'>, seed: number): number[] {
  const model = createModel({
    cell: 'rnn_tanh',
    inputSize: 1,
    hiddenSize: 16,
    outputSize: 1,
    dtype: 'float64',
    seed,
  })
  const trainer = new OnlineTrainer(model, {
    loss: 'mse',
    optimizer: { type: 'adam', lr: 1e-3 },
    clipNorm: 1,
    diagnosticsEvery: 0,
    seed,
    ...options,
  })
  return lagTaskErrors(trainer, { lag: LAG, steps: STEPS, block: BLOCK, seed: seed + 100 })
}

const series = [
  { name: 'TBPTT(4, 4)', color: '#d9534f', dash: '', options: { k1: 4, k2: 4 } },
  { name: 'TBPTT(8, 8)', color: '#999999', dash: '6 4', options: { k1: 8, k2: 8 } },
  { name: 'RTRL', color: '#0275d8', dash: '', options: { algorithm: 'rtrl', k1: 1 } },
  { name: 'SnAp-1', color: '#5cb85c', dash: '', options: { algorithm: 'snap1', k1: 1 } },
  { name: 'UORO', color: '#f0ad4e', dash: '', options: { algorithm: 'uoro', k1: 1 } },
] as const

const results = series.map((s) => {
  const started = performance.now()
  const runs = SEEDS.map((seed) => curve(s.options as TrainerOptions, seed))
  const mean = runs[0]!.map((_, i) => runs.reduce((sum, r) => sum + r[i]!, 0) / runs.length)
  // The first block whose MSE is under 0.05, per seed: when the lag was learned.
  const learnedAt = runs.map((r) => {
    const i = r.findIndex((v) => v < 0.05)
    return i < 0 ? null : (i + 1) * BLOCK
  })
  const seconds = (performance.now() - started) / 1000
  return { ...s, mean, runs, learnedAt, seconds }
})

// A line chart, by hand: no plotting dependency for one picture.
const width = 820
const height = 380
const left = 60
// The legend sits in the right margin, clear of the curves.
const right = 200
const top = 40
const bottom = 50
const maxY = 1.4
const blocks = STEPS / BLOCK
const x = (i: number) => left + ((i + 1) / blocks) * (width - left - right)
const y = (v: number) => top + (1 - Math.min(v, maxY) / maxY) * (height - top - bottom)
const parts: string[] = []
parts.push(
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
)
parts.push('<title>Learning y_t = x_(t−6) online: TBPTT, RTRL, SnAp-1, UORO</title>')
parts.push(`<rect width="${width}" height="${height}" fill="white"/>`)
parts.push(
  `<text x="${(left + width - right) / 2}" y="22" text-anchor="middle" font-size="14">Learning y_t = x_(t−6) online (tanh RNN, 16 units, Adam 1e-3; mean of 3 seeds)</text>`,
)
for (let v = 0; v <= maxY + 1e-9; v += 0.2) {
  parts.push(`<line x1="${left}" x2="${width - right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`)
  parts.push(`<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`)
}
for (let k = 0; k <= STEPS; k += 10_000)
  parts.push(
    `<text x="${left + (k / STEPS) * (width - left - right)}" y="${height - bottom + 18}" text-anchor="middle">${k / 1000}k</text>`,
  )
parts.push(
  `<text x="${(left + width - right) / 2}" y="${height - 12}" text-anchor="middle">events seen (one stream, no resets)</text>`,
)
parts.push(
  `<text transform="translate(16 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">MSE per 1,000 events</text>`,
)
results.forEach((s, i) => {
  const points = s.mean.map((v, k) => `${x(k).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
  const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : ''
  parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2.5"${dash} points="${points}"/>`)
  const ly = top + 12 + i * 18
  parts.push(
    `<line x1="${width - 210}" x2="${width - 190}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="3"${dash}/>`,
  )
  parts.push(
    `<text x="${width - 184}" y="${ly}">${s.name}: ${s.mean[s.mean.length - 1]!.toFixed(3)} at the end</text>`,
  )
})
parts.push('</svg>')
writeFileSync(new URL('../docs/lag-task.svg', import.meta.url), `${parts.join('\n')}\n`)
for (const s of results) {
  const learned = s.learnedAt.map((v) => (v === null ? 'not learned' : `${v / 1000}k`)).join(', ')
  const finals = s.runs.map((r) => r[r.length - 1]!.toFixed(3)).join(', ')
  console.log(
    `${s.name}: final MSE ${finals} (seeds ${SEEDS.join(', ')}); MSE < 0.05 at ${learned}; ${s.seconds.toFixed(1)} s`,
  )
}

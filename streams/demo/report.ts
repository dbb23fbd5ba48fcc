import type { MetricsFrame } from '../transport/protocol.js'
import type { FeedSteps } from './feeds.js'
import type { ReplayProgress, ReplayResult } from './producer.js'

/** A live progress line: rewritten in place with \r on a terminal, printed as plain lines otherwise. */
export class ProgressLine {
  private width = 0

  constructor(
    private readonly tty: boolean,
    private readonly write: (text: string) => void,
    private readonly log: (line: string) => void,
  ) {}

  show(text: string): void {
    if (!this.tty) {
      this.log(text)
      return
    }
    const columns = process.stdout.columns ?? 120
    const line = text.length >= columns ? `${text.slice(0, columns - 2)}…` : text
    this.write(`\r${line.padEnd(this.width)}`)
    this.width = line.length
  }

  /** Ends the line on a terminal, so that what follows starts on a fresh one. */
  done(): void {
    if (this.tty && this.width > 0) this.write('\n')
    this.width = 0
  }
}

/** One feed's progress: ticks answered, and the server's latest training figures. */
export function progressText(
  label: string,
  unit: string,
  p: ReplayProgress,
  m: MetricsFrame | undefined,
): string {
  const parts = [`${label} ${p.answered}/${p.total} ${unit}`]
  if (m) {
    parts.push(`loss ${fixed(m.loss, 3)}`, `grad ${fixed(m.gradNorm, 2)}`)
    parts.push(`clip ${m.clipRate === null ? '-' : `${Math.round(m.clipRate * 100)}%`}`)
  }
  return parts.join('  ')
}

/** What the summary of one feed needs. */
export interface FeedSummary {
  title: string
  unit: string
  feed: FeedSteps
  result: ReplayResult
  warmup: number
  metrics: MetricsFrame
  modelName: string
  /** A line of context for the reader, printed after the verdict. */
  note?: string
  /** The nominal coverage of the server's intervals, when it has them. */
  coverage?: number
}

/**
 * The summary of one feed: prequential RMSE and MAE of the model next to each baseline, in
 * original units, with the training figures and a verdict computed from the numbers.
 */
export function summaryLines(s: FeedSummary): string[] {
  const { feed, result } = s
  const { tally } = result
  const targets = feed.targets
  const names = [s.modelName, ...feed.baselines]
  const lines: string[] = []
  const what = targets.map((t) => t.name).join(' and ')
  lines.push(`${s.title}: ${what}`)
  lines.push(
    `  prequential (test-then-train) over ${tally.n} ${s.unit}, ${result.scoredFrom} … ${result.scoredTo}` +
      ` (the first ${s.warmup} of ${feed.steps.length} were warm-up)`,
  )
  const header = ['forecaster']
  for (const t of targets) {
    const unit = t.unit ? ` (${t.unit})` : ''
    const prefix = targets.length > 1 ? `${t.name.replace(/^next-\w+ /, '')} ` : ''
    header.push(`${prefix}RMSE${unit}`, `${prefix}MAE${unit}`)
  }
  const rows = names.map((name, f) => {
    const row = [name]
    targets.forEach((t, i) => {
      row.push(
        (tally.rmse(f, i) * t.displayScale).toFixed(t.digits),
        (tally.mae(f, i) * t.displayScale).toFixed(t.digits),
      )
    })
    return row
  })
  lines.push(...table([header, ...rows]).map((l) => `  ${l}`))
  const m = s.metrics
  lines.push(
    `  training: ${count(m.updates)} updates, loss ${fixed(m.loss, 3)} (scaled units), ` +
      `grad norm ${fixed(m.gradNorm, 2)}, ${m.clipRate === null ? 0 : Math.round(m.clipRate * 100)}% of the last 100 clipped, ` +
      `${m.skippedUpdates} skipped, ${result.rejected.length} ticks refused`,
  )
  for (const [i, t] of targets.entries()) lines.push(`  ${verdict(tally, names, i, t.name)}`)
  lines.push(...forecastingLines(s))
  if (s.note) lines.push(`  ${s.note}`)
  return lines
}

/** Interval coverage, and the H-steps-ahead error against persistence H steps ahead. */
function forecastingLines(s: FeedSummary): string[] {
  const lines: string[] = []
  const { intervals, ahead } = s.result
  if (intervals && s.coverage !== undefined) {
    lines.push(
      `  ${Math.round(s.coverage * 100)}% intervals (adaptive conformal, per key): realised coverage ` +
        `${((100 * intervals.covered) / intervals.scored).toFixed(1)}% of ${intervals.scored} targets`,
    )
  }
  if (ahead) {
    const H = ahead.horizon
    const cells = s.feed.targets.map((t, i) => {
      const model = ahead.tally.rmse(0, i)
      const persistence = ahead.tally.rmse(1, i)
      const unit = t.unit ? ` ${t.unit}` : ''
      return (
        `${t.name.replace(/^next-\w+ /, '')} RMSE ${(model * t.displayScale).toFixed(t.digits)}${unit} vs ` +
        `persistence ${(persistence * t.displayScale).toFixed(t.digits)}${unit} (${signedPercent((model - persistence) / persistence)})`
      )
    })
    lines.push(`  ${H} ${s.unit} ahead (direct multi-horizon head): ${cells.join('; ')}`)
  }
  return lines
}

/** Which forecaster has the lowest RMSE, and by how much the model is above or below each baseline. */
function verdict(
  tally: ReplayResult['tally'],
  names: readonly string[],
  target: number,
  targetName: string,
): string {
  const model = tally.rmse(0, target)
  const comparisons = names.slice(1).map((name, b) => {
    const base = tally.rmse(b + 1, target)
    const change = (model - base) / base
    if (Math.abs(change) < 0.01) return `a tie with ${name} (${signedPercent(change)})`
    return `${signedPercent(change)} RMSE vs ${name}`
  })
  let best = 0
  for (let f = 1; f < names.length; f++) if (tally.rmse(f, target) < tally.rmse(best, target)) best = f
  return `${targetName}: ${comparisons.join(', ')}; lowest RMSE: ${names[best]}`
}

function signedPercent(x: number): string {
  const p = x * 100
  return `${p >= 0 ? '+' : '−'}${Math.abs(p).toFixed(1)}%`
}

/** A count from the metrics frame's open record (0 when absent). */
function count(v: unknown): number {
  return typeof v === 'number' ? v : 0
}

function fixed(v: number | null | undefined, digits: number): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits)
}

/** Left-aligned first column, right-aligned others. */
export function table(rows: readonly string[][]): string[] {
  const widths: number[] = []
  for (const row of rows)
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length)
  return rows.map((row) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('   '),
  )
}

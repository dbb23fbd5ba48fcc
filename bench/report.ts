/**
 * Printing: section headers, aligned tables, number formats, the targets with PASS / MISS, ratios,
 * and the summary rows every section contributes.
 */

/** A goal printed next to its measurement. */
export interface Target {
  readonly label: string
  readonly limit: number
  /** 'max': the value must be ≤ limit (or < when strict); 'min': ≥ limit. */
  readonly kind: 'max' | 'min'
  readonly strict?: boolean
}

export const TARGETS = {
  inference: { label: '≤ 4 µs/event', limit: 4, kind: 'max' },
  training: { label: '≤ 12 µs/event amortised', limit: 12, kind: 'max' },
  throughput: { label: '≥ 50,000 ticks/s', limit: 50_000, kind: 'min' },
  latency: { label: 'p99 < 1 ms at 10,000 ticks/s', limit: 1, kind: 'max', strict: true },
} as const satisfies Record<string, Target>

export type Verdict = 'PASS' | 'MISS' | 'n/a'

export function verdict(target: Target, value: number | null | undefined): Verdict {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a'
  if (target.kind === 'min') return value >= target.limit ? 'PASS' : 'MISS'
  return (target.strict ? value < target.limit : value <= target.limit) ? 'PASS' : 'MISS'
}

/** "PASS (≤ 4 µs/event)" */
export function verdictText(target: Target, value: number | null | undefined): string {
  return `${verdict(target, value)} (${target.label})`
}

/** One line of the final summary. */
export interface SummaryRow {
  readonly measure: string
  readonly rxrnn: string
  /** What it is compared with, and the comparison's value. */
  readonly versus: string
  /** e.g. "12.3× faster" */
  readonly ratio: string
  /** e.g. "PASS (≤ 4 µs/event)", or '' when there is no target. */
  readonly target: string
  /** A sentence for the end of the summary, e.g. "rxrnn (js) is 3.1× faster than ONNX Runtime at inference". */
  readonly claim?: string
}

/** "rxrnn (js) is 3.1× faster than ONNX Runtime at inference", or undefined without a ratio. */
export function claim(who: string, ratio: string, other: string, what: string): string | undefined {
  return ratio && ratio !== '—' ? `${who} is ${ratio} than ${other} ${what}` : undefined
}

export function header(n: number | string, title: string): void {
  const line = `${n}. ${title}`
  console.log(`\n${line}\n${'─'.repeat(Math.min(110, line.length + 4))}`)
}

export function note(text: string): void {
  console.log(`   ${text}`)
}

/** An aligned text table: first column left, the others right-aligned unless `left` says otherwise. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], left = [0]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)))
  const fmt = (cells: readonly string[]) =>
    cells
      .map((cell, c) => (left.includes(c) ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
      .join('  ')
      .trimEnd()
  const rule = widths.map((w) => '─'.repeat(w)).join('  ')
  return [`   ${fmt(headers)}`, `   ${rule}`, ...rows.map((r) => `   ${fmt(r)}`)].join('\n')
}

export function printTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  left = [0],
): void {
  console.log(table(headers, rows, left))
}

/** Microseconds with 3 significant digits: 0.812, 12.3, 456, 12,345. */
export function us(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  if (value >= 1000) return Math.round(value).toLocaleString('en-US')
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(3)
}

export function count(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  return Math.round(value).toLocaleString('en-US')
}

export function bytes(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  const a = Math.abs(value)
  if (a >= 1 << 20) return `${(value / (1 << 20)).toFixed(1)} MiB`
  if (a >= 10 << 10) return `${(value / 1024).toFixed(1)} KiB`
  return `${Math.round(value).toLocaleString('en-US')} B`
}

export function exp(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  return value.toExponential(1)
}

/**
 * How much faster rxrnn is, from two costs (lower is better): "12.3× faster", or "2.0× slower"
 * when the other is cheaper.
 */
export function speedup(rxrnnCost: number | null | undefined, otherCost: number | null | undefined): string {
  if (!rxrnnCost || !otherCost || !Number.isFinite(rxrnnCost) || !Number.isFinite(otherCost)) return '—'
  const r = otherCost / rxrnnCost
  return r >= 1 ? `${ratioNumber(r)}× faster` : `${ratioNumber(1 / r)}× slower`
}

function ratioNumber(r: number): string {
  return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)
}

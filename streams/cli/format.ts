/** One-line human renderings of metrics, updates and predictions, for serve's progress and tail. */
import { asServerFrame, type MetricsFrame } from '../transport/protocol.js'

/** A number with about 4 significant digits; `–` for null, undefined or non-finite. */
export function num(value: unknown, digits = 4): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '–'
  if (value === 0) return '0'
  const magnitude = Math.abs(value)
  if (magnitude >= 1e6 || magnitude < 1e-3) return value.toExponential(digits - 1)
  return String(Number(value.toPrecision(digits)))
}

/** A fraction as a percentage; `–` when not known. */
export function percent(value: unknown): string {
  return typeof value === 'number' && Number.isFinite(value) ? `${(value * 100).toFixed(1)}%` : '–'
}

/** A count with thousands separators. */
export function count(value: unknown): string {
  return typeof value === 'number' && Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–'
}

/** A vector, short: `[0.1, 0.9]`, cut to its first `max` values. */
export function vector(value: unknown, max = 6): string {
  if (typeof value === 'number') return num(value)
  if (!Array.isArray(value) && !ArrayBuffer.isView(value)) return String(value)
  const values = Array.from(value as ArrayLike<unknown>)
  const shown = values.slice(0, max).map((v) => num(v))
  return `[${shown.join(', ')}${values.length > max ? `, … ${values.length - max} more` : ''}]`
}

/**
 * The training figures of a metrics frame in one line.
 *
 * @example
 * metricsLine(server.metrics(), 980) // 'events 5,120 (980/s)  loss 0.4213  grad norm 1.702  clip 5.0%  …'
 */
export function metricsLine(m: MetricsFrame, eventsPerSecond = m.eventsPerSecond): string {
  const parts = [
    `events ${count(m.events)} (${count(eventsPerSecond)}/s)`,
    `loss ${num(m.loss)}`,
    `grad norm ${num(m.gradNorm)}`,
    `clip ${percent(m.clipRate)}`,
    `updates ${count(m.updates)}`,
    `keys ${count(m.keys)}`,
  ]
  if (typeof m.rmse === 'number') parts.push(`rmse ${num(m.rmse)} (persistence ${num(m.persistenceRmse)})`)
  if (typeof m.accuracy === 'number') parts.push(`accuracy ${percent(m.accuracy)}`)
  parts.push(`producers ${count(m.producers)}`, `subscribers ${count(m.subscribers)}`)
  if (m.rejected > 0) parts.push(`rejected ${count(m.rejected)}`)
  if (m.dropped > 0) parts.push(`dropped ${count(m.dropped)}`)
  if (m.skippedUpdates > 0) parts.push(`skipped updates ${count(m.skippedUpdates)}`)
  if (typeof m.intervalCoverage === 'number') parts.push(`coverage ${percent(m.intervalCoverage)}`)
  if (typeof m.anomalies === 'number' && m.anomalies > 0) parts.push(`anomalies ${count(m.anomalies)}`)
  if (typeof m.drifts === 'number' && m.drifts > 0) parts.push(`drifts ${count(m.drifts)}`)
  return parts.join('  ')
}

/** A server frame as tail prints it; undefined for frames tail does not show. */
export function frameLine(frame: Record<string, unknown>): string | undefined {
  switch (frame.type) {
    case 'metrics': {
      const metrics = asServerFrame(frame)
      return metrics?.type === 'metrics' ? `metrics     ${metricsLine(metrics)}` : undefined
    }
    case 'update': {
      const flags = [frame.clipped === true ? 'clipped' : '', frame.skipped === true ? 'skipped' : '']
      return [
        `update      ${String(frame.key)}`,
        `step ${count(frame.step)}`,
        `loss ${num(frame.loss)}`,
        `grad norm ${num(frame.gradNorm)}`,
        ...flags.filter((f) => f !== ''),
      ].join('  ')
    }
    case 'prediction': {
      const id = frame.id === undefined ? '' : ` #${String(frame.id)}`
      const target = frame.target === undefined ? '' : `  target ${vector(frame.target)}`
      const interval =
        frame.lower === undefined ? '' : `  interval ${vector(frame.lower)} … ${vector(frame.upper)}`
      const anomaly =
        typeof frame.anomaly === 'number'
          ? `  anomaly ${frame.anomaly.toFixed(3)}${frame.isAnomaly === true ? ' ANOMALY' : ''}`
          : ''
      const ahead = Array.isArray(frame.ahead)
        ? `  ahead ${frame.ahead.length} rows, last ${vector(frame.ahead.at(-1))}`
        : ''
      return `prediction  ${String(frame.key)}${id}  y ${vector(frame.y)}${target}${interval}${anomaly}${ahead}`
    }
    case 'drift':
      return [
        `drift       ${String(frame.key)}`,
        `step ${count(frame.step)}`,
        `${String(frame.detector)}`,
        `loss ${num(frame.loss)}`,
        `response ${String(frame.response)}`,
      ].join('  ')
    case 'error':
      return `error       ${String(frame.code)}: ${String(frame.message)}`
    default:
      return undefined
  }
}

/**
 * Flag parsers for commander: each turns the flag's text into a value or throws
 * `InvalidArgumentError`, which commander reports as
 * `error: option '--flag <value>' argument 'text' is invalid. <reason>` (exit code 2, see program.ts).
 */
import { InvalidArgumentError } from 'commander'

/** A whole number in [min, max]. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text) => {
    const value = Number(text.trim())
    if (text.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`
      throw new InvalidArgumentError(`Expected a whole number ${range}.`)
    }
    return value
  }
}

/** A finite number >= min (> min when `exclusive`). */
export function number(min: number, exclusive = false): (text: string) => number {
  return (text) => {
    const value = Number(text.trim())
    const ok = text.trim() !== '' && Number.isFinite(value) && (exclusive ? value > min : value >= min)
    if (!ok) throw new InvalidArgumentError(`Expected a number ${exclusive ? '>' : '>='} ${min}.`)
    return value
  }
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * A duration in milliseconds: `250ms`, `30s`, `5m`, `1h`, or a bare number of milliseconds.
 *
 * @example
 * parseDuration('1.5s') // 1500
 * parseDuration('200') // 200
 */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$/.exec(text)
  if (match === null) {
    throw new InvalidArgumentError('Expected a duration such as 500ms, 30s, 5m or 1h (a bare number is ms).')
  }
  return Math.round(Number(match[1]) * (UNITS[match[2] ?? 'ms'] ?? 1))
}

/** A byte count: `65536`, `64kb`, `1mb` (binary units: 1kb = 1024 bytes). */
export function parseBytes(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|k|mb|m|gb|g)?\s*$/i.exec(text)
  const scale: Record<string, number> = {
    b: 1,
    k: 1024,
    kb: 1024,
    m: 1 << 20,
    mb: 1 << 20,
    g: 1 << 30,
    gb: 1 << 30,
  }
  const bytes = match === null ? Number.NaN : Number(match[1]) * (scale[(match[2] ?? 'b').toLowerCase()] ?? 1)
  if (!(bytes >= 1) || !Number.isFinite(bytes)) {
    throw new InvalidArgumentError('Expected a size in bytes >= 1, such as 65536, 64kb or 1mb.')
  }
  return Math.round(bytes)
}

/** A comma-separated list of non-empty names, each one of `allowed` when given. */
export function list(allowed?: readonly string[]): (text: string) => string[] {
  return (text) => {
    const items = text.split(',').map((item) => item.trim())
    if (items.length === 0 || items.some((item) => item === '')) {
      throw new InvalidArgumentError('Expected a comma-separated list of names, such as a,b,c.')
    }
    if (allowed !== undefined) {
      const unknown = items.filter((item) => !allowed.includes(item))
      if (unknown.length > 0) {
        throw new InvalidArgumentError(
          `${unknown.map((u) => JSON.stringify(u)).join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not one of ${allowed.join(', ')}.`,
        )
      }
    }
    return [...new Set(items)]
  }
}

/** A ws:// or wss:// URL (http:// and https:// are accepted as the same server). */
export function wsUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new InvalidArgumentError('Expected an absolute URL such as ws://127.0.0.1:8080.')
  }
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(url.protocol)) {
    throw new InvalidArgumentError(`Expected a ws:// or wss:// URL, not ${url.protocol}//.`)
  }
  return text
}

/** A token as the server compares it: non-empty, without whitespace. */
export function token(text: string): string {
  if (text === '' || /\s/.test(text))
    throw new InvalidArgumentError('Expected a non-empty token without spaces.')
  return text
}
